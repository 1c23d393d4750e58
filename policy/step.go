package policy

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
)

// StepDecoder runs the static decode step graph (neox.BuildStep): B rows,
// one token each, over caches of C slots, every tensor it reads or writes
// allocated once, where the session computes, and bound once. Each step
// copies its few inputs into those tensors and runs; the caches are bound
// as both past and present, so the step writes each row's new keys and
// values into its slot in place. Nothing is bound anew between steps,
// which is what a CUDA graph (onnx.Options.CUDAGraph) needs: its replays
// read and write the addresses it captured. Destroy it when done. A
// StepDecoder is not safe for concurrent use.
type StepDecoder struct {
	cfg     neox.Config
	graph   *neox.StepGraph
	session *onnx.BoundSession
	bind    *onnx.Binding
	alloc   *onnx.Allocator
	// ids, pos, index (B,1) and mask (B,C) are the step's inputs; caches
	// holds layer 0's keys, its values, layer 1's… (B,H,C,hd).
	ids, pos, index, mask *onnx.DeviceTensor
	caches                []*onnx.DeviceTensor
	// The step's outputs: logits (B,V), and log Σ exp, max and argmax (B).
	logits, lse, top, argmax *onnx.DeviceTensor
}

// NewStepDecoder builds the step graph of m for o's batch and capacity and
// opens its session, with every tensor it binds allocated on so's device
// and the caches zeroed (a slot never written must hold finite values: a
// masked slot's weight is 0, and 0 × NaN is not). Only float32 graphs run
// here: the device tensors this layer allocates are not half.
func NewStepDecoder(m *neox.Model, o neox.StepOptions, so onnx.Options) (*StepDecoder, error) {
	if o.DType != 0 && o.DType != onnx.Float {
		return nil, fmt.Errorf("policy: step decoder: only float32 caches can be allocated, not element type %d", o.DType)
	}
	sg, err := neox.BuildStep(m, o)
	if err != nil {
		return nil, err
	}
	d := &StepDecoder{cfg: m.Config, graph: sg}
	if err := d.open(so); err != nil {
		d.Destroy()
		return nil, err
	}
	return d, nil
}

func (d *StepDecoder) open(so onnx.Options) error {
	c := d.cfg
	B, C := int64(d.graph.Batch), int64(d.graph.Capacity)
	H, HD := int64(c.NumHeads), int64(c.HeadDim())
	var err error
	if d.session, err = onnx.NewBoundGraphSession(d.graph.Graph, so); err != nil {
		return err
	}
	if d.bind, err = d.session.NewBinding(); err != nil {
		return err
	}
	if d.alloc, err = onnx.NewDeviceAllocator(so); err != nil {
		return err
	}
	alloc := func(dt onnx.DType, shape ...int64) *onnx.DeviceTensor {
		if err != nil {
			return nil
		}
		var t *onnx.DeviceTensor
		t, err = d.alloc.NewTensor(dt, shape...)
		return t
	}
	d.ids, d.pos, d.index = alloc(onnx.Int64, B, 1), alloc(onnx.Int64, B, 1), alloc(onnx.Int64, B, 1)
	d.mask = alloc(onnx.Int64, B, C)
	for range 2 * c.NumLayers {
		d.caches = append(d.caches, alloc(onnx.Float, B, H, C, HD))
	}
	d.logits = alloc(onnx.Float, B, int64(c.VocabSize))
	d.lse, d.top, d.argmax = alloc(onnx.Float, B), alloc(onnx.Float, B), alloc(onnx.Int64, B)
	if err != nil {
		return fmt.Errorf("policy: step decoder of %d rows × %d slots: %w", B, C, err)
	}
	zero := make([]float32, B*H*C*HD)
	for _, t := range d.caches {
		if err := t.CopyFromHost(zero); err != nil {
			return err
		}
	}
	type bound struct {
		name string
		t    *onnx.DeviceTensor
		out  bool
	}
	binds := []bound{{neox.InputIDs, d.ids, false}, {neox.PositionIDs, d.pos, false}, {neox.CacheIndexInput, d.index, false},
		{neox.AttentionMask, d.mask, false}, {neox.LogitsOutput, d.logits, true}, {neox.LogSumExpOutput, d.lse, true},
		{neox.MaxLogitOutput, d.top, true}, {neox.ArgMaxOutput, d.argmax, true}}
	for l := 0; l < c.NumLayers; l++ {
		// The same tensor as past and present: the step scatters into it.
		k, v := d.caches[2*l], d.caches[2*l+1]
		binds = append(binds, bound{neox.PastKey(l), k, false}, bound{neox.PastValue(l), v, false},
			bound{neox.PresentKey(l), k, true}, bound{neox.PresentValue(l), v, true})
	}
	for _, b := range binds {
		if b.out {
			err = d.bind.BindOutput(b.name, b.t)
		} else {
			err = d.bind.BindInput(b.name, b.t)
		}
		if err != nil {
			return fmt.Errorf("policy: step decoder: binding %s: %w", b.name, err)
		}
	}
	return nil
}

// Config is the decoded model's configuration.
func (d *StepDecoder) Config() neox.Config { return d.cfg }

// Batch is the graph's fixed number of rows (B).
func (d *StepDecoder) Batch() int { return d.graph.Batch }

// Capacity is the graph's fixed number of cache slots per row (C).
func (d *StepDecoder) Capacity() int { return d.graph.Capacity }

// NumNodes is the step graph's node count.
func (d *StepDecoder) NumNodes() int { return d.graph.Graph.NumNodes() }

// Step runs one token for each of the B rows: ids, pos and index are [B]
// (each row's token, its position, and the cache slot its keys and values
// go to), mask is [B,C] row-major (1 for the slots the token sees, its own
// included). The outputs stay in the decoder's tensors until the next step
// (Logits, Stats).
func (d *StepDecoder) Step(ids, pos, index, mask []int64) error {
	b, cp := d.graph.Batch, d.graph.Capacity
	if len(ids) != b || len(pos) != b || len(index) != b || len(mask) != b*cp {
		return fmt.Errorf("policy: step: %d ids, %d positions, %d slots and a mask of %d, want %d, %d, %d and %d×%d",
			len(ids), len(pos), len(index), len(mask), b, b, b, b, cp)
	}
	for r, i := range index {
		if i < 0 || int(i) >= cp {
			return fmt.Errorf("policy: step: row %d writes slot %d of %d", r, i, cp)
		}
	}
	for _, in := range []struct {
		t    *onnx.DeviceTensor
		data []int64
	}{{d.ids, ids}, {d.pos, pos}, {d.index, index}, {d.mask, mask}} {
		if err := in.t.CopyFromHostI64(in.data); err != nil {
			return fmt.Errorf("policy: step: %w", err)
		}
	}
	if err := d.bind.Run(); err != nil {
		return fmt.Errorf("policy: step (%d rows, %d slots): %w", b, cp, err)
	}
	return nil
}

// Logits copies the last step's logits, [B,V], into dst.
func (d *StepDecoder) Logits(dst []float32) error { return d.logits.CopyToHost(dst) }

// Stats copies the last step's log Σ exp, largest logit and its index of
// each row, [B] each, into lse, top and argmax.
func (d *StepDecoder) Stats(lse, top []float32, argmax []int64) error {
	if err := d.lse.CopyToHost(lse); err != nil {
		return err
	}
	if err := d.top.CopyToHost(top); err != nil {
		return err
	}
	return d.argmax.CopyToHostI64(argmax)
}

// Destroy closes the session and releases the tensors.
func (d *StepDecoder) Destroy() {
	if d == nil {
		return
	}
	d.bind.Destroy()
	for _, t := range append([]*onnx.DeviceTensor{d.ids, d.pos, d.index, d.mask, d.logits, d.lse, d.top, d.argmax}, d.caches...) {
		t.Destroy()
	}
	d.alloc.Destroy()
	d.session.Destroy()
	*d = StepDecoder{}
}

// StepGenerator is a Generator on the static step graph: batches of at
// most B sequences, the prompts left-padded and run a token per step
// through the same graph (no separate prefill graph: one graph, one
// capture), then a token per row per step. Rows whose sequence ended, and
// rows a short last batch leaves empty, stay in the batch with their
// tokens masked, so the graph's shapes never change. It gives
// Generator's sequences: the same streams per sequence, the same sampler.
// Destroy it when done. A StepGenerator is not safe for concurrent use.
type StepGenerator struct {
	d   *StepDecoder
	cfg neox.Config
	// Host buffers of a step's inputs and outputs.
	ids, pos, index, mask []int64
	logits, lse, top      []float32
	argmax                []int64
}

// NewStepGenerator opens a step decoder of batch rows and capacity slots:
// a batch's longest prompt plus its new tokens less one (the last is
// sampled, never run) must fit in capacity.
func NewStepGenerator(m *neox.Model, batch, capacity int, so onnx.Options) (*StepGenerator, error) {
	d, err := NewStepDecoder(m, neox.StepOptions{Batch: batch, Capacity: capacity}, so)
	if err != nil {
		return nil, err
	}
	v := m.Config.VocabSize
	return &StepGenerator{d: d, cfg: m.Config, ids: make([]int64, batch), pos: make([]int64, batch),
		index: make([]int64, batch), mask: make([]int64, batch*capacity), logits: make([]float32, batch*v),
		lse: make([]float32, batch), top: make([]float32, batch), argmax: make([]int64, batch)}, nil
}

// Decoder is the generator's step decoder.
func (g *StepGenerator) Decoder() *StepDecoder { return g.d }

// Destroy closes the decoder.
func (g *StepGenerator) Destroy() {
	if g != nil {
		g.d.Destroy()
	}
}

// Generate is Generator.Generate on the step graph. BatchSize 0, or more
// than the graph's B, means B.
func (g *StepGenerator) Generate(prompts [][]int64, o GenerateOptions) ([]Generation, error) {
	if err := (&Generator{cfg: g.cfg}).check(prompts, o); err != nil {
		return nil, err
	}
	n := max(o.NumReturnSequences, 1)
	total := len(prompts) * n
	bs := o.BatchSize
	if bs <= 0 || bs > g.d.Batch() {
		bs = g.d.Batch()
	}
	var out []Generation
	for start := 0; start < total; start += bs {
		if o.Context != nil && o.Context.Err() != nil {
			return out, fmt.Errorf("policy: generate: stopped after %d of %d sequences: %w", start, total, o.Context.Err())
		}
		gens, err := g.batch(prompts, n, start, min(start+bs, total), o)
		if err != nil {
			return out, err
		}
		out = append(out, gens...)
	}
	return out, nil
}

// batch generates sequences [from, to) of the n copies of each prompt in
// rows 0…to−from−1 of the graph's B.
func (g *StepGenerator) batch(prompts [][]int64, n, from, to int, o GenerateOptions) ([]Generation, error) {
	c := g.cfg
	v, B, C := c.VocabSize, g.d.Batch(), g.d.Capacity()
	b := to - from
	gens, samplers, s, err := startBatch(prompts, n, from, to, o)
	if err != nil {
		return nil, err
	}
	if need := s + o.MaxNewTokens - 1; need > C {
		return nil, fmt.Errorf("policy: generate: a prompt of %d tokens and %d new ones need %d cache slots, the step graph has %d",
			s, o.MaxNewTokens, need, C)
	}
	pad := int64(0)
	if c.EOSTokenID >= 0 && c.EOSTokenID < v {
		pad = int64(c.EOSTokenID)
	}
	clear(g.mask)
	// Prefill: slot j holds column j of the prompts left-padded to s.
	for j := 0; j < s; j++ {
		for r := 0; r < B; r++ {
			g.ids[r], g.pos[r], g.index[r] = pad, 0, int64(j)
			if r >= b {
				continue
			}
			p := prompts[gens[r].Prompt]
			if at := j - (s - len(p)); at >= 0 {
				g.ids[r], g.pos[r] = p[at], int64(at)
				g.mask[r*C+j] = 1
			}
		}
		if err := g.d.Step(g.ids, g.pos, g.index, g.mask); err != nil {
			return nil, err
		}
	}
	all := make([]int, b) // batch row → sequence, every row
	live := make([]int, b)
	for i := range all {
		all[i], live[i] = i, i
	}
	toks, lps := make([]int, b), make([]float64, b)
	ltoks, llps := make([]int, b), make([]float64, b)
	for slot := s; ; slot++ {
		// Rows that finished are drawn for too, and their draws thrown
		// away: each sequence has its own sampler, which no other reads.
		if err := g.d.Stats(g.lse, g.top, g.argmax); err != nil {
			return nil, err
		}
		stats := &graphStats{g.lse[:b], g.top[:b], g.argmax[:b]}
		var logits []float32
		if !o.Sampling.Greedy || !statsOK(stats.lse, stats.argmax, v) {
			if err := g.d.Logits(g.logits); err != nil {
				return nil, err
			}
			logits = g.logits[:b*v]
		}
		if r, err := sampleRows(samplers, all, logits, stats, v, toks, lps); err != nil {
			return nil, sampleError(gens, all, r, err)
		}
		for k, r := range live {
			ltoks[k], llps[k] = toks[r], lps[r]
		}
		keep := record(gens, live, ltoks[:len(live)], llps[:len(live)], o, c.EOSTokenID)
		if len(keep) == 0 {
			break
		}
		for j, k := range keep {
			live[j] = live[k]
		}
		live = live[:len(keep)]
		// Every row writes this slot; only the live rows see it.
		for r := 0; r < B; r++ {
			g.ids[r], g.pos[r], g.index[r] = pad, 0, int64(slot)
		}
		for _, r := range live {
			p, gen := prompts[gens[r].Prompt], gens[r]
			g.ids[r], g.pos[r] = gen.IDs[len(gen.IDs)-1], int64(len(p)+len(gen.IDs)-1)
			g.mask[r*C+slot] = 1
		}
		if err := g.d.Step(g.ids, g.pos, g.index, g.mask); err != nil {
			return nil, err
		}
	}
	return gens, nil
}
