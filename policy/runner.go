package policy

import (
	"fmt"
	"slices"

	"irl/neox"
	"irl/onnx"
)

// Output is one named float32 result.
type Output struct {
	Shape []int
	Data  []float32
}

// Runner runs a forward graph in an ONNX Runtime session, through a
// binding: the batch goes in and the outputs come back as tensors over Go
// slices, and with ParamInputs the weights are bound from a ParamStore.
// Destroy it when done. A Runner is not safe for concurrent use.
type Runner struct {
	// MaxTokens, if positive, makes Forward run a batch in runs of as many
	// whole rows as hold at most MaxTokens tokens (B·S) each, one row at
	// least: the attention's [rows,H,S,S] scores and the MLP's [tokens,F]
	// activations then stay small enough for the caches, which matters more
	// than the per-run overhead once runs hold a few thousand tokens. Rows
	// are contiguous in every input and output, so runs read and write the
	// batch's buffers in place.
	MaxTokens int

	m          *neox.Model
	graph      *neox.ForwardGraph
	boundGraph // its store, with ParamInputs: where the weights are read
	fo         neox.ForwardOptions
	so         onnx.Options
	// std runs the batches a fused graph does not take (see neox.FusedFits): a
	// standard graph on the same store, built when the first such batch
	// comes.
	std *Runner
}

// NewRunner builds the forward graph for sessions with options so (fused
// or standard as neox.Fused rules) and opens its session. With ParamInputs
// the weights are read at every run from store, or, when that is nil,
// from a store of the runner's own (NewParamStore: views of m's memory on
// CPU, a copy taken now on CUDA); without, store must be nil.
func NewRunner(m *neox.Model, fo neox.ForwardOptions, so onnx.Options, store *ParamStore) (*Runner, error) {
	if store != nil && !fo.ParamInputs {
		return nil, fmt.Errorf("policy: a runner whose weights are initializers reads no store")
	}
	fo.Device = so.Device
	fg, err := neox.BuildForward(m, fo)
	if err != nil {
		return nil, err
	}
	r := &Runner{m: m, graph: fg, fo: fo, so: so}
	if err := r.open(m, fg.Graph, so, store, fo.ParamInputs); err != nil {
		return nil, err
	}
	return r, nil
}

// Outputs lists the output names, in the order Forward returns them.
func (r *Runner) Outputs() []string { return r.graph.Outputs }

// Fused tells whether the runner's graph uses ONNX Runtime's fused kernels.
func (r *Runner) Fused() bool { return r.graph.Fused }

// standard returns the runner's standard-graph twin, opening it on first use.
func (r *Runner) standard() (*Runner, error) {
	if r.std == nil {
		fo := r.fo
		fo.Standard = true
		std, err := NewRunner(r.m, fo, r.so, r.store)
		if err != nil {
			return nil, err
		}
		r.std = std
	}
	return r.std, nil
}

// Forward runs one batch. The batch must be valid (see neox.Batch.Validate).
func (r *Runner) Forward(bt *neox.Batch) (map[string]Output, error) {
	return r.ForwardTokens(bt, nil, 0)
}

// ForwardTokens runs one batch of a graph built with LogProbs, scoring
// tokens [B,S] (each position's next token, say) under softmax(logits/T).
// The temperature must be positive: it is the same rule everywhere (see
// TrainBatch.Temperature).
func (r *Runner) ForwardTokens(bt *neox.Batch, tokens []int64, temperature float32) (map[string]Output, error) {
	bt.Complete()
	run := r // the runner whose graph takes bt
	if r.graph.Fused && !neox.FusedFits(r.m.Config, bt) {
		var err error
		if run, err = r.standard(); err != nil {
			return nil, err
		}
	}
	scored := slices.Contains(r.graph.Inputs, neox.TokensInput)
	if scored && len(tokens) != bt.B*bt.S {
		return nil, fmt.Errorf("policy: %d tokens to score, want %d×%d", len(tokens), bt.B, bt.S)
	}
	if scored {
		if err := CheckTemperature(float64(temperature)); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	// Outputs are written straight into Go slices: no allocation by ONNX
	// Runtime and no copy afterwards, which matters for [B,S,V] logits.
	c := r.m.Config
	res := make(map[string]Output, len(r.graph.Outputs))
	datas := make([][]float32, len(r.graph.Outputs))
	for i, name := range r.graph.Outputs {
		shape := []int{bt.B, bt.S, c.HiddenSize}
		switch {
		case name == neox.LogProbsOutput || name == neox.EntropyOutput || name == neox.ValuesOutput:
			shape = []int{bt.B, bt.S}
		case name == neox.LogitsOutput:
			shape = []int{bt.B, bt.S, c.VocabSize}
		case len(r.fo.Poolings()) > 0:
			shape = []int{bt.B, len(r.fo.Poolings()) * c.HiddenSize}
		}
		o := Output{Shape: shape, Data: make([]float32, neox.Numel(shape))}
		res[name] = o
		datas[i] = o.Data
	}
	// Rows are contiguous in every input and output, so a run of fewer rows
	// reads and writes sub-slices of them in place.
	rows := bt.B
	if r.MaxTokens > 0 {
		rows = max(1, min(bt.B, r.MaxTokens/bt.S))
	}
	for from := 0; from < bt.B; from += rows {
		to := min(from+rows, bt.B)
		var scoredTokens []int64
		if scored {
			scoredTokens = tokens[from*bt.S : to*bt.S]
		}
		if err := run.run(bt, from, to, scoredTokens, temperature, datas); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// run runs rows from…to−1 of bt, writing into the outputs' full buffers.
func (r *Runner) run(bt *neox.Batch, from, to int, tokens []int64, temperature float32, datas [][]float32) error {
	s := bt.S
	b := int64(to - from)
	io := &runIO{b: r.bind}
	for i, x := range [][]int64{bt.InputIDs, bt.AttentionMask, bt.PositionIDs} {
		io.inI64(r.graph.Inputs[i], x[from*s:to*s], b, int64(s))
	}
	if r.store != nil && io.err == nil {
		io.err = r.store.bindParams(r.bind, r.graph.Params)
	}
	if tokens != nil {
		io.inI64(neox.TokensInput, tokens, b, int64(s))
		io.inF32(neox.TemperatureInput, []float32{temperature}, 1)
	}
	for i, d := range datas {
		per := len(d) / bt.B // values per row
		shape := []int64{b, int64(s), int64(per / s)}
		switch name := r.graph.Outputs[i]; {
		case name == neox.LogProbsOutput || name == neox.EntropyOutput || name == neox.ValuesOutput:
			shape = []int64{b, int64(s)}
		case name != neox.LogitsOutput && len(r.fo.Poolings()) > 0:
			shape = []int64{b, int64(per)}
		}
		io.outF32(r.graph.Outputs[i], d[from*per:to*per], shape...)
	}
	return io.run(nil)
}

// Destroy closes the session and releases the binding and a store of the
// runner's own.
func (r *Runner) Destroy() {
	if r == nil {
		return
	}
	r.std.Destroy()
	r.std = nil
	r.destroy()
}
