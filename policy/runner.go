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

// Runner runs a forward graph in an ONNX Runtime session. Destroy it when done.
// A Runner is not safe for concurrent use.
type Runner struct {
	m       *Model
	pool    Pooling
	graph   *ForwardGraph
	session *onnx.Session
	params  []onnx.ORTValue // with ParamInputs: views of the model's weights
}

// NewRunner builds the forward graph and opens its session.
func NewRunner(m *Model, fo ForwardOptions, so onnx.Options) (*Runner, error) {
	fg, err := BuildForward(m, fo)
	if err != nil {
		return nil, err
	}
	s, err := onnx.NewGraphSession(fg.Graph, fg.Inputs, fg.Outputs, so)
	if err != nil {
		return nil, err
	}
	r := &Runner{m: m, pool: fo.Pool, graph: fg, session: s}
	if fo.ParamInputs {
		if r.params, err = paramTensors(m, fg.Params); err != nil {
			r.Destroy()
			return nil, err
		}
	}
	return r, nil
}

// Outputs lists the output names, in the order Forward returns them.
func (r *Runner) Outputs() []string { return r.graph.Outputs }

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
	scored := contains(r.graph.Inputs, TokensInput)
	if scored && len(tokens) != bt.B*bt.S {
		return nil, fmt.Errorf("policy: %d tokens to score, want %d×%d", len(tokens), bt.B, bt.S)
	}
	if scored && !(temperature > 0) {
		return nil, fmt.Errorf("policy: temperature %v must be positive", temperature)
	}
	b, s := int64(bt.B), int64(bt.S)
	ids, err := onnx.TensorI64(bt.InputIDs, b, s)
	if err != nil {
		return nil, err
	}
	defer ids.Destroy()
	mask, err := onnx.TensorI64(bt.AttentionMask, b, s)
	if err != nil {
		return nil, err
	}
	defer mask.Destroy()
	pos, err := onnx.TensorI64(bt.PositionIDs, b, s)
	if err != nil {
		return nil, err
	}
	defer pos.Destroy()
	ins := append([]onnx.ORTValue{ids, mask, pos}, r.params...)
	if scored {
		tv, err := onnx.TensorI64(tokens, b, s)
		if err != nil {
			return nil, err
		}
		defer tv.Destroy()
		temp, err := onnx.TensorF32([]float32{temperature}, 1)
		if err != nil {
			return nil, err
		}
		defer temp.Destroy()
		ins = append(ins, tv, temp)
	}
	// Outputs are written straight into Go slices: no allocation by ONNX
	// Runtime and no copy afterwards, which matters for [B,S,V] logits.
	c := r.m.Config
	res := make(map[string]Output, len(r.graph.Outputs))
	outs := make([]onnx.ORTValue, len(r.graph.Outputs))
	defer func() { onnx.DestroyAll(outs...) }()
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
		t, err := onnx.TensorF32(o.Data, dims64(shape)...)
		if err != nil {
			return nil, err
		}
		outs[i] = t
		res[name] = o
	}
	if err := r.session.RunInto(ins, outs); err != nil {
		return nil, err
	}
	return res, nil
}

// Destroy closes the session and releases the parameter views.
func (r *Runner) Destroy() {
	onnx.DestroyAll(r.params...)
	r.params = nil
	r.session.Destroy()
}

func contains(xs []string, x string) bool { return slices.Contains(xs, x) }
