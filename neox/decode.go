package neox

import (
	"fmt"

	"irl/onnx"
)

// DecodeOptions configure a decode graph.
type DecodeOptions struct {
	// ParamInputs makes the weights graph inputs that every step reads
	// from where the sessions that update them keep them, instead of
	// initializers copied when the session opens, so decoding sees every
	// optimiser update (PPO's rollouts).
	ParamInputs bool
	// Standard asks for the graph of standard operators (BuildDecode),
	// which writes each step's keys and values into a copy of the cache,
	// rather than the fused kernels' cached graph (BuildCachedDecode),
	// which writes them in place, where Fused allows that. Each builder
	// builds its own kind whatever Standard says: it chooses between them.
	Standard bool
}

// DecodeGraph is a built standard decode graph with its input and output
// names.
//
// Inputs, in order: input_ids [B,T], attention_mask [B,P+T] (over the past
// and the new tokens), position_ids [B,T], rows [B], then past_key.L and
// past_value.L [B0,H,C,hd] for each layer L: a cache of capacity C holding P
// tokens per row (P may be 0: the prefill), of which rows picks the B rows
// that go on.
//
// Outputs, in order: logits of the last new token only [B,V], logsumexp,
// argmax and max_logit [B], then present_key.L and present_value.L
// [B,H,C,hd]: the past rows picked, with the new tokens' keys and values
// written at P…P+T−1.
type DecodeGraph struct {
	Graph   *onnx.Graph
	Inputs  []string
	Outputs []string
	// Params lists the parameter inputs when built with ParamInputs.
	Params []ParamSpec
}

// BuildDecode builds the key/value-cached inference graph from standard
// operators, with the weights as initializers or, with ParamInputs, as
// inputs after the caches. The cache has a fixed capacity: each step reads
// one copy of it and writes the next (ScatterElements), so the caches can
// be preallocated once, where the session computes, and stay there between
// steps (as policy.KVCache keeps them). A step costs work in proportion to
// B×T×(P+T) for attention and B×T for everything else: nothing of the past
// is recomputed; the cache is copied on the device, never to the host.
func BuildDecode(m *Model, o DecodeOptions) (*DecodeGraph, error) {
	c := m.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b := newBuilder(onnx.NewGraph("gpt_neox_decode"), c, m)
	g := b.g
	h, hd := c.NumHeads, c.HeadDim()
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	mask := g.Input(AttentionMask, onnx.Int64, "batch", "total")
	pos := g.Input(PositionIDs, onnx.Int64, "batch", "seq")
	rows := g.Input(RowsInput, onnx.Int64, "batch")
	dg := &DecodeGraph{Graph: g, Inputs: []string{InputIDs, AttentionMask, PositionIDs, RowsInput},
		Outputs: []string{LogitsOutput, LogSumExpOutput, ArgMaxOutput, MaxLogitOutput}}
	past := make([][2]onnx.Value, c.NumLayers)
	for l := range past {
		past[l][0] = g.Input(PastKey(l), onnx.Float, "past_batch", h, "capacity", hd)
		past[l][1] = g.Input(PastValue(l), onnx.Float, "past_batch", h, "capacity", hd)
		dg.Inputs = append(dg.Inputs, PastKey(l), PastValue(l))
	}
	if o.ParamInputs {
		dg.Params = b.declareParams(m)
		for _, s := range dg.Params {
			dg.Inputs = append(dg.Inputs, s.Name)
		}
	}
	b.cache = newCacheWrite(g, c, ids, mask, rows)

	x := g.Gather(b.weight("gpt_neox.embed_in.weight"), ids, 0) // (B,T,D)
	bias := b.cachedMaskBias(ids, mask)
	cos, sin := b.rotary(pos)
	present := make([][2]onnx.Value, c.NumLayers)
	for l := 0; l < c.NumLayers; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		x, present[l][0], present[l][1] = b.layer(x, l, bias, cos, sin, past[l][0], past[l][1], nil)
	}
	g.Scope = ""
	// Only the last token's logits: the final norm and the output head run on
	// (B,D), not (B,T,D).
	x = g.Gather(x, g.ScalarI64(-1), 1) // (B,D)
	x = b.layerNorm(x, "gpt_neox.final_layer_norm", nil)
	logits := g.Rename(b.dense(x, b.outName(), ""), LogitsOutput)
	g.Output(logits, LogitsOutput, onnx.Float, "batch", c.VocabSize)
	b.logitStats(logits)
	for l := range present {
		g.Output(present[l][0], PresentKey(l), onnx.Float, "batch", h, "capacity", hd)
		g.Output(present[l][1], PresentValue(l), onnx.Float, "batch", h, "capacity", hd)
		dg.Outputs = append(dg.Outputs, PresentKey(l), PresentValue(l))
	}
	return dg, nil
}

// The cached decode graph on the fused kernels: GroupQueryAttention reads
// and writes a key/value cache preallocated to its capacity, bound as both
// the past input and the present output, so that a step appends each row's
// new keys and values in place. Nothing of the past is copied, per step or
// per layer; a step costs B×T×(P+T) for attention and B×T for the rest.

// CachedDecodeGraph is a built cached decode graph.
//
// Inputs, in order: input_ids and position_ids [B,T]; seqlens_k [B];
// total_sequence_length [1]; past_key.L and past_value.L [B,H,C,hd] for each
// layer L, C the cache's capacity; then the parameters with ParamInputs.
//
// Outputs, in order: logits [B,V] of each row's last new token, logsumexp,
// argmax and max_logit [B], then present_key.L and present_value.L [B,H,C,hd], to be
// bound to the very buffers of past_key.L and past_value.L.
type CachedDecodeGraph struct {
	Graph   *onnx.Graph
	Inputs  []string
	Outputs []string
	// Params lists the parameter inputs when built with ParamInputs.
	Params []ParamSpec
}

// BuildCachedDecode builds the cached decode graph on ONNX Runtime's fused
// kernels. It fails for models whose head width they cannot take (see
// DecodeOptions.Standard for the standard graph, BuildDecode).
func BuildCachedDecode(m *Model, o DecodeOptions) (*CachedDecodeGraph, error) {
	c := m.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := fusedSupport(c); err != nil {
		return nil, fmt.Errorf("neox: cached decode graph: %w", err)
	}
	b := newBuilder(onnx.NewGraph("gpt_neox_cached_decode"), c, m)
	b.oneQKV = true
	g := b.g
	h, hd := c.NumHeads, c.HeadDim()
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	pos := g.Input(PositionIDs, onnx.Int64, "batch", "seq")
	seqLens := g.Input(SeqLensInput, onnx.Int32, "batch")
	total := g.Input(TotalLengthInput, onnx.Int32, 1)
	dg := &CachedDecodeGraph{Graph: g, Inputs: []string{InputIDs, PositionIDs, SeqLensInput, TotalLengthInput},
		Outputs: []string{LogitsOutput, LogSumExpOutput, ArgMaxOutput, MaxLogitOutput}}
	ai := &attnInputs{seqLensK: seqLens, total: total, pos: pos, caches: make([][2]onnx.Value, c.NumLayers)}
	for l := range ai.caches {
		ai.caches[l][0] = g.Input(PastKey(l), onnx.Float, "batch", h, "capacity", hd)
		ai.caches[l][1] = g.Input(PastValue(l), onnx.Float, "batch", h, "capacity", hd)
		dg.Inputs = append(dg.Inputs, PastKey(l), PastValue(l))
	}
	if o.ParamInputs {
		dg.Params = b.declareParams(m)
		for _, s := range dg.Params {
			dg.Inputs = append(dg.Inputs, s.Name)
		}
	}
	ai.cos, ai.sin = b.fusedRotary()
	b.fusedShapes(ids, ai)

	x := b.embedFlat(ids) // (N,D), N = B·T
	present := make([][2]onnx.Value, c.NumLayers)
	ln := onnx.Value("")
	for l := 0; l < c.NumLayers; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		x, ln, present[l][0], present[l][1] = b.fusedLayer(x, ln, l, ai, nextNorm(l, c.NumLayers, c.NumLayers, true))
	}
	g.Scope = ""
	// Each row's last new token: the prompt's last real one (index
	// seqlens_k, the row's length minus 1, on a right-padded prefill), or
	// index T−1 when the cache already held tokens (seqlens_k ≥ T−1 then).
	shape := g.Shape(ids)
	t := g.Gather(shape, g.ScalarI64(1), 0)
	last := g.Op("Min", []onnx.Value{g.Cast(seqLens, onnx.Int64), g.Sub(t, g.ScalarI64(1))}) // (B)
	rows := g.Op("Range", []onnx.Value{g.ScalarI64(0), g.Gather(shape, g.ScalarI64(0), 0), g.ScalarI64(1)})
	xl := g.Gather(ln, g.Add(g.Mul(rows, t), last), 0) // (B,D)
	// Named as the output it is, so that no Identity copies it for the
	// log-sum-exp that also reads it.
	logits := g.Rename(g.Gemm(xl, b.weight(b.outName()), "", false, true), LogitsOutput)
	g.Output(logits, LogitsOutput, onnx.Float, "batch", c.VocabSize)
	b.logitStats(logits)
	for l := range present {
		g.Output(present[l][0], PresentKey(l), onnx.Float, "batch", h, "capacity", hd)
		g.Output(present[l][1], PresentValue(l), onnx.Float, "batch", h, "capacity", hd)
		dg.Outputs = append(dg.Outputs, PresentKey(l), PresentValue(l))
	}
	return dg, nil
}
