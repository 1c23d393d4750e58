package neox

import (
	"fmt"
	"math"

	"irl/onnx"
)

// The GPT-NeoX blocks, each forward beside its backward as llm.c pairs them:
// layerNorm/layerNormBackward, dense/denseBackward, gelu/geluBackward,
// applyRotary/rotaryBackward, attention/attentionBackward, mlp/mlpBackward,
// layer/layerBackward. Inference, decoding and training graphs all build
// their forward from these same functions; a forward given a non-nil record
// keeps what its backward needs.
//
// Shapes in comments: B batch, S sequence, N = B·S, D width, F MLP width,
// H heads, hd head width, R rotary dims, V vocabulary. A backward works on
// flat (N,·) activations and returns the gradient of its input, adding the
// gradients of its parameters to the builder (addGrad) unless the builder
// is frozen (the layers below the trained ones, when the embeddings train).

// lnActs is what layer norm's backward needs.
type lnActs struct {
	x, mean, rstd, out onnx.Value // (N,D), (N,1), (N,1), (N,D) in a training graph (flatActs)
}

// layerNorm normalises x over its last axis with prefix.weight and
// prefix.bias; with keep set it also records the input and the statistics
// that LayerNormalization returns, for the backward.
func (b *builder) layerNorm(x onnx.Value, prefix string, keep **lnActs) onnx.Value {
	g := b.g
	in := []onnx.Value{x, b.weight(prefix + ".weight"), b.weight(prefix + ".bias")}
	attrs := []onnx.Attr{onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", float32(b.c.LayerNormEps))}
	if keep == nil {
		return g.Op("LayerNormalization", in, attrs...)
	}
	outs := g.OpN("LayerNormalization", 3, in, attrs...)
	*keep = &lnActs{x: x, mean: outs[1], rstd: outs[2], out: outs[0]}
	return outs[0]
}

// layerNormBackward, with xhat = (x − mean)·rstd from the forward's
// statistics: dw = Σ dout·xhat, db = Σ dout, and
// dx = rstd · (dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) with dxhat = dout·w.
func (b *builder) layerNormBackward(a *lnActs, dout onnx.Value, prefix string) onnx.Value {
	g := b.g
	rstd := b.flat(a.rstd)
	xhat := g.Mul(g.Sub(b.flat(a.x), b.flat(a.mean)), rstd) // (N,D)
	if !b.frozen {
		b.addGrad(prefix+".weight", g.ReduceSum(g.Mul(dout, xhat), false, 0)) // (D)
		b.addGrad(prefix+".bias", g.ReduceSum(dout, false, 0))                // (D)
	}
	dxhat := g.Mul(dout, b.weight(prefix+".weight"))
	m1 := g.ReduceMean(dxhat, true, -1)
	m2 := g.ReduceMean(g.Mul(dxhat, xhat), true, -1)
	return g.Mul(g.Sub(g.Sub(dxhat, m1), g.Mul(xhat, m2)), rstd)
}

// dense is x·Wᵀ + b for the checkpoint's [out,in] weight W; bias "" means
// none. A Gemm reads W transposed in place, so no transposed copy of the
// weights is ever made (1.6 GB saved for pythia-410m) and ONNX Runtime
// prepacks W once. Interleaved runs measured it as fast as a MatMul on a
// pre-transposed copy. x is (N,in) or (B,S,in); with flatActs it is
// (N,in) and the Gemm is the only node.
func (b *builder) dense(x onnx.Value, weight, bias string) onnx.Value {
	g := b.g
	shape := b.shape(weight)
	out, in := shape[0], shape[1]
	var bv onnx.Value
	if bias != "" {
		bv = b.weight(bias)
	}
	if b.flatActs {
		return g.Gemm(x, b.weight(weight), bv, false, true)
	}
	lead := g.Slice(g.Shape(x), []int64{0}, []int64{-1}, []int64{0}) // all but the last dim
	y := g.Gemm(g.Reshape(x, -1, int64(in)), b.weight(weight), bv, false, true)
	return g.ReshapeTo(y, g.Concat(0, lead, g.ConstI64(int64(out))))
}

// denseBackward, for y = x·Wᵀ + b over flat x (N,in) and dy (N,out):
// dW = dyᵀ·x, db = Σ dy, dx = dy·W; needDx false skips dx, b.frozen skips
// dW and db.
func (b *builder) denseBackward(x, dy onnx.Value, prefix string, needDx bool) onnx.Value {
	g := b.g
	if !b.frozen {
		b.addGrad(prefix+".weight", g.Gemm(dy, x, "", true, false)) // (out,in)
		b.addGrad(prefix+".bias", g.ReduceSum(dy, false, 0))        // (out)
	}
	if !needDx {
		return ""
	}
	return g.MatMul(dy, b.weight(prefix+".weight"))
}

// gelu is the exact GELU u·Φ(u), in the node order ONNX Runtime fuses.
func (b *builder) gelu(u onnx.Value) onnx.Value { return b.g.GELU(u) }

// geluBackward: d/du [u·Φ(u)] = Φ(u) + u·φ(u).
func (b *builder) geluBackward(u, dy onnx.Value) onnx.Value {
	g := b.g
	phi := g.Mul(g.Add(g.Erf(g.Mul(u, g.ScalarF32(float32(1/math.Sqrt2)))), g.ScalarF32(1)), g.ScalarF32(0.5))
	pdf := g.Mul(g.Exp(g.Mul(g.Mul(u, u), g.ScalarF32(-0.5))), g.ScalarF32(float32(1/math.Sqrt(2*math.Pi))))
	return g.Mul(dy, g.Add(phi, g.Mul(u, pdf)))
}

// applyRotary rotates the first R dims of x (B,H,S,hd) as transformers'
// apply_rotary_pos_emb with rotate_half: x·cos + rotate_half(x)·sin, where
// rotate_half([x1, x2]) = [−x2, x1] over the two halves of the R dims. With
// rotary's tables over all hd dims (cos 1 and sin 0 past R, the first half
// of sin negated), that is x·cos + x[swap]·sin, swap exchanging the halves:
// four nodes, with no split of x into halves and rotated and passed dims
// and no concatenation back. The products and the sum are those of the
// split form, so the result is the same bit for bit.
func (b *builder) applyRotary(x, cos, sin onnx.Value) onnx.Value {
	if b.c.RotaryDims() == 0 {
		return x
	}
	g := b.g
	return g.Add(g.Mul(x, cos), g.Mul(g.Gather(x, b.rotarySwap(), 3), sin))
}

// rotaryBackward applies the rotation's transpose, the rotation by the
// negated angle: swap is its own inverse and sin's two halves are equal
// up to the sign rotary gave the first, so dx = dy·cos − dy[swap]·sin.
func (b *builder) rotaryBackward(dy, cos, sin onnx.Value) onnx.Value {
	if b.c.RotaryDims() == 0 {
		return dy
	}
	g := b.g
	return g.Sub(g.Mul(dy, cos), g.Mul(g.Gather(dy, b.rotarySwap(), 3), sin))
}

// rotarySwap is the index (hd) that exchanges the two halves of the R
// rotated dims and keeps the others in place.
func (b *builder) rotarySwap() onnx.Value {
	r, hd := b.c.RotaryDims(), b.c.HeadDim()
	swap := make([]int64, hd)
	for i := range swap {
		switch {
		case i < r/2:
			swap[i] = int64(i + r/2)
		case i < r:
			swap[i] = int64(i - r/2)
		default:
			swap[i] = int64(i)
		}
	}
	return b.g.ConstI64(swap...)
}

// rotary gathers cos and sin (B,1,S,hd) for the positions, over all hd dims
// for applyRotary: past R, cos is 1 and sin 0, which pass those dims through
// unchanged; sin's first half is negated, rotate_half's sign.
func (b *builder) rotary(pos onnx.Value) (cos, sin onnx.Value) {
	c := b.c
	r, hd := c.RotaryDims(), c.HeadDim()
	if r == 0 {
		return "", ""
	}
	ct, st := c.rotaryTables() // [MaxPositions, R]
	cf := make([]float32, c.MaxPositions*hd)
	sf := make([]float32, c.MaxPositions*hd)
	for p := 0; p < c.MaxPositions; p++ {
		for i := 0; i < hd; i++ {
			switch {
			case i < r/2:
				cf[p*hd+i], sf[p*hd+i] = ct[p*r+i], -st[p*r+i]
			case i < r:
				cf[p*hd+i], sf[p*hd+i] = ct[p*r+i], st[p*r+i]
			default:
				cf[p*hd+i] = 1
			}
		}
	}
	g := b.g
	cosT := g.Initializer("rotary.cos", []int{c.MaxPositions, hd}, cf)
	sinT := g.Initializer("rotary.sin", []int{c.MaxPositions, hd}, sf)
	return g.Unsqueeze(g.Gather(cosT, pos, 0), 1), g.Unsqueeze(g.Gather(sinT, pos, 0), 1)
}

// maskBias is the additive attention bias (B,1,S,S): 0 where query i may see
// key j (j ≤ i and key j is not padding), a large negative number elsewhere.
// A finite value keeps fully masked rows (left padding) free of NaN.
func (b *builder) maskBias(ids, mask onnx.Value) onnx.Value {
	g := b.g
	s := g.Gather(g.Shape(ids), g.ScalarI64(1), 0)                      // scalar S
	r := g.Op("Range", []onnx.Value{g.ScalarI64(0), s, g.ScalarI64(1)}) // (S)
	causal := g.Op("LessOrEqual", []onnx.Value{g.Unsqueeze(r, 0), g.Unsqueeze(r, 1)})
	pad := g.Cast(g.Unsqueeze(mask, 1, 2), onnx.Bool) // (B,1,1,S)
	allowed := g.Op("And", []onnx.Value{causal, pad}) // (B,1,S,S)
	return g.Where(allowed, g.ScalarF32(0), g.ScalarF32(-1e9))
}

// cachedMaskBias is the additive attention bias (B,1,T,P+T) for T new tokens
// after P cached ones: new token i sits at P+i and may see key j when j ≤ P+i
// and key j is not padding. P is mask's length minus T.
func (b *builder) cachedMaskBias(ids, mask onnx.Value) onnx.Value {
	g := b.g
	t := g.Gather(g.Shape(ids), g.ScalarI64(1), 0)  // scalar T
	k := g.Gather(g.Shape(mask), g.ScalarI64(1), 0) // scalar P+T
	keys := g.Op("Range", []onnx.Value{g.ScalarI64(0), k, g.ScalarI64(1)})
	queries := g.Op("Range", []onnx.Value{g.Sub(k, t), k, g.ScalarI64(1)})
	causal := g.Op("LessOrEqual", []onnx.Value{g.Unsqueeze(keys, 0), g.Unsqueeze(queries, 1)}) // (T,P+T)
	pad := g.Cast(g.Unsqueeze(mask, 1, 2), onnx.Bool)                                          // (B,1,1,P+T)
	allowed := g.Op("And", []onnx.Value{causal, pad})                                          // (B,1,T,P+T)
	return g.Where(allowed, g.ScalarF32(0), g.ScalarF32(-1e9))
}

// layerActs records what a block's backward needs; a nil record is not
// filled (inference).
type layerActs struct {
	ln1, ln2   *lnActs
	q, k, v, p onnx.Value // rotated scaled queries, rotated keys, values (B,H,S,hd); softmax (B,H,S,S)
	ctx        onnx.Value // attention output before its projection (N,D)
	u, gelu    onnx.Value // MLP pre-activation and activation (N,F)
}

// attention is self-attention of h (B,S,D), or (N,D) with flatActs: fused
// QKV, partial rotary, softmax attention under bias, output projection, its
// output shaped as h. With pastK and pastV (B,H,P,hd) set, the queries also
// attend to those keys, which come before the new ones; k and v are then
// past and new together (B,H,P+S,hd).
func (b *builder) attention(h onnx.Value, p string, bias, cos, sin, pastK, pastV onnx.Value, acts *layerActs) (out, presentK, presentV onnx.Value) {
	c := b.c
	g := b.g
	hd := c.HeadDim()
	qkv := b.dense(h, p+"attention.query_key_value.weight", p+"attention.query_key_value.bias") // (B,S,3D) or (N,3D)
	// Checkpoints lay out the 3D outputs head by head, each head as q|k|v.
	if b.flatActs {
		qkv = g.ReshapeTo(qkv, b.headShape(3*hd)) // (B,S,H,3hd)
	} else {
		qkv = g.Reshape(qkv, 0, 0, int64(c.NumHeads), int64(3*hd))
	}
	qkv = g.Transpose(qkv, 0, 2, 1, 3) // (B,H,S,3hd)
	parts := g.Split(qkv, 3, int64(hd), int64(hd), int64(hd))
	q := b.applyRotary(parts[0], cos, sin)
	k := b.applyRotary(parts[1], cos, sin)
	v := parts[2]
	switch {
	case pastK != "" && b.cache != nil:
		// Written into the cache, which the attention reads up to P+S.
		presentK, presentV = b.cache.write(pastK, k), b.cache.write(pastV, v) // (B,H,C,hd)
		k, v = b.cache.read(presentK), b.cache.read(presentV)                 // (B,H,P+S,hd)
	case pastK != "":
		k = g.Concat(2, pastK, k) // (B,H,P+S,hd)
		v = g.Concat(2, pastV, v)
		presentK, presentV = k, v
	default:
		presentK, presentV = k, v
	}
	q = g.Mul(q, g.ScalarF32(float32(1/math.Sqrt(float64(hd)))))
	probs := g.Softmax(g.Add(g.MatMul(q, g.Transpose(k, 0, 1, 3, 2)), bias), -1) // (B,H,S,P+S)
	ctx := g.MatMul(probs, v)                                                    // (B,H,S,hd)
	if b.flatActs {
		ctx = g.Reshape(g.Transpose(ctx, 0, 2, 1, 3), -1, int64(c.HiddenSize)) // (N,D)
	} else {
		ctx = g.Reshape(g.Transpose(ctx, 0, 2, 1, 3), 0, 0, int64(c.HiddenSize)) // (B,S,D)
	}
	if acts != nil {
		acts.q, acts.k, acts.v, acts.p, acts.ctx = q, k, v, probs, ctx
	}
	return b.dense(ctx, p+"attention.dense.weight", p+"attention.dense.bias"), presentK, presentV
}

// attentionBackward returns d(h), the gradient of attention's input (N,D),
// given d(out) (N,D). The forward computed, per head, probs = softmax(q·kᵀ +
// bias) with q already scaled by 1/√hd, ctx = probs·v, out = ctx·Woᵀ + bo.
func (b *builder) attentionBackward(a *layerActs, dout onnx.Value, p string, cos, sin onnx.Value) onnx.Value {
	c := b.c
	g := b.g
	hd := c.HeadDim()
	dctx := b.denseBackward(b.flat(a.ctx), dout, p+"attention.dense", true) // (N,D)
	dctx4 := g.Transpose(g.ReshapeTo(dctx, b.headShape(hd)), 0, 2, 1, 3)    // (B,H,S,hd)
	dp := g.MatMul(dctx4, g.Transpose(a.v, 0, 1, 3, 2))                     // d(probs) (B,H,S,S)
	dv := g.MatMul(g.Transpose(a.p, 0, 1, 3, 2), dctx4)                     // (B,H,S,hd)
	ds := g.Mul(a.p, g.Sub(dp, g.ReduceSum(g.Mul(dp, a.p), true, -1)))      // softmax backward: d(scores)
	scale := g.ScalarF32(float32(1 / math.Sqrt(float64(hd))))
	dq := g.Mul(b.rotaryBackward(g.MatMul(ds, a.k), cos, sin), scale)            // q was scaled after rotation
	dk := b.rotaryBackward(g.MatMul(g.Transpose(ds, 0, 1, 3, 2), a.q), cos, sin) // a.q is already scaled
	dqkv := g.Concat(3, dq, dk, dv)                                              // (B,H,S,3hd), the checkpoint's q|k|v per head
	dqkv = g.Reshape(g.Transpose(dqkv, 0, 2, 1, 3), -1, int64(3*c.HiddenSize))   // (N,3D)
	return b.denseBackward(b.flat(a.ln1.out), dqkv, p+"attention.query_key_value", true)
}

// mlp is dense_4h_to_h(gelu(dense_h_to_4h(h))).
func (b *builder) mlp(h onnx.Value, p string, acts *layerActs) onnx.Value {
	u := b.dense(h, p+"mlp.dense_h_to_4h.weight", p+"mlp.dense_h_to_4h.bias")
	act := b.gelu(u)
	if acts != nil {
		acts.u, acts.gelu = u, act
	}
	return b.dense(act, p+"mlp.dense_4h_to_h.weight", p+"mlp.dense_4h_to_h.bias")
}

// mlpBackward returns d(h), the gradient of the MLP's input (N,D), given
// d(out) (N,D); the forward kept u = dense_h_to_4h(h) and gelu(u).
func (b *builder) mlpBackward(a *layerActs, dout onnx.Value, p string) onnx.Value {
	dact := b.denseBackward(b.flat(a.gelu), dout, p+"mlp.dense_4h_to_h", true)
	du := b.geluBackward(b.flat(a.u), dact)
	return b.denseBackward(b.flat(a.ln2.out), du, p+"mlp.dense_h_to_4h", true)
}

// layer is one transformer block on x (B,S,D), with optional past keys and
// values (B,H,P,hd), which the attention of the S new tokens also sees (bias
// is then (B,1,S,P+S)). It returns the block's output and the keys and values
// of past and new tokens together, (B,H,P+S,hd), rotary already applied to
// the keys. A non-nil acts records the intermediates for the backward.
//
//	parallel (Pythia): y = x + attn(ln1(x)) + mlp(ln2(x))
//	sequential:        h = x + attn(ln1(x)), y = h + mlp(ln2(h))
func (b *builder) layer(x onnx.Value, l int, bias, cos, sin, pastK, pastV onnx.Value, acts *layerActs) (y, k, v onnx.Value) {
	g := b.g
	p := layerPrefix(l)
	var keep1, keep2 **lnActs
	if acts != nil {
		keep1, keep2 = &acts.ln1, &acts.ln2
	}
	ln1 := b.layerNorm(x, p+"input_layernorm", keep1)
	attn, k, v := b.attention(ln1, p, bias, cos, sin, pastK, pastV, acts)
	if b.c.ParallelResidual {
		ln2 := b.layerNorm(x, p+"post_attention_layernorm", keep2)
		return g.Add(g.Add(x, attn), b.mlp(ln2, p, acts)), k, v
	}
	h := g.Add(x, attn)
	ln2 := b.layerNorm(h, p+"post_attention_layernorm", keep2)
	return g.Add(h, b.mlp(ln2, p, acts)), k, v
}

// layerBackward returns d(x), the gradient of the layer's input (N,D), given
// d(y) (N,D); needDx false skips it for the lowest trained layer.
func (b *builder) layerBackward(a *layerActs, dy onnx.Value, l int, cos, sin onnx.Value, needDx bool) onnx.Value {
	g := b.g
	p := layerPrefix(l)
	dmlpIn := b.layerNormBackward(a.ln2, b.mlpBackward(a, dy, p), p+"post_attention_layernorm")
	// Parallel: dx = dy + dmlpIn + dattnIn. Sequential: dh = dy + dmlpIn
	// reaches both the attention and x, dx = dh + dattnIn.
	dres := g.Add(dy, dmlpIn)
	dattn := dy
	if !b.c.ParallelResidual {
		dattn = dres
	}
	dx1 := b.layerNormBackward(a.ln1, b.attentionBackward(a, dattn, p, cos, sin), p+"input_layernorm")
	if !needDx {
		return ""
	}
	return g.Add(dres, dx1)
}

func layerPrefix(l int) string { return fmt.Sprintf("gpt_neox.layers.%d.", l) }
