package optim

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"irl/onnx"
)

// AdamW as an ONNX graph, so that on a GPU the parameters, gradients and
// moments stay in device memory and only a few scalars cross to the host
// each step. The graph computes what ClipGradNorm followed by AdamW.Step
// computes, operation for operation: the norm and the clip scaling in
// float64, each element's update in float32, and the per-step scalars
// computed in Go exactly as Step computes them and fed in as inputs.

// Names of the graph's scalar inputs and output (0-D tensors).
const (
	// AdamWDecayInput is float32(1 - lr·weight decay), applied to parameters
	// that decay.
	AdamWDecayInput = "adamw/decay"
	// AdamWStepSizeInput is float32(lr / (1 - β1ᵗ)).
	AdamWStepSizeInput = "adamw/step_size"
	// AdamWInvBC2Input is float32(1 / sqrt(1 - β2ᵗ)).
	AdamWInvBC2Input = "adamw/inv_bc2"
	// AdamWMaxNormInput is the float64 clipping threshold; +Inf turns
	// clipping off.
	AdamWMaxNormInput = "adamw/max_grad_norm"
	// AdamWNormOutput is the float64 global gradient norm before clipping.
	AdamWNormOutput = "adamw/grad_norm"
)

// AdamWParamInput names a parameter's input. This and the other AdamW…Input
// and AdamW…Output functions name the graph's per-parameter tensors by the
// parameter's Name.
func AdamWParamInput(name string) string { return "param/" + name }

// AdamWGradInput names a parameter's gradient input.
func AdamWGradInput(name string) string { return "grad/" + name }

// AdamWMomentInputs name a parameter's first and second moment inputs.
func AdamWMomentInputs(name string) (m, v string) { return "m/" + name, "v/" + name }

// AdamWParamOutput names a parameter's updated value.
func AdamWParamOutput(name string) string { return "param_out/" + name }

// AdamWMomentOutputs name a parameter's updated moments.
func AdamWMomentOutputs(name string) (m, v string) { return "m_out/" + name, "v_out/" + name }

// BuildAdamWGraph returns the graph of one clipped AdamW step over params
// (their names, shapes and NoDecay flags; the data is not read). For each
// parameter it takes the parameter, its gradient and its two moments and
// returns the updated parameter and moments; it also takes the scalar
// inputs named by the AdamW…Input constants and returns the pre-clip global
// gradient norm. β1, β2 and eps are built in from cfg. It returns an error
// for invalid hyperparameters and panics on malformed parameters, as
// NewAdamW does, except that parameters may leave Data and Grad nil when
// their Shape is set.
func BuildAdamWGraph(params []*Param, cfg AdamWConfig) (*onnx.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	checkParamsOf(params, false)
	if len(params) == 0 {
		return nil, errors.New("adamw graph: no parameters")
	}
	g := onnx.NewGraph("adamw")
	decay := g.Input(AdamWDecayInput, onnx.Float)
	stepSize := g.Input(AdamWStepSizeInput, onnx.Float)
	invBC2 := g.Input(AdamWInvBC2Input, onnx.Float)
	maxNorm := g.Input(AdamWMaxNormInput, onnx.Double)

	type io struct{ p, grad, m, v onnx.Value }
	ios := make([]io, len(params))
	var sumSqs []onnx.Value
	for i, p := range params {
		dims := make([]any, len(p.shape()))
		for d, s := range p.shape() {
			dims[d] = s
		}
		mName, vName := AdamWMomentInputs(p.Name)
		ios[i] = io{
			p:    g.Input(AdamWParamInput(p.Name), onnx.Float, dims...),
			grad: g.Input(AdamWGradInput(p.Name), onnx.Float, dims...),
			m:    g.Input(mName, onnx.Float, dims...),
			v:    g.Input(vName, onnx.Float, dims...),
		}
		// GradNorm sums float64 squares; no axes reduces every axis.
		gd := g.Cast(ios[i].grad, onnx.Double)
		sumSqs = append(sumSqs, g.Op("ReduceSumSquare", []onnx.Value{gd}, onnx.AttrInt("keepdims", 0)))
	}
	norm := g.Rename(g.Sqrt(g.Op("Sum", sumSqs)), AdamWNormOutput)
	g.Output(norm, AdamWNormOutput, onnx.Double)

	// ClipGradNorm: scale by maxNorm/(norm+1e-6) when that is below 1 and
	// the norm is finite (norm < +Inf is false for NaN and +Inf); else by 1,
	// which leaves every float32 gradient exactly as it is.
	coef := g.Div(maxNorm, g.Add(norm, g.ScalarF64(1e-6)))
	clip := g.Op("And", []onnx.Value{
		g.Op("Less", []onnx.Value{norm, g.ScalarF64(math.Inf(1))}),
		g.Op("Less", []onnx.Value{coef, g.ScalarF64(1)}),
	})
	scale := g.Where(clip, coef, g.ScalarF64(1))

	b1, b2 := g.ScalarF32(float32(cfg.Beta1)), g.ScalarF32(float32(cfg.Beta2))
	c1, c2 := g.ScalarF32(float32(1-cfg.Beta1)), g.ScalarF32(float32(1-cfg.Beta2))
	eps := g.ScalarF32(float32(cfg.Eps))
	for i, p := range params {
		x := ios[i]
		dims := make([]any, len(p.shape()))
		for d, s := range p.shape() {
			dims[d] = s
		}
		// float32(float64(g) * coef), as ClipGradNorm rounds it.
		gr := g.Cast(g.Mul(g.Cast(x.grad, onnx.Double), scale), onnx.Float)
		// The kernel of AdamW.Step, in its order of operations:
		//   m = β1 m + (1-β1) g;  v = β2 v + ((1-β2) g) g
		//   p = p·decay − (stepSize·m) / (sqrt(v)·invBC2 + eps)
		// The outputs are named where they are computed, so that no Identity
		// copies them out.
		mOut, vOut := AdamWMomentOutputs(p.Name)
		m := g.Rename(g.Add(g.Mul(b1, x.m), g.Mul(c1, gr)), mOut)
		v := g.Rename(g.Add(g.Mul(b2, x.v), g.Mul(g.Mul(c2, gr), gr)), vOut)
		den := g.Add(g.Mul(g.Sqrt(v), invBC2), eps)
		upd := g.Div(g.Mul(stepSize, m), den)
		pd := x.p
		if !p.NoDecay { // Step multiplies by exactly 1 here: the same bits
			pd = g.Mul(x.p, decay)
		}
		pOut := g.Rename(g.Sub(pd, upd), AdamWParamOutput(p.Name))
		g.Output(pOut, string(pOut), onnx.Float, dims...)
		g.Output(m, mOut, onnx.Float, dims...)
		g.Output(v, vOut, onnx.Float, dims...)
	}
	return g, nil
}

// adamWScalars are one step's scalar inputs, computed as AdamW.Step computes
// them for step t (1-based) at learning rate lr.
func adamWScalars(cfg AdamWConfig, t int, lr float64) (decay, stepSize, invBC2 float32) {
	b1, b2, tf := cfg.Beta1, cfg.Beta2, float64(t)
	return float32(1 - lr*cfg.WeightDecay),
		float32(lr / (1 - math.Pow(b1, tf))),
		float32(1 / math.Sqrt(1-math.Pow(b2, tf)))
}

// DeviceAdamW runs BuildAdamWGraph's step in an ONNX Runtime session with
// its state in the session's memory (GPU memory with CUDA): parameters and
// moments in two sets of tensors that each step reads from one and writes to
// the other, and the gradients in tensors the caller fills, typically by
// binding them as a training run's outputs. Only the scalars cross to the
// host. Results equal ClipGradNorm followed by AdamW.Step. Destroy it when
// done; not safe for concurrent use.
type DeviceAdamW struct {
	cfg     AdamWConfig
	params  []*Param
	sess    *onnx.BoundSession
	alloc   *onnx.Allocator
	p, m, v [2][]*onnx.DeviceTensor
	g       []*onnx.DeviceTensor
	// external marks the tensors the caller holds (NewDeviceAdamWOn): the
	// first set of parameters and the gradients, which Destroy leaves.
	external bool
	bind     [2]*onnx.Binding
	cur      int // the set holding the current state
	step     int

	// Scalars, in Go memory that host tensors lie over.
	decay, stepSize, invBC2 []float32
	maxNorm, norm           []float64
	scalars                 []*onnx.DeviceTensor // decay, stepSize, invBC2, maxNorm, norm
}

// NewDeviceAdamW sets up the step for params on the device o names: the
// parameters' Data is copied to the device as the starting point, the moments
// start at zero, at step 0. It keeps the Param pointers for
// CopyGradsFromHost and CopyParamsToHost. Invalid hyperparameters and
// failures of ONNX Runtime are errors; malformed parameters panic.
func NewDeviceAdamW(params []*Param, cfg AdamWConfig, o onnx.Options) (*DeviceAdamW, error) {
	g, err := BuildAdamWGraph(params, cfg)
	if err != nil {
		return nil, err
	}
	d := &DeviceAdamW{cfg: cfg, params: append([]*Param(nil), params...)}
	if err := d.setup(g, o); err != nil {
		d.Destroy()
		return nil, err
	}
	return d, nil
}

// NewDeviceAdamWOn is NewDeviceAdamW over tensors the caller holds on the
// device o names: params[i]'s current value is start[i] and its gradient
// grads[i] (typically a training session's gradient outputs), each of
// params[i]'s shape. The optimiser allocates the second set of parameters
// and the moments (zero, at step 0); start and grads stay the caller's, who
// keeps them alive while the optimiser lives. params only describe the
// tensors: their Data and Grad may be nil, and are never read or written.
// After each Step the parameters are in ParamTensors, start or the
// optimiser's own set by turns.
func NewDeviceAdamWOn(params []*Param, cfg AdamWConfig, o onnx.Options, start, grads []*onnx.DeviceTensor) (*DeviceAdamW, error) {
	if len(start) != len(params) || len(grads) != len(params) {
		return nil, fmt.Errorf("adamw graph: %d parameters, %d parameter tensors and %d gradient tensors", len(params), len(start), len(grads))
	}
	g, err := BuildAdamWGraph(params, cfg)
	if err != nil {
		return nil, err
	}
	for i, p := range params {
		want := make([]int64, len(p.shape()))
		for j, s := range p.shape() {
			want[j] = int64(s)
		}
		for _, t := range []*onnx.DeviceTensor{start[i], grads[i]} {
			if t == nil || t.DType() != onnx.Float || !slices.Equal(t.Shape(), want) {
				return nil, fmt.Errorf("adamw graph: parameter %q: a tensor that is not float32 of shape %v", p.Name, want)
			}
		}
	}
	d := &DeviceAdamW{cfg: cfg, params: append([]*Param(nil), params...), external: true}
	d.p[0], d.g = append([]*onnx.DeviceTensor(nil), start...), append([]*onnx.DeviceTensor(nil), grads...)
	if err := d.setup(g, o); err != nil {
		d.Destroy()
		return nil, err
	}
	return d, nil
}

func (d *DeviceAdamW) setup(g *onnx.Graph, o onnx.Options) error {
	var err error
	if d.sess, err = onnx.NewBoundGraphSession(g, o); err != nil {
		return err
	}
	if d.alloc, err = d.sess.NewAllocator(nil); err != nil {
		return err
	}
	newT := func(p *Param) (*onnx.DeviceTensor, error) {
		shape := make([]int64, len(p.shape()))
		for i, s := range p.shape() {
			shape[i] = int64(s)
		}
		t, err := d.alloc.NewTensor(onnx.Float, shape...)
		if err != nil {
			return nil, fmt.Errorf("adamw graph: parameter %q: %w", p.Name, err)
		}
		return t, nil
	}
	maxLen := 0
	for _, p := range d.params {
		maxLen = max(maxLen, numel(p.shape()))
	}
	zeros := make([]float32, maxLen)
	for i, p := range d.params {
		n := numel(p.shape())
		for k := range 2 {
			for _, set := range []*[2][]*onnx.DeviceTensor{&d.p, &d.m, &d.v} {
				if d.external && set == &d.p && k == 0 {
					continue // the caller's
				}
				t, err := newT(p)
				if err != nil {
					return err
				}
				set[k] = append(set[k], t)
			}
		}
		inits := []error{d.m[0][i].CopyFromHost(zeros[:n]), d.v[0][i].CopyFromHost(zeros[:n])}
		if !d.external {
			t, err := newT(p)
			if err != nil {
				return err
			}
			d.g = append(d.g, t)
			inits = append(inits, d.p[0][i].CopyFromHost(p.Data))
		}
		for _, e := range inits {
			if e != nil {
				return fmt.Errorf("adamw graph: parameter %q: %w", p.Name, e)
			}
		}
	}
	d.decay, d.stepSize, d.invBC2 = []float32{0}, []float32{0}, []float32{0}
	d.maxNorm, d.norm = []float64{0}, []float64{0}
	for _, s := range []any{d.decay, d.stepSize, d.invBC2, d.maxNorm, d.norm} {
		var t *onnx.DeviceTensor
		switch s := s.(type) {
		case []float32:
			t, err = onnx.NewHostTensorF32(s)
		case []float64:
			t, err = onnx.NewHostTensorF64(s)
		}
		if err != nil {
			return err
		}
		d.scalars = append(d.scalars, t)
	}
	// Binding k reads set k and writes set 1-k; both read the gradients.
	for k := range 2 {
		b, err := d.sess.NewBinding()
		if err != nil {
			return err
		}
		d.bind[k] = b
		for i, p := range d.params {
			mIn, vIn := AdamWMomentInputs(p.Name)
			mOut, vOut := AdamWMomentOutputs(p.Name)
			for _, e := range []error{
				b.BindInput(AdamWParamInput(p.Name), d.p[k][i]),
				b.BindInput(AdamWGradInput(p.Name), d.g[i]),
				b.BindInput(mIn, d.m[k][i]),
				b.BindInput(vIn, d.v[k][i]),
				b.BindOutput(AdamWParamOutput(p.Name), d.p[1-k][i]),
				b.BindOutput(mOut, d.m[1-k][i]),
				b.BindOutput(vOut, d.v[1-k][i]),
			} {
				if e != nil {
					return e
				}
			}
		}
		if err := b.BindOutput(AdamWNormOutput, d.scalars[4]); err != nil {
			return err
		}
	}
	return nil
}

// Config returns the hyperparameters.
func (d *DeviceAdamW) Config() AdamWConfig { return d.cfg }

// Steps is the number of steps taken, the index of the next step for a
// Schedule.
func (d *DeviceAdamW) Steps() int { return d.step }

// Params returns the Param pointers given to NewDeviceAdamW, in order.
func (d *DeviceAdamW) Params() []*Param { return append([]*Param(nil), d.params...) }

// Grads are the gradient tensors, in parameter order, that Step reads: fill
// them before each step (bind them as a training run's outputs, or
// CopyGradsFromHost). They belong to the optimiser and stay the same tensors.
func (d *DeviceAdamW) Grads() []*onnx.DeviceTensor { return append([]*onnx.DeviceTensor(nil), d.g...) }

// ParamTensors are the tensors holding the current parameters, in order.
// Each Step moves the parameters to the other set of tensors, so ask again
// after a step. They belong to the optimiser.
func (d *DeviceAdamW) ParamTensors() []*onnx.DeviceTensor {
	return append([]*onnx.DeviceTensor(nil), d.p[d.cur]...)
}

// MomentTensors are the tensors holding the current first and second
// moments, in order; like ParamTensors, they change with each Step.
func (d *DeviceAdamW) MomentTensors() (m, v []*onnx.DeviceTensor) {
	return append([]*onnx.DeviceTensor(nil), d.m[d.cur]...), append([]*onnx.DeviceTensor(nil), d.v[d.cur]...)
}

// CopyGradsFromHost copies every parameter's Grad into the gradient tensors.
func (d *DeviceAdamW) CopyGradsFromHost() error {
	for i, p := range d.params {
		if err := d.g[i].CopyFromHost(p.Grad); err != nil {
			return fmt.Errorf("adamw graph: gradient of %q: %w", p.Name, err)
		}
	}
	return nil
}

// CopyParamsToHost copies the current parameters into every parameter's Data.
func (d *DeviceAdamW) CopyParamsToHost() error {
	for i, p := range d.params {
		if err := d.p[d.cur][i].CopyToHost(p.Data); err != nil {
			return fmt.Errorf("adamw graph: parameter %q: %w", p.Name, err)
		}
	}
	return nil
}

// Step applies ClipGradNorm(params, maxGradNorm) and an AdamW update with
// learning rate lr to the device state, reading the gradient tensors (which
// it leaves unscaled), and returns the global gradient norm before
// clipping. maxGradNorm 0 or +Inf turns clipping off. It panics on a
// learning rate or norm AdamW.Step or ClipGradNorm would reject; ONNX
// Runtime failures are errors, after which the state is that of the last
// successful step.
func (d *DeviceAdamW) Step(lr, maxGradNorm float64) (float64, error) {
	if !(lr >= 0) || math.IsInf(lr, 1) {
		panic(fmt.Sprintf("optim: DeviceAdamW.Step: learning rate %v must be non-negative and finite", lr))
	}
	if !(maxGradNorm >= 0) {
		panic(fmt.Sprintf("optim: DeviceAdamW.Step: max grad norm %v must be positive, or 0 or +Inf for none", maxGradNorm))
	}
	if maxGradNorm == 0 {
		maxGradNorm = math.Inf(1)
	}
	d.decay[0], d.stepSize[0], d.invBC2[0] = adamWScalars(d.cfg, d.step+1, lr)
	d.maxNorm[0] = maxGradNorm
	b := d.bind[d.cur]
	// Rebinding is free on CPU, where the tensors lie over these Go values;
	// on a GPU it is what copies them there (ONNX Runtime copies a host
	// input to the device when it is bound).
	for i, name := range []string{AdamWDecayInput, AdamWStepSizeInput, AdamWInvBC2Input, AdamWMaxNormInput} {
		if err := b.BindInput(name, d.scalars[i]); err != nil {
			return 0, err
		}
	}
	if err := b.Run(); err != nil {
		return 0, fmt.Errorf("adamw graph: step %d: %w", d.step+1, err)
	}
	d.cur = 1 - d.cur
	d.step++
	return d.norm[0], nil
}

// Save writes the step count and the moments, copied from the device, in
// AdamW.Save's format: the two optimisers' states are interchangeable.
func (d *DeviceAdamW) Save(path string) error {
	o, err := d.hostState()
	if err != nil {
		return err
	}
	ms, vs := d.MomentTensors()
	for i := range d.params {
		if err := ms[i].CopyToHost(o.m[i]); err != nil {
			return fmt.Errorf("adamw graph: first moment of %q: %w", d.params[i].Name, err)
		}
		if err := vs[i].CopyToHost(o.v[i]); err != nil {
			return fmt.Errorf("adamw graph: second moment of %q: %w", d.params[i].Name, err)
		}
	}
	o.step = d.step
	return o.Save(path)
}

// Load restores the step count and moments that Save or AdamW.Save wrote,
// under AdamW.Load's rules, copying the moments to the device. Parameters
// are not in the file: the caller restores them. On error the optimiser is
// unchanged, unless the copy to the device itself fails.
func (d *DeviceAdamW) Load(path string) error {
	o, err := d.hostState()
	if err != nil {
		return err
	}
	if err := o.Load(path); err != nil {
		return err
	}
	ms, vs := d.MomentTensors()
	for i := range d.params {
		if err := ms[i].CopyFromHost(o.m[i]); err != nil {
			return fmt.Errorf("adamw graph: first moment of %q: %w", d.params[i].Name, err)
		}
		if err := vs[i].CopyFromHost(o.v[i]); err != nil {
			return fmt.Errorf("adamw graph: second moment of %q: %w", d.params[i].Name, err)
		}
	}
	d.step = o.step
	return nil
}

// hostState is an AdamW with the optimiser's parameters and zero moments in
// Go memory, through which Save and Load go.
func (d *DeviceAdamW) hostState() (*AdamW, error) {
	if d.sess == nil {
		return nil, errors.New("adamw graph: optimiser used after Destroy")
	}
	o := &AdamW{cfg: d.cfg, params: d.params, m: make([][]float32, len(d.params)), v: make([][]float32, len(d.params))}
	for i, p := range d.params {
		n := numel(p.shape())
		o.m[i], o.v[i] = make([]float32, n), make([]float32, n)
	}
	return o, nil
}

// Destroy releases the session and every tensor the optimiser allocated.
func (d *DeviceAdamW) Destroy() {
	for _, b := range d.bind {
		b.Destroy()
	}
	for i, set := range [][2][]*onnx.DeviceTensor{d.p, d.m, d.v} {
		for k, ts := range set {
			if d.external && i == 0 && k == 0 {
				continue // the caller's
			}
			for _, t := range ts {
				t.Destroy()
			}
		}
	}
	if !d.external {
		for _, t := range d.g {
			t.Destroy()
		}
	}
	for _, t := range d.scalars {
		t.Destroy()
	}
	d.alloc.Destroy()
	d.sess.Destroy()
	*d = DeviceAdamW{cfg: d.cfg, params: d.params, step: d.step}
}
