package policy

import (
	"fmt"
	"slices"

	"irl/onnx"
)

// Batch is a padded batch of token ids, I64 [B,S] each, row-major.
type Batch struct {
	B, S          int
	InputIDs      []int64
	AttentionMask []int64
	// PositionIDs may be nil: then positions count only unmasked tokens, as
	// transformers does for left padding (max(cumsum(mask) - 1, 0)).
	PositionIDs []int64
}

// Validate checks sizes and token ids against the configuration; name is
// used in errors (a file, say).
func (bt *Batch) Validate(c Config, name string) error {
	n := bt.B * bt.S
	if bt.B <= 0 || bt.S <= 0 {
		return fmt.Errorf("%s: empty batch [%d,%d]", name, bt.B, bt.S)
	}
	if len(bt.InputIDs) != n {
		return fmt.Errorf("%s: input_ids has %d values, want %d×%d", name, len(bt.InputIDs), bt.B, bt.S)
	}
	if bt.AttentionMask != nil && len(bt.AttentionMask) != n {
		return fmt.Errorf("%s: attention_mask has %d values, want %d×%d like input_ids", name, len(bt.AttentionMask), bt.B, bt.S)
	}
	if bt.PositionIDs != nil && len(bt.PositionIDs) != n {
		return fmt.Errorf("%s: position_ids has %d values, want %d×%d like input_ids", name, len(bt.PositionIDs), bt.B, bt.S)
	}
	for i, id := range bt.InputIDs {
		if id < 0 || id >= int64(c.VocabSize) {
			return fmt.Errorf("%s: input_ids[%d,%d] = %d is outside the vocabulary [0,%d)", name, i/bt.S, i%bt.S, id, c.VocabSize)
		}
	}
	for i, p := range bt.PositionIDs {
		if p < 0 || p >= int64(c.MaxPositions) {
			return fmt.Errorf("%s: position_ids[%d,%d] = %d is outside [0,%d) (max_position_embeddings)", name, i/bt.S, i%bt.S, p, c.MaxPositions)
		}
	}
	if bt.PositionIDs == nil {
		for r := 0; r < bt.B; r++ {
			var real int64
			for s := 0; s < bt.S; s++ {
				if bt.AttentionMask == nil || bt.AttentionMask[r*bt.S+s] != 0 {
					real++
				}
			}
			if real > int64(c.MaxPositions) {
				return fmt.Errorf("%s: row %d has %d tokens, more than max_position_embeddings %d", name, r, real, c.MaxPositions)
			}
		}
	}
	return nil
}

// Complete fills a missing attention mask with ones and missing position ids
// from the mask.
func (bt *Batch) Complete() {
	if bt.AttentionMask == nil {
		bt.AttentionMask = make([]int64, bt.B*bt.S)
		for i := range bt.AttentionMask {
			bt.AttentionMask[i] = 1
		}
	}
	if bt.PositionIDs == nil {
		bt.PositionIDs = PositionsFromMask(bt.AttentionMask, bt.B, bt.S)
	}
}

// PositionsFromMask is max(cumsum(mask) - 1, 0) along each row.
func PositionsFromMask(mask []int64, b, s int) []int64 {
	pos := make([]int64, b*s)
	for r := 0; r < b; r++ {
		var c int64
		for j := 0; j < s; j++ {
			c += mask[r*s+j]
			pos[r*s+j] = max(c-1, 0)
		}
	}
	return pos
}

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
	m          *Model
	pool       Pooling
	graph      *ForwardGraph
	boundGraph // its store, with ParamInputs: where the weights are read
	fo         ForwardOptions
	so         onnx.Options
	// std runs the batches a fused graph does not take (see FusedFits): a
	// standard graph, built when the first such batch comes.
	std *Runner
}

// NewRunner builds the forward graph and opens its session. On CUDA the
// graph is built from standard operators: ONNX Runtime's CUDA
// GroupQueryAttention takes only 16-bit floats. With ParamInputs the
// weights are read from fo.Params at every run, or, when that is nil, from
// a store of the runner's own (NewParamStore: views of m's memory on CPU,
// a copy taken now on CUDA).
func NewRunner(m *Model, fo ForwardOptions, so onnx.Options) (*Runner, error) {
	if so.Device == onnx.CUDA {
		fo.Standard = true
	}
	fg, err := BuildForward(m, fo)
	if err != nil {
		return nil, err
	}
	r := &Runner{m: m, pool: fo.Pool, graph: fg, fo: fo, so: so}
	var store *ParamStore
	if fo.ParamInputs {
		store = fo.Params
	}
	if err := r.open(m, fg.Graph, so, store, fo.ParamInputs); err != nil {
		return nil, err
	}
	if fo.ParamInputs {
		r.fo.Params = r.store // the standard twin reads the same store
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
		std, err := NewRunner(r.m, fo, r.so)
		if err != nil {
			return nil, err
		}
		r.std = std
	}
	return r.std, nil
}

// Forward runs one batch. The batch must be valid (see Batch.Validate).
func (r *Runner) Forward(bt *Batch) (map[string]Output, error) {
	return r.ForwardTokens(bt, nil, 0)
}

// ForwardTokens runs one batch of a graph built with LogProbs, scoring
// tokens [B,S] (each position's next token, say) under softmax(logits/T).
// The temperature must be positive: it is the same rule everywhere (see
// TrainBatch.Temperature).
func (r *Runner) ForwardTokens(bt *Batch, tokens []int64, temperature float32) (map[string]Output, error) {
	bt.Complete()
	if r.graph.Fused && !FusedFits(r.m.Config, bt) {
		std, err := r.standard()
		if err != nil {
			return nil, err
		}
		return std.ForwardTokens(bt, tokens, temperature)
	}
	scored := contains(r.graph.Inputs, TokensInput)
	if scored && len(tokens) != bt.B*bt.S {
		return nil, fmt.Errorf("policy: %d tokens to score, want %d×%d", len(tokens), bt.B, bt.S)
	}
	if scored && !(temperature > 0) {
		return nil, fmt.Errorf("policy: temperature %v must be positive", temperature)
	}
	// Outputs are written straight into Go slices: no allocation by ONNX
	// Runtime and no copy afterwards, which matters for [B,S,V] logits.
	c := r.m.Config
	res := make(map[string]Output, len(r.graph.Outputs))
	datas := make([][]float32, len(r.graph.Outputs))
	for i, name := range r.graph.Outputs {
		shape := []int{bt.B, bt.S, c.HiddenSize}
		switch {
		case name == LogProbsOutput || name == EntropyOutput || name == ValuesOutput:
			shape = []int{bt.B, bt.S}
		case name == LogitsOutput:
			shape = []int{bt.B, bt.S, c.VocabSize}
		case r.pool != NoPool:
			shape = []int{bt.B, c.HiddenSize}
		}
		o := Output{Shape: shape, Data: make([]float32, numel(shape))}
		res[name] = o
		datas[i] = o.Data
	}
	// Rows are contiguous in every input and output, so a run of fewer rows
	// reads and writes sub-slices of them in place.
	rows := bt.B
	if r.fo.MaxTokens > 0 {
		rows = max(1, min(bt.B, r.fo.MaxTokens/bt.S))
	}
	for from := 0; from < bt.B; from += rows {
		to := min(from+rows, bt.B)
		var scoredTokens []int64
		if scored {
			scoredTokens = tokens[from*bt.S : to*bt.S]
		}
		if err := r.run(bt, from, to, scoredTokens, temperature, datas); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// run runs rows from…to−1 of bt, writing into the outputs' full buffers.
func (r *Runner) run(bt *Batch, from, to int, tokens []int64, temperature float32, datas [][]float32) error {
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
		io.inI64(TokensInput, tokens, b, int64(s))
		io.inF32(TemperatureInput, []float32{temperature}, 1)
	}
	for i, d := range datas {
		per := len(d) / bt.B // values per row
		shape := []int64{b, int64(s), int64(per / s)}
		switch name := r.graph.Outputs[i]; {
		case name == LogProbsOutput || name == EntropyOutput || name == ValuesOutput:
			shape = []int64{b, int64(s)}
		case name != LogitsOutput && r.pool != NoPool:
			shape = []int64{b, int64(per)}
		}
		io.outF32(r.graph.Outputs[i], d[from*per:to*per], shape...)
	}
	return io.run(nil)
}

// Destroy closes the session and releases the binding and a store of the
// runner's own.
func (r *Runner) Destroy() {
	if r.std != nil {
		r.std.Destroy()
		r.std = nil
	}
	r.destroy()
}

func contains(xs []string, x string) bool { return slices.Contains(xs, x) }
