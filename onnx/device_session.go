package onnx

/*
#include <stdlib.h>
#include "device_c.h"
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"
)

// BoundSession is an ONNX Runtime session that runs through a Binding, with
// inputs and outputs that may live on the session's device and stay there
// between runs. It is created with the same options as NewSession. Destroy
// it when done; allocators and bindings made from it keep it alive until
// they are destroyed too. Runs of different bindings may go concurrently, as
// ONNX Runtime allows concurrent runs of one session.
type BoundSession struct {
	r       refs
	s       *C.irl_session
	ro      *C.irl_run_options
	mem     *MemoryInfo
	inputs  []ioSpec
	outputs []ioSpec
	inIdx   map[string]int
	outIdx  map[string]int
}

// ioSpec is a session input or output as the model declares it.
type ioSpec struct {
	name  string
	dtype DType   // 0 when not a tensor
	dims  []int64 // -1 for symbolic dimensions; nil with rank 0
	rank  int     // -1 when not a tensor
}

// maxRank bounds the ranks this layer reads; ONNX Runtime allows more, but no
// graph here comes near it.
const maxRank = 16

// NewBoundSession creates a session from a serialised model, or, with model
// nil, from the .onnx file at path (which may use external data files).
// Options are those of NewSession: intra-op threads (0 means one per core),
// one inter-op thread, the profiler and the optimised graph's path, and CPU
// or the CUDA execution provider on o.CUDADevice. Without a usable CUDA
// provider, Device CUDA is an error.
func NewBoundSession(model []byte, path string, o Options) (*BoundSession, error) {
	if err := deviceAPI(); err != nil {
		return nil, err
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var so *C.irl_session_options
	if err := statusError(C.irl_session_options_create(C.int(threads), 1, &so)); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer C.irl_session_options_release(so)
	if err := sharedArena(); err != nil {
		return nil, err
	}
	if err := statusError(C.irl_session_options_use_env_allocators(so)); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	if o.Profile != "" {
		cp := C.CString(o.Profile)
		defer C.free(unsafe.Pointer(cp))
		if err := statusError(C.irl_session_options_enable_profiling(so, cp)); err != nil {
			return nil, fmt.Errorf("onnx: enabling the profiler: %w", err)
		}
	}
	if o.OptimizedModel != "" {
		cp := C.CString(o.OptimizedModel)
		defer C.free(unsafe.Pointer(cp))
		if err := statusError(C.irl_session_options_optimized_model(so, cp)); err != nil {
			return nil, fmt.Errorf("onnx: setting the optimized model path: %w", err)
		}
	}
	var mem *MemoryInfo
	var err error
	switch o.Device {
	case CPU, "":
		mem, err = NewMemoryInfo(CPU, 0)
	case CUDA:
		id := C.CString(fmt.Sprint(o.CUDADevice))
		defer C.free(unsafe.Pointer(id))
		tf32 := C.CString(o.cudaTF32())
		defer C.free(unsafe.Pointer(tf32))
		graph := C.CString(o.cudaGraph())
		defer C.free(unsafe.Pointer(graph))
		if err := statusError(C.irl_session_options_append_cuda(so, id, tf32, graph)); err != nil {
			return nil, fmt.Errorf("onnx: device cuda: the CUDA execution provider (device %d) could not be loaded by %s "+
				"(it needs libonnxruntime_providers_cuda.so beside it, with CUDA and cuDNN on the library path): %w", o.CUDADevice, Library(), err)
		}
		mem, err = NewMemoryInfo(CUDA, o.CUDADevice)
	default:
		return nil, fmt.Errorf("onnx: unknown device %q: want cpu or cuda", o.Device)
	}
	if err != nil {
		return nil, err
	}
	s := &BoundSession{mem: mem}
	if model != nil {
		var p unsafe.Pointer
		if len(model) > 0 {
			p = unsafe.Pointer(&model[0])
		}
		err = statusError(C.irl_session_create_from_array(p, C.size_t(len(model)), so, &s.s))
	} else {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		err = statusError(C.irl_session_create_from_file(cpath, so, &s.s))
	}
	if err != nil {
		mem.Destroy()
		where := "graph"
		if path != "" {
			where = path
		}
		return nil, fmt.Errorf("onnx: creating session for %s: %w", where, err)
	}
	sess, ro := s.s, (*C.irl_run_options)(nil)
	s.r.init(func() {
		C.irl_run_options_release(ro)
		C.irl_session_release(sess)
		mem.Destroy()
	})
	// RunWithBinding in older releases dereferences the run options, so
	// every run gets these (defaults) rather than NULL.
	if err := statusError(C.irl_run_options_create(&s.ro)); err != nil {
		s.Destroy()
		return nil, fmt.Errorf("onnx: run options: %w", err)
	}
	ro = s.ro
	if s.inputs, s.inIdx, err = s.describe(0); err == nil {
		s.outputs, s.outIdx, err = s.describe(1)
	}
	if err != nil {
		s.Destroy()
		return nil, err
	}
	return s, nil
}

// describe reads the session's inputs (output 0) or outputs (output 1).
func (s *BoundSession) describe(output C.int) ([]ioSpec, map[string]int, error) {
	what := "input"
	if output != 0 {
		what = "output"
	}
	var n C.size_t
	if err := statusError(C.irl_session_io_count(s.s, output, &n)); err != nil {
		return nil, nil, fmt.Errorf("onnx: counting session %ss: %w", what, err)
	}
	specs := make([]ioSpec, n)
	idx := make(map[string]int, n)
	for i := range specs {
		var cname *C.char
		if err := statusError(C.irl_session_io_name(s.s, output, C.size_t(i), &cname)); err != nil {
			return nil, nil, fmt.Errorf("onnx: session %s %d: %w", what, i, err)
		}
		name := C.GoString(cname)
		C.free(unsafe.Pointer(cname))
		var et, rank C.int
		var dims [maxRank]C.int64_t
		if err := statusError(C.irl_session_io_type(s.s, output, C.size_t(i), &et, &dims[0], maxRank, &rank)); err != nil {
			return nil, nil, fmt.Errorf("onnx: session %s %q: %w", what, name, err)
		}
		sp := ioSpec{name: name, dtype: DType(et), rank: int(rank)}
		for d := 0; d < int(rank) && d < maxRank; d++ {
			sp.dims = append(sp.dims, int64(dims[d]))
		}
		specs[i] = sp
		idx[name] = i
	}
	return specs, idx, nil
}

// NewBoundGraphSession opens a BoundSession for a graph built in Go, handing
// it over as NewGraphSession does: as bytes, or past 1 GiB of initializers
// through a temporary .onnx file with external data.
func NewBoundGraphSession(g *Graph, o Options) (*BoundSession, error) {
	var total int64
	for _, t := range g.inits {
		total += int64(len(t.RawData))
	}
	if total <= inlineLimit {
		model, err := g.Marshal()
		if err != nil {
			return nil, err
		}
		return NewBoundSession(model, "", o)
	}
	dir, err := os.MkdirTemp("", "irl-graph-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, g.name+".onnx")
	if err := g.WriteFile(path, inlineLimit); err != nil {
		return nil, err
	}
	return NewBoundSession(nil, path, o)
}

// Inputs are the session's input names, in the model's order.
func (s *BoundSession) Inputs() []string { return names(s.inputs) }

// Outputs are the session's output names, in the model's order.
func (s *BoundSession) Outputs() []string { return names(s.outputs) }

func names(specs []ioSpec) []string {
	out := make([]string, len(specs))
	for i, sp := range specs {
		out[i] = sp.name
	}
	return out
}

// MemoryInfo describes the memory of the session's device. It belongs to the
// session: do not destroy it.
func (s *BoundSession) MemoryInfo() *MemoryInfo { return s.mem }

// Destroy releases the session once its allocators, bindings and the
// tensors they produced are destroyed.
func (s *BoundSession) Destroy() {
	if s != nil {
		s.r.close()
	}
}

// checkInput reports, naming the input, a tensor that the session's input
// name cannot take: an unknown name, another element type, or a shape that
// disagrees with the declared one. A declared rank of 0 is not checked, as
// ONNX Runtime reports an input of unstated shape the same way.
func (s *BoundSession) checkInput(name string, t *DeviceTensor) error {
	i, ok := s.inIdx[name]
	if !ok {
		return fmt.Errorf("onnx: binding input %q: the session has no such input (inputs: %s)", name, strings.Join(s.Inputs(), ", "))
	}
	sp := s.inputs[i]
	if sp.dtype != t.dtype {
		return fmt.Errorf("onnx: binding input %q: tensor of %s, the input takes %s", name, dtypeName(t.dtype), dtypeName(sp.dtype))
	}
	if sp.rank <= 0 {
		return nil
	}
	bad := len(t.shape) != sp.rank
	for d := 0; !bad && d < sp.rank; d++ {
		bad = sp.dims[d] >= 0 && sp.dims[d] != t.shape[d]
	}
	if bad {
		return fmt.Errorf("onnx: binding input %q: shape %v does not fit the declared %s", name, t.shape, dimsString(sp.dims))
	}
	return nil
}

// checkOutput reports an unknown output name or another element type. Output
// shapes are not checked: graphs may declare them loosely, and ONNX Runtime
// reports a preallocated output of the wrong shape when it runs.
func (s *BoundSession) checkOutput(name string, t *DeviceTensor) error {
	i, ok := s.outIdx[name]
	if !ok {
		return fmt.Errorf("onnx: binding output %q: the session has no such output (outputs: %s)", name, strings.Join(s.Outputs(), ", "))
	}
	if sp := s.outputs[i]; t != nil && sp.dtype != t.dtype {
		return fmt.Errorf("onnx: binding output %q: tensor of %s, the output is %s", name, dtypeName(t.dtype), dtypeName(sp.dtype))
	}
	return nil
}

func dimsString(dims []int64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// dtypeName names an element type for messages.
func dtypeName(d DType) string {
	switch d {
	case Float:
		return "float32"
	case Float16:
		return "float16"
	case Int64:
		return "int64"
	case Int32:
		return "int32"
	case Bool:
		return "bool"
	case Double:
		return "float64"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}
