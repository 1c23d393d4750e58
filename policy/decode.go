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

// Names of the decode graphs' extra inputs and outputs.
const (
	// RowsInput is I64 [B]: for each row of a standard decode step, the row
	// of the past cache it continues (ascending), so that rows whose
	// sequences ended leave the batch without a copy outside the graph.
	RowsInput = "rows"
	// LogSumExpOutput is F32 [B]: log Σ exp of each row's logits, so that a
	// token's log-probability is its logit minus it, with no pass over the
	// vocabulary in Go.
	LogSumExpOutput = "logsumexp"
	// ArgMaxOutput is I64 [B]: the first index of each row's largest logit,
	// the greedy choice.
	ArgMaxOutput = "argmax"
	// MaxLogitOutput is F32 [B]: each row's largest logit, so that greedy
	// decoding needs nothing of the logits but these three outputs.
	MaxLogitOutput = "max_logit"
)

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

// DecodeOptions configure a decode graph.
type DecodeOptions struct {
	// ParamInputs makes the weights graph inputs that every step reads from
	// the model's memory, instead of initializers copied when the session
	// opens, so decoding sees every optimiser update (PPO's rollouts).
	ParamInputs bool
	// Params, with ParamInputs, is the store a decoder reads the weights
	// from, shared with the sessions that update them (see ParamStore); nil
	// gives the decoder a store of its own. Its caches live where the
	// store's tensors do. It takes no part in the graph.
	Params *ParamStore
	// Standard makes a Generator decode on the standard-operator graph
	// (BuildDecode, Decoder), which concatenates each step's keys and values
	// to copies of the past, rather than on the fused kernels' cached graph
	// (BuildCachedDecode, CachedDecoder), which writes them into a cache in
	// place. BuildDecode and NewDecoder always build the standard graph.
	Standard bool
}

// BuildDecode builds the key/value-cached inference graph from standard
// operators, with the weights as initializers or, with ParamInputs, as
// inputs after the caches. The cache has a fixed capacity: each step reads
// one copy of it and writes the next (ScatterElements), so the caches can
// be preallocated once, where the session computes, and stay there between
// steps (see KVCache). A step costs work in proportion to B×T×(P+T) for
// attention and B×T for everything else: nothing of the past is
// recomputed; the cache is copied on the device, never to the host.
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
	logitStats(g, logits)
	for l := range present {
		g.Output(present[l][0], PresentKey(l), onnx.Float, "batch", h, "capacity", hd)
		g.Output(present[l][1], PresentValue(l), onnx.Float, "batch", h, "capacity", hd)
		dg.Outputs = append(dg.Outputs, PresentKey(l), PresentValue(l))
	}
	return dg, nil
}

// logitStats adds the outputs logsumexp, argmax and max_logit of logits
// [B,V]. log Σ exp(l) = m + log Σ exp(l − m) with m the row's maximum: a
// tenth of the time of ReduceLogSumExp, whose CPU kernel is not vectorised.
func logitStats(g *onnx.Graph, logits onnx.Value) {
	top := g.ReduceMax(logits, true, 1)
	lse := g.Add(g.Log(g.ReduceSum(g.Exp(g.Sub(logits, top)), true, 1)), top)
	g.Output(g.Squeeze(lse, 1), LogSumExpOutput, onnx.Float, "batch")
	argmax := g.Op("ArgMax", []onnx.Value{logits}, onnx.AttrInt("axis", 1), onnx.AttrInt("keepdims", 0))
	g.Output(argmax, ArgMaxOutput, onnx.Int64, "batch")
	g.Output(g.Squeeze(top, 1), MaxLogitOutput, onnx.Float, "batch")
}

// cacheWrite writes a decode step's keys and values into a capacity-sized
// cache: the past rows picked by rows, with the T new tokens at P…P+T−1.
type cacheWrite struct {
	g     *onnx.Graph
	rows  onnx.Value // (B) I64
	index onnx.Value // (B,H,T,hd) I64: P+t at every [b,h,t,·]
	total onnx.Value // [P+T]
}

func newCacheWrite(g *onnx.Graph, c Config, ids, mask, rows onnx.Value) *cacheWrite {
	shape := g.Shape(ids)                                                   // [B,T]
	t := g.Gather(shape, g.ScalarI64(1), 0)                                 // T
	total := g.Slice(g.Shape(mask), []int64{1}, []int64{2}, []int64{0})     // [P+T]
	k := g.Squeeze(total, 0)                                                // P+T
	at := g.Op("Range", []onnx.Value{g.Sub(k, t), k, g.ScalarI64(1)})       // (T)
	dims := g.Concat(0, g.Slice(shape, []int64{0}, []int64{1}, []int64{0}), // [B,H,T,hd]
		g.ConstI64(int64(c.NumHeads)), g.Slice(shape, []int64{1}, []int64{2}, []int64{0}), g.ConstI64(int64(c.HeadDim())))
	index := g.Op("Expand", []onnx.Value{g.Reshape(at, 1, 1, -1, 1), dims})
	return &cacheWrite{g: g, rows: rows, index: index, total: total}
}

// write returns the cache after the step: the past (B0,H,C,hd) at the
// picked rows with the new keys or values (B,H,T,hd) written in.
func (w *cacheWrite) write(past, x onnx.Value) onnx.Value {
	g := w.g
	return g.Op("ScatterElements", []onnx.Value{g.Gather(past, w.rows, 0), w.index, x}, onnx.AttrInt("axis", 2))
}

// read is the cache's first P+T tokens, what the step's attention sees.
func (w *cacheWrite) read(cache onnx.Value) onnx.Value {
	g := w.g
	return g.Op("Slice", []onnx.Value{cache, g.ConstI64(0), w.total, g.ConstI64(2)})
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

// KVCache is the standard decoder's key/value cache: every layer's keys and
// values for up to Rows rows of Capacity tokens, [Rows,H,Capacity,hd], of
// which the first B rows hold P tokens each. It is two sets of tensors
// allocated once where the decoder's store lives (device memory on CUDA, Go
// memory on CPU), which decode steps read from and write to in turn: the
// cache stays where the session computes between steps. Destroy it when
// done.
type KVCache struct {
	B, P           int
	rows, capacity int
	sets           [2][]*onnx.DeviceTensor // per set: layer 0's keys, its values, layer 1's…
	cur            int                     // the set holding the cache now
}

// NewKVCache allocates an empty cache (B = P = 0) with room for rows rows
// of capacity tokens, where the decoder's tensors live.
func (d *Decoder) NewKVCache(rows, capacity int) (*KVCache, error) {
	c := d.cfg
	if rows <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("policy: key/value cache of %d rows × %d tokens", rows, capacity)
	}
	kv := &KVCache{rows: rows, capacity: capacity}
	for k := range kv.sets {
		for range 2 * c.NumLayers {
			t, err := d.store.NewTensor(int64(rows), int64(c.NumHeads), int64(capacity), int64(c.HeadDim()))
			if err != nil {
				kv.Destroy()
				return nil, fmt.Errorf("policy: key/value cache of %d rows × %d tokens: %w", rows, capacity, err)
			}
			kv.sets[k] = append(kv.sets[k], t)
		}
	}
	return kv, nil
}

// Rows is how many rows the cache holds.
func (kv *KVCache) Rows() int { return kv.rows }

// Capacity is how many tokens each row holds.
func (kv *KVCache) Capacity() int { return kv.capacity }

// Reset empties the cache for b rows, whose prefill comes next.
func (kv *KVCache) Reset(b int) { kv.B, kv.P = b, 0 }

// Destroy releases the cache's tensors.
func (kv *KVCache) Destroy() {
	if kv == nil {
		return
	}
	for _, set := range kv.sets {
		for _, t := range set {
			t.Destroy()
		}
	}
	kv.sets = [2][]*onnx.DeviceTensor{}
}

// Decoder runs the standard decode graph in an ONNX Runtime session,
// through a binding: the cache is bound where it lives, and only the
// outputs asked for come back to Go. Destroy it when done. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	cfg        Config
	graph      *DecodeGraph
	boundGraph // its store: the weights with ParamInputs, and the caches' memory
}

// NewDecoder builds the standard decode graph and opens its session. The
// weights, with ParamInputs, and the caches' memory come from o.Params, or
// from a store of the decoder's own when that is nil.
func NewDecoder(m *Model, so onnx.Options, o DecodeOptions) (*Decoder, error) {
	dg, err := BuildDecode(m, o)
	if err != nil {
		return nil, err
	}
	d := &Decoder{cfg: m.Config, graph: dg}
	if err := d.open(m, dg.Graph, so, o.Params, true); err != nil {
		return nil, err
	}
	return d, nil
}

// Config is the decoded model's configuration.
func (d *Decoder) Config() Config { return d.cfg }

// DecodeOutputs receives what a decode step gives for each row's last new
// token. Logits go to Logits in Go memory or, when that is nil, stay in
// LogitsTensor (where the decoder computes): greedy decoding needs only the
// three statistics.
type DecodeOutputs struct {
	// Logits is [B,V].
	Logits []float32
	// LogitsTensor, used when Logits is nil, holds at least B×V values; the
	// logits are written into its first B×V.
	LogitsTensor *onnx.DeviceTensor
	// LogSumExp, if not nil, receives log Σ exp(Logits) of each row, [B].
	LogSumExp []float32
	// ArgMax, if not nil, receives the first index of each row's largest
	// logit, [B].
	ArgMax []int64
	// MaxLogit, if not nil, receives each row's largest logit, [B].
	MaxLogit []float32
}

// check reports buffers too small for b rows of vocabulary v.
func (out DecodeOutputs) check(b, v int) error {
	switch {
	case out.Logits == nil && out.LogitsTensor == nil:
		return fmt.Errorf("policy: decode step: no logits buffer")
	case out.Logits != nil && len(out.Logits) < b*v:
		return fmt.Errorf("policy: decode step: logits buffer holds %d values, want %d×%d", len(out.Logits), b, v)
	case out.Logits == nil && out.LogitsTensor.Len() < b*v:
		return fmt.Errorf("policy: decode step: logits tensor holds %d values, want %d×%d", out.LogitsTensor.Len(), b, v)
	case out.LogSumExp != nil && len(out.LogSumExp) < b:
		return fmt.Errorf("policy: decode step: log-sum-exp buffer holds %d values, want %d", len(out.LogSumExp), b)
	case out.ArgMax != nil && len(out.ArgMax) < b:
		return fmt.Errorf("policy: decode step: argmax buffer holds %d values, want %d", len(out.ArgMax), b)
	case out.MaxLogit != nil && len(out.MaxLogit) < b:
		return fmt.Errorf("policy: decode step: max-logit buffer holds %d values, want %d", len(out.MaxLogit), b)
	}
	return nil
}

// bind binds the outputs of b rows: those asked for to their buffers, the
// others to the host (and dropped) as the graph computes them anyway.
func (out DecodeOutputs) bind(io *runIO, b, v int) {
	B := int64(b)
	if out.Logits != nil {
		io.outF32(LogitsOutput, out.Logits[:b*v], B, int64(v))
	} else {
		io.view(LogitsOutput, out.LogitsTensor, true, B, int64(v))
	}
	lse, top, am := out.LogSumExp, out.MaxLogit, out.ArgMax
	if lse == nil {
		lse = make([]float32, b)
	}
	if top == nil {
		top = make([]float32, b)
	}
	if am == nil {
		am = make([]int64, b)
	}
	io.outF32(LogSumExpOutput, lse[:b], B)
	io.outF32(MaxLogitOutput, top[:b], B)
	io.outI64(ArgMaxOutput, am[:b], B)
}

// Step runs t new tokens for each of len(rows) rows after the kv.P cached
// ones. rows lists, ascending, the cache rows that go on (nil: all kv.B);
// ids and pos are [B,t] row-major for those rows, mask is [B,P+t] (the
// past's mask followed by the new tokens'). It writes the logits of each
// row's last new token, and what else out asks for, into out, and the new
// keys and values into the cache, which then has B = len(rows) and P = P+t.
func (d *Decoder) Step(ids, mask, pos []int64, t int, rows []int64, kv *KVCache, out DecodeOutputs) error {
	c := d.cfg
	p := kv.P
	if rows == nil {
		rows = make([]int64, kv.B)
		for i := range rows {
			rows[i] = int64(i)
		}
	}
	b := len(rows)
	switch {
	case b <= 0 || t <= 0:
		return fmt.Errorf("policy: decode step of %d rows × %d tokens", b, t)
	case len(ids) != b*t || len(pos) != b*t:
		return fmt.Errorf("policy: decode step: %d ids and %d positions, want %d×%d", len(ids), len(pos), b, t)
	case len(mask) != b*(p+t):
		return fmt.Errorf("policy: decode step: attention mask has %d values, want %d×%d", len(mask), b, p+t)
	case kv.B > kv.rows || b > kv.rows:
		return fmt.Errorf("policy: decode step: %d rows, the cache holds %d", max(b, kv.B), kv.rows)
	case p+t > kv.capacity:
		return fmt.Errorf("policy: decode step: %d tokens per row, the cache holds %d", p+t, kv.capacity)
	case len(kv.sets[0]) != 2*c.NumLayers:
		return fmt.Errorf("policy: decode step: a cache of %d tensors, want %d", len(kv.sets[0]), 2*c.NumLayers)
	}
	for i, r := range rows {
		if r < 0 || int(r) >= kv.B || i > 0 && r <= rows[i-1] {
			return fmt.Errorf("policy: decode step: rows %v: want ascending rows of the %d cached", rows, kv.B)
		}
	}
	if err := out.check(b, c.VocabSize); err != nil {
		return err
	}
	B, T, H, C, HD := int64(b), int64(t), int64(c.NumHeads), int64(kv.capacity), int64(c.HeadDim())
	io := &runIO{b: d.bind}
	io.inI64(InputIDs, ids, B, T)
	io.inI64(AttentionMask, mask, B, int64(p+t))
	io.inI64(PositionIDs, pos, B, T)
	io.inI64(RowsInput, rows, B)
	pastB := int64(kv.B)
	past, present := kv.sets[kv.cur], kv.sets[1-kv.cur]
	for l := 0; l < c.NumLayers; l++ {
		io.view(PastKey(l), past[2*l], false, pastB, H, C, HD)
		io.view(PastValue(l), past[2*l+1], false, pastB, H, C, HD)
		io.view(PresentKey(l), present[2*l], true, B, H, C, HD)
		io.view(PresentValue(l), present[2*l+1], true, B, H, C, HD)
	}
	if d.graph.Params != nil && io.err == nil {
		io.err = d.store.bindParams(d.bind, d.graph.Params)
	}
	out.bind(io, b, c.VocabSize)
	if err := io.run(nil); err != nil {
		return fmt.Errorf("policy: decode step (%d rows, %d past, %d new tokens): %w", b, p, t, err)
	}
	kv.cur = 1 - kv.cur
	kv.B, kv.P = b, p+t
	return nil
}

// Destroy closes the session and releases the binding and a store of the
// decoder's own.
func (d *Decoder) Destroy() {
	if d != nil {
		d.destroy()
	}
}
