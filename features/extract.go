package features

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"irl/batching"
	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/progress"
)

// Options configures an extraction.
type Options struct {
	// Layer is a hidden-state index in Hugging Face's convention (0 the
	// embeddings, NumLayers after the final layer norm); negative counts from
	// the end, so -1 is the last.
	Layer int
	// Pool is PoolLast (the last real token, the default) or PoolMean.
	Pool neox.Pooling
	// Layers and Pools, when Pools is set, ask for a grid of feature
	// choices from one pass through the model instead of Layer and Pool:
	// each row's features are every layer of Layers (resolved as Layer is)
	// pooled every way of Pools, side by side, layer by layer and within a
	// layer in Pools' order. Model folders only.
	Layers []int
	Pools  []neox.Pooling
	// BatchSize is the number of rows per batch: rows of similar lengths
	// padded to the longest of them.
	BatchSize int
	// MaxTokens caps the tokens (rows × padded length) that one forward
	// pass runs: a batch of long rows runs a few rows at a time, which keeps
	// the attention's scores, quadratic in the length, and the MLP's
	// activations in the caches. 0 means DefaultMaxTokens, negative no cap.
	MaxTokens int
	// Standard runs the model on a graph of standard ONNX operators instead
	// of ONNX Runtime's fused kernels (see neox.ForwardOptions.Standard).
	Standard bool
	// Session configures ONNX Runtime.
	Session onnx.Options
	// Progress, if not nil, receives a progress bar.
	Progress io.Writer
	// Context, if set, stops Extract between two batches once it is done,
	// with an error wrapping the context's.
	Context context.Context
}

// DefaultMaxTokens is Options.MaxTokens's default: on pythia-70m shapes,
// runs of 512 to 4,096 tokens make the most of the CPU, and longer ones lose
// up to a tenth of it to the attention's scores at 1,024 tokens a row.
const DefaultMaxTokens = 4096

// Extractor turns token sequences into pooled features. Destroy it when done.
type Extractor interface {
	// Dim is the feature width D; for an .onnx file it is known once a
	// batch has run, 0 before.
	Dim() int
	// Layer is the resolved, non-negative hidden-state index.
	Layer() int
	// run computes pooled features F32 [B,D] for a right-padded batch.
	run(bt *neox.Batch) ([]float32, error)
	// Destroy releases the session.
	Destroy()
}

// Open makes an Extractor for a model opened by neox.Open: a Hugging Face
// model folder or an .onnx file.
func Open(model *neox.Source, o Options) (Extractor, error) {
	if o.Pool == neox.NoPool {
		o.Pool = neox.PoolLast
	}
	for _, p := range append([]neox.Pooling{o.Pool}, o.Pools...) {
		if _, err := neox.ParsePooling(string(p)); err != nil {
			return nil, err
		}
	}
	if model.IsONNX() {
		if len(o.Pools) > 0 {
			return nil, fmt.Errorf("features: a grid of feature choices in one pass needs a model folder, not the .onnx file %s", model.Path)
		}
		return openONNX(model.Path, o)
	}
	m, err := model.Load()
	if err != nil {
		return nil, err
	}
	return NewModelExtractor(m, o)
}

// resolveLayer maps a possibly negative index onto 0…numLayers.
func resolveLayer(layer, numLayers int) (int, error) {
	l := layer
	if l < 0 {
		l += numLayers + 1
	}
	if l < 0 || l > numLayers {
		return 0, fmt.Errorf("layer %d is out of range: this model has hidden states 0…%d (or -1…-%d)", layer, numLayers, numLayers+1)
	}
	return l, nil
}

type modelExtractor struct {
	r     *policy.Runner
	cfg   neox.Config
	layer int
	// layers and pools are a grid's (Options.Pools), else layer's alone.
	layers []int
	pools  int
}

// NewModelExtractor extracts features from a loaded model, building a graph
// that stops at the requested layer and pools in the graph.
func NewModelExtractor(m *neox.Model, o Options) (Extractor, error) {
	l, err := resolveLayer(o.Layer, m.Config.NumLayers)
	if err != nil {
		return nil, err
	}
	pool := o.Pool
	if pool == neox.NoPool {
		pool = neox.PoolLast
	}
	layers := []int{l}
	var pools []neox.Pooling
	if len(o.Pools) > 0 {
		if len(o.Layers) == 0 {
			return nil, fmt.Errorf("features: a grid of feature choices needs its layers")
		}
		layers, pools, pool = nil, o.Pools, neox.NoPool
		for i, p := range pools {
			if slices.Contains(pools[:i], p) {
				return nil, fmt.Errorf("features: pooling %s twice in a grid", p)
			}
		}
		// Two layers may resolve to one (-1 and 1 of a one-layer model):
		// the graph computes it once, the grid holds it twice.
		for _, x := range o.Layers {
			r, err := resolveLayer(x, m.Config.NumLayers)
			if err != nil {
				return nil, err
			}
			layers = append(layers, r)
		}
		l = layers[0]
	}
	hidden := []int{}
	for _, x := range layers {
		if !slices.Contains(hidden, x) {
			hidden = append(hidden, x)
		}
	}
	maxTokens := o.MaxTokens
	switch {
	case maxTokens == 0:
		maxTokens = DefaultMaxTokens
	case maxTokens < 0:
		maxTokens = 0
	}
	fo := neox.ForwardOptions{Hidden: hidden, Pool: pool, Pools: pools, Standard: o.Standard}
	r, err := policy.NewRunner(m, fo, o.Session, nil)
	if err != nil {
		return nil, err
	}
	r.MaxTokens = maxTokens
	return &modelExtractor{r: r, cfg: m.Config, layer: l, layers: layers, pools: len(fo.Poolings())}, nil
}

func (e *modelExtractor) Dim() int   { return len(e.layers) * e.pools * e.cfg.HiddenSize }
func (e *modelExtractor) Layer() int { return e.layer }
func (e *modelExtractor) Destroy()   { e.r.Destroy() }
func (e *modelExtractor) run(bt *neox.Batch) ([]float32, error) {
	for i, id := range bt.InputIDs {
		if id >= int64(e.cfg.VocabSize) {
			return nil, fmt.Errorf("token id %d (row %d of the batch) is outside the vocabulary [0,%d)", id, i/bt.S, e.cfg.VocabSize)
		}
	}
	out, err := e.r.Forward(bt)
	if err != nil {
		return nil, err
	}
	if len(e.layers) == 1 {
		return out[neox.HiddenOutput(e.layer)].Data, nil
	}
	// A grid: each row's layers side by side (a layer asked for twice,
	// twice).
	w := e.pools * e.cfg.HiddenSize
	x := make([]float32, 0, bt.B*len(e.layers)*w)
	for r := 0; r < bt.B; r++ {
		for _, l := range e.layers {
			x = append(x, out[neox.HiddenOutput(l)].Data[r*w:(r+1)*w]...)
		}
	}
	return x, nil
}

// onnxExtractor runs an .onnx file exported by another tool, such as
// torch.onnx.export of a transformers model: inputs input_ids and
// attention_mask (and position_ids if it has one), output last_hidden_state
// or hidden_states.N. It runs through a binding, as every session of the
// project does, and pools in Go.
type onnxExtractor struct {
	s      *onnx.BoundSession
	bind   *onnx.Binding
	cpu    *onnx.MemoryInfo // where the hidden states come back
	output string
	pool   neox.Pooling
	layer  int
	dim    int
}

func openONNX(path string, o Options) (Extractor, error) {
	ins, outs, err := onnx.IOInfo(nil, path)
	if err != nil {
		return nil, err
	}
	e := &onnxExtractor{pool: o.Pool}
	for _, in := range ins {
		switch in {
		case neox.InputIDs, neox.AttentionMask, neox.PositionIDs:
		default:
			return nil, fmt.Errorf("%s: input %q is not supported: want input_ids, attention_mask, position_ids", path, in)
		}
	}
	if !slices.Contains(ins, neox.InputIDs) || !slices.Contains(ins, neox.AttentionMask) {
		return nil, fmt.Errorf("%s: inputs %v: want input_ids and attention_mask", path, ins)
	}
	// Hidden states the file offers, by index; last_hidden_state is -1.
	hidden := map[int]string{}
	maxIdx := -1
	for _, out := range outs {
		var k int
		if _, err := fmt.Sscanf(out, "hidden_states.%d", &k); err == nil && out == neox.HiddenOutput(k) {
			hidden[k] = out
			maxIdx = max(maxIdx, k)
		}
	}
	var output string
	switch {
	case len(hidden) > 0:
		l, err := resolveLayer(o.Layer, maxIdx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if hidden[l] == "" {
			return nil, fmt.Errorf("%s: has no output hidden_states.%d", path, l)
		}
		output, e.layer = hidden[l], l
	case slices.Contains(outs, "last_hidden_state"):
		if o.Layer != -1 {
			return nil, fmt.Errorf("%s: only last_hidden_state is exported, so layer must be -1 (got %d)", path, o.Layer)
		}
		output, e.layer = "last_hidden_state", -1
	default:
		return nil, fmt.Errorf("%s: outputs %v: want last_hidden_state or hidden_states.N", path, outs)
	}
	e.output = output
	if e.s, err = onnx.NewBoundSession(nil, path, o.Session); err == nil {
		if e.bind, err = e.s.NewBinding(); err == nil {
			e.cpu, err = onnx.NewMemoryInfo(onnx.CPU, 0)
		}
	}
	if err != nil {
		e.Destroy()
		return nil, err
	}
	return e, nil
}

func (e *onnxExtractor) Dim() int   { return e.dim }
func (e *onnxExtractor) Layer() int { return e.layer }
func (e *onnxExtractor) Destroy() {
	e.bind.Destroy()
	e.s.Destroy()
	e.cpu.Destroy()
}

func (e *onnxExtractor) run(bt *neox.Batch) ([]float32, error) {
	bt.Complete()
	// The inputs are bound over the batch's Go memory, then unbound and
	// released, so that nothing stays pinned between runs.
	var ins []*onnx.DeviceTensor
	defer func() {
		e.bind.ClearInputs()
		e.bind.ClearOutputs()
		for _, t := range ins {
			t.Destroy()
		}
	}()
	for _, name := range e.s.Inputs() {
		data := bt.InputIDs
		switch name {
		case neox.AttentionMask:
			data = bt.AttentionMask
		case neox.PositionIDs:
			data = bt.PositionIDs
		}
		t, err := onnx.NewHostTensorI64(data, int64(bt.B), int64(bt.S))
		if err != nil {
			return nil, err
		}
		ins = append(ins, t)
		if err := e.bind.BindInput(name, t); err != nil {
			return nil, err
		}
	}
	// The width is known only when the run ends: ONNX Runtime allocates
	// the output, in host memory.
	if err := e.bind.BindOutputToDevice(e.output, e.cpu); err != nil {
		return nil, err
	}
	if err := e.bind.Run(); err != nil {
		return nil, err
	}
	out, err := e.bind.Output(e.output)
	if err != nil {
		return nil, err
	}
	defer out.Destroy()
	h, err := out.Float32s()
	if err != nil {
		return nil, err
	}
	shape := out.Shape()
	if len(shape) != 3 || int(shape[0]) != bt.B || int(shape[1]) != bt.S {
		return nil, fmt.Errorf("%s has shape %v, want [%d,%d,D]", e.output, shape, bt.B, bt.S)
	}
	e.dim = int(shape[2])
	return PoolRows(h, bt.AttentionMask, bt.B, bt.S, e.dim, e.pool), nil
}

// PoolRows pools hidden states h (B,S,D) over the real tokens of mask (B,S).
func PoolRows(h []float32, mask []int64, b, s, d int, pool neox.Pooling) []float32 {
	out := make([]float32, b*d)
	for r := 0; r < b; r++ {
		dst := out[r*d : (r+1)*d]
		switch pool {
		case neox.PoolMean:
			acc := make([]float64, d)
			n := 0
			for j := 0; j < s; j++ {
				if mask[r*s+j] == 0 {
					continue
				}
				n++
				for k, v := range h[(r*s+j)*d : (r*s+j+1)*d] {
					acc[k] += float64(v)
				}
			}
			for k := range dst {
				dst[k] = float32(acc[k] / float64(max(n, 1)))
			}
		default:
			k, _ := pool.FromEnd()
			last := 0
			for j := 0; j < s; j++ {
				if mask[r*s+j] != 0 {
					last = j
				}
			}
			last = max(last-(k-1), 0)
			copy(dst, h[(r*s+last)*d:(r*s+last+1)*d])
		}
	}
	return out
}

// Stats reports what an extraction did.
type Stats struct {
	Rows    int
	Tokens  int
	Batches int
	Elapsed time.Duration
}

// Extract computes features for each sequence, F32 [N,D] in the order of
// seqs. Sequences are sorted by length into batches of opts.BatchSize rows,
// each padded on the right to its longest row, so little work goes to padding;
// right padding keeps positions 0…n-1 for every model, including exported
// graphs that number positions themselves.
func Extract(e Extractor, seqs [][]int64, o Options) ([]float32, Stats, error) {
	st := Stats{Rows: len(seqs)}
	if len(seqs) == 0 {
		return nil, st, errors.New("no rows to extract")
	}
	bs := o.BatchSize
	if bs <= 0 {
		bs = 32
	}
	lengths := make([]int, len(seqs))
	for i, q := range seqs {
		if len(q) == 0 {
			return nil, st, fmt.Errorf("row %d has no tokens", i)
		}
		lengths[i] = len(q)
		st.Tokens += len(q)
	}
	bar := progress.New(o.Progress, len(seqs), "features", "rows")
	start := time.Now()
	var out []float32
	dim := 0
	tokensDone, rowsDone := 0, 0
	err := batching.Sorted(lengths, bs, func(idx []int, s int) error {
		if o.Context != nil && o.Context.Err() != nil {
			bar.Stop()
			return fmt.Errorf("features: stopped after %d of %d rows: %w", rowsDone, st.Rows, o.Context.Err())
		}
		ids, mask := batching.RightPad(seqs, idx, s, 0)
		bt := &neox.Batch{B: len(idx), S: s, InputIDs: ids, AttentionMask: mask}
		feats, err := e.run(bt)
		if err != nil {
			return err
		}
		if out == nil {
			dim = len(feats) / len(idx)
			out = make([]float32, len(seqs)*dim)
		}
		for r, i := range idx {
			copy(out[i*dim:(i+1)*dim], feats[r*dim:(r+1)*dim])
			tokensDone += len(seqs[i])
		}
		st.Batches++
		rowsDone += len(idx)
		bar.Describe(fmt.Sprintf("features %.0f tokens/s", float64(tokensDone)/max(time.Since(start).Seconds(), 1e-9)))
		bar.Add(len(idx))
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	bar.Finish()
	st.Elapsed = time.Since(start)
	return out, st, nil
}
