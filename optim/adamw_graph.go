package optim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"irl/onnx"
)

// AdamW as an ONNX graph, so that on a GPU the parameters, gradients and
// moments stay in device memory and only a few scalars cross to the host
// each step. The graph computes what ClipGradNorm followed by AdamW.Step
// computes, operation for operation: the norm and the clip scaling in
// float64, each element's update in float32, and the per-step scalars
// computed in Go exactly as Step computes them and fed in as inputs.
//
// The parameters are concatenated into one or two blocks and updated
// there, so that the graph has the same few dozen nodes whatever the number
// of parameters: a node per operation per parameter (about 1,300 for
// pythia-70m) made a CUDA step as slow as the whole forward and backward
// pass, each node a kernel launch over a tensor too small to hide it.
//
// A block is a [rows, width] matrix, each parameter a run of whole rows,
// rather than a flat vector: ONNX Runtime's CUDA Concat and Split build, on
// the host, a table of one int64 per index along the axis they join and
// copy it to the device at every run, which along a flat axis of 70M
// values took over half a second per node. AdamWBlocks picks the width that
// keeps the rows of all blocks few.

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
// parameter's Name. Each is of shape [rows, Width] of the parameter's block
// (AdamWBlock.Shape): bind a view of the parameter's tensor
// (onnx.DeviceTensor.View), as DeviceAdamW does, which costs no copy.
func AdamWParamInput(name string) string { return "param/" + name }

// AdamWGradInput names a parameter's gradient input.
func AdamWGradInput(name string) string { return "grad/" + name }

// AdamWParamOutput names a parameter's updated value.
func AdamWParamOutput(name string) string { return "param_out/" + name }

// AdamWMomentInputs name the first and second moments of block b (the
// index into AdamWBlocks), each of the block's shape.
func AdamWMomentInputs(b int) (m, v string) {
	s := strconv.Itoa(b)
	return "adamw/m/" + s, "adamw/v/" + s
}

// AdamWMomentOutputs name the updated moments of block b.
func AdamWMomentOutputs(b int) (m, v string) {
	s := strconv.Itoa(b)
	return "adamw/m_out/" + s, "adamw/v_out/" + s
}

// AdamWBlock is one of the matrices that BuildAdamWGraph concatenates the
// parameters, gradients and moments into.
type AdamWBlock struct {
	// Width is the number of values in a row; every parameter of the block
	// has a multiple of it.
	Width int
	// Params are the block's parameters, as indices into the parameters
	// given to AdamWBlocks, in the order of their rows: those that decay
	// first (the first Decayed of them), then those exempt.
	Params  []int
	Decayed int
	// Rows[i] is the number of rows of Params[i]; Offset[i] where its values
	// start in the block, in values.
	Rows, Offset []int
}

// Shape is the shape of parameter Params[i] in the graph.
func (b *AdamWBlock) Shape(i int) []int64 { return []int64{int64(b.Rows[i]), int64(b.Width)} }

// rowsOf sums Rows over Params[lo:hi].
func (b *AdamWBlock) rowsOf(lo, hi int) int {
	n := 0
	for _, r := range b.Rows[lo:hi] {
		n += r
	}
	return n
}

// maxBlockWidth bounds the widths AdamWBlocks tries.
const maxBlockWidth = 1 << 16

// AdamWBlocks lays params out in blocks: one of a power-of-two width that
// divides the sizes of most parameters, and one of width 1 for those it does
// not divide. The width is the one that makes the fewest rows in all (the
// length of the tables ONNX Runtime's CUDA Concat and Split build), largest
// on a tie. Parameters without values are in no block; blocks are never
// empty.
func AdamWBlocks(params []*Param) []AdamWBlock {
	sizes := make([]int, len(params))
	total := 0
	for i, p := range params {
		sizes[i] = numel(p.shape())
		total += sizes[i]
	}
	width, best := 1, total
	for w := maxBlockWidth; w >= 2; w /= 2 {
		rows := 0
		for _, n := range sizes {
			if n%w == 0 {
				rows += n / w
			} else {
				rows += n
			}
		}
		if rows < best {
			width, best = w, rows
		}
	}
	var blocks []AdamWBlock
	for _, w := range []int{width, 1} {
		b := AdamWBlock{Width: w}
		for _, noDecay := range []bool{false, true} {
			for i, p := range params {
				n := sizes[i]
				inMain := n%width == 0
				if n == 0 || p.NoDecay != noDecay || inMain != (w == width) {
					continue
				}
				off := 0
				if k := len(b.Params); k > 0 {
					off = b.Offset[k-1] + b.Rows[k-1]*w
				}
				b.Params = append(b.Params, i)
				b.Rows = append(b.Rows, n/w)
				b.Offset = append(b.Offset, off)
				if !noDecay {
					b.Decayed++
				}
			}
		}
		if len(b.Params) > 0 {
			blocks = append(blocks, b)
		}
		if width == 1 {
			break
		}
	}
	return blocks
}

// BuildAdamWGraph returns the graph of one clipped AdamW step over params
// (their names, shapes and NoDecay flags; the data is not read). It takes
// each parameter with values and its gradient (AdamWParamInput,
// AdamWGradInput), the moments of each block of AdamWBlocks
// (AdamWMomentInputs) and the scalar inputs named by the AdamW…Input
// constants; it returns each updated parameter (AdamWParamOutput), the
// updated moments (AdamWMomentOutputs) and the pre-clip global gradient
// norm. β1, β2 and eps are built in from cfg. Its number of nodes depends on
// the blocks, not on the number of parameters. It returns an error for
// invalid hyperparameters and panics on malformed parameters, as NewAdamW
// does, except that parameters may leave Data and Grad nil when their Shape
// is set.
func BuildAdamWGraph(params []*Param, cfg AdamWConfig) (*onnx.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	checkParamsOf(params, false)
	if len(params) == 0 {
		return nil, errors.New("adamw graph: no parameters")
	}
	blocks := AdamWBlocks(params)
	g := onnx.NewGraph("adamw")
	decay := g.Input(AdamWDecayInput, onnx.Float)
	stepSize := g.Input(AdamWStepSizeInput, onnx.Float)
	invBC2 := g.Input(AdamWInvBC2Input, onnx.Float)
	maxNorm := g.Input(AdamWMaxNormInput, onnx.Double)

	// Each block's inputs and its gradients in float64.
	type blockIO struct {
		ps       []onnx.Value
		gd, m, v onnx.Value
	}
	ios := make([]blockIO, len(blocks))
	var sumSq onnx.Value
	for bi, b := range blocks {
		rows := b.rowsOf(0, len(b.Params))
		var grads []onnx.Value
		for i, pi := range b.Params {
			name := params[pi].Name
			ios[bi].ps = append(ios[bi].ps, g.Input(AdamWParamInput(name), onnx.Float, b.Rows[i], b.Width))
			grads = append(grads, g.Input(AdamWGradInput(name), onnx.Float, b.Rows[i], b.Width))
		}
		mIn, vIn := AdamWMomentInputs(bi)
		ios[bi].m = g.Input(mIn, onnx.Float, rows, b.Width)
		ios[bi].v = g.Input(vIn, onnx.Float, rows, b.Width)
		// GradNorm sums float64 squares (in another order: the norm agrees
		// to rounding, not bit for bit); no axes reduces every axis.
		ios[bi].gd = g.Cast(g.Concat(0, grads...), onnx.Double)
		s := g.Op("ReduceSumSquare", []onnx.Value{ios[bi].gd}, onnx.AttrInt("keepdims", 0))
		if bi == 0 {
			sumSq = s
		} else {
			sumSq = g.Add(sumSq, s)
		}
	}
	if len(blocks) == 0 { // no parameter has values
		sumSq = g.ScalarF64(0)
	}
	norm := g.Rename(g.Sqrt(sumSq), AdamWNormOutput)
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
	for bi, b := range blocks {
		x := ios[bi]
		rows := b.rowsOf(0, len(b.Params))
		// float32(float64(g) * coef), as ClipGradNorm rounds it.
		gr := g.Cast(g.Mul(x.gd, scale), onnx.Float)
		// The kernel of AdamW.Step, in its order of operations:
		//   m = β1 m + (1-β1) g;  v = β2 v + ((1-β2) g) g
		//   p = p·decay − (stepSize·m) / (sqrt(v)·invBC2 + eps)
		// The outputs are named where they are computed, so that no Identity
		// copies them out.
		mOut, vOut := AdamWMomentOutputs(bi)
		m := g.Rename(g.Add(g.Mul(b1, x.m), g.Mul(c1, gr)), mOut)
		v := g.Rename(g.Add(g.Mul(b2, x.v), g.Mul(g.Mul(c2, gr), gr)), vOut)
		den := g.Add(g.Mul(g.Sqrt(v), invBC2), eps)
		upd := g.Div(g.Mul(stepSize, m), den)
		p := g.Concat(0, x.ps...)
		// The decay multiplies the leading rows, those of the parameters
		// that decay, and the others by exactly 1, as Step does: a factor
		// per row, decay then 1s.
		switch decayRows := b.rowsOf(0, b.Decayed); {
		case b.Decayed == len(b.Params):
			p = g.Mul(p, decay)
		case b.Decayed > 0:
			f := g.Op("Expand", []onnx.Value{decay, g.ConstI64(int64(decayRows), 1)})
			f = g.Op("Pad", []onnx.Value{f, g.ConstI64(0, 0, int64(rows-decayRows), 0), g.ScalarF32(1)})
			p = g.Mul(p, f)
		}
		// Split writes each parameter's rows straight into the tensor bound
		// as its output.
		outs := g.Split(g.Sub(p, upd), 0, int64sOf(b.Rows)...)
		for i, o := range outs {
			name := AdamWParamOutput(params[b.Params[i]].Name)
			g.Output(g.Rename(o, name), name, onnx.Float, b.Rows[i], b.Width)
		}
		g.Output(m, mOut, onnx.Float, rows, b.Width)
		g.Output(v, vOut, onnx.Float, rows, b.Width)
	}
	return g, nil
}

func int64sOf(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
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
// its state in the session's memory (GPU memory with CUDA): parameters in
// two sets of per-parameter tensors and the moments in two sets of
// per-block tensors (AdamWBlocks), each step reading from one set and
// writing to the other, and the gradients in tensors the caller fills,
// typically by binding them as a training run's outputs. The graph sees
// each parameter's tensors through views in its block's shape. Only the
// scalars cross to the host. Results equal ClipGradNorm followed by
// AdamW.Step. Destroy it when done; not safe for concurrent use.
type DeviceAdamW struct {
	cfg    AdamWConfig
	params []*Param
	blocks []AdamWBlock
	sess   *onnx.BoundSession
	alloc  *onnx.Allocator
	p      [2][]*onnx.DeviceTensor
	g      []*onnx.DeviceTensor
	// pv and gv are views of p and g in the graph's shapes (nil for
	// parameters without values, which are in no block).
	pv   [2][]*onnx.DeviceTensor
	gv   []*onnx.DeviceTensor
	m, v [2][]*onnx.DeviceTensor // per block
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
		want := shape64(p.shape())
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

func shape64(shape []int) []int64 {
	s := make([]int64, len(shape))
	for i, x := range shape {
		s[i] = int64(x)
	}
	return s
}

func (d *DeviceAdamW) setup(g *onnx.Graph, o onnx.Options) error {
	d.blocks = AdamWBlocks(d.params)
	var err error
	if d.sess, err = onnx.NewBoundGraphSession(g, o); err != nil {
		return err
	}
	if d.alloc, err = d.sess.NewAllocator(nil); err != nil {
		return err
	}
	// Tensors go into their slices as soon as they exist, so that Destroy
	// finds them after a failure part way.
	for i, p := range d.params {
		sets := []*[]*onnx.DeviceTensor{&d.p[1]}
		if !d.external {
			sets = append(sets, &d.p[0], &d.g)
		}
		for _, set := range sets {
			t, err := d.alloc.NewTensor(onnx.Float, shape64(p.shape())...)
			if err != nil {
				return fmt.Errorf("adamw graph: parameter %q: %w", p.Name, err)
			}
			*set = append(*set, t)
		}
		if !d.external {
			if err := d.p[0][i].CopyFromHost(p.Data); err != nil {
				return fmt.Errorf("adamw graph: parameter %q: %w", p.Name, err)
			}
		}
	}
	for _, views := range []*[]*onnx.DeviceTensor{&d.pv[0], &d.pv[1], &d.gv} {
		*views = make([]*onnx.DeviceTensor, len(d.params))
	}
	for bi := range d.blocks {
		b := &d.blocks[bi]
		for j, i := range b.Params {
			for _, s := range []struct{ from, to []*onnx.DeviceTensor }{{d.p[0], d.pv[0]}, {d.p[1], d.pv[1]}, {d.g, d.gv}} {
				if s.to[i], err = s.from[i].View(b.Shape(j)...); err != nil {
					return fmt.Errorf("adamw graph: parameter %q: %w", d.params[i].Name, err)
				}
			}
		}
		rows := b.rowsOf(0, len(b.Params))
		zeros := make([]float32, rows*b.Width)
		for k := range 2 {
			for _, set := range []*[]*onnx.DeviceTensor{&d.m[k], &d.v[k]} {
				t, err := d.alloc.NewTensor(onnx.Float, int64(rows), int64(b.Width))
				if err != nil {
					return fmt.Errorf("adamw graph: moments: %w", err)
				}
				*set = append(*set, t)
				if k == 0 {
					if err := t.CopyFromHost(zeros); err != nil {
						return fmt.Errorf("adamw graph: moments: %w", err)
					}
				}
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
			if d.gv[i] == nil {
				continue // no values: not in the graph
			}
			for _, e := range []error{
				b.BindInput(AdamWParamInput(p.Name), d.pv[k][i]),
				b.BindInput(AdamWGradInput(p.Name), d.gv[i]),
				b.BindOutput(AdamWParamOutput(p.Name), d.pv[1-k][i]),
			} {
				if e != nil {
					return e
				}
			}
		}
		for bi := range d.blocks {
			mIn, vIn := AdamWMomentInputs(bi)
			mOut, vOut := AdamWMomentOutputs(bi)
			for _, e := range []error{
				b.BindInput(mIn, d.m[k][bi]),
				b.BindInput(vIn, d.v[k][bi]),
				b.BindOutput(mOut, d.m[1-k][bi]),
				b.BindOutput(vOut, d.v[1-k][bi]),
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

// ParamTensors are the tensors holding the current parameters, in order,
// each of its parameter's shape. Each Step moves the parameters to the other
// set of tensors, so ask again after a step. They belong to the optimiser.
func (d *DeviceAdamW) ParamTensors() []*onnx.DeviceTensor {
	return append([]*onnx.DeviceTensor(nil), d.p[d.cur]...)
}

// MomentTensors are the tensors holding the current first and second
// moments, one of each per block of AdamWBlocks(Params()), in which each
// parameter's moments lie where its values lie; like ParamTensors, they
// change with each Step. Moments copies them out per parameter.
func (d *DeviceAdamW) MomentTensors() (m, v []*onnx.DeviceTensor) {
	return append([]*onnx.DeviceTensor(nil), d.m[d.cur]...), append([]*onnx.DeviceTensor(nil), d.v[d.cur]...)
}

// Moments copies the current moments to Go memory, one slice per parameter
// in parameter order, as AdamW holds them.
func (d *DeviceAdamW) Moments() (m, v [][]float32, err error) {
	o, mb, vb, err := d.hostState()
	if err != nil {
		return nil, nil, err
	}
	for bi := range d.blocks {
		if err := d.m[d.cur][bi].CopyToHost(mb[bi]); err != nil {
			return nil, nil, fmt.Errorf("adamw graph: first moments: %w", err)
		}
		if err := d.v[d.cur][bi].CopyToHost(vb[bi]); err != nil {
			return nil, nil, fmt.Errorf("adamw graph: second moments: %w", err)
		}
	}
	return o.m, o.v, nil
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
// AdamW.Save's format (per parameter): the two optimisers' states are
// interchangeable.
func (d *DeviceAdamW) Save(path string) error {
	m, v, err := d.Moments()
	if err != nil {
		return err
	}
	o := &AdamW{cfg: d.cfg, params: d.params, m: m, v: v, step: d.step}
	return o.Save(path)
}

// Load restores the step count and moments that Save or AdamW.Save wrote,
// under AdamW.Load's rules, copying the moments to the device. Parameters
// are not in the file: the caller restores them. On error the optimiser is
// unchanged, unless the copy to the device itself fails.
func (d *DeviceAdamW) Load(path string) error {
	o, mb, vb, err := d.hostState()
	if err != nil {
		return err
	}
	if err := o.Load(path); err != nil {
		return err
	}
	for bi := range d.blocks {
		if err := d.m[d.cur][bi].CopyFromHost(mb[bi]); err != nil {
			return fmt.Errorf("adamw graph: first moments: %w", err)
		}
		if err := d.v[d.cur][bi].CopyFromHost(vb[bi]); err != nil {
			return fmt.Errorf("adamw graph: second moments: %w", err)
		}
	}
	d.step = o.step
	return nil
}

// hostState is an AdamW with the optimiser's parameters and zero moments in
// Go memory, through which Save and Load go: its per-parameter moments are
// pieces of mb[b] and vb[b], laid out as block b's moments on the device,
// so that one copy per block each way moves them all.
func (d *DeviceAdamW) hostState() (o *AdamW, mb, vb [][]float32, err error) {
	if d.sess == nil {
		return nil, nil, nil, errors.New("adamw graph: optimiser used after Destroy")
	}
	o = &AdamW{cfg: d.cfg, params: d.params, m: make([][]float32, len(d.params)), v: make([][]float32, len(d.params))}
	for i := range d.params {
		o.m[i], o.v[i] = []float32{}, []float32{} // no values, in no block
	}
	for _, b := range d.blocks {
		n := b.rowsOf(0, len(b.Params)) * b.Width
		mf, vf := make([]float32, n), make([]float32, n)
		mb, vb = append(mb, mf), append(vb, vf)
		for j, i := range b.Params {
			lo, hi := b.Offset[j], b.Offset[j]+b.Rows[j]*b.Width
			o.m[i], o.v[i] = mf[lo:hi:hi], vf[lo:hi:hi]
		}
	}
	return o, mb, vb, nil
}

// Destroy releases the session and every tensor the optimiser allocated.
func (d *DeviceAdamW) Destroy() {
	for _, b := range d.bind {
		b.Destroy()
	}
	// Views first: each holds its tensor's memory.
	for _, ts := range [][]*onnx.DeviceTensor{d.pv[0], d.pv[1], d.gv} {
		for _, t := range ts {
			t.Destroy()
		}
	}
	owned := [][]*onnx.DeviceTensor{d.p[1], d.m[0], d.m[1], d.v[0], d.v[1], d.scalars}
	if !d.external {
		owned = append(owned, d.p[0], d.g)
	}
	for _, ts := range owned {
		for _, t := range ts {
			t.Destroy()
		}
	}
	d.alloc.Destroy()
	d.sess.Destroy()
	*d = DeviceAdamW{cfg: d.cfg, params: d.params, step: d.step}
}
