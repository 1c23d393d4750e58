package policy

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"irl/neox"
	"irl/onnx"
)

// GenerateOptions configures Generator.Generate.
type GenerateOptions struct {
	// MaxNewTokens is the most tokens generated per sequence (> 0).
	MaxNewTokens int
	// Sampling chooses greedy decoding or temperature / top-k / top-p
	// sampling.
	Sampling SampleOptions
	// Seed seeds sampling. Sequence k (prompt k/n, copy k%n for n return
	// sequences) has its own random stream derived from Seed and k, so the
	// result does not depend on BatchSize.
	Seed uint64
	// NumReturnSequences is how many sequences each prompt gets (0 means 1).
	NumReturnSequences int
	// PromptIndex, if set, is each prompt's index in the whole list it was
	// taken from: its sequences draw from the streams of that index, so a
	// shard of a list samples each prompt as the whole list would.
	PromptIndex []int
	// BatchSize is how many sequences are decoded together (0: all).
	BatchSize int
	// IgnoreEOS keeps generating after the configuration's EOSTokenID.
	IgnoreEOS bool
	// Context, if set, stops generation between two batches once it is
	// done: GenerateEach returns an error wrapping the context's.
	Context context.Context
}

// Generation is one generated sequence.
type Generation struct {
	// Prompt is the index of the prompt, Sequence the copy of it (0 … n-1).
	Prompt, Sequence int
	// IDs are the new tokens, ending with EOS if the sequence reached it.
	IDs []int64
	// LogProbs[i] is the log-probability of IDs[i] under the distribution it
	// was drawn from (greedy: the log-softmax of the raw logits).
	LogProbs []float64
	// EOS tells whether the sequence stopped at EOS rather than at
	// MaxNewTokens.
	EOS bool
}

// Generator continues prompts with a GPT-NeoX model, using the key/value
// cache of the decode graph: one prefill of the (left-padded) prompts, then
// one token per step. Destroy it when done. A Generator is not safe for
// concurrent use.
type Generator struct {
	// Exactly one decoder: the cached one on the fused kernels (CPU), or
	// the standard one.
	cdec *CachedDecoder
	dec  *Decoder
	cfg  neox.Config
	kv   *KVCache // the standard decoder's, reused between batches when large enough
	ckv  *Cache   // the cached decoder's, likewise
	// logitsT is where the standard decoder leaves the logits when the
	// sampler needs only the statistics below (greedy decoding): device
	// memory on CUDA, which then never crosses to the host.
	logitsT *onnx.DeviceTensor
	logits  []float32
	lse     []float32
	top     []float32
	argmax  []int64
	// sampling is the time spent choosing tokens from logits, in Go, over
	// the generator's life (for benchmarks).
	sampling time.Duration
}

// NewGenerator builds the decode graph for m and opens its session. The
// weights are copied into the session: later changes to m are not seen (see
// NewLiveGenerator).
func NewGenerator(m *neox.Model, so onnx.Options) (*Generator, error) {
	return NewGeneratorWith(m, neox.DecodeOptions{}, so, nil)
}

// NewLiveGenerator is NewGenerator with the weights read from store at
// every step, so that generation always uses the current weights of a model
// being trained (the store a Trainer updates), in sessions with the store's
// options.
func NewLiveGenerator(store *ParamStore) (*Generator, error) {
	return NewGeneratorWith(store.Model(), neox.DecodeOptions{ParamInputs: true}, store.Options(), store)
}

// NewGeneratorWith is NewGenerator with decode options, and with the
// weights (with ParamInputs) read from store when that is not nil. It
// decodes on the fused kernels' cached graph (CachedDecoder) where
// neox.Fused allows, and a resident store, which stands for the device
// even on CPU, counts as asking for standard operators; else on the
// standard graph (Decoder), whose cache stays where the session computes.
func NewGeneratorWith(m *neox.Model, o neox.DecodeOptions, so onnx.Options, store *ParamStore) (*Generator, error) {
	resident := store != nil && store.Resident()
	if neox.Fused(m.Config, o.Standard || resident, so.Device) {
		d, err := NewCachedDecoder(m, o, so, store)
		if err != nil {
			return nil, err
		}
		return &Generator{cdec: d, cfg: m.Config}, nil
	}
	d, err := NewDecoder(m, o, so, store)
	if err != nil {
		return nil, err
	}
	return &Generator{dec: d, cfg: m.Config}, nil
}

// Fused tells whether the generator decodes on the fused kernels.
func (g *Generator) Fused() bool { return g.cdec != nil }

// Destroy closes the session and releases the caches.
func (g *Generator) Destroy() {
	if g != nil {
		if g.cdec != nil {
			g.cdec.Destroy()
		}
		g.kv.Destroy()
		g.logitsT.Destroy()
		if g.dec != nil {
			g.dec.Destroy()
		}
		g.kv, g.logitsT = nil, nil
	}
}

// Generate continues each prompt (token ids) NumReturnSequences times and
// returns the sequences prompt by prompt, copies of a prompt together.
func (g *Generator) Generate(prompts [][]int64, o GenerateOptions) ([]Generation, error) {
	var out []Generation
	err := g.GenerateEach(prompts, o, func(gen Generation) error {
		out = append(out, gen)
		return nil
	})
	return out, err
}

// GenerateEach is Generate handing each sequence to emit, in order, as soon as
// its batch is done. An error from emit stops generation and is returned.
func (g *Generator) GenerateEach(prompts [][]int64, o GenerateOptions, emit func(Generation) error) error {
	if err := g.check(prompts, o); err != nil {
		return err
	}
	n := max(o.NumReturnSequences, 1)
	total := len(prompts) * n
	bs := o.BatchSize
	if bs <= 0 || bs > total {
		bs = total
	}
	for start := 0; start < total; start += bs {
		if o.Context != nil && o.Context.Err() != nil {
			return fmt.Errorf("policy: generate: stopped after %d of %d sequences: %w", start, total, o.Context.Err())
		}
		gens, err := g.batch(prompts, n, start, min(start+bs, total), o)
		if err != nil {
			return err
		}
		for _, gen := range gens {
			if err := emit(gen); err != nil {
				return err
			}
		}
	}
	return nil
}

// check validates the options and every prompt before any work is done.
func (g *Generator) check(prompts [][]int64, o GenerateOptions) error {
	c := g.cfg
	if o.MaxNewTokens <= 0 {
		return fmt.Errorf("policy: generate: max new tokens must be positive, got %d", o.MaxNewTokens)
	}
	if o.PromptIndex != nil && len(o.PromptIndex) != len(prompts) {
		return fmt.Errorf("policy: generate: %d prompt indices for %d prompts", len(o.PromptIndex), len(prompts))
	}
	if o.NumReturnSequences < 0 {
		return fmt.Errorf("policy: generate: number of return sequences must be positive, got %d", o.NumReturnSequences)
	}
	if len(prompts) == 0 {
		return fmt.Errorf("policy: generate: no prompts")
	}
	if err := o.Sampling.Validate(); err != nil {
		return err
	}
	for i, p := range prompts {
		if len(p) == 0 {
			return &PromptError{Index: i, Msg: "is empty: give at least one token"}
		}
		if len(p)+o.MaxNewTokens > c.MaxPositions {
			return &PromptError{Index: i, Msg: fmt.Sprintf("has %d tokens; with %d new tokens that is %d positions, more than the model's max_position_embeddings %d",
				len(p), o.MaxNewTokens, len(p)+o.MaxNewTokens, c.MaxPositions)}
		}
		for j, id := range p {
			if id < 0 || id >= int64(c.VocabSize) {
				return &PromptError{Index: i, Msg: fmt.Sprintf("has token id %d at position %d, outside the vocabulary [0,%d)", id, j, c.VocabSize)}
			}
		}
	}
	return nil
}

// PromptError is a prompt that cannot be generated from; Index is its place
// in the prompts given to Generate.
type PromptError struct {
	Index int
	Msg   string // completes "prompt N …"
}

func (e *PromptError) Error() string {
	return fmt.Sprintf("policy: generate: prompt %d %s", e.Index, e.Msg)
}

// sequenceSeed derives sequence k's sampling seed from the user's seed
// (splitmix64 of the two).
func sequenceSeed(seed uint64, k int) uint64 {
	z := seed + 0x9e3779b97f4a7c15*uint64(k+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// outputs are the decode outputs of b rows: the logits into Go memory when
// the sampler reads them (host true) or the decoder is the cached one,
// else left in logitsT; the statistics into Go memory always.
func (g *Generator) outputs(b int, host bool) (DecodeOutputs, error) {
	v := g.cfg.VocabSize
	if cap(g.lse) < b {
		g.lse, g.top, g.argmax = make([]float32, b), make([]float32, b), make([]int64, b)
	}
	out := DecodeOutputs{LogSumExp: g.lse[:b], MaxLogit: g.top[:b], ArgMax: g.argmax[:b]}
	if host || g.dec == nil {
		if cap(g.logits) < b*v {
			g.logits = make([]float32, b*v)
		}
		out.Logits = g.logits[:b*v]
		return out, nil
	}
	if g.logitsT == nil || g.logitsT.Len() < b*v {
		g.logitsT.Destroy()
		g.logitsT = nil
		t, err := g.dec.store.NewTensor(int64(b), int64(v))
		if err != nil {
			return out, fmt.Errorf("policy: generate: logits of %d rows: %w", b, err)
		}
		g.logitsT = t
	}
	out.LogitsTensor = g.logitsT
	return out, nil
}

// hostLogits returns the logits of a step's b rows in Go memory, copying
// them from where the decoder left them if it must: the sampler needs them
// when it does not draw greedily, or when the statistics show no
// distribution (NaN, say) and the fault must be found and named.
func (g *Generator) hostLogits(out DecodeOutputs, b int) ([]float32, error) {
	v := g.cfg.VocabSize
	if out.Logits != nil {
		return out.Logits[:b*v], nil
	}
	if cap(g.logits) < b*v {
		g.logits = make([]float32, b*v)
	}
	view, err := out.LogitsTensor.View(int64(b * v))
	if err != nil {
		return nil, err
	}
	defer view.Destroy()
	if err := view.CopyToHost(g.logits[:b*v]); err != nil {
		return nil, fmt.Errorf("policy: generate: logits to the host: %w", err)
	}
	return g.logits[:b*v], nil
}

// statsOK tells whether the graph's statistics of every row make a
// distribution greedy decoding can use without the logits.
func statsOK(lse []float32, argmax []int64, v int) bool {
	for i, l := range lse {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) || argmax[i] < 0 || argmax[i] >= int64(v) {
			return false
		}
	}
	return true
}

// sample draws each batch row's next token after a step whose outputs are
// out, fetching the logits only when the samplers need them.
func (g *Generator) sample(samplers []*Sampler, rows []int, out DecodeOutputs, o GenerateOptions, toks []int, lps []float64) (int, error) {
	b, v := len(rows), g.cfg.VocabSize
	stats := &graphStats{out.LogSumExp[:b], out.MaxLogit[:b], out.ArgMax[:b]}
	var logits []float32
	if !o.Sampling.Greedy || !statsOK(stats.lse, stats.argmax, v) {
		var err error
		if logits, err = g.hostLogits(out, b); err != nil {
			return -1, err
		}
	}
	start := time.Now()
	r, err := sampleRows(samplers, rows, logits, stats, v, toks, lps)
	g.sampling += time.Since(start)
	return r, err
}

// startBatch makes sequences [from, to) of the n copies of each prompt
// and their samplers, each drawing from its sequence's stream (its
// prompt's place in the whole list when PromptIndex says it), and returns
// the longest prompt's length.
func startBatch(prompts [][]int64, n, from, to int, o GenerateOptions) (gens []Generation, samplers []*Sampler, longest int, err error) {
	gens = make([]Generation, to-from)
	samplers = make([]*Sampler, to-from)
	for i := range gens {
		k := from + i
		gens[i] = Generation{Prompt: k / n, Sequence: k % n,
			IDs: make([]int64, 0, o.MaxNewTokens), LogProbs: make([]float64, 0, o.MaxNewTokens)}
		stream := k
		if o.PromptIndex != nil {
			stream = o.PromptIndex[k/n]*n + k%n
		}
		if samplers[i], err = NewSampler(o.Sampling, sequenceSeed(o.Seed, stream)); err != nil {
			return nil, nil, 0, err
		}
		longest = max(longest, len(prompts[k/n]))
	}
	return gens, samplers, longest, nil
}

// batch generates sequences [from, to) of the n copies of each prompt.
func (g *Generator) batch(prompts [][]int64, n, from, to int, o GenerateOptions) ([]Generation, error) {
	gens, samplers, s, err := startBatch(prompts, n, from, to, o)
	if err != nil {
		return nil, err
	}
	if g.cdec != nil {
		return g.batchCached(prompts, gens, samplers, s, o)
	}
	return g.batchStandard(prompts, gens, samplers, s, o)
}

// sampleError names the sequence whose token could not be drawn.
func sampleError(gens []Generation, rows []int, r int, err error) error {
	if r < 0 {
		return err
	}
	gen := gens[rows[r]]
	return fmt.Errorf("policy: generate: prompt %d, sequence %d, token %d: %w", gen.Prompt, gen.Sequence, len(gen.IDs), err)
}

// batchCached runs a batch on the cached decoder: the prompts right-padded
// in one prefill, each row's tokens then appended after its own.
func (g *Generator) batchCached(prompts [][]int64, gens []Generation, samplers []*Sampler, s int, o GenerateOptions) ([]Generation, error) {
	c := g.cfg
	b := len(gens)
	capacity := s + o.MaxNewTokens - 1 // the last token is sampled, never run
	if g.ckv == nil || g.ckv.Rows(c) < b || g.ckv.Capacity < capacity {
		g.ckv = NewCache(c, b, capacity)
	}
	kv := g.ckv
	kv.Reset(b)
	ids := make([]int64, b*s) // padding after each prompt is never attended to
	counts := make([]int, b)
	for i := range gens {
		p := prompts[gens[i].Prompt]
		copy(ids[i*s:], p)
		counts[i] = len(p)
	}
	out, err := g.outputs(b, !o.Sampling.Greedy)
	if err != nil {
		return nil, err
	}
	if err := g.cdec.Append(ids, s, counts, kv, out); err != nil {
		return nil, err
	}
	rows := make([]int, b) // batch row → sequence
	for i := range rows {
		rows[i] = i
	}
	next := make([]int64, b)
	toks, lps := make([]int, b), make([]float64, b)
	for {
		if r, err := g.sample(samplers, rows, out, o, toks, lps); err != nil {
			return nil, sampleError(gens, rows, r, err)
		}
		keep := record(gens, rows, toks, lps, o, c.EOSTokenID)
		if len(keep) == 0 {
			break
		}
		if len(keep) < len(rows) {
			kv.Keep(c, keep)
			for j, r := range keep {
				rows[j] = rows[r]
			}
			rows = rows[:len(keep)]
		}
		bb := len(rows)
		for r, i := range rows {
			next[r] = gens[i].IDs[len(gens[i].IDs)-1]
		}
		if out, err = g.outputs(bb, !o.Sampling.Greedy); err != nil {
			return nil, err
		}
		if err := g.cdec.Append(next[:bb], 1, nil, kv, out); err != nil {
			return nil, err
		}
	}
	return gens, nil
}

// record appends each batch row's sampled token (its index in the logits)
// to its sequence and returns the batch rows still going: not at EOS
// (unless ignored) nor at the limit.
func record(gens []Generation, rows, toks []int, lps []float64, o GenerateOptions, eos int) []int {
	var keep []int
	for r, i := range rows {
		tok := toks[r]
		gens[i].IDs = append(gens[i].IDs, int64(tok))
		gens[i].LogProbs = append(gens[i].LogProbs, lps[r])
		switch {
		case !o.IgnoreEOS && tok == eos:
			gens[i].EOS = true
		case len(gens[i].IDs) < o.MaxNewTokens:
			keep = append(keep, r)
		}
	}
	return keep
}

// batchStandard runs a batch on the standard decoder: the prompts
// left-padded in one prefill, then a token per row per step, the cache
// staying where the decoder computes and rows whose sequences ended leaving
// it inside the graph.
func (g *Generator) batchStandard(prompts [][]int64, gens []Generation, samplers []*Sampler, s int, o GenerateOptions) ([]Generation, error) {
	c := g.cfg
	v := c.VocabSize
	b := len(gens)
	pad := int64(0)
	if c.EOSTokenID >= 0 && c.EOSTokenID < v {
		pad = int64(c.EOSTokenID)
	}

	capacity := s + o.MaxNewTokens - 1 // the last token is sampled, never run
	if g.kv == nil || g.kv.Rows() < b || g.kv.Capacity() < capacity {
		g.kv.Destroy()
		g.kv = nil
		kv, err := g.dec.NewKVCache(b, capacity)
		if err != nil {
			return nil, err
		}
		g.kv = kv
	}
	kv := g.kv
	kv.Reset(b)
	// Prefill: the prompts left-padded to s tokens.
	ids := make([]int64, b*s)
	masks := make([][]int64, b) // each sequence's mask so far
	prompt := make([]int, b)    // each sequence's count of real prompt tokens
	for i := range gens {
		p := prompts[gens[i].Prompt]
		prompt[i] = len(p)
		m := make([]int64, s, capacity)
		for j := 0; j < s; j++ {
			ids[i*s+j] = pad
		}
		copy(ids[i*s+s-len(p):], p)
		for j := range p {
			m[s-len(p)+j] = 1
		}
		masks[i] = m
	}
	mask := make([]int64, 0, b*capacity)
	for _, m := range masks {
		mask = append(mask, m...)
	}
	out, err := g.outputs(b, !o.Sampling.Greedy)
	if err != nil {
		return nil, err
	}
	if err := g.dec.Step(ids, mask, neox.PositionsFromMask(mask, b, s), s, nil, kv, out); err != nil {
		return nil, err
	}

	rows := make([]int, b) // batch row → sequence
	for i := range rows {
		rows[i] = i
	}
	ids, pos := make([]int64, b), make([]int64, b)
	toks, lps := make([]int, b), make([]float64, b)
	for {
		if r, err := g.sample(samplers, rows, out, o, toks, lps); err != nil {
			return nil, sampleError(gens, rows, r, err)
		}
		keep := record(gens, rows, toks, lps, o, c.EOSTokenID)
		if len(keep) == 0 {
			break
		}
		// Finished sequences leave the batch: the step carries on only the
		// cache rows that keep lists, rather than rows whose results would
		// be thrown away.
		var sel []int64
		if len(keep) < len(rows) {
			sel = make([]int64, len(keep))
			for j, r := range keep {
				sel[j] = int64(r)
				rows[j] = rows[r]
			}
			rows = rows[:len(keep)]
		}
		bb := len(rows)
		mask = mask[:0]
		for r, i := range rows {
			ids[r] = gens[i].IDs[len(gens[i].IDs)-1]
			pos[r] = int64(prompt[i] + len(gens[i].IDs) - 1)
			masks[i] = append(masks[i], 1)
			mask = append(mask, masks[i]...)
		}
		if out, err = g.outputs(bb, !o.Sampling.Greedy); err != nil {
			return nil, err
		}
		if err := g.dec.Step(ids[:bb], mask, pos[:bb], 1, sel, kv, out); err != nil {
			return nil, err
		}
	}
	return gens, nil
}

// graphStats are what the decode graphs compute of each row's logits:
// log Σ exp, the largest logit and its index.
type graphStats struct {
	lse, top []float32
	argmax   []int64
}

// sampleRows draws the next token of each batch row r (sequence rows[r])
// from its logits, rows spread over the CPUs: a softmax over a large
// vocabulary for every row would otherwise leave them idle between steps.
// With stats from the graph, greedy decoding takes its token and
// log-probability from them rather than from passes over the vocabulary in
// Go. Each sequence has its own sampler, so the result does not depend on
// the order. Logits with no distribution (NaN, say) give an error and the
// row.
func sampleRows(samplers []*Sampler, rows []int, logits []float32, stats *graphStats, v int, toks []int, lps []float64) (int, error) {
	workers := min(runtime.GOMAXPROCS(0), len(rows))
	var wg sync.WaitGroup
	errs := make([]error, len(rows))
	panics := make([]any, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// A panic is a bug: it is carried to the caller's goroutine
			// and raised there as it was, not turned into an error (nor
			// left to kill the process from a worker no test can see).
			defer func() { panics[w] = recover() }()
			for r := w; r < len(rows); r += workers {
				sm := samplers[rows[r]]
				var row []float32 // nil when only the statistics came back
				if logits != nil {
					row = logits[r*v : (r+1)*v]
				}
				// Logits with no distribution are an error.
				if stats != nil && sm.opt.Greedy {
					toks[r], lps[r], errs[r] = sm.greedy(row, stats.lse[r], stats.top[r], stats.argmax[r], v)
				} else {
					toks[r], lps[r], errs[r] = sm.draw(row)
				}
			}
		}(w)
	}
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
	for r, err := range errs {
		if err != nil {
			return r, err
		}
	}
	return 0, nil
}
