package policy

import (
	"fmt"
	"math"

	"irl/onnx"
)

// TrainBatch is a batch with what the loss head needs.
type TrainBatch struct {
	Batch
	// CrossEntropy: each position's target and weight, [B,S].
	Labels   []int64
	LossMask []float32
	// LogProb: the tokens to score, the temperature, and the cotangents,
	// [B,S]. Log-probs are of softmax(logits/Temperature), unfiltered (no
	// top-k or top-p). Temperature must be positive: 0 is an error, not 1.
	Tokens                       []int64
	Temperature                  float32
	DLogProbs, DEntropy, DValues []float32
	// PPO: the rollout's log-probs and values, the advantages and returns
	// at each scored position, [B,S], with LossMask marking the positions
	// that count, and the coefficients (cliprange, cliprange_value, vf_coef,
	// ent_coef). Tokens and Temperature are as for LogProb.
	OldLogProbs, OldValues, Advantages, Returns []float32
	PPOCoefs                                    [4]float32
}

// NextTokenTargets fills Labels and LossMask for next-token prediction as
// transformers shifts labels: position t predicts token t+1, counted only when
// both are real tokens; the last position predicts nothing.
func (tb *TrainBatch) NextTokenTargets() {
	b, s := tb.B, tb.S
	tb.Labels = make([]int64, b*s)
	tb.LossMask = make([]float32, b*s)
	for r := 0; r < b; r++ {
		for j := 0; j+1 < s; j++ {
			i := r*s + j
			tb.Labels[i] = tb.InputIDs[i+1]
			if tb.AttentionMask == nil || (tb.AttentionMask[i] != 0 && tb.AttentionMask[i+1] != 0) {
				tb.LossMask[i] = 1
			}
		}
	}
}

// Trainer runs a training graph: one call computes the loss and the gradient
// of every trainable parameter. Parameters are passed to ONNX Runtime without
// copying, so an optimiser that updates Model.Params in place is seen by the
// next Step. Destroy it when done; not safe for concurrent use.
type Trainer struct {
	Graph   *TrainGraph
	model   *Model
	session *onnx.Session
	params  []onnx.ORTValue
	grads   map[string][]float32
	gradOut []onnx.ORTValue
}

// NewTrainer builds the training graph for m and opens its session. For the
// LogProb loss, a value head missing from m.Params is added, initialised to
// zero.
func NewTrainer(m *Model, o TrainOptions, so onnx.Options) (*Trainer, error) {
	tg, err := BuildTrain(m.Config, o)
	if err != nil {
		return nil, err
	}
	for _, s := range tg.Params {
		if _, ok := m.Params[s.Name]; !ok && (s.Name == ValueHeadWeight || s.Name == ValueHeadBias) {
			m.Params[s.Name] = &Param{Shape: s.Shape, Data: make([]float32, numel(s.Shape))}
		}
	}
	sess, err := onnx.NewGraphSession(tg.Graph, tg.Inputs, tg.Outputs, so)
	if err != nil {
		return nil, err
	}
	t := &Trainer{Graph: tg, model: m, session: sess, grads: map[string][]float32{}}
	for _, s := range tg.Params {
		p := m.Params[s.Name]
		v, err := onnx.TensorF32(p.Data, dims64(s.Shape)...)
		if err != nil {
			t.Destroy()
			return nil, fmt.Errorf("parameter %s: %w", s.Name, err)
		}
		t.params = append(t.params, v)
	}
	// Gradients have fixed shapes: preallocate them once in Go memory.
	shapes := map[string][]int{}
	for _, s := range tg.Params {
		shapes[s.Name] = s.Shape
	}
	for range tg.Outputs {
		t.gradOut = append(t.gradOut, nil)
	}
	for i, name := range tg.Outputs {
		for _, p := range tg.Trainable {
			if name == GradName(p) {
				buf := make([]float32, numel(shapes[p]))
				v, err := onnx.TensorF32(buf, dims64(shapes[p])...)
				if err != nil {
					t.Destroy()
					return nil, err
				}
				t.grads[p] = buf
				t.gradOut[i] = v
			}
		}
	}
	return t, nil
}

// Grad is the last Step's gradient of a trainable parameter (nil otherwise).
// The slice is reused by the next Step.
func (t *Trainer) Grad(name string) []float32 { return t.grads[name] }

// StepResult is what one Step returns besides the gradients.
type StepResult struct {
	Loss float64
	// Outputs holds the LogProb head's per-position outputs, [B,S] each.
	Outputs map[string][]float32
}

// Step computes the loss and gradients for one batch.
func (t *Trainer) Step(tb *TrainBatch) (StepResult, error) {
	tb.Complete()
	b, s := int64(tb.B), int64(tb.S)
	var data []onnx.ORTValue
	defer func() { onnx.DestroyAll(data...) }()
	addI := func(v []int64, name string) error {
		if len(v) != tb.B*tb.S {
			return fmt.Errorf("%s has %d values, want %d×%d", name, len(v), tb.B, tb.S)
		}
		x, err := onnx.TensorI64(v, b, s)
		data = append(data, x)
		return err
	}
	addF := func(v []float32, name string, shape ...int64) error {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		if int64(len(v)) != n {
			return fmt.Errorf("%s has %d values, want %v", name, len(v), shape)
		}
		x, err := onnx.TensorF32(v, shape...)
		data = append(data, x)
		return err
	}
	for _, e := range []error{addI(tb.InputIDs, InputIDs), addI(tb.AttentionMask, AttentionMask), addI(tb.PositionIDs, PositionIDs)} {
		if e != nil {
			return StepResult{}, e
		}
	}
	var err error
	switch t.Graph.Loss {
	case CrossEntropy:
		if err = addI(tb.Labels, LabelsInput); err == nil {
			err = addF(tb.LossMask, LossMaskInput, b, s)
		}
	case LogProb, PPO:
		// One rule everywhere: a temperature is positive, never a default
		// standing in for a forgotten value (sampling refuses 0 too).
		temp := tb.Temperature
		if !(temp > 0) || math.IsInf(float64(temp), 1) {
			return StepResult{}, fmt.Errorf("policy: LogProb head: temperature %v must be positive and finite", temp)
		}
		if err = addI(tb.Tokens, TokensInput); err == nil {
			err = addF([]float32{temp}, TemperatureInput, 1)
		}
		type in struct {
			v    []float32
			name string
		}
		ins := []in{{tb.DLogProbs, LogProbsCotangent}, {tb.DEntropy, EntropyCotangent}, {tb.DValues, ValuesCotangent}}
		if t.Graph.Loss == PPO {
			ins = []in{{tb.OldLogProbs, OldLogProbsInput}, {tb.OldValues, OldValuesInput}, {tb.Advantages, AdvantagesInput}, {tb.Returns, ReturnsInput}, {tb.LossMask, LossMaskInput}}
		}
		for _, c := range ins {
			if err == nil {
				v := c.v
				if v == nil {
					v = make([]float32, tb.B*tb.S)
				}
				err = addF(v, c.name, b, s)
			}
		}
		if err == nil && t.Graph.Loss == PPO {
			coefs := tb.PPOCoefs // its own memory: cgo refuses a pointer into tb
			err = addF(coefs[:], PPOCoefsInput, 4)
		}
	}
	if err != nil {
		return StepResult{}, err
	}
	outs := append([]onnx.ORTValue(nil), t.gradOut...)
	if err := t.session.RunInto(append(data, t.params...), outs); err != nil {
		return StepResult{}, err
	}
	res := StepResult{Outputs: map[string][]float32{}}
	for i, name := range t.Graph.Outputs {
		if t.gradOut[i] != nil {
			continue
		}
		v, _, err := onnx.Float32Data(outs[i])
		if err != nil {
			onnx.DestroyAll(outs[i])
			return StepResult{}, err
		}
		if name == LossOutput {
			res.Loss = float64(v[0])
		} else {
			res.Outputs[name] = v
		}
		outs[i].Destroy()
	}
	return res, nil
}

// Destroy releases the session and the tensors.
func (t *Trainer) Destroy() {
	onnx.DestroyAll(t.params...)
	onnx.DestroyAll(t.gradOut...)
	t.params, t.gradOut = nil, nil
	if t.session != nil {
		t.session.Destroy()
	}
}
