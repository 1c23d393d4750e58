package policy

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
)

// TrainBatch is a batch with what the loss head needs.
type TrainBatch struct {
	neox.Batch
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
// of every trainable parameter. The weights are bound from a ParamStore at
// every Step, so an optimiser's update (in place on Model.Params through a
// CPU store's views, or in the store's tensors) is seen by the next Step.
// The gradients are written into tensors preallocated where the store lives:
// Go slices on CPU (Grad), device memory on a resident store (GradTensor),
// where a device optimiser reads them without a copy. Only the loss and the
// head's per-position outputs come back to Go. Destroy it when done; not
// safe for concurrent use.
type Trainer struct {
	Graph      *neox.TrainGraph
	model      *neox.Model
	boundGraph // its store: the weights, and the gradients' memory
	cpu        *onnx.MemoryInfo
	grads      map[string][]float32          // on a CPU store: the gradients' Go memory
	gradT      map[string]*onnx.DeviceTensor // every trainable parameter's gradient
	want       map[string]bool               // the outputs that come back to Go
}

// NewTrainer builds the training graph for m and opens its session. For the
// LogProb and PPO losses, a value head missing from m.Params is added,
// initialised to zero. The weights come from store, which its gradients
// live beside, or, when that is nil, from a store of the trainer's own
// (NewParamStore).
func NewTrainer(m *neox.Model, o neox.TrainOptions, so onnx.Options, store *ParamStore) (*Trainer, error) {
	tg, err := neox.BuildTrain(m.Config, o)
	if err != nil {
		return nil, err
	}
	for _, s := range tg.Params {
		if _, ok := m.Params[s.Name]; !ok && (s.Name == neox.ValueHeadWeight || s.Name == neox.ValueHeadBias) {
			m.Params[s.Name] = &neox.Param{Shape: s.Shape, Data: make([]float32, neox.Numel(s.Shape))}
		}
	}
	t := &Trainer{Graph: tg, model: m, grads: map[string][]float32{},
		gradT: map[string]*onnx.DeviceTensor{}, want: map[string]bool{}}
	if err := t.open(m, tg.Graph, so, store, true); err != nil {
		return nil, err
	}
	if t.cpu, err = onnx.NewMemoryInfo(onnx.CPU, 0); err != nil {
		t.Destroy()
		return nil, err
	}
	// Gradients have fixed shapes: preallocate them once.
	shapes := map[string][]int{}
	for _, s := range tg.Params {
		shapes[s.Name] = s.Shape
	}
	for _, p := range tg.Trainable {
		g, err := t.store.NewTensor(neox.Dims64(shapes[p])...)
		if err != nil {
			t.Destroy()
			return nil, fmt.Errorf("policy: gradient of %s: %w", p, err)
		}
		t.gradT[p] = g
		if !t.store.Resident() {
			if t.grads[p], err = g.Float32s(); err != nil {
				t.Destroy()
				return nil, err
			}
		}
	}
	for _, name := range tg.Outputs {
		if !isGrad(name, tg.Trainable) {
			t.want[name] = true
		}
	}
	return t, nil
}

func isGrad(output string, trainable []string) bool {
	for _, p := range trainable {
		if output == neox.GradName(p) {
			return true
		}
	}
	return false
}

// Store is the parameter store the trainer reads the weights from.
func (t *Trainer) Store() *ParamStore { return t.store }

// Grad is the last Step's gradient of a trainable parameter in Go memory
// (nil for others, and on a resident store, whose gradients stay in
// GradTensor). The slice is reused by the next Step.
func (t *Trainer) Grad(name string) []float32 { return t.grads[name] }

// GradTensor is the tensor each Step writes a trainable parameter's
// gradient into (nil for others): Grad's memory on a CPU store, device
// memory on a resident one. It belongs to the trainer.
func (t *Trainer) GradTensor(name string) *onnx.DeviceTensor { return t.gradT[name] }

// HostGrad is the last Step's gradient of a trainable parameter in Go
// memory: Grad's slice on a CPU store, a copy of GradTensor on a resident
// one (for writing the gradients out, not for a training loop, whose
// optimiser reads them where they are).
func (t *Trainer) HostGrad(name string) ([]float32, error) {
	if g := t.grads[name]; g != nil {
		return g, nil
	}
	gt := t.gradT[name]
	if gt == nil {
		return nil, fmt.Errorf("policy: %s is not a trainable parameter of this trainer", name)
	}
	g := make([]float32, gt.Len())
	if err := gt.CopyToHost(g); err != nil {
		return nil, fmt.Errorf("policy: gradient of %s: %w", name, err)
	}
	return g, nil
}

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
	io := &runIO{b: t.bind}
	addI := func(v []int64, name string) {
		if io.err == nil && len(v) != tb.B*tb.S {
			io.err = fmt.Errorf("%s has %d values, want %d×%d", name, len(v), tb.B, tb.S)
		}
		io.inI64(name, v, b, s)
	}
	addF := func(v []float32, name string, shape ...int64) {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		if io.err == nil && int64(len(v)) != n {
			io.err = fmt.Errorf("%s has %d values, want %v", name, len(v), shape)
		}
		io.inF32(name, v, shape...)
	}
	addI(tb.InputIDs, neox.InputIDs)
	addI(tb.AttentionMask, neox.AttentionMask)
	addI(tb.PositionIDs, neox.PositionIDs)
	switch t.Graph.Loss {
	case neox.CrossEntropy:
		addI(tb.Labels, neox.LabelsInput)
		addF(tb.LossMask, neox.LossMaskInput, b, s)
	case neox.LogProb, neox.PPO:
		temp := tb.Temperature
		if err := CheckTemperature(float64(temp)); err != nil {
			return StepResult{}, fmt.Errorf("policy: LogProb head: %w", err)
		}
		addI(tb.Tokens, neox.TokensInput)
		addF([]float32{temp}, neox.TemperatureInput, 1)
		type in struct {
			v    []float32
			name string
		}
		ins := []in{{tb.DLogProbs, neox.LogProbsCotangent}, {tb.DEntropy, neox.EntropyCotangent}, {tb.DValues, neox.ValuesCotangent}}
		if t.Graph.Loss == neox.PPO {
			ins = []in{{tb.OldLogProbs, neox.OldLogProbsInput}, {tb.OldValues, neox.OldValuesInput}, {tb.Advantages, neox.AdvantagesInput}, {tb.Returns, neox.ReturnsInput}, {tb.LossMask, neox.LossMaskInput}}
		}
		for _, c := range ins {
			v := c.v
			if v == nil {
				v = make([]float32, tb.B*tb.S)
			}
			addF(v, c.name, b, s)
		}
		if t.Graph.Loss == neox.PPO {
			coefs := tb.PPOCoefs // its own memory: tb is not pinned
			addF(coefs[:], neox.PPOCoefsInput, 4)
		}
	}
	if io.err == nil {
		io.err = t.store.bindParams(t.bind, t.Graph.Params)
	}
	for name, g := range t.gradT {
		io.out(neox.GradName(name), g)
	}
	io.hostOutputs(t.cpu, t.Graph.Outputs[:len(t.want)]...)
	var outs map[string][]float32
	err := io.run(func() error {
		var err error
		outs, err = takeOutputs(t.bind, t.want)
		return err
	})
	if err != nil {
		return StepResult{}, err
	}
	res := StepResult{Outputs: map[string][]float32{}}
	for name, v := range outs {
		if name == neox.LossOutput {
			res.Loss = float64(v[0])
		} else {
			res.Outputs[name] = v
		}
	}
	return res, nil
}

// Destroy releases the session, the binding, the gradients and a store of
// the trainer's own.
func (t *Trainer) Destroy() {
	if t == nil {
		return
	}
	for _, g := range t.gradT {
		g.Destroy()
	}
	t.gradT, t.grads = nil, nil
	t.cpu.Destroy()
	t.cpu = nil
	t.destroy()
}
