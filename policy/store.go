package policy

import (
	"fmt"
	"slices"

	"irl/neox"
	"irl/onnx"
)

// ParamStore holds a model's parameters as tensors where its sessions
// compute, for the graphs that take the weights as inputs (ParamInputs, and
// every training graph). The sessions that share one store (PPO's trainer,
// policy runner and live generator) read the same tensors, so they see
// every optimiser update without a copy.
//
// On CPU the tensors lie over Model.Params' Go memory: the store copies
// nothing, and an optimiser that updates Model.Params in place (optim.AdamW)
// is seen by the next run. A resident store (on CUDA always; on CPU with
// NewResidentParamStore) holds copies in ONNX Runtime's memory instead, made
// when a parameter is first asked for; Model.Params is then a snapshot that
// CopyToModel brings up to date (before a checkpoint is saved) and
// CopyFromModel writes back (after one is restored).
//
// Destroy it when done. A ParamStore is not safe for concurrent use.
type ParamStore struct {
	m        *neox.Model
	so       onnx.Options
	resident bool
	alloc    *onnx.Allocator               // resident stores only
	own      []*onnx.DeviceTensor          // tensors the store made
	cur      map[string]*onnx.DeviceTensor // each parameter's tensor now
}

// NewParamStore makes the store for sessions with options so: on CPU, views
// of m's Go memory; on CUDA, resident copies on the device.
func NewParamStore(m *neox.Model, so onnx.Options) (*ParamStore, error) {
	if so.Device == onnx.CUDA {
		return NewResidentParamStore(m, so)
	}
	return &ParamStore{m: m, so: so, cur: map[string]*onnx.DeviceTensor{}}, nil
}

// NewResidentParamStore makes a store whose tensors are copies in the
// memory of so's device, as on CUDA, even on CPU: there it runs the device
// path (device-resident weights, gradients and optimiser) where no GPU is.
func NewResidentParamStore(m *neox.Model, so onnx.Options) (*ParamStore, error) {
	a, err := onnx.NewDeviceAllocator(so)
	if err != nil {
		return nil, fmt.Errorf("policy: parameter store on %s: %w", deviceName(so), err)
	}
	return &ParamStore{m: m, so: so, resident: true, alloc: a, cur: map[string]*onnx.DeviceTensor{}}, nil
}

func deviceName(so onnx.Options) string {
	if so.Device == onnx.CUDA {
		return fmt.Sprintf("cuda:%d", so.CUDADevice)
	}
	return string(onnx.CPU)
}

// Model is the model whose parameters the store holds.
func (s *ParamStore) Model() *neox.Model { return s.m }

// Options are the session options the store's tensors are for.
func (s *ParamStore) Options() onnx.Options { return s.so }

// Resident tells whether the tensors are copies in ONNX Runtime's memory
// rather than views of Model.Params.
func (s *ParamStore) Resident() bool { return s.resident }

// Tensor returns the tensor that holds parameter name now, making it on
// first use: a view of Model.Params[name], or a resident copy of it. It
// belongs to the store; an optimiser that moves the parameter to another
// tensor says so with Replace, so bind it again before each run.
func (s *ParamStore) Tensor(name string) (*onnx.DeviceTensor, error) {
	if t := s.cur[name]; t != nil {
		return t, nil
	}
	p := s.m.Params[name]
	if p == nil {
		return nil, fmt.Errorf("policy: parameter store: the model has no parameter %q", name)
	}
	shape := neox.Dims64(p.Shape)
	var t *onnx.DeviceTensor
	var err error
	if s.resident {
		if t, err = s.alloc.NewTensor(onnx.Float, shape...); err == nil {
			if err = t.CopyFromHost(p.Data); err != nil {
				t.Destroy()
			}
		}
	} else {
		t, err = onnx.NewHostTensorF32(p.Data, shape...)
	}
	if err != nil {
		return nil, fmt.Errorf("policy: parameter %s: %w", name, err)
	}
	s.own = append(s.own, t)
	s.cur[name] = t
	return t, nil
}

// Replace records that parameter name now lives in t (a ping-pong
// optimiser's other buffer, say), which must have its shape and the store's
// memory. The caller keeps t alive while the store may hand it out.
func (s *ParamStore) Replace(name string, t *onnx.DeviceTensor) error {
	p := s.m.Params[name]
	if p == nil {
		return fmt.Errorf("policy: parameter store: the model has no parameter %q", name)
	}
	if t == nil || t.DType() != onnx.Float || !slices.Equal(t.Shape(), neox.Dims64(p.Shape)) {
		return fmt.Errorf("policy: parameter store: replacing %s %v by a tensor of another shape or type", name, p.Shape)
	}
	s.cur[name] = t
	return nil
}

// NewTensor allocates a float32 tensor of the given shape where the store's
// tensors live, for what goes with them (gradients, key/value caches): on
// a resident store in its device's memory, contents undefined; otherwise
// over a new zeroed Go slice, which the tensor's Float32s returns.
func (s *ParamStore) NewTensor(shape ...int64) (*onnx.DeviceTensor, error) {
	if s.resident {
		return s.alloc.NewTensor(onnx.Float, shape...)
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if n < 0 {
		return nil, fmt.Errorf("policy: tensor of shape %v", shape)
	}
	return onnx.NewHostTensorF32(make([]float32, n), shape...)
}

// CopyToModel copies every parameter the store holds into Model.Params, so
// that saving the model saves the current weights. Views need no copy.
func (s *ParamStore) CopyToModel() error {
	if !s.resident {
		return nil
	}
	for name, t := range s.cur {
		if err := t.CopyToHost(s.m.Params[name].Data); err != nil {
			return fmt.Errorf("policy: copying parameter %s to the host: %w", name, err)
		}
	}
	return nil
}

// CopyFromModel copies Model.Params into every parameter the store holds,
// after the model's weights were replaced in Go memory (a checkpoint
// restored). Views need no copy.
func (s *ParamStore) CopyFromModel() error {
	if !s.resident {
		return nil
	}
	for name, t := range s.cur {
		if err := t.CopyFromHost(s.m.Params[name].Data); err != nil {
			return fmt.Errorf("policy: copying parameter %s to %s: %w", name, deviceName(s.so), err)
		}
	}
	return nil
}

// Destroy releases the tensors the store made (bindings holding them keep
// them alive until they let go).
func (s *ParamStore) Destroy() {
	if s == nil {
		return
	}
	for _, t := range s.own {
		t.Destroy()
	}
	s.own, s.cur = nil, map[string]*onnx.DeviceTensor{}
	s.alloc.Destroy()
	s.alloc = nil
}

// bindParams binds the store's current tensor of each parameter in specs to
// the input of its name.
func (s *ParamStore) bindParams(b *onnx.Binding, specs []neox.ParamSpec) error {
	for _, sp := range specs {
		t, err := s.Tensor(sp.Name)
		if err != nil {
			return err
		}
		if err := b.BindInput(sp.Name, t); err != nil {
			return err
		}
	}
	return nil
}
