package policy

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
)

// CachedDecoder runs the cached decode graph through a binding, with the
// cache's Go memory bound as both past and present. Destroy it when done. A
// CachedDecoder is not safe for concurrent use.
type CachedDecoder struct {
	cfg        neox.Config
	graph      *neox.CachedDecodeGraph
	boundGraph // its store, with ParamInputs: where the weights are read
}

// NewCachedDecoder builds the cached decode graph and opens its session.
// With ParamInputs the weights come from store, or from a store of the
// decoder's own when that is nil. The fused kernels run on CPU only, and so
// does this decoder: its cache is Go memory.
func NewCachedDecoder(m *neox.Model, o neox.DecodeOptions, so onnx.Options, store *ParamStore) (*CachedDecoder, error) {
	if so.Device == onnx.CUDA {
		return nil, fmt.Errorf("policy: the cached decoder runs on CPU only (ONNX Runtime's CUDA GroupQueryAttention takes only 16-bit floats): use the standard decoder")
	}
	dg, err := neox.BuildCachedDecode(m, o)
	if err != nil {
		return nil, err
	}
	if store != nil && store.Resident() {
		return nil, fmt.Errorf("policy: the cached decoder reads its weights from Go memory, not from a resident store")
	}
	d := &CachedDecoder{cfg: m.Config, graph: dg}
	if err := d.open(m, dg.Graph, so, store, o.ParamInputs); err != nil {
		return nil, err
	}
	return d, nil
}

// Config is the decoded model's configuration.
func (d *CachedDecoder) Config() neox.Config { return d.cfg }

// Cache is a key/value cache that a CachedDecoder writes in place: every
// layer's keys and values for up to Rows rows of Capacity tokens, F32
// [Rows,H,Capacity,hd] row-major, of which the first B rows are in use and
// row b holds Lens[b] tokens, rotary already applied to the keys.
type Cache struct {
	B, Capacity  int
	Lens         []int
	Keys, Values [][]float32
}

// NewCache allocates an empty cache with room for rows rows of capacity
// tokens.
func NewCache(c neox.Config, rows, capacity int) *Cache {
	kv := &Cache{B: rows, Capacity: capacity, Lens: make([]int, rows),
		Keys: make([][]float32, c.NumLayers), Values: make([][]float32, c.NumLayers)}
	n := rows * c.NumHeads * capacity * c.HeadDim()
	for l := range kv.Keys {
		kv.Keys[l] = make([]float32, n)
		kv.Values[l] = make([]float32, n)
	}
	return kv
}

// Rows is how many rows the cache's buffers hold.
func (kv *Cache) Rows(c neox.Config) int {
	if len(kv.Keys) == 0 || kv.Capacity == 0 {
		return 0
	}
	return len(kv.Keys[0]) / (c.NumHeads * kv.Capacity * c.HeadDim())
}

// Reset empties the cache and sets its rows in use to b.
func (kv *Cache) Reset(b int) {
	kv.B = b
	if cap(kv.Lens) < b {
		kv.Lens = make([]int, b)
	}
	kv.Lens = kv.Lens[:b]
	clear(kv.Lens)
}

// Keep compacts the cache to the rows listed in rows (ascending indices of
// rows in use), in place, copying only each row's cached tokens.
func (kv *Cache) Keep(c neox.Config, rows []int) {
	h, hd := c.NumHeads, c.HeadDim()
	head := kv.Capacity * hd
	for i, r := range rows {
		if i == r {
			continue
		}
		n := kv.Lens[r] * hd
		for l := range kv.Keys {
			for j := 0; j < h; j++ {
				dst, src := (i*h+j)*head, (r*h+j)*head
				copy(kv.Keys[l][dst:dst+n], kv.Keys[l][src:src+n])
				copy(kv.Values[l][dst:dst+n], kv.Values[l][src:src+n])
			}
		}
		kv.Lens[i] = kv.Lens[r]
	}
	kv.B = len(rows)
	kv.Lens = kv.Lens[:len(rows)]
}

// Append runs new tokens for the kv.B rows of the cache, each after its own
// cached ones, and writes them into the cache in place. ids is [B,t]
// row-major; row b's new tokens are its first counts[b] ids (counts nil: all
// t), the rest padding. It writes the logits of each row's last new token,
// and what else out asks for, into out. ONNX Runtime reads and writes the
// Go slices in place.
//
// ONNX Runtime's kernel takes several new tokens per row only on an empty
// cache (a prompt, whose rows may differ in length) or for one row; with
// more rows and tokens already cached, every row must take all t tokens,
// and they run one step at a time.
func (d *CachedDecoder) Append(ids []int64, t int, counts []int, kv *Cache, out DecodeOutputs) error {
	c := d.cfg
	b := kv.B
	switch {
	case b <= 0 || t <= 0:
		return fmt.Errorf("policy: decode step of %d rows × %d tokens", b, t)
	case len(ids) != b*t:
		return fmt.Errorf("policy: decode step: %d ids, want %d×%d", len(ids), b, t)
	case counts != nil && len(counts) != b:
		return fmt.Errorf("policy: decode step: %d counts for %d rows", len(counts), b)
	case len(kv.Keys) != c.NumLayers || len(kv.Values) != c.NumLayers || len(kv.Lens) != b:
		return fmt.Errorf("policy: decode step: cache of %d layers and %d lengths, want %d and %d", len(kv.Keys), len(kv.Lens), c.NumLayers, b)
	case kv.Rows(c) < b:
		return fmt.Errorf("policy: decode step: cache holds %d rows, want %d", kv.Rows(c), b)
	}
	if err := out.check(b, c.VocabSize); err != nil {
		return err
	}
	empty := true
	most := 0 // the longest row after the step
	for r := 0; r < b; r++ {
		n := t
		if counts != nil {
			n = counts[r]
		}
		if n < 1 || n > t {
			return fmt.Errorf("policy: decode step: row %d has %d new tokens, want 1…%d", r, n, t)
		}
		if kv.Lens[r] > 0 {
			empty = false
		}
		if end := kv.Lens[r] + n; end > kv.Capacity || end > c.MaxPositions {
			return fmt.Errorf("policy: decode step: row %d would hold %d tokens, more than the cache's %d or the model's %d positions",
				r, end, kv.Capacity, c.MaxPositions)
		} else {
			most = max(most, end)
		}
	}
	if t > 1 && !empty && b > 1 {
		for r, n := range counts {
			if n != t {
				return fmt.Errorf("policy: decode step: row %d has %d of %d new tokens: after the prompt, rows take the same number", r, n, t)
			}
		}
		col := make([]int64, b)
		for j := 0; j < t; j++ {
			for r := 0; r < b; r++ {
				col[r] = ids[r*t+j]
			}
			if err := d.Append(col, 1, nil, kv, out); err != nil {
				return err
			}
		}
		return nil
	}
	if empty {
		// The kernel reads a prompt as running to total_sequence_length;
		// rows longer than every row's count would make it a later prompt.
		if most != t {
			return fmt.Errorf("policy: decode step: prompt of %d columns whose longest row has %d tokens", t, most)
		}
	}
	seqLens := make([]int32, b)
	pos := make([]int64, b*t)
	for r := range seqLens {
		n := t
		if counts != nil {
			n = counts[r]
		}
		seqLens[r] = int32(kv.Lens[r] + n - 1)
		for j := 0; j < t; j++ {
			// Padding after a row's tokens takes positions past them, which
			// stay in the rotary tables: its keys are never attended to.
			pos[r*t+j] = int64(min(kv.Lens[r]+j, c.MaxPositions-1))
		}
	}
	B, T := int64(b), int64(t)
	io := &runIO{b: d.bind}
	io.inI64(neox.InputIDs, ids, B, T)
	io.inI64(neox.PositionIDs, pos, B, T)
	io.inI32(neox.SeqLensInput, seqLens, B)
	io.inI32(neox.TotalLengthInput, []int32{int32(most)}, 1)
	h, hd := int64(c.NumHeads), int64(c.HeadDim())
	n := b * c.NumHeads * kv.Capacity * c.HeadDim()
	for l := 0; l < c.NumLayers; l++ {
		for i, buf := range [][]float32{kv.Keys[l][:n], kv.Values[l][:n]} {
			// The same tensor as input and output: the kernel sees past and
			// present share memory and appends in place.
			ct, err := onnx.NewHostTensorF32(buf, B, h, int64(kv.Capacity), hd)
			ct = io.hold(ct, err, neox.PastKey(l))
			if i == 0 {
				io.in(neox.PastKey(l), ct)
				io.out(neox.PresentKey(l), ct)
			} else {
				io.in(neox.PastValue(l), ct)
				io.out(neox.PresentValue(l), ct)
			}
		}
	}
	if d.graph.Params != nil && io.err == nil {
		io.err = d.store.bindParams(d.bind, d.graph.Params)
	}
	out.bind(io, b, c.VocabSize)
	if err := io.run(nil); err != nil {
		return fmt.Errorf("policy: decode step (%d rows, %d new tokens): %w", b, t, err)
	}
	for r := range kv.Lens {
		kv.Lens[r] = int(seqLens[r]) + 1
	}
	return nil
}

// Destroy closes the session and releases the binding and a store of the
// decoder's own.
func (d *CachedDecoder) Destroy() {
	if d != nil {
		d.destroy()
	}
}
