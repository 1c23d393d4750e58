package policy

import (
	"fmt"
	"math"

	"irl/onnx"
)

// Graph input names. Every graph of this package takes all three, I64 [B,S].
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
)

// LogitsOutput names the logits output, F32 [B,S,V].
const LogitsOutput = "logits"

// HiddenOutput names hidden state i, F32 [B,S,D], in Hugging Face's
// convention: 0 is the embeddings, NumLayers is after the final layer norm.
func HiddenOutput(i int) string { return fmt.Sprintf("hidden_states.%d", i) }

// ForwardOptions chooses what a forward graph computes.
type ForwardOptions struct {
	// Hidden lists the hidden-state indices (0…NumLayers) to output.
	Hidden []int
	// Logits adds the logits output.
	Logits bool
	// Pool, if set, replaces each hidden-state output by its pooled rows,
	// F32 [B,D], named HiddenOutput(i); see Pooling.
	Pool Pooling
}

// Pooling reduces a hidden state over the sequence.
type Pooling string

// The poolings the forward graph can do.
const (
	NoPool   Pooling = ""
	PoolLast Pooling = "last" // the last real token (mask 1)
	PoolMean Pooling = "mean" // the mean over real tokens
)

// ForwardGraph is a built forward graph with its input and output names.
type ForwardGraph struct {
	Graph   *onnx.Graph
	Inputs  []string
	Outputs []string
}

// BuildForward builds the inference graph with the weights as initializers.
// Only the layers that the requested outputs need are built: asking for
// hidden state k < NumLayers alone computes k layers, no final norm, no logits.
func BuildForward(m *Model, o ForwardOptions) (*ForwardGraph, error) {
	c := m.Config
	if len(o.Hidden) == 0 && !o.Logits {
		return nil, fmt.Errorf("policy: forward graph with no outputs")
	}
	if o.Logits && o.Pool != NoPool {
		return nil, fmt.Errorf("policy: pooling applies to hidden states only, not logits")
	}
	want := map[int]bool{}
	depth := 0
	for _, h := range o.Hidden {
		if h < 0 || h > c.NumLayers {
			return nil, fmt.Errorf("policy: hidden state %d out of range 0…%d", h, c.NumLayers)
		}
		want[h] = true
		depth = max(depth, h)
	}
	if o.Logits {
		depth = c.NumLayers
	}
	b := &builder{g: onnx.NewGraph("gpt_neox"), m: m}
	g := b.g
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	mask := g.Input(AttentionMask, onnx.Int64, "batch", "seq")
	pos := g.Input(PositionIDs, onnx.Int64, "batch", "seq")
	fg := &ForwardGraph{Graph: g, Inputs: []string{InputIDs, AttentionMask, PositionIDs}}

	emit := func(i int, x onnx.Value) {
		name := HiddenOutput(i)
		switch o.Pool {
		case NoPool:
			g.Output(x, name, onnx.Float, "batch", "seq", c.HiddenSize)
		default:
			g.Output(b.pool(x, mask, o.Pool), name, onnx.Float, "batch", c.HiddenSize)
		}
		fg.Outputs = append(fg.Outputs, name)
	}

	x := g.Gather(b.weight("gpt_neox.embed_in.weight"), ids, 0) // (B,S,D)
	if want[0] {
		emit(0, x)
	}
	if depth > 0 {
		bias := b.maskBias(ids, mask)
		cos, sin := b.rotary(pos)
		for l := 0; l < depth && l < c.NumLayers; l++ {
			g.Scope = fmt.Sprintf("layer%d", l)
			x, _, _ = b.layer(x, l, bias, cos, sin, "", "", nil)
			if l+1 < c.NumLayers && want[l+1] {
				emit(l+1, x)
			}
		}
		g.Scope = ""
		if depth == c.NumLayers {
			x = b.layerNorm(x, "gpt_neox.final_layer_norm", nil)
			if want[c.NumLayers] {
				emit(c.NumLayers, x)
			}
		}
	}
	if o.Logits {
		g.Output(b.dense(x, b.outName(), ""), LogitsOutput, onnx.Float, "batch", "seq", c.VocabSize)
		fg.Outputs = append(fg.Outputs, LogitsOutput)
	}
	return fg, nil
}

// builder holds the state shared by the pieces of one forward graph.
type builder struct {
	g *onnx.Graph
	m *Model
	// weights maps parameter names to graph values: initializers made on
	// first use, or graph inputs that a training graph declares up front.
	weights map[string]onnx.Value
	shapes  map[string][]int
}

func (b *builder) outName() string {
	if b.m.Config.TieEmbeddings {
		return "gpt_neox.embed_in.weight"
	}
	return "embed_out.weight"
}

// weight is a parameter as stored in the checkpoint.
func (b *builder) weight(name string) onnx.Value {
	if v, ok := b.weights[name]; ok {
		return v
	}
	p := b.m.Params[name]
	if p == nil {
		panic("policy: no parameter " + name)
	}
	v := b.g.Initializer(name, p.Shape, p.Data)
	if b.weights == nil {
		b.weights = map[string]onnx.Value{}
	}
	b.weights[name] = v
	return v
}

// dense is x·Wᵀ + b for the checkpoint's [out,in] weight W; bias "" means
// none. A Gemm reads W transposed in place, so no transposed copy of the
// weights is ever made (1.6 GB saved for pythia-410m) and ONNX Runtime
// prepacks W once. Interleaved runs measured it as fast as a MatMul on a
// pre-transposed copy. x is (N,in) or (B,S,in).
func (b *builder) dense(x onnx.Value, weight, bias string) onnx.Value {
	g := b.g
	shape := b.shape(weight)
	out, in := shape[0], shape[1]
	var bv onnx.Value
	if bias != "" {
		bv = b.weight(bias)
	}
	lead := g.Slice(g.Shape(x), []int64{0}, []int64{-1}, []int64{0}) // all but the last dim
	y := g.Gemm(g.Reshape(x, -1, int64(in)), b.weight(weight), bv, false, true)
	return g.ReshapeTo(y, g.Concat(0, lead, g.ConstI64(int64(out))))
}

// shape is a parameter's shape, from the configuration.
func (b *builder) shape(name string) []int {
	if b.shapes == nil {
		b.shapes = map[string][]int{}
		for _, s := range b.m.Config.ParamSpecs() {
			b.shapes[s.Name] = s.Shape
		}
	}
	sh, ok := b.shapes[name]
	if !ok {
		panic("policy: no parameter " + name)
	}
	return sh
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

// rotary gathers cos and sin (B,1,S,R) for the positions.
func (b *builder) rotary(pos onnx.Value) (cos, sin onnx.Value) {
	c := b.m.Config
	r := c.RotaryDims()
	if r == 0 {
		return "", ""
	}
	ct, st := c.rotaryTables()
	g := b.g
	cosT := g.Initializer("rotary.cos", []int{c.MaxPositions, r}, ct)
	sinT := g.Initializer("rotary.sin", []int{c.MaxPositions, r}, st)
	return g.Unsqueeze(g.Gather(cosT, pos, 0), 1), g.Unsqueeze(g.Gather(sinT, pos, 0), 1)
}

// applyRotary rotates the first R dims of x (B,H,S,hd) as transformers'
// apply_rotary_pos_emb with rotate_half: x·cos + rotate_half(x)·sin.
func (b *builder) applyRotary(x, cos, sin onnx.Value) onnx.Value {
	c := b.m.Config
	r, hd := c.RotaryDims(), c.HeadDim()
	if r == 0 {
		return x
	}
	g := b.g
	xr, xp := x, onnx.Value("")
	if r < hd {
		parts := g.Split(x, 3, int64(r), int64(hd-r))
		xr, xp = parts[0], parts[1]
	}
	halves := g.Split(xr, 3, int64(r/2), int64(r/2))
	rot := g.Concat(3, g.Neg(halves[1]), halves[0])
	y := g.Add(g.Mul(xr, cos), g.Mul(rot, sin))
	if xp != "" {
		y = g.Concat(3, y, xp)
	}
	return y
}

// layerActs records what a block's backward needs; a nil record is not
// filled (inference).
type layerActs struct {
	ln1, ln2   *lnActs
	q, k, v, p onnx.Value // rotated scaled queries, rotated keys, values (B,H,S,hd); softmax (B,H,S,S)
	ctx        onnx.Value // attention output before its projection (B,S,D)
	u, gelu    onnx.Value // MLP pre-activation and activation (B,S,F)
}

// lnActs is what layer norm's backward needs.
type lnActs struct {
	x, mean, rstd, out onnx.Value // (B,S,D), (B,S,1), (B,S,1), (B,S,D)
}

// layerNorm normalises x over its last axis with prefix.weight and
// prefix.bias; with keep set it also records the input and the statistics
// that LayerNormalization returns, for the backward.
func (b *builder) layerNorm(x onnx.Value, prefix string, keep **lnActs) onnx.Value {
	g := b.g
	in := []onnx.Value{x, b.weight(prefix + ".weight"), b.weight(prefix + ".bias")}
	attrs := []onnx.Attr{onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", float32(b.m.Config.LayerNormEps))}
	if keep == nil {
		return g.Op("LayerNormalization", in, attrs...)
	}
	outs := g.OpN("LayerNormalization", 3, in, attrs...)
	*keep = &lnActs{x: x, mean: outs[1], rstd: outs[2], out: outs[0]}
	return outs[0]
}

// layer is one transformer block on x (B,S,D), with optional past keys and
// values (B,H,P,hd), which the attention of the S new tokens also sees (bias
// is then (B,1,S,P+S)). It returns the block's output and the keys and values
// of past and new tokens together, (B,H,P+S,hd), rotary already applied to
// the keys. A non-nil acts records the intermediates for the backward.
func (b *builder) layer(x onnx.Value, l int, bias, cos, sin, pastK, pastV onnx.Value, acts *layerActs) (y, k, v onnx.Value) {
	c := b.m.Config
	g := b.g
	p := fmt.Sprintf("gpt_neox.layers.%d.", l)
	var keep1, keep2 **lnActs
	if acts != nil {
		keep1, keep2 = &acts.ln1, &acts.ln2
	}
	ln1 := b.layerNorm(x, p+"input_layernorm", keep1)
	attn, k, v := b.attention(ln1, p, bias, cos, sin, pastK, pastV, acts)
	if c.ParallelResidual {
		ln2 := b.layerNorm(x, p+"post_attention_layernorm", keep2)
		return g.Add(g.Add(x, attn), b.mlp(ln2, p, acts)), k, v
	}
	h := g.Add(x, attn)
	ln2 := b.layerNorm(h, p+"post_attention_layernorm", keep2)
	return g.Add(h, b.mlp(ln2, p, acts)), k, v
}

// attention is self-attention of h (B,S,D): fused QKV, partial rotary,
// softmax attention under bias, output projection. With pastK and pastV
// (B,H,P,hd) set, the queries also attend to those keys, which come before
// the new ones; k and v are then past and new together (B,H,P+S,hd).
func (b *builder) attention(h onnx.Value, p string, bias, cos, sin, pastK, pastV onnx.Value, acts *layerActs) (out, k, v onnx.Value) {
	c := b.m.Config
	g := b.g
	hd := c.HeadDim()
	qkv := b.dense(h, p+"attention.query_key_value.weight", p+"attention.query_key_value.bias") // (B,S,3D)
	// Checkpoints lay out the 3D outputs head by head, each head as q|k|v.
	qkv = g.Transpose(g.Reshape(qkv, 0, 0, int64(c.NumHeads), int64(3*hd)), 0, 2, 1, 3) // (B,H,S,3hd)
	parts := g.Split(qkv, 3, int64(hd), int64(hd), int64(hd))
	q := b.applyRotary(parts[0], cos, sin)
	k = b.applyRotary(parts[1], cos, sin)
	v = parts[2]
	if pastK != "" {
		k = g.Concat(2, pastK, k) // (B,H,P+S,hd)
		v = g.Concat(2, pastV, v)
	}
	q = g.Mul(q, g.ScalarF32(float32(1/math.Sqrt(float64(hd)))))
	probs := g.Softmax(g.Add(g.MatMul(q, g.Transpose(k, 0, 1, 3, 2)), bias), -1) // (B,H,S,P+S)
	ctx := g.MatMul(probs, v)                                                    // (B,H,S,hd)
	ctx = g.Reshape(g.Transpose(ctx, 0, 2, 1, 3), 0, 0, int64(c.HiddenSize))
	if acts != nil {
		acts.q, acts.k, acts.v, acts.p, acts.ctx = q, k, v, probs, ctx
	}
	return b.dense(ctx, p+"attention.dense.weight", p+"attention.dense.bias"), k, v
}

func (b *builder) mlp(h onnx.Value, p string, acts *layerActs) onnx.Value {
	u := b.dense(h, p+"mlp.dense_h_to_4h.weight", p+"mlp.dense_h_to_4h.bias")
	gelu := b.g.GELU(u)
	if acts != nil {
		acts.u, acts.gelu = u, gelu
	}
	return b.dense(gelu, p+"mlp.dense_4h_to_h.weight", p+"mlp.dense_4h_to_h.bias")
}

// pool reduces x (B,S,D) to (B,D) over the real tokens of mask (B,S).
func (b *builder) pool(x, mask onnx.Value, how Pooling) onnx.Value {
	g := b.g
	mf := g.Unsqueeze(g.Cast(mask, onnx.Float), 2) // (B,S,1)
	switch how {
	case PoolMean:
		sum := g.ReduceSum(g.Mul(x, mf), false, 1)
		n := g.Op("Max", []onnx.Value{g.ReduceSum(mf, false, 1), g.ScalarF32(1)})
		return g.Div(sum, n)
	case PoolLast:
		// The last real token is the highest position whose mask is 1; this
		// holds for left and right padding alike.
		s := g.Gather(g.Shape(mask), g.ScalarI64(1), 0)
		r := g.Cast(g.Op("Range", []onnx.Value{g.ScalarI64(1), g.Add(s, g.ScalarI64(1)), g.ScalarI64(1)}), onnx.Int64)
		last := g.Sub(g.ReduceMax(g.Mul(mask, r), true, 1), g.ScalarI64(1)) // (B,1)
		last = g.Op("Max", []onnx.Value{last, g.ScalarI64(0)})
		idx := g.Op("Expand", []onnx.Value{g.Unsqueeze(last, 2), g.Concat(0, g.Slice(g.Shape(x), []int64{0}, []int64{1}, []int64{0}), g.ConstI64(1), g.Slice(g.Shape(x), []int64{2}, []int64{3}, []int64{0}))})
		return g.Squeeze(g.Op("GatherElements", []onnx.Value{x, idx}, onnx.AttrInt("axis", 1)), 1)
	}
	panic("policy: unknown pooling " + string(how))
}
