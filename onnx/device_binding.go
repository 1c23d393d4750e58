package onnx

/*
#include <stdlib.h>
#include "device_c.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Binding is an ONNX Runtime IoBinding: the inputs and outputs of a
// BoundSession's runs, bound once and reused. Bound inputs are read where
// they are; ONNX Runtime copies an input that is not on the device the
// session needs it on when it is bound, not when it runs, so such an input
// must be bound again after its data changes. Outputs are written into the
// tensors bound to them, or allocated on a device at each run
// (BindOutputToDevice). Destroy it when done; it keeps its session and the
// tensors bound to it alive until then. A Binding is not safe for concurrent
// use.
type Binding struct {
	r   refs
	b   *C.irl_binding
	s   *BoundSession
	in  map[string]*DeviceTensor
	out map[string]*DeviceTensor // nil for outputs bound to a device
}

// NewBinding creates a binding for the session's runs.
func (s *BoundSession) NewBinding() (*Binding, error) {
	if err := s.r.acquire("session"); err != nil {
		return nil, err
	}
	b := &Binding{s: s, in: map[string]*DeviceTensor{}, out: map[string]*DeviceTensor{}}
	if err := statusError(C.irl_binding_create(s.s, &b.b)); err != nil {
		s.r.drop()
		return nil, fmt.Errorf("onnx: creating a binding: %w", err)
	}
	p := b.b
	b.r.init(func() {
		C.irl_binding_release(p)
		b.dropAll(b.in)
		b.dropAll(b.out)
		s.r.drop()
	})
	return b, nil
}

func (b *Binding) dropAll(m map[string]*DeviceTensor) {
	for k, t := range m {
		if t != nil {
			t.r.drop()
		}
		delete(m, k)
	}
}

// hold records t as bound under name in m, keeping it alive, and lets go of
// what was bound there before.
func (b *Binding) hold(m map[string]*DeviceTensor, name string, t *DeviceTensor) {
	if old := m[name]; old != nil {
		old.r.drop()
	}
	m[name] = t
}

func (b *Binding) live() error {
	if b.r.isClosed() {
		return fmt.Errorf("onnx: binding used after Destroy")
	}
	return nil
}

// BindInput binds t as the input name, replacing any earlier binding of it.
// An unknown name, another element type or a shape that disagrees with the
// model's declared one is an error naming the input.
func (b *Binding) BindInput(name string, t *DeviceTensor) error {
	if err := b.live(); err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("onnx: binding input %q: no tensor", name)
	}
	if err := b.s.checkInput(name, t); err != nil {
		return err
	}
	if err := t.r.acquire("tensor"); err != nil {
		return fmt.Errorf("onnx: binding input %q: %w", name, err)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := statusError(C.irl_bind_input(b.b, cname, t.v)); err != nil {
		t.r.drop()
		return fmt.Errorf("onnx: binding input %q: %w", name, err)
	}
	b.hold(b.in, name, t)
	return nil
}

// BindOutput binds t to receive the output name at each run, replacing any
// earlier binding of it. t must have the shape the run produces.
func (b *Binding) BindOutput(name string, t *DeviceTensor) error {
	if err := b.live(); err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("onnx: binding output %q: no tensor (BindOutputToDevice lets the run allocate it)", name)
	}
	if err := b.s.checkOutput(name, t); err != nil {
		return err
	}
	if err := t.r.acquire("tensor"); err != nil {
		return fmt.Errorf("onnx: binding output %q: %w", name, err)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := statusError(C.irl_bind_output(b.b, cname, t.v)); err != nil {
		t.r.drop()
		return fmt.Errorf("onnx: binding output %q: %w", name, err)
	}
	b.hold(b.out, name, t)
	return nil
}

// BindOutputToDevice has the next run allocate the output name in memory m
// (nil: the session's device), for outputs whose shape is known only when
// the run ends. Outputs returns them. ONNX Runtime then keeps that tensor
// bound as the output of later runs, which must produce its shape: bind
// again (or ClearOutputs) before a run whose output shape may differ.
func (b *Binding) BindOutputToDevice(name string, m *MemoryInfo) error {
	if err := b.live(); err != nil {
		return err
	}
	if err := b.s.checkOutput(name, nil); err != nil {
		return err
	}
	if m == nil {
		m = b.s.mem
	}
	if err := m.r.acquire("memory info"); err != nil {
		return err
	}
	defer m.r.drop()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := statusError(C.irl_bind_output_to_device(b.b, cname, m.m)); err != nil {
		return fmt.Errorf("onnx: binding output %q to %s: %w", name, m, err)
	}
	b.hold(b.out, name, nil)
	return nil
}

// Run runs the session with the bound inputs and outputs. When it returns,
// outputs are written (ONNX Runtime synchronises the device at the end of a
// run unless told otherwise).
func (b *Binding) Run() error {
	if err := b.live(); err != nil {
		return err
	}
	if err := statusError(C.irl_run_with_binding(b.s.s, b.s.ro, b.b)); err != nil {
		return fmt.Errorf("onnx: run with binding: %w", err)
	}
	return nil
}

// SynchronizeInputs waits until bound inputs copied to the device are there.
func (b *Binding) SynchronizeInputs() error {
	if err := b.live(); err != nil {
		return err
	}
	if err := statusError(C.irl_synchronize_inputs(b.b)); err != nil {
		return fmt.Errorf("onnx: synchronising bound inputs: %w", err)
	}
	return nil
}

// SynchronizeOutputs waits until the last run's outputs are written.
func (b *Binding) SynchronizeOutputs() error {
	if err := b.live(); err != nil {
		return err
	}
	if err := statusError(C.irl_synchronize_outputs(b.b)); err != nil {
		return fmt.Errorf("onnx: synchronising bound outputs: %w", err)
	}
	return nil
}

// BoundOutput is one output of a run, by name.
type BoundOutput struct {
	// Name is the graph output's name.
	Name string
	// Tensor holds its value; the caller destroys it.
	Tensor *DeviceTensor
}

// Outputs returns every bound output of the last run, in the order they were
// first bound. Each tensor is the caller's to destroy. One bound to a tensor
// shares that tensor's memory (and keeps it alive); one bound to a device
// was allocated there by the run and stays valid after later runs.
func (b *Binding) Outputs() ([]BoundOutput, error) {
	if err := b.live(); err != nil {
		return nil, err
	}
	var block *C.char
	var count C.size_t
	var vals **C.irl_value
	if err := statusError(C.irl_bound_outputs(b.b, &block, &count, &vals)); err != nil {
		return nil, fmt.Errorf("onnx: reading bound outputs: %w", err)
	}
	if count == 0 {
		return nil, nil
	}
	defer C.free(unsafe.Pointer(block))
	defer C.free(unsafe.Pointer(vals))
	vs := unsafe.Slice(vals, int(count))
	outs := make([]BoundOutput, 0, len(vs))
	p := block
	var firstErr error
	for _, v := range vs {
		name := C.GoString(p)
		p = (*C.char)(unsafe.Add(unsafe.Pointer(p), len(name)+1))
		if firstErr != nil {
			C.irl_value_release(v)
			continue
		}
		t, err := b.adopt(name, v)
		if err != nil {
			firstErr = err
			continue
		}
		outs = append(outs, BoundOutput{Name: name, Tensor: t})
	}
	if firstErr != nil {
		for _, o := range outs {
			o.Tensor.Destroy()
		}
		return nil, firstErr
	}
	return outs, nil
}

// adopt wraps an output value, keeping alive what its memory belongs to: the
// tensor it was bound to, or the session whose allocator made it.
func (b *Binding) adopt(name string, v *C.irl_value) (*DeviceTensor, error) {
	owner := &b.s.r
	if t := b.out[name]; t != nil {
		owner = &t.r
	}
	if err := owner.retain("output"); err != nil {
		C.irl_value_release(v)
		return nil, err
	}
	t, err := wrapValue(v, owner.drop)
	if err != nil {
		return nil, fmt.Errorf("onnx: output %q: %w", name, err)
	}
	return t, nil
}

// Output returns the last run's output name, which the caller destroys.
func (b *Binding) Output(name string) (*DeviceTensor, error) {
	outs, err := b.Outputs()
	if err != nil {
		return nil, err
	}
	var found *DeviceTensor
	for _, o := range outs {
		if o.Name == name && found == nil {
			found = o.Tensor
		} else {
			o.Tensor.Destroy()
		}
	}
	if found == nil {
		return nil, fmt.Errorf("onnx: output %q is not bound", name)
	}
	return found, nil
}

// ClearInputs unbinds every input.
func (b *Binding) ClearInputs() {
	if b.live() == nil {
		C.irl_clear_inputs(b.b)
		b.dropAll(b.in)
	}
}

// ClearOutputs unbinds every output.
func (b *Binding) ClearOutputs() {
	if b.live() == nil {
		C.irl_clear_outputs(b.b)
		b.dropAll(b.out)
	}
}

// Destroy releases the binding and lets go of its session and bound tensors.
func (b *Binding) Destroy() {
	if b != nil {
		b.r.close()
	}
}
