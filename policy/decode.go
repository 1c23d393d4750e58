package policy

import (
	"fmt"

	"irl/onnx"
)

// PastKey names the input of layer l's cached keys, F32 [B,H,P,hd].
func PastKey(l int) string { return fmt.Sprintf("past_key.%d", l) }

// PastValue names the input of layer l's cached values, F32 [B,H,P,hd].
func PastValue(l int) string { return fmt.Sprintf("past_value.%d", l) }

// PresentKey names the output of layer l's keys over past and new tokens,
// F32 [B,H,P+T,hd].
func PresentKey(l int) string { return fmt.Sprintf("present_key.%d", l) }

// PresentValue names the output of layer l's values over past and new
// tokens, F32 [B,H,P+T,hd].
func PresentValue(l int) string { return fmt.Sprintf("present_value.%d", l) }

// DecodeGraph is a built decode graph with its input and output names.
//
// Inputs, in order: input_ids [B,T], attention_mask [B,P+T] (over the past
// and the new tokens), position_ids [B,T], then past_key.L and past_value.L
// [B,H,P,hd] for each layer L. P may be 0 (the prefill).
//
// Outputs, in order: logits of the last new token only [B,V], then
// present_key.L and present_value.L [B,H,P+T,hd] for each layer.
type DecodeGraph struct {
	Graph   *onnx.Graph
	Inputs  []string
	Outputs []string
	// Params lists the parameter inputs when built with ParamInputs.
	Params []ParamSpec
}

// DecodeOptions configure a decode graph.
type DecodeOptions struct {
	// ParamInputs makes the weights graph inputs that every step reads from
	// the model's memory, instead of initializers copied when the session
	// opens, so decoding sees every optimiser update (PPO's rollouts).
	ParamInputs bool
	// Standard makes a Generator decode on the standard-operator graph
	// (BuildDecode, Decoder), which concatenates each step's keys and values
	// to copies of the past, rather than on the fused kernels' cached graph
	// (BuildCachedDecode, CachedDecoder), which writes them into a cache in
	// place. BuildDecode and NewDecoder always build the standard graph.
	Standard bool
}

// BuildDecode builds the key/value-cached inference graph from standard
// operators, with the weights as initializers or, with ParamInputs, as
// inputs after the caches. Each step returns the past and new keys and
// values together as new tensors (see BuildCachedDecode for a cache written
// in place). A step
// costs work in proportion to B×T×(P+T) for attention and B×T for everything
// else: nothing of the past is recomputed.
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
	dg := &DecodeGraph{Graph: g, Inputs: []string{InputIDs, AttentionMask, PositionIDs}, Outputs: []string{LogitsOutput}}
	past := make([][2]onnx.Value, c.NumLayers)
	for l := range past {
		past[l][0] = g.Input(PastKey(l), onnx.Float, "batch", h, "past", hd)
		past[l][1] = g.Input(PastValue(l), onnx.Float, "batch", h, "past", hd)
		dg.Inputs = append(dg.Inputs, PastKey(l), PastValue(l))
	}
	if o.ParamInputs {
		dg.Params = b.declareParams(m)
		for _, s := range dg.Params {
			dg.Inputs = append(dg.Inputs, s.Name)
		}
	}

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
	g.Output(b.dense(x, b.outName(), ""), LogitsOutput, onnx.Float, "batch", c.VocabSize)
	for l := range present {
		g.Output(present[l][0], PresentKey(l), onnx.Float, "batch", h, "total", hd)
		g.Output(present[l][1], PresentValue(l), onnx.Float, "batch", h, "total", hd)
		dg.Outputs = append(dg.Outputs, PresentKey(l), PresentValue(l))
	}
	return dg, nil
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

// KVCache holds every layer's keys and values for B rows of P tokens, each
// F32 [B,H,P,hd] row-major in the first B·H·P·hd values of Keys[l] and
// Values[l]. The slices may be longer, leaving room for a cache to grow
// without reallocation (see NewKVCache).
type KVCache struct {
	B, P   int
	Keys   [][]float32
	Values [][]float32
}

// NewKVCache allocates an empty cache (P = 0) with room for b rows of
// capacity tokens.
func NewKVCache(c Config, b, capacity int) *KVCache {
	kv := &KVCache{B: b, Keys: make([][]float32, c.NumLayers), Values: make([][]float32, c.NumLayers)}
	n := b * c.NumHeads * capacity * c.HeadDim()
	for l := range kv.Keys {
		kv.Keys[l] = make([]float32, n)
		kv.Values[l] = make([]float32, n)
	}
	return kv
}

// Capacity is how many tokens per row of b rows the cache's buffers hold.
func (kv *KVCache) Capacity(c Config, b int) int {
	if len(kv.Keys) == 0 || b <= 0 {
		return 0
	}
	return len(kv.Keys[0]) / (b * c.NumHeads * c.HeadDim())
}

// Keep compacts the cache to the rows listed in rows (ascending indices of
// current rows), in place.
func (kv *KVCache) Keep(c Config, rows []int) {
	block := c.NumHeads * kv.P * c.HeadDim()
	for l := range kv.Keys {
		for i, r := range rows {
			if i != r {
				copy(kv.Keys[l][i*block:(i+1)*block], kv.Keys[l][r*block:(r+1)*block])
				copy(kv.Values[l][i*block:(i+1)*block], kv.Values[l][r*block:(r+1)*block])
			}
		}
	}
	kv.B = len(rows)
}

// Decoder runs the decode graph in an ONNX Runtime session. Destroy it when
// done. A Decoder is not safe for concurrent use.
type Decoder struct {
	cfg     Config
	graph   *DecodeGraph
	session *onnx.Session
	params  []onnx.ORTValue // with ParamInputs: views of the model's weights
}

// NewDecoder builds the decode graph and opens its session.
func NewDecoder(m *Model, so onnx.Options, o DecodeOptions) (*Decoder, error) {
	dg, err := BuildDecode(m, o)
	if err != nil {
		return nil, err
	}
	s, err := onnx.NewGraphSession(dg.Graph, dg.Inputs, dg.Outputs, so)
	if err != nil {
		return nil, err
	}
	d := &Decoder{cfg: m.Config, graph: dg, session: s}
	if o.ParamInputs {
		if d.params, err = paramTensors(m, dg.Params); err != nil {
			d.Destroy()
			return nil, err
		}
	}
	return d, nil
}

// Config is the decoded model's configuration.
func (d *Decoder) Config() Config { return d.cfg }

// Step runs t new tokens for each of past.B rows after the past.P cached ones.
// ids and pos are [B,t] row-major, mask is [B,P+t] (the past's mask followed by
// the new tokens'). It writes the logits of each row's last new token into
// logits [B,V] and the keys and values of past and new tokens into present,
// whose buffers must hold B rows of P+t tokens and must not be past's; present
// then has B = past.B and P = past.P + t. The caller keeps all the memory:
// ONNX Runtime reads and writes Go slices in place.
func (d *Decoder) Step(ids, mask, pos []int64, t int, past, present *KVCache, logits []float32) error {
	c := d.cfg
	b, p := past.B, past.P
	h, hd := c.NumHeads, c.HeadDim()
	switch {
	case b <= 0 || t <= 0:
		return fmt.Errorf("policy: decode step of %d rows × %d tokens", b, t)
	case len(ids) != b*t || len(pos) != b*t:
		return fmt.Errorf("policy: decode step: %d ids and %d positions, want %d×%d", len(ids), len(pos), b, t)
	case len(mask) != b*(p+t):
		return fmt.Errorf("policy: decode step: attention mask has %d values, want %d×%d", len(mask), b, p+t)
	case len(logits) < b*c.VocabSize:
		return fmt.Errorf("policy: decode step: logits buffer holds %d values, want %d×%d", len(logits), b, c.VocabSize)
	case len(past.Keys) != c.NumLayers || len(present.Keys) != c.NumLayers || len(past.Values) != c.NumLayers || len(present.Values) != c.NumLayers:
		return fmt.Errorf("policy: decode step: caches for %d and %d layers, want %d", len(past.Keys), len(present.Keys), c.NumLayers)
	case present.Capacity(c, b) < p+t:
		return fmt.Errorf("policy: decode step: present cache holds %d tokens per row, want %d", present.Capacity(c, b), p+t)
	}
	var vals []onnx.ORTValue
	defer func() { onnx.DestroyAll(vals...) }()
	i64 := func(data []int64, shape ...int64) error {
		v, err := onnx.TensorI64(data, shape...)
		if err == nil {
			vals = append(vals, v)
		}
		return err
	}
	f32 := func(data []float32, shape ...int64) error {
		v, err := onnx.TensorF32(data, shape...)
		if err == nil {
			vals = append(vals, v)
		}
		return err
	}
	B, T, P, H, HD := int64(b), int64(t), int64(p), int64(h), int64(hd)
	if err := i64(ids, B, T); err != nil {
		return err
	}
	if err := i64(mask, B, P+T); err != nil {
		return err
	}
	if err := i64(pos, B, T); err != nil {
		return err
	}
	pastN, presN := b*h*p*hd, b*h*(p+t)*hd
	for l := 0; l < c.NumLayers; l++ {
		if err := f32(past.Keys[l][:pastN], B, H, P, HD); err != nil {
			return err
		}
		if err := f32(past.Values[l][:pastN], B, H, P, HD); err != nil {
			return err
		}
	}
	ins := append(vals[:len(vals):len(vals)], d.params...)
	nIn := len(vals)
	if err := f32(logits[:b*c.VocabSize], B, int64(c.VocabSize)); err != nil {
		return err
	}
	for l := 0; l < c.NumLayers; l++ {
		if err := f32(present.Keys[l][:presN], B, H, P+T, HD); err != nil {
			return err
		}
		if err := f32(present.Values[l][:presN], B, H, P+T, HD); err != nil {
			return err
		}
	}
	if err := d.session.RunInto(ins, vals[nIn:]); err != nil {
		return fmt.Errorf("policy: decode step (%d rows, %d past, %d new tokens): %w", b, p, t, err)
	}
	present.B, present.P = b, p+t
	return nil
}

// Destroy closes the session and releases the parameter views.
func (d *Decoder) Destroy() {
	if d != nil {
		onnx.DestroyAll(d.params...)
		d.params = nil
		d.session.Destroy()
	}
}
