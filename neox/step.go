package neox

import (
	"fmt"
	"math"

	"irl/onnx"
)

// The static decode step: one new token per row for a batch of fixed size B
// over a key/value cache of fixed capacity C, every input and output of a
// shape known when the graph is built. No node reads a shape at run time
// (no Shape, Range or NonZero), so that under CUDA every node runs on the
// device and ONNX Runtime can capture the step once as a CUDA graph and
// replay it (onnx.Options.CUDAGraph). Rows stay in the batch until it ends:
// a finished row goes on being computed, its results unread, rather than
// leaving the batch (which would change B).
//
// Shapes in comments: B rows, C cache slots, D width, F MLP width, H heads,
// hd head width, R rotary dims, V vocabulary.

// CacheIndexInput names the step graph's input of the cache slot each row's
// new token is written to, I64 [B,1].
const CacheIndexInput = "cache_index"

// StepOptions configure a static decode step graph.
type StepOptions struct {
	// Batch (B) and Capacity (C) fix the graph's shapes: B rows of one new
	// token each, over caches of C slots per row.
	Batch, Capacity int
	// DType is the element type of the weights, the activations and the
	// caches: onnx.Float (also the zero value), onnx.Float16 or
	// onnx.BFloat16. In half precision the weights are rounded once, when
	// the graph is built (its initializers are stored half), and layer
	// norms, the attention's softmax and the logits (and their statistics)
	// are computed in float32, Cast around them.
	DType onnx.DType
}

// StepGraph is a built static decode step graph.
//
// Inputs, in order: input_ids, position_ids and cache_index I64 [B,1] (each
// row's new token, its position, and the cache slot its keys and values go
// to); attention_mask I64 [B,C] (1 for the slots the new token sees, its
// own slot included); then past_key.L and past_value.L [B,H,C,hd] of DType
// for each layer L.
//
// Outputs, in order: logits F32 [B,V], logsumexp, argmax (I64) and
// max_logit [B], then present_key.L and present_value.L [B,H,C,hd]: the
// past with the new keys and values scattered into each row's slot, meant
// to be bound to the very buffers of past_key.L and past_value.L, so that
// the step updates the cache in place (ScatterElements skips its copy when
// its input and output share memory).
type StepGraph struct {
	Graph           *onnx.Graph
	Batch, Capacity int
	DType           onnx.DType
	Inputs          []string
	Outputs         []string
}

// BuildStep builds the static decode step graph of m, with the weights as
// initializers (of o.DType).
func BuildStep(m *Model, o StepOptions) (*StepGraph, error) {
	c := m.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dt := o.DType
	if dt == 0 {
		dt = onnx.Float
	}
	switch {
	case o.Batch <= 0 || o.Capacity <= 0:
		return nil, fmt.Errorf("neox: step graph of %d rows × %d cache slots", o.Batch, o.Capacity)
	case dt != onnx.Float && dt != onnx.Float16 && dt != onnx.BFloat16:
		return nil, fmt.Errorf("neox: step graph: element type %d: want float32, float16 or bfloat16", dt)
	}
	for _, s := range c.ParamSpecs() {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		if p := m.Params[s.Name]; p == nil || len(p.Data) != n {
			return nil, fmt.Errorf("neox: step graph: parameter %s missing or of the wrong size", s.Name)
		}
	}
	s := &stepBuilder{g: onnx.NewGraph("gpt_neox_step"), c: c, m: m, dt: dt, b: int64(o.Batch), cap: int64(o.Capacity),
		weights: map[string]onnx.Value{}}
	g := s.g
	B, C := o.Batch, o.Capacity
	h, hd := c.NumHeads, c.HeadDim()
	ids := g.Input(InputIDs, onnx.Int64, B, 1)
	pos := g.Input(PositionIDs, onnx.Int64, B, 1)
	index := g.Input(CacheIndexInput, onnx.Int64, B, 1)
	mask := g.Input(AttentionMask, onnx.Int64, B, C)
	sg := &StepGraph{Graph: g, Batch: B, Capacity: C, DType: dt,
		Inputs:  []string{InputIDs, PositionIDs, CacheIndexInput, AttentionMask},
		Outputs: []string{LogitsOutput, LogSumExpOutput, ArgMaxOutput, MaxLogitOutput}}
	past := make([][2]onnx.Value, c.NumLayers)
	for l := range past {
		past[l][0] = g.Input(PastKey(l), dt, B, h, C, hd)
		past[l][1] = g.Input(PastValue(l), dt, B, h, C, hd)
		sg.Inputs = append(sg.Inputs, PastKey(l), PastValue(l))
	}

	// Every row writes its slot, in every head and dim: (B,H,1,hd).
	s.index = g.Op("Expand", []onnx.Value{g.Reshape(index, s.b, 1, 1, 1), g.ConstI64(s.b, int64(h), 1, int64(hd))})
	// The additive bias over the slots (B,1,1,C), in float32 whatever dt:
	// −1e9 is out of float16's range. A finite value keeps a row that sees
	// nothing (a padding step) free of NaN.
	allowed := g.Cast(g.Reshape(mask, s.b, 1, 1, s.cap), onnx.Bool)
	s.bias = g.Where(allowed, g.ScalarF32(0), g.ScalarF32(-1e9))
	s.rotary(pos)

	x := g.Gather(s.weight("gpt_neox.embed_in.weight"), g.Reshape(ids, s.b), 0) // (B,D)
	present := make([][2]onnx.Value, c.NumLayers)
	for l := 0; l < c.NumLayers; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		x, present[l][0], present[l][1] = s.layer(x, l, past[l][0], past[l][1])
	}
	g.Scope = ""
	x = s.layerNorm(x, "gpt_neox.final_layer_norm")
	out := "embed_out.weight"
	if c.TieEmbeddings {
		out = "gpt_neox.embed_in.weight"
	}
	logits := g.Gemm(x, s.weight(out), "", false, true) // (B,V)
	if dt != onnx.Float {
		logits = g.Cast(logits, onnx.Float)
	}
	// Named as the output it is, so that no Identity copies it.
	logits = g.Rename(logits, LogitsOutput)
	g.Output(logits, LogitsOutput, onnx.Float, B, c.VocabSize)
	// The same nodes as the other decode graphs' statistics, so the same
	// values.
	ones := onesColumn(g, c.VocabSize)
	logitStats(g, logits, func(x onnx.Value) onnx.Value { return g.MatMul(x, ones) }, B)
	for l := range present {
		g.Output(present[l][0], PresentKey(l), dt, B, h, C, hd)
		g.Output(present[l][1], PresentValue(l), dt, B, h, C, hd)
		sg.Outputs = append(sg.Outputs, PresentKey(l), PresentValue(l))
	}
	return sg, nil
}

// stepBuilder builds a step graph. It keeps to itself rather than share the
// builder of the other graphs, whose blocks work on symbolic shapes (Shape
// and Concat to reshape), which a static graph must not.
type stepBuilder struct {
	g   *onnx.Graph
	c   Config
	m   *Model
	dt  onnx.DType
	b   int64 // B
	cap int64 // C
	// weights are the initializers made so far, by parameter name.
	weights map[string]onnx.Value
	// index (B,H,1,hd) is each row's slot, bias (B,1,1,C) the attention
	// mask's, cos and sin (B,1,1,R) the rotary angles of each row's token.
	index, bias, cos, sin onnx.Value
}

// weight is parameter name as an initializer of the graph's type, made
// (and, in half precision, rounded) on first use.
func (s *stepBuilder) weight(name string) onnx.Value {
	return s.weightAs(name, s.dt)
}

func (s *stepBuilder) weightAs(name string, dt onnx.DType) onnx.Value {
	key := fmt.Sprint(name, "/", dt)
	if v, ok := s.weights[key]; ok {
		return v
	}
	p := s.m.Params[name]
	init := name
	if dt != s.dt {
		init = fmt.Sprintf("%s.%d", name, dt)
	}
	v := s.g.InitializerAs(init, p.Shape, p.Data, dt)
	s.weights[key] = v
	return v
}

// scalar is a 0-D constant of the graph's type.
func (s *stepBuilder) scalar(v float32) onnx.Value { return s.g.ScalarAs(v, s.dt) }

// toF32 and fromF32 cast between the graph's type and float32, where they
// differ.
func (s *stepBuilder) toF32(x onnx.Value) onnx.Value {
	if s.dt == onnx.Float {
		return x
	}
	return s.g.Cast(x, onnx.Float)
}

func (s *stepBuilder) fromF32(x onnx.Value) onnx.Value {
	if s.dt == onnx.Float {
		return x
	}
	return s.g.Cast(x, s.dt)
}

// layerNorm normalises x (B,D) in float32, with float32 weights: its mean
// and variance over D would lose too much in half precision.
func (s *stepBuilder) layerNorm(x onnx.Value, prefix string) onnx.Value {
	in := []onnx.Value{s.toF32(x), s.weightAs(prefix+".weight", onnx.Float), s.weightAs(prefix+".bias", onnx.Float)}
	y := s.g.Op("LayerNormalization", in, onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", float32(s.c.LayerNormEps)))
	return s.fromF32(y)
}

// dense is x·Wᵀ + b for x (B,in) and the checkpoint's [out,in] weight,
// read transposed in place by the Gemm.
func (s *stepBuilder) dense(x onnx.Value, prefix string) onnx.Value {
	return s.g.Gemm(x, s.weight(prefix+".weight"), s.weight(prefix+".bias"), false, true)
}

// gelu is the exact GELU in the node order ONNX Runtime fuses, with
// constants of the graph's type (onnx.Graph.GELU's are float32).
func (s *stepBuilder) gelu(u onnx.Value) onnx.Value {
	if s.dt == onnx.Float {
		return s.g.GELU(u)
	}
	g := s.g
	e := g.Erf(g.Div(u, s.scalar(float32(math.Sqrt2))))
	return g.Mul(g.Mul(u, g.Add(e, s.scalar(1))), s.scalar(0.5))
}

// rotary gathers the rotary angles of each row's position, (B,1,1,R).
func (s *stepBuilder) rotary(pos onnx.Value) {
	c := s.c
	r := c.RotaryDims()
	if r == 0 {
		return
	}
	ct, st := c.rotaryTables()
	g := s.g
	cosT := g.InitializerAs("rotary.cos", []int{c.MaxPositions, r}, ct, s.dt)
	sinT := g.InitializerAs("rotary.sin", []int{c.MaxPositions, r}, st, s.dt)
	p := g.Reshape(pos, s.b)
	s.cos = g.Reshape(g.Gather(cosT, p, 0), s.b, 1, 1, int64(r))
	s.sin = g.Reshape(g.Gather(sinT, p, 0), s.b, 1, 1, int64(r))
}

// applyRotary rotates the first R dims of x (B,H,1,hd) as transformers'
// rotate_half does: x·cos + [−x2, x1]·sin over the R dims' two halves.
func (s *stepBuilder) applyRotary(x onnx.Value) onnx.Value {
	r, hd := s.c.RotaryDims(), s.c.HeadDim()
	if r == 0 {
		return x
	}
	g := s.g
	xr, xp := x, onnx.Value("")
	if r < hd {
		parts := g.Split(x, 3, int64(r), int64(hd-r))
		xr, xp = parts[0], parts[1]
	}
	halves := g.Split(xr, 3, int64(r/2), int64(r/2))
	rot := g.Concat(3, g.Neg(halves[1]), halves[0])
	y := g.Add(g.Mul(xr, s.cos), g.Mul(rot, s.sin))
	if xp != "" {
		y = g.Concat(3, y, xp)
	}
	return y
}

// attention is the new tokens' self-attention over the cache: their keys
// and values scattered into each row's slot of pastK and pastV (B,H,C,hd),
// then attention over all C slots under the mask's bias.
func (s *stepBuilder) attention(h onnx.Value, p string, pastK, pastV onnx.Value) (out, presentK, presentV onnx.Value) {
	c := s.c
	g := s.g
	nh, hd := int64(c.NumHeads), int64(c.HeadDim())
	qkv := s.dense(h, p+"attention.query_key_value") // (B,3D)
	// Checkpoints lay out the 3D outputs head by head, each head as q|k|v;
	// with one token per row, (B,H,1,3hd) is the transposed layout too.
	parts := g.Split(g.Reshape(qkv, s.b, nh, 1, 3*hd), 3, hd, hd, hd)
	q := s.applyRotary(parts[0])
	k := s.applyRotary(parts[1])
	presentK = g.Op("ScatterElements", []onnx.Value{pastK, s.index, k}, onnx.AttrInt("axis", 2)) // (B,H,C,hd)
	presentV = g.Op("ScatterElements", []onnx.Value{pastV, s.index, parts[2]}, onnx.AttrInt("axis", 2))
	q = g.Mul(q, s.scalar(float32(1/math.Sqrt(float64(hd)))))
	scores := s.toF32(g.MatMul(q, g.Transpose(presentK, 0, 1, 3, 2)))     // (B,H,1,C)
	probs := s.fromF32(g.Softmax(g.Add(scores, s.bias), -1))              // (B,H,1,C)
	ctx := g.Reshape(g.MatMul(probs, presentV), s.b, int64(c.HiddenSize)) // (B,D)
	return s.dense(ctx, p+"attention.dense"), presentK, presentV
}

// layer is one transformer block on x (B,D), as neox's layer:
//
//	parallel (Pythia): y = x + attn(ln1(x)) + mlp(ln2(x))
//	sequential:        h = x + attn(ln1(x)), y = h + mlp(ln2(h))
func (s *stepBuilder) layer(x onnx.Value, l int, pastK, pastV onnx.Value) (y, k, v onnx.Value) {
	g := s.g
	p := fmt.Sprintf("gpt_neox.layers.%d.", l)
	mlp := func(h onnx.Value) onnx.Value {
		return s.dense(s.gelu(s.dense(h, p+"mlp.dense_h_to_4h")), p+"mlp.dense_4h_to_h")
	}
	attn, k, v := s.attention(s.layerNorm(x, p+"input_layernorm"), p, pastK, pastV)
	if s.c.ParallelResidual {
		return g.Add(g.Add(x, attn), mlp(s.layerNorm(x, p+"post_attention_layernorm"))), k, v
	}
	h := g.Add(x, attn)
	return g.Add(h, mlp(s.layerNorm(h, p+"post_attention_layernorm"))), k, v
}
