package policy

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
)

// Decoder runs the standard decode graph in an ONNX Runtime session,
// through a binding: the cache is bound where it lives, and only the
// outputs asked for come back to Go. Destroy it when done. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	cfg        neox.Config
	graph      *neox.DecodeGraph
	boundGraph // its store: the weights with ParamInputs, and the caches' memory
}

// NewDecoder builds the standard decode graph and opens its session. The
// weights, with ParamInputs, and the caches' memory come from store, or
// from a store of the decoder's own when that is nil.
func NewDecoder(m *neox.Model, o neox.DecodeOptions, so onnx.Options, store *ParamStore) (*Decoder, error) {
	dg, err := neox.BuildDecode(m, o)
	if err != nil {
		return nil, err
	}
	d := &Decoder{cfg: m.Config, graph: dg}
	if err := d.open(m, dg.Graph, so, store, true); err != nil {
		return nil, err
	}
	return d, nil
}

// Config is the decoded model's configuration.
func (d *Decoder) Config() neox.Config { return d.cfg }

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
		io.outF32(neox.LogitsOutput, out.Logits[:b*v], B, int64(v))
	} else {
		io.view(neox.LogitsOutput, out.LogitsTensor, true, B, int64(v))
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
	io.outF32(neox.LogSumExpOutput, lse[:b], B)
	io.outF32(neox.MaxLogitOutput, top[:b], B)
	io.outI64(neox.ArgMaxOutput, am[:b], B)
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
	io.inI64(neox.InputIDs, ids, B, T)
	io.inI64(neox.AttentionMask, mask, B, int64(p+t))
	io.inI64(neox.PositionIDs, pos, B, T)
	io.inI64(neox.RowsInput, rows, B)
	pastB := int64(kv.B)
	past, present := kv.sets[kv.cur], kv.sets[1-kv.cur]
	for l := 0; l < c.NumLayers; l++ {
		io.view(neox.PastKey(l), past[2*l], false, pastB, H, C, HD)
		io.view(neox.PastValue(l), past[2*l+1], false, pastB, H, C, HD)
		io.view(neox.PresentKey(l), present[2*l], true, B, H, C, HD)
		io.view(neox.PresentValue(l), present[2*l+1], true, B, H, C, HD)
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
