package optim

import (
	"fmt"
	"math"
)

// Param is one named parameter tensor and its gradient.
type Param struct {
	// Name identifies the tensor in saved optimiser state; names are unique.
	Name string
	// Shape is recorded in saved state and checked on restore; nil means
	// one-dimensional [len(Data)].
	Shape []int
	// Data is updated in place by Step; Grad is read by Step and scaled in
	// place by ClipGradNorm. Both have the same length. The slices may be
	// replaced between steps, but not resized.
	Data, Grad []float32
	// NoDecay exempts the tensor from weight decay (usual for biases and
	// layer-norm gains).
	NoDecay bool
}

func (p *Param) shape() []int {
	if p.Shape == nil {
		return []int{len(p.Data)}
	}
	return p.Shape
}

// checkParams panics on malformed parameters: they are built by code, not
// read from data, so a mismatch is a programmer error.
func checkParams(params []*Param) { checkParamsOf(params, true) }

// checkParamsOf is checkParams; without data, parameters may leave Data and
// Grad nil (they describe tensors held elsewhere: see NewDeviceAdamWOn), and
// their Shape gives their size.
func checkParamsOf(params []*Param, data bool) {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p == nil {
			panic(fmt.Sprintf("optim: parameter %d is nil", i))
		}
		if p.Name == "" {
			panic(fmt.Sprintf("optim: parameter %d has no name", i))
		}
		if seen[p.Name] {
			panic(fmt.Sprintf("optim: duplicate parameter name %q", p.Name))
		}
		seen[p.Name] = true
		if !data && p.Data == nil && p.Grad == nil {
			if p.Shape == nil {
				panic(fmt.Sprintf("optim: parameter %q has neither data nor a shape", p.Name))
			}
			if numel(p.Shape) < 0 {
				panic(fmt.Sprintf("optim: parameter %q has negative dimension in shape %v", p.Name, p.Shape))
			}
			continue
		}
		if len(p.Grad) != len(p.Data) {
			panic(fmt.Sprintf("optim: parameter %q has %d values but %d gradients", p.Name, len(p.Data), len(p.Grad)))
		}
		n := 1
		for _, s := range p.shape() {
			if s < 0 {
				panic(fmt.Sprintf("optim: parameter %q has negative dimension in shape %v", p.Name, p.Shape))
			}
			n *= s
		}
		if n != len(p.Data) {
			panic(fmt.Sprintf("optim: parameter %q: shape %v holds %d values, Data has %d", p.Name, p.Shape, n, len(p.Data)))
		}
	}
}

// numel is the number of values of a shape, -1 for a negative dimension.
func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		if s < 0 {
			return -1
		}
		n *= s
	}
	return n
}

// AdamWConfig holds AdamW's hyperparameters. The learning rate is not one of
// them: it is passed to each Step, usually from a Schedule.
type AdamWConfig struct {
	// Beta1 and Beta2 are the decay rates of the first and second moment
	// estimates, in [0, 1).
	Beta1, Beta2 float64
	// Eps, > 0 even when rounded to float32, is added to the bias-corrected
	// root second moment.
	Eps float64
	// WeightDecay, >= 0, shrinks each decayed parameter by lr*WeightDecay of
	// itself per step, independently of the gradient.
	WeightDecay float64
}

// DefaultAdamW returns torch.optim.AdamW's defaults: betas (0.9, 0.999),
// eps 1e-8, weight decay 0.01.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// Validate reports the first hyperparameter out of range. Hyperparameters
// usually come from flags or files, so they are checked as data.
func (c AdamWConfig) Validate() error {
	switch {
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("adamw: beta1 %v outside [0, 1)", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("adamw: beta2 %v outside [0, 1)", c.Beta2)
	case !(float32(c.Eps) > 0) || math.IsInf(c.Eps, 1):
		// Step works in float32, where a smaller eps would be 0 and turn a
		// zero gradient's 0/0 into NaN.
		return fmt.Errorf("adamw: eps %v must be positive and finite in float32", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 1):
		return fmt.Errorf("adamw: weight decay %v must be non-negative and finite", c.WeightDecay)
	}
	return nil
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), computing
// what torch.optim.AdamW computes: for step t = 1, 2, …
//
//	p -= lr*wd*p                       (skipped for NoDecay parameters)
//	m  = β1 m + (1-β1) g
//	v  = β2 v + (1-β2) g²
//	p -= lr * (m/(1-β1ᵗ)) / (sqrt(v/(1-β2ᵗ)) + eps)
//
// Elements are computed in float32, as torch does for float32 parameters;
// per-step scalars (bias corrections, decay factor) are computed in float64
// and rounded once. Float64 element arithmetic was measured 3× slower here,
// for no precision the float32 parameters could keep.
//
// An AdamW is not safe for concurrent use; Step itself runs in parallel.
type AdamW struct {
	cfg    AdamWConfig
	params []*Param
	m, v   [][]float32
	chunks []chunk
	step   int
}

// NewAdamW makes an optimiser for params with zero moments at step 0. It
// returns an error for invalid hyperparameters and panics on malformed
// parameters (nil, unnamed, duplicate names, or Data, Grad and Shape that
// disagree). The optimiser keeps the pointers, so Step sees the caller's
// current Data and Grad slices.
func NewAdamW(params []*Param, cfg AdamWConfig) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	checkParams(params)
	o := &AdamW{
		cfg:    cfg,
		params: append([]*Param(nil), params...),
		m:      make([][]float32, len(params)),
		v:      make([][]float32, len(params)),
		chunks: chunksOf(params),
	}
	for i, p := range params {
		o.m[i] = make([]float32, len(p.Data))
		o.v[i] = make([]float32, len(p.Data))
	}
	return o, nil
}

// Config returns the hyperparameters.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Steps is the number of steps taken (or restored by Load). Schedules take it
// as the index of the next step: Step(sched.LR(o.Steps())).
func (o *AdamW) Steps() int { return o.step }

// Params returns the parameters the optimiser updates, in its order.
func (o *AdamW) Params() []*Param { return append([]*Param(nil), o.params...) }

// Step applies one AdamW update with learning rate lr to every parameter,
// using the gradients in Grad. It panics if lr is negative or not finite, or
// if a parameter's slices were resized since NewAdamW.
func (o *AdamW) Step(lr float64) {
	if !(lr >= 0) || math.IsInf(lr, 1) {
		panic(fmt.Sprintf("optim: AdamW.Step: learning rate %v must be non-negative and finite", lr))
	}
	for i, p := range o.params {
		if len(p.Data) != len(o.m[i]) || len(p.Grad) != len(o.m[i]) {
			panic(fmt.Sprintf("optim: parameter %q resized: Data %d, Grad %d, was %d", p.Name, len(p.Data), len(p.Grad), len(o.m[i])))
		}
	}
	o.step++
	b1, b2 := o.cfg.Beta1, o.cfg.Beta2
	t := float64(o.step)
	// Bias corrections as torch applies them: step size lr/(1-β1ᵗ), and the
	// root second moment divided by sqrt(1-β2ᵗ) before eps is added (here
	// multiplied by the reciprocal, to spare a division per element).
	k := kernelConsts{
		decay:    float32(1 - lr*o.cfg.WeightDecay),
		b1:       float32(b1),
		b2:       float32(b2),
		c1:       float32(1 - b1),
		c2:       float32(1 - b2),
		stepSize: float32(lr / (1 - math.Pow(b1, t))),
		invBC2:   float32(1 / math.Sqrt(1-math.Pow(b2, t))),
		eps:      float32(o.cfg.Eps),
	}
	forEach(o.chunks, func(_ int, c chunk) {
		p := o.params[c.param]
		kc := k
		if p.NoDecay {
			kc.decay = 1
		}
		kc.apply(p.Data[c.lo:c.hi], p.Grad[c.lo:c.hi], o.m[c.param][c.lo:c.hi], o.v[c.param][c.lo:c.hi])
	})
}

// kernelConsts are one step's per-element constants: c1 = 1-β1, c2 = 1-β2.
type kernelConsts struct {
	decay, b1, b2, c1, c2, stepSize, invBC2, eps float32
}

func (k *kernelConsts) apply(p, g, m, v []float32) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	decay, b1, b2, c1, c2, stepSize, invBC2, eps := k.decay, k.b1, k.b2, k.c1, k.c2, k.stepSize, k.invBC2, k.eps
	for i := range p {
		gi := g[i]
		mi := b1*m[i] + c1*gi
		vi := b2*v[i] + c2*gi*gi
		m[i] = mi
		v[i] = vi
		p[i] = p[i]*decay - stepSize*mi/(float32(math.Sqrt(float64(vi)))*invBC2+eps)
	}
}
