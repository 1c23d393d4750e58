package neox

import (
	"fmt"

	"irl/onnx"
)

// The fused blocks: the inference and decode graphs' layers on ONNX
// Runtime's contrib kernels (com.microsoft). One GroupQueryAttention node does
// the work of some fifteen standard nodes per layer (the transposes of Q, K
// and V, the scaled scores, the mask, the softmax, the weighted sum) and, when
// decoding, writes the new keys and values into the cache in place;
// RotaryEmbedding rotates the queries and keys in one node each instead of
// eight. SkipLayerNormalization does a residual addition and the next layer
// norm in one pass. Training graphs keep the standard blocks (blocks.go):
// their backward needs intermediates the fused kernels do not return.
//
// GroupQueryAttention treats every row as right-padded: row b's tokens sit at
// 0…len_b−1 and each new token goes after its own row's cached ones. It can
// rotate queries and keys itself, but on CPU that doubles its time (a
// pythia-70m layer at 32 × 128 tokens: 14 ms against 8 ms), and it needs
// head widths and rotated dims that are multiples of 16; RotaryEmbedding
// takes 0.2 ms a tensor and any even number of rotated dims.

// Fused is the one rule that chooses between a graph on the fused kernels
// and one of standard operators: fused unless standard asks for standard
// operators, the session runs on CUDA (whose GroupQueryAttention takes only
// 16-bit floats), or c's head width is one the fused attention cannot take.
// The forward graph and the decoders follow it.
func Fused(c Config, standard bool, device onnx.Device) bool {
	return !standard && device != onnx.CUDA && fusedSupport(c) == nil
}

// fusedSupport tells why a configuration cannot use the fused kernels, or nil.
func fusedSupport(c Config) error {
	if hd := c.HeadDim(); hd%8 != 0 {
		return fmt.Errorf("head width %d is not a multiple of 8, which GroupQueryAttention needs", hd)
	}
	return nil
}

// FusedFits tells whether a fused forward graph of c takes the batch: every
// row's attention mask is 0s and 1s with its 1s in one run (left padding,
// right padding, or both), the positions are those the mask gives (nil, or
// counting up from 0 along the run), and the batch is no longer than the
// model's positions. The batch must be complete (Batch.Complete).
func FusedFits(c Config, bt *Batch) bool {
	if bt.S > c.MaxPositions {
		return false
	}
	for row := 0; row < bt.B; row++ {
		mask := bt.AttentionMask[row*bt.S : (row+1)*bt.S]
		first, end := -1, -1
		for j, m := range mask {
			switch {
			case m != 0 && m != 1:
				return false
			case m == 1 && first < 0:
				first = j
			case m == 1 && end >= 0:
				return false // a second run
			case m == 0 && first >= 0 && end < 0:
				end = j
			}
		}
		if first < 0 || bt.PositionIDs == nil {
			continue
		}
		if end < 0 {
			end = bt.S
		}
		for j := first; j < end; j++ {
			if bt.PositionIDs[row*bt.S+j] != int64(j-first) {
				return false
			}
		}
	}
	return true
}

// qkvRows lists the rows of the checkpoint's fused QKV projection that hold
// part (0 queries, 1 keys, 2 values) of every head, in head order:
// checkpoints interleave them head by head (q|k|v of head 0, then of head 1,
// …), and the fused attention takes queries, keys and values apart.
func qkvRows(c Config, part int) []int64 {
	h, hd := c.NumHeads, c.HeadDim()
	rows := make([]int64, 0, h*hd)
	for head := 0; head < h; head++ {
		for j := 0; j < hd; j++ {
			rows = append(rows, int64(head*3*hd+part*hd+j))
		}
	}
	return rows
}

// fusedRotary returns RotaryEmbedding's cos and sin caches [MaxPositions,
// R/2], each frequency once, or "" without rotary.
func (b *builder) fusedRotary() (cos, sin onnx.Value) {
	c := b.c
	r := c.RotaryDims()
	if r == 0 {
		return "", ""
	}
	ct, st := c.rotaryTables() // [MaxPositions, R], each frequency twice
	half := r / 2
	cs, sn := make([]float32, c.MaxPositions*half), make([]float32, c.MaxPositions*half)
	for p := 0; p < c.MaxPositions; p++ {
		copy(cs[p*half:(p+1)*half], ct[p*r:p*r+half])
		copy(sn[p*half:(p+1)*half], st[p*r:p*r+half])
	}
	g := b.g
	return g.Initializer("rotary.cos_half", []int{c.MaxPositions, half}, cs),
		g.Initializer("rotary.sin_half", []int{c.MaxPositions, half}, sn)
}

// qkvProjections returns layer p's query, key and value projections of ln1
// (N,D), each (N,D). With b.oneQKV (decode steps, a few rows) one Gemm
// computes all three, its weight's rows ordered as queries, keys, values, and
// a Split takes them apart: one call costs less than three when weights
// dominate. Otherwise three Gemms write them apart, which saves copying a
// large output. Initializer weights are reordered once, here; weights that
// are graph inputs are gathered in the graph at every run, or, for oneQKV,
// left as they are, the small output gathered instead.
func (b *builder) qkvProjections(ln1 onnx.Value, p string) (q, k, v onnx.Value) {
	c := b.c
	g := b.g
	d := int64(c.HiddenSize)
	wn, bn := p+"attention.query_key_value.weight", p+"attention.query_key_value.bias"
	var rows [3][]int64
	for part := range rows {
		rows[part] = qkvRows(c, part)
	}
	out := make([]onnx.Value, 3)
	switch {
	case b.inputs && b.oneQKV:
		qkv := g.Gemm(ln1, b.weight(wn), b.weight(bn), false, true) // (N,3D), checkpoint order
		all := append(append(append([]int64{}, rows[0]...), rows[1]...), rows[2]...)
		out = g.Split(g.Gather(qkv, g.ConstI64(all...), 1), 1, d, d, d)
	case b.inputs:
		for part := range out {
			idx := g.ConstI64(rows[part]...)
			out[part] = g.Gemm(ln1, g.Gather(b.weight(wn), idx, 0), g.Gather(b.weight(bn), idx, 0), false, true)
		}
	default:
		pw, pb := b.m.Params[wn], b.m.Params[bn]
		in := pw.Shape[1]
		var wAll, bAll []float32
		for part := range rows {
			for _, src := range rows[part] {
				wAll = append(wAll, pw.Data[int(src)*in:(int(src)+1)*in]...)
				bAll = append(bAll, pb.Data[src])
			}
		}
		if b.oneQKV {
			w := g.Initializer(p+"attention.qkv_by_part.weight", pw.Shape, wAll)
			bv := g.Initializer(p+"attention.qkv_by_part.bias", pb.Shape, bAll)
			out = g.Split(g.Gemm(ln1, w, bv, false, true), 1, d, d, d)
			break
		}
		for part, name := range []string{"query", "key", "value"} {
			n := len(rows[part])
			w := g.Initializer(p+"attention."+name+".weight", []int{n, in}, wAll[part*n*in:(part+1)*n*in])
			bv := g.Initializer(p+"attention."+name+".bias", []int{n}, bAll[part*n:(part+1)*n])
			out[part] = g.Gemm(ln1, w, bv, false, true)
		}
	}
	return out[0], out[1], out[2]
}

// attnInputs are what every layer's attention shares.
type attnInputs struct {
	seqLensK, total onnx.Value // int32 (B) and (1)
	// pos are the positions RotaryEmbedding rotates at: (B,S), or (1) for
	// every row counting up from it.
	pos      onnx.Value
	cos, sin onnx.Value
	// bsd is (B, S, D), the kernels' 3-D shape.
	bsd onnx.Value
	// caches are the per-layer past key and value inputs, nil for none.
	caches [][2]onnx.Value
}

// The fused graphs keep activations flat, (N,D) with N = B·S, as Gemm
// takes them: only the attention kernels need the batch and sequence axes,
// so a few Reshapes per layer replace the four or five nodes that shape each
// projection's input and output, which cost as much as the projections
// themselves when a decode step runs a few tokens.

// fusedAttention is the attention of layer l on ln1 (N,D) through
// RotaryEmbedding and GroupQueryAttention, without the output projection's
// bias (the caller's SkipLayerNorm adds it). It returns the projection (N,D)
// and the present keys and values.
func (b *builder) fusedAttention(ln1 onnx.Value, l int, ai *attnInputs) (out, presentK, presentV onnx.Value) {
	c := b.c
	g := b.g
	p := layerPrefix(l)
	q, k, v := b.qkvProjections(ln1, p)
	q, k, v = g.ReshapeTo(q, ai.bsd), g.ReshapeTo(k, ai.bsd), g.ReshapeTo(v, ai.bsd)
	if ai.cos != "" {
		ro := onnx.RotaryOptions{NumHeads: c.NumHeads, RotaryDim: c.RotaryDims()}
		q = g.RotaryEmbedding(q, ai.pos, ai.cos, ai.sin, ro)
		k = g.RotaryEmbedding(k, ai.pos, ai.cos, ai.sin, ro)
	}
	in := onnx.GQAInputs{Query: q, Key: k, Value: v, SeqLensK: ai.seqLensK, TotalSeqLen: ai.total}
	if ai.caches != nil {
		in.PastKey, in.PastValue = ai.caches[l][0], ai.caches[l][1]
	}
	ctx, presentK, presentV := g.GroupQueryAttention(in, onnx.GQAOptions{NumHeads: c.NumHeads, KVNumHeads: c.NumHeads})
	ctx = g.Reshape(ctx, -1, int64(c.HiddenSize))
	return g.Gemm(ctx, b.weight(p+"attention.dense.weight"), "", false, true), presentK, presentV
}

// fusedMLP is dense_4h_to_h(gelu(dense_h_to_4h(h))) on flat h (N,D),
// without the output bias. ONNX Runtime's BiasGelu would add the first
// bias as it applies GELU, but its CPU kernel writes a temporary copy of its
// whole input, which makes it slower than the Gemm adding the bias.
func (b *builder) fusedMLP(h onnx.Value, p string) onnx.Value {
	g := b.g
	u := g.Gemm(h, b.weight(p+"mlp.dense_h_to_4h.weight"), b.weight(p+"mlp.dense_h_to_4h.bias"), false, true)
	return g.Gemm(g.GeluMS(u), b.weight(p+"mlp.dense_4h_to_h.weight"), "", false, true)
}

// fusedShapes sets the shape every layer's attention takes, from the tokens
// ids (B,S).
func (b *builder) fusedShapes(ids onnx.Value, ai *attnInputs) {
	g := b.g
	ai.bsd = g.Concat(0, g.Shape(ids), g.ConstI64(int64(b.c.HiddenSize)))
}

// embedFlat is the token embeddings of ids (B,S) as flat rows (N,D).
func (b *builder) embedFlat(ids onnx.Value) onnx.Value {
	return b.g.Gather(b.weight("gpt_neox.embed_in.weight"), b.g.Reshape(ids, -1), 0)
}

// sumBias is the bias of two projections added to the same residual, as one
// vector: an initializer when the weights are, else an Add in the graph.
func (b *builder) sumBias(a, c string) onnx.Value {
	if b.inputs {
		return b.g.Add(b.weight(a), b.weight(c))
	}
	pa, pc := b.m.Params[a], b.m.Params[c]
	s := make([]float32, len(pa.Data))
	for i := range s {
		s[i] = pa.Data[i] + pc.Data[i]
	}
	return b.g.Initializer(a+"+"+c, pa.Shape, s)
}

// skipNorm is SkipLayerNormalization with norm prefix's weights: the layer
// norm of x + skip + bias, and that sum.
func (b *builder) skipNorm(x, skip, bias onnx.Value, prefix string) (ln, sum onnx.Value) {
	return b.g.SkipLayerNorm(x, skip, b.weight(prefix+".weight"), b.weight(prefix+".bias"), bias, float32(b.c.LayerNormEps), true)
}

// fusedLayer is layer l on the residual stream x (N,D), whose layer norm
// ln1 the previous layer's SkipLayerNorm may have computed ("" if not). It
// returns the layer's output y and, when next names a following norm (the
// next layer's input norm, or the final norm), that norm of y, computed in
// the same kernel as y's last residual addition.
//
//	parallel:   y = x + attn(ln1(x)) + mlp(ln2(x))
//	sequential: h = x + attn(ln1(x)), y = h + mlp(ln2(h))
func (b *builder) fusedLayer(x, ln1 onnx.Value, l int, ai *attnInputs, next string) (y, lnNext, presentK, presentV onnx.Value) {
	g := b.g
	p := layerPrefix(l)
	if ln1 == "" {
		ln1 = b.layerNorm(x, p+"input_layernorm", nil)
	}
	attn, presentK, presentV := b.fusedAttention(ln1, l, ai)
	attnBias, mlpBias := p+"attention.dense.bias", p+"mlp.dense_4h_to_h.bias"
	finish := func(m, skip, bias onnx.Value) (onnx.Value, onnx.Value) {
		if next == "" {
			return g.Add(g.Add(m, bias), skip), ""
		}
		ln, sum := b.skipNorm(m, skip, bias, next)
		return sum, ln
	}
	if b.c.ParallelResidual {
		ln2 := b.layerNorm(x, p+"post_attention_layernorm", nil)
		m := b.fusedMLP(ln2, p)
		y, lnNext = finish(m, g.Add(x, attn), b.sumBias(attnBias, mlpBias))
		return y, lnNext, presentK, presentV
	}
	ln2, h := b.skipNorm(attn, x, b.weight(attnBias), p+"post_attention_layernorm")
	y, lnNext = finish(b.fusedMLP(ln2, p), h, b.weight(mlpBias))
	return y, lnNext, presentK, presentV
}

// nextNorm names the norm that follows layer l in a graph of depth layers
// that ends with the final norm when final is set, or "" for none.
func nextNorm(l, depth, numLayers int, final bool) string {
	switch {
	case l+1 < depth:
		return layerPrefix(l+1) + "input_layernorm"
	case l+1 == numLayers && final:
		return "gpt_neox.final_layer_norm"
	}
	return ""
}
