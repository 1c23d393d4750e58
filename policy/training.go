package policy

import (
	"fmt"
	"math"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
	"irl/optim"
)

// Training owns the sessions of one training run, which share one
// parameter store: the trainer and its optimiser and, when asked for, a
// runner and a generator that read the weights each step has just written
// (PPO's log-probs and rollouts). NewTraining opens them in order, and
// Destroy releases them in the reverse: the optimiser and the store last,
// since every session reads the store's tensors and some of those are the
// optimiser's. Restore and Save keep the store and the model's memory in
// step around a checkpoint.
type Training struct {
	Model     *neox.Model
	Store     *ParamStore
	Trainer   *Trainer
	Optimizer *Optimizer
	// Runner and Generator are nil unless TrainingOptions asks for them.
	Runner    *Runner
	Generator *Generator
}

// TrainingOptions configure NewTraining.
type TrainingOptions struct {
	// Train chooses the training graph's loss and unfrozen layers.
	Train neox.TrainOptions
	// AdamW configures the optimiser.
	AdamW optim.AdamWConfig
	// Session configures every session of the run.
	Session onnx.Options
	// Resident keeps the weights, gradients and AdamW's moments in ONNX
	// Runtime's memory, updated by the AdamW graph, as on CUDA, even on CPU
	// (NewResidentParamStore), where the Go AdamW over Go memory is faster:
	// tests run the device path with it.
	Resident bool
	// Runner, if set, opens a runner of these forward options whose weights
	// are the store's (ParamInputs is implied).
	Runner *neox.ForwardOptions
	// Generator opens a live generator on the store (NewLiveGenerator).
	Generator bool
}

// NewTraining opens a training run's sessions for m. The trainer adds the
// value head that the LogProb and PPO losses need (see NewTrainer) before
// the runner, which may read it, opens. On error nothing is left open.
func NewTraining(m *neox.Model, o TrainingOptions) (*Training, error) {
	t := &Training{Model: m}
	if err := t.open(o); err != nil {
		t.Destroy()
		return nil, err
	}
	return t, nil
}

func (t *Training) open(o TrainingOptions) error {
	newStore := NewParamStore
	if o.Resident {
		newStore = NewResidentParamStore
	}
	var err error
	if t.Store, err = newStore(t.Model, o.Session); err != nil {
		return err
	}
	if t.Trainer, err = NewTrainer(t.Model, o.Train, o.Session, t.Store); err != nil {
		return err
	}
	if o.Runner != nil {
		fo := *o.Runner
		fo.ParamInputs = true
		if t.Runner, err = NewRunner(t.Model, fo, o.Session, t.Store); err != nil {
			return err
		}
	}
	if o.Generator {
		if t.Generator, err = NewLiveGenerator(t.Store); err != nil {
			return err
		}
	}
	t.Optimizer, err = NewOptimizer(t.Trainer, o.AdamW)
	return err
}

// Step takes one training step on tb: the loss and the gradients, then one
// AdamW step at learning rate lr with the gradients clipped to a global
// norm of maxGradNorm (0: no clipping). A loss that is not finite is an
// error, and the weights are then left as they were. It returns the
// trainer's result and the gradient norm before clipping.
func (t *Training) Step(tb *TrainBatch, lr, maxGradNorm float64) (StepResult, float64, error) {
	res, err := t.Trainer.Step(tb)
	if err != nil {
		return res, 0, err
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return res, 0, fmt.Errorf("the loss is %v (lower the learning rate?)", res.Loss)
	}
	norm, err := t.Optimizer.Step(lr, maxGradNorm)
	return res, norm, err
}

// Restore loads a checkpoint's weights into the model and its moments into
// the optimiser, and copies the weights to a resident store.
func (t *Training) Restore(dir string) error {
	if err := checkpoint.Restore(dir, t.Model, t.Optimizer); err != nil {
		return err
	}
	return t.Store.CopyFromModel()
}

// Save writes a checkpoint of the run into run (see checkpoint.Run.Save)
// and returns its folder. The weights come to the model's memory only
// here: a copy from a resident store.
func (t *Training) Save(run *checkpoint.Run, st checkpoint.State, extra map[string]string, blobs ...checkpoint.Blob) (string, error) {
	if err := t.Store.CopyToModel(); err != nil {
		return "", err
	}
	return run.Save(t.Model, t.Optimizer, st, extra, blobs...)
}

// Destroy releases the sessions, then the optimiser and the store. What
// was never opened is skipped.
func (t *Training) Destroy() {
	if t == nil {
		return
	}
	t.Generator.Destroy()
	t.Runner.Destroy()
	t.Trainer.Destroy()
	t.Optimizer.Destroy()
	t.Store.Destroy()
	t.Generator, t.Runner, t.Trainer, t.Optimizer, t.Store = nil, nil, nil, nil, nil
}
