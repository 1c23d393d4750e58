package policy

import (
	"fmt"

	"irl/neox"
	"irl/onnx"
)

// boundGraph is a graph's session and binding, with the store its weights
// (and a trainer's gradients' and a decoder's caches' memory) come from:
// what a Runner, a Trainer, a Decoder and a CachedDecoder each hold.
type boundGraph struct {
	session *onnx.BoundSession
	bind    *onnx.Binding
	store   *ParamStore
	private bool // the store is this graph's own
}

// open opens g's session and binding. The store is store, which must hold
// m, or, when that is nil and ownStore is set, a new one of m's
// (NewParamStore) that destroy releases. On error nothing is left open.
func (bg *boundGraph) open(m *neox.Model, g *onnx.Graph, so onnx.Options, store *ParamStore, ownStore bool) error {
	if store != nil && store.Model() != m {
		return fmt.Errorf("policy: the parameter store holds another model than the graph's")
	}
	bg.store = store
	if store == nil && ownStore {
		var err error
		if bg.store, err = NewParamStore(m, so); err != nil {
			return err
		}
		bg.private = true
	}
	var err error
	if bg.session, err = onnx.NewBoundGraphSession(g, so); err == nil {
		bg.bind, err = bg.session.NewBinding()
	}
	if err != nil {
		bg.destroy()
	}
	return err
}

// destroy releases the binding, the session and a store of the graph's own.
func (bg *boundGraph) destroy() {
	bg.bind.Destroy()
	bg.session.Destroy()
	if bg.private {
		bg.store.Destroy()
	}
	bg.bind, bg.session, bg.store, bg.private = nil, nil, nil, false
}

// runIO collects one run's bindings over Go memory: errors stick, so a run
// is set up without a check at every line, and run releases the tensors
// and unbinds everything, so no Go memory stays pinned between runs and
// every run binds afresh what it reads.
type runIO struct {
	b   *onnx.Binding
	ts  []*onnx.DeviceTensor
	err error
}

func (r *runIO) hold(t *onnx.DeviceTensor, err error, name string) *onnx.DeviceTensor {
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("policy: %s: %w", name, err)
		}
		return nil
	}
	r.ts = append(r.ts, t)
	return t
}

// in binds t as input name.
func (r *runIO) in(name string, t *onnx.DeviceTensor) {
	if r.err == nil && t != nil {
		r.err = r.b.BindInput(name, t)
	}
}

// out binds t to receive output name.
func (r *runIO) out(name string, t *onnx.DeviceTensor) {
	if r.err == nil && t != nil {
		r.err = r.b.BindOutput(name, t)
	}
}

func (r *runIO) inI64(name string, data []int64, shape ...int64) {
	if r.err == nil {
		t, err := onnx.NewHostTensorI64(data, shape...)
		r.in(name, r.hold(t, err, name))
	}
}

func (r *runIO) inI32(name string, data []int32, shape ...int64) {
	if r.err == nil {
		t, err := onnx.NewHostTensorI32(data, shape...)
		r.in(name, r.hold(t, err, name))
	}
}

func (r *runIO) inF32(name string, data []float32, shape ...int64) {
	if r.err == nil {
		t, err := onnx.NewHostTensorF32(data, shape...)
		r.in(name, r.hold(t, err, name))
	}
}

func (r *runIO) outF32(name string, data []float32, shape ...int64) {
	if r.err == nil {
		t, err := onnx.NewHostTensorF32(data, shape...)
		r.out(name, r.hold(t, err, name))
	}
}

func (r *runIO) outI64(name string, data []int64, shape ...int64) {
	if r.err == nil {
		t, err := onnx.NewHostTensorI64(data, shape...)
		r.out(name, r.hold(t, err, name))
	}
}

// view binds a view of the leading part of t, in the given shape, as input
// (out false) or output name.
func (r *runIO) view(name string, t *onnx.DeviceTensor, out bool, shape ...int64) {
	if r.err != nil {
		return
	}
	t, err := t.View(shape...)
	v := r.hold(t, err, name)
	if out {
		r.out(name, v)
	} else {
		r.in(name, v)
	}
}

// run runs the binding when nothing failed, calls read (if not nil) to
// take what the run left bound, then unbinds everything and releases the
// run's tensors.
func (r *runIO) run(read func() error) error {
	err := r.err
	if err == nil {
		err = r.b.Run()
	}
	if err == nil && read != nil {
		err = read()
	}
	r.b.ClearInputs()
	r.b.ClearOutputs()
	for _, t := range r.ts {
		t.Destroy()
	}
	r.ts = nil
	return err
}

// hostOutputs binds each output in names to ONNX Runtime's CPU memory, for
// outputs whose shapes only the run knows, and after the run reads them with
// takeOutputs.
func (r *runIO) hostOutputs(cpu *onnx.MemoryInfo, names ...string) {
	for _, name := range names {
		if r.err == nil {
			r.err = r.b.BindOutputToDevice(name, cpu)
		}
	}
}

// takeOutputs copies the float32 outputs in want from the last run into Go
// slices, releasing every output tensor.
func takeOutputs(b *onnx.Binding, want map[string]bool) (map[string][]float32, error) {
	outs, err := b.Outputs()
	if err != nil {
		return nil, err
	}
	res := make(map[string][]float32, len(want))
	var firstErr error
	for _, o := range outs {
		if want[o.Name] && firstErr == nil {
			v, err := o.Tensor.Float32s()
			if err != nil {
				firstErr = fmt.Errorf("policy: output %s: %w", o.Name, err)
			} else {
				res[o.Name] = append([]float32(nil), v...)
			}
		}
		o.Tensor.Destroy()
	}
	return res, firstErr
}
