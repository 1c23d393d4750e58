package policy

import (
	"irl/onnx"
	"irl/optim"
)

// Optimizer is AdamW with clipping by global gradient norm over a Trainer's
// trainable parameters, run where the trainer's store keeps them, so that a
// training step moves no weights, gradients or moments between Go and the
// device:
//
//   - on a CPU store, optim.AdamW in Go, updating Model.Params in place
//     through the store's views, from the gradients the trainer wrote into
//     Go memory. On CPU it is the faster of the two for a whole training
//     step: a pythia-70m SFT step of 16 × 128 tokens took 2.35–2.60 s
//     against 2.51–3.04 s on a resident store with the graph (five
//     alternating runs of BenchmarkDeviceTrainStep70m, IRL_BENCH_RESIDENT=1
//     for the graph, 2 cores). The graph alone is not slower than the Go
//     step, but a resident store copies what views share;
//   - on a resident store (CUDA), optim.DeviceAdamW, the same step as an
//     ONNX graph, reading the trainer's gradient tensors and ping-ponging
//     the parameters between the store's tensors and its own, its moments
//     on the device. Only the norm comes back; the weights reach Go memory
//     when a checkpoint is saved (ParamStore.CopyToModel).
//
// Both write the same optimiser-state file (Save, Load), which a run on
// either restores. Destroy it when done; not safe for concurrent use.
type Optimizer struct {
	tr    *Trainer
	names []string // the trainable parameters, in the trainer's order
	host  *optim.AdamW
	prm   []*optim.Param // host: views of Model.Params and the gradients
	dev   *optim.DeviceAdamW
}

// NewOptimizer makes the optimiser of tr's trainable parameters, at step 0
// with zero moments. Matrices decay; vectors (biases, layer-norm gains) do
// not.
func NewOptimizer(tr *Trainer, cfg optim.AdamWConfig) (*Optimizer, error) {
	o := &Optimizer{tr: tr, names: append([]string(nil), tr.Graph.Trainable...)}
	m, store := tr.model, tr.store
	for _, name := range o.names {
		p := m.Params[name]
		op := &optim.Param{Name: name, Shape: p.Shape, NoDecay: len(p.Shape) == 1}
		if !store.Resident() {
			op.Data, op.Grad = p.Data, tr.Grad(name)
		}
		o.prm = append(o.prm, op)
	}
	var err error
	if !store.Resident() {
		if o.host, err = optim.NewAdamW(o.prm, cfg); err != nil {
			return nil, err
		}
		return o, nil
	}
	start := make([]*onnx.DeviceTensor, len(o.names))
	grads := make([]*onnx.DeviceTensor, len(o.names))
	for i, name := range o.names {
		if start[i], err = store.Tensor(name); err != nil {
			return nil, err
		}
		grads[i] = tr.GradTensor(name)
	}
	if o.dev, err = optim.NewDeviceAdamWOn(o.prm, cfg, store.Options(), start, grads); err != nil {
		return nil, err
	}
	return o, nil
}

// Steps is the number of steps taken (or restored by Load): a Schedule's
// index of the next step.
func (o *Optimizer) Steps() int {
	if o.dev != nil {
		return o.dev.Steps()
	}
	return o.host.Steps()
}

// Step clips the trainer's last gradients to a global norm of maxGradNorm
// (0: no clipping) and takes one AdamW step at learning rate lr. It returns
// the global gradient norm before clipping.
func (o *Optimizer) Step(lr, maxGradNorm float64) (float64, error) {
	if o.host != nil {
		norm := optim.GradNorm(o.prm)
		if maxGradNorm > 0 {
			norm = optim.ClipGradNorm(o.prm, maxGradNorm)
		}
		o.host.Step(lr)
		return norm, nil
	}
	norm, err := o.dev.Step(lr, maxGradNorm)
	if err != nil {
		return 0, err
	}
	// The step wrote the parameters into the optimiser's other set: every
	// session reads them from there from now on.
	for i, t := range o.dev.ParamTensors() {
		if err := o.tr.store.Replace(o.names[i], t); err != nil {
			return 0, err
		}
	}
	return norm, nil
}

// Save writes the optimiser's state (checkpoint.Optimizer).
func (o *Optimizer) Save(path string) error {
	if o.dev != nil {
		return o.dev.Save(path)
	}
	return o.host.Save(path)
}

// Load restores the optimiser's state (checkpoint.Optimizer). The weights
// are not in it: on a resident store, copy them with
// ParamStore.CopyFromModel after restoring the model.
func (o *Optimizer) Load(path string) error {
	if o.dev != nil {
		return o.dev.Load(path)
	}
	return o.host.Load(path)
}

// Destroy releases the device optimiser's session and tensors, some of
// which the store may hand out as the parameters' current tensors: destroy
// it after the last run of every session that reads the store.
func (o *Optimizer) Destroy() {
	if o != nil && o.dev != nil {
		o.dev.Destroy()
	}
}
