package onnx

/*
#include "device_c.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"irl/onnx/onnxpb"
)

// DeviceTensor is a tensor held by ONNX Runtime: allocated on a device by an
// Allocator, laid over Go memory (NewHostTensorF32 and friends), or returned
// by a Binding's run. Its data moves to and from Go only when asked
// (CopyFromHost, CopyToHost). Destroy it when done; binding it keeps it
// alive until the binding lets go. A DeviceTensor is not safe for concurrent
// use, except that distinct tensors are independent.
type DeviceTensor struct {
	r      refs
	v      *C.irl_value
	dtype  DType
	shape  []int64
	n      int
	device Device
	id     int
	ptr    unsafe.Pointer // the data, in device memory when !host
	host   bool           // ptr is CPU memory
}

// elemSize is the byte size of the element types device tensors support.
func elemSize(dt DType) int {
	switch dt {
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	}
	return 0
}

func checkShape(dt DType, shape []int64) (int, error) {
	if elemSize(dt) == 0 {
		return 0, fmt.Errorf("onnx: device tensors of %s are not supported (float32, float64, int64, int32 are)", dtypeName(dt))
	}
	if len(shape) > maxRank {
		return 0, fmt.Errorf("onnx: shape %v has more than %d dimensions", shape, maxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("onnx: shape %v has a negative dimension", shape)
		}
		n *= int(d)
	}
	return n, nil
}

// shapePtr is what the C API takes for a shape: a pointer that may be NULL
// for rank 0.
func shapePtr(shape []int64) *C.int64_t {
	if len(shape) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0]))
}

// NewTensor allocates a tensor of element type dt (Float, Double, Int64 or
// Int32)
// and the given shape with the allocator: on its device, where binding it to
// its session costs no copy. Its contents are undefined until written.
func (a *Allocator) NewTensor(dt DType, shape ...int64) (*DeviceTensor, error) {
	if _, err := checkShape(dt, shape); err != nil {
		return nil, err
	}
	if err := a.r.acquire("allocator"); err != nil {
		return nil, err
	}
	var v *C.irl_value
	if err := statusError(C.irl_tensor_alloc(a.a, shapePtr(shape), C.size_t(len(shape)), C.int(dt), &v)); err != nil {
		a.r.drop()
		return nil, fmt.Errorf("onnx: allocating a %s tensor %v on %s: %w", dtypeName(dt), shape, a.device, err)
	}
	t, err := wrapValue(v, a.r.drop)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// wrapValue describes an OrtValue the caller owns and hands it, with the
// release of whatever it depends on (done after the value's), to a
// DeviceTensor. On error both are released.
func wrapValue(v *C.irl_value, then func()) (*DeviceTensor, error) {
	var et, rank, devType, devID C.int
	var dims [maxRank]C.int64_t
	var data unsafe.Pointer
	var memName *C.char
	err := statusError(C.irl_tensor_describe(v, &et, &dims[0], maxRank, &rank, &data, &devType, &devID, &memName))
	if err == nil && (rank < 0 || rank > maxRank) {
		err = fmt.Errorf("rank %d", rank)
	}
	if err != nil {
		C.irl_value_release(v)
		if then != nil {
			then()
		}
		return nil, fmt.Errorf("onnx: describing a tensor: %w", err)
	}
	t := &DeviceTensor{v: v, dtype: DType(et), ptr: data, id: int(devID)}
	t.shape = make([]int64, rank)
	t.n = 1
	for i := range t.shape {
		t.shape[i] = int64(dims[i])
		t.n *= int(dims[i])
	}
	// OrtMemoryInfoDeviceType: 0 is CPU.
	switch name := C.GoString(memName); {
	case devType == 0:
		t.device, t.host, t.id = CPU, true, 0
	case strings.HasPrefix(name, "Cuda"):
		t.device = CUDA
	default:
		t.device = Device(strings.ToLower(name))
	}
	t.r.init(func() {
		C.irl_value_release(v)
		if then != nil {
			then()
		}
	})
	return t, nil
}

var (
	cpuInfoMu sync.Mutex
	cpuInfo   *MemoryInfo
)

// hostMemoryInfo is the CPU memory info host tensors are laid over, made once
// and kept for the process.
func hostMemoryInfo() (*MemoryInfo, error) {
	cpuInfoMu.Lock()
	defer cpuInfoMu.Unlock()
	if cpuInfo == nil {
		m, err := NewMemoryInfo(CPU, 0)
		if err != nil {
			return nil, err
		}
		live.Add(-1) // kept for good: not one of the objects callers release
		cpuInfo = m
	}
	return cpuInfo, nil
}

// newHostTensor lays a tensor over n elements of Go memory at p, which stays
// pinned until the tensor is released, as cgo requires of Go memory that C
// keeps a pointer to.
func newHostTensor(p unsafe.Pointer, n int, dt DType, shape []int64) (*DeviceTensor, error) {
	want, err := checkShape(dt, shape)
	if err != nil {
		return nil, err
	}
	if want != n {
		return nil, fmt.Errorf("onnx: shape %v holds %d values, the data has %d", shape, want, n)
	}
	m, err := hostMemoryInfo()
	if err != nil {
		return nil, err
	}
	unpin := pinHost(p)
	var v *C.irl_value
	if err := statusError(C.irl_tensor_over(m.m, p, C.size_t(n*elemSize(dt)), shapePtr(shape), C.size_t(len(shape)), C.int(dt), &v)); err != nil {
		unpin()
		return nil, fmt.Errorf("onnx: a %s tensor %v over host memory: %w", dtypeName(dt), shape, err)
	}
	t, err := wrapValue(v, unpin)
	if err != nil {
		return nil, err
	}
	return t, nil
}

var (
	pinsMu sync.Mutex
	pins   = map[*runtime.Pinner]struct{}{}
)

// pinHost pins the Go object p points into and returns its unpinning. The
// pinner is kept in a package set until then, so that a host tensor leaked
// without Destroy leaks its Go memory (which ONNX Runtime may still read)
// rather than tripping the runtime's check for pinners collected while
// pinned.
func pinHost(p unsafe.Pointer) func() {
	if p == nil {
		return func() {}
	}
	pin := new(runtime.Pinner)
	pin.Pin(p)
	pinsMu.Lock()
	pins[pin] = struct{}{}
	pinsMu.Unlock()
	return func() {
		pin.Unpin()
		pinsMu.Lock()
		delete(pins, pin)
		pinsMu.Unlock()
	}
}

// NewHostTensorF32 lays a tensor over data in Go memory without copying: runs
// read and write data itself. data stays pinned, and reachable, until the
// tensor is released.
func NewHostTensorF32(data []float32, shape ...int64) (*DeviceTensor, error) {
	return newHostTensor(sliceData(data), len(data), Float, shape)
}

// NewHostTensorF64 is NewHostTensorF32 for float64 data.
func NewHostTensorF64(data []float64, shape ...int64) (*DeviceTensor, error) {
	return newHostTensor(sliceData(data), len(data), Double, shape)
}

// NewHostTensorI64 is NewHostTensorF32 for int64 data.
func NewHostTensorI64(data []int64, shape ...int64) (*DeviceTensor, error) {
	return newHostTensor(sliceData(data), len(data), Int64, shape)
}

// NewHostTensorI32 is NewHostTensorF32 for int32 data.
func NewHostTensorI32(data []int32, shape ...int64) (*DeviceTensor, error) {
	return newHostTensor(sliceData(data), len(data), Int32, shape)
}

func sliceData[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// DType is the tensor's element type.
func (t *DeviceTensor) DType() DType { return t.dtype }

// Shape is the tensor's shape (a copy).
func (t *DeviceTensor) Shape() []int64 { return append([]int64(nil), t.shape...) }

// Len is the number of elements.
func (t *DeviceTensor) Len() int { return t.n }

// Device is where the data lives: CPU, CUDA, or another device by ONNX
// Runtime's name for its memory.
func (t *DeviceTensor) Device() Device { return t.device }

// DeviceID is the CUDA device index (0 for CPU).
func (t *DeviceTensor) DeviceID() int { return t.id }

// Destroy releases the tensor once no binding holds it.
func (t *DeviceTensor) Destroy() {
	if t != nil {
		t.r.close()
	}
}

// hostView returns the data as a Go slice when it is in CPU memory. The slice
// aliases the tensor: valid until Destroy.
func hostView[T any](t *DeviceTensor, dt DType) ([]T, error) {
	if t.dtype != dt {
		return nil, fmt.Errorf("onnx: tensor of %s read as %s", dtypeName(t.dtype), dtypeName(dt))
	}
	if !t.host {
		return nil, fmt.Errorf("onnx: tensor is in %s memory: copy it with CopyToHost", t.device)
	}
	if t.r.isClosed() {
		return nil, fmt.Errorf("onnx: tensor used after Destroy")
	}
	if t.n == 0 {
		return []T{}, nil
	}
	return unsafe.Slice((*T)(t.ptr), t.n), nil
}

// Float32s is the data of a float32 tensor in CPU memory, without copying:
// the slice aliases the tensor and is valid until Destroy. Tensors on a
// device are an error; use CopyToHost.
func (t *DeviceTensor) Float32s() ([]float32, error) { return hostView[float32](t, Float) }

// Float64s is Float32s for float64 tensors.
func (t *DeviceTensor) Float64s() ([]float64, error) { return hostView[float64](t, Double) }

// Int64s is Float32s for int64 tensors.
func (t *DeviceTensor) Int64s() ([]int64, error) { return hostView[int64](t, Int64) }

// Int32s is Float32s for int32 tensors.
func (t *DeviceTensor) Int32s() ([]int32, error) { return hostView[int32](t, Int32) }

// View is a tensor of the given shape over the first elements of t's
// memory, wherever it lives, without copying: a buffer allocated once at
// its largest (a key/value cache's rows, say) serves smaller runs through
// views of its leading part. The view keeps t's memory alive; destroy it
// when done. The shape may hold at most Len elements.
func (t *DeviceTensor) View(shape ...int64) (*DeviceTensor, error) {
	n, err := checkShape(t.dtype, shape)
	if err != nil {
		return nil, err
	}
	if n > t.n {
		return nil, fmt.Errorf("onnx: a view %v of %d values over a tensor %v of %d", shape, n, t.shape, t.n)
	}
	if err := t.r.acquire("tensor"); err != nil {
		return nil, err
	}
	var mem *C.irl_memory_info // owned by t.v
	if err := statusError(C.irl_tensor_memory_info(t.v, &mem)); err != nil {
		t.r.drop()
		return nil, fmt.Errorf("onnx: a view of a tensor: %w", err)
	}
	var vv *C.irl_value
	if err := statusError(C.irl_tensor_over(mem, t.ptr, C.size_t(n*elemSize(t.dtype)), shapePtr(shape), C.size_t(len(shape)), C.int(t.dtype), &vv)); err != nil {
		t.r.drop()
		return nil, fmt.Errorf("onnx: a view %v of a tensor %v: %w", shape, t.shape, err)
	}
	return wrapValue(vv, t.r.drop)
}

// CopyFromHost copies src, which must have Len values, into a float32 tensor
// wherever it lives.
func (t *DeviceTensor) CopyFromHost(src []float32) error {
	return t.copyHost(sliceData(src), len(src), Float, true, false)
}

// CopyToHost copies a float32 tensor, wherever it lives, into dst, which must
// have Len values.
func (t *DeviceTensor) CopyToHost(dst []float32) error {
	return t.copyHost(sliceData(dst), len(dst), Float, false, false)
}

// CopyFromHostF64 is CopyFromHost for float64 tensors.
func (t *DeviceTensor) CopyFromHostF64(src []float64) error {
	return t.copyHost(sliceData(src), len(src), Double, true, false)
}

// CopyToHostF64 is CopyToHost for float64 tensors.
func (t *DeviceTensor) CopyToHostF64(dst []float64) error {
	return t.copyHost(sliceData(dst), len(dst), Double, false, false)
}

// CopyFromHostI64 is CopyFromHost for int64 tensors.
func (t *DeviceTensor) CopyFromHostI64(src []int64) error {
	return t.copyHost(sliceData(src), len(src), Int64, true, false)
}

// CopyToHostI64 is CopyToHost for int64 tensors.
func (t *DeviceTensor) CopyToHostI64(dst []int64) error {
	return t.copyHost(sliceData(dst), len(dst), Int64, false, false)
}

// copyHost moves n elements between Go memory at p and the tensor. CPU
// memory is copied directly. Device memory goes through a one-node Identity
// graph on that device, run through a binding with the input on one side and
// the output on the other, so the copy is done by the same execution
// provider, stream and data transfer the device's sessions use. (ONNX
// Runtime 1.23's CopyTensors would be lighter, but it copies only through
// data transfers registered in the OrtEnv by plugin execution providers;
// the CUDA provider appended to session options, as here and in NewSession,
// registers its data transfer with the session alone.) viaGraph forces the
// graph path, so that tests exercise it on CPU.
func (t *DeviceTensor) copyHost(p unsafe.Pointer, n int, dt DType, in, viaGraph bool) error {
	dir := "to"
	if in {
		dir = "from"
	}
	if t.dtype != dt {
		return fmt.Errorf("onnx: copying %s host: tensor of %s, data of %s", dir, dtypeName(t.dtype), dtypeName(dt))
	}
	if n != t.n {
		return fmt.Errorf("onnx: copying %s host: tensor %v holds %d values, the slice has %d", dir, t.shape, t.n, n)
	}
	if err := t.r.acquire("tensor"); err != nil {
		return err
	}
	defer t.r.drop()
	if n == 0 {
		return nil
	}
	bytes := n * elemSize(dt)
	if t.host && !viaGraph {
		dev := unsafe.Slice((*byte)(t.ptr), bytes)
		goMem := unsafe.Slice((*byte)(p), bytes)
		if in {
			copy(dev, goMem)
		} else {
			copy(goMem, dev)
		}
		return nil
	}
	if err := copyThroughGraph(t, p, n, in); err != nil {
		return fmt.Errorf("onnx: copying %s host, %s tensor %v: %w", dir, t.device, t.shape, err)
	}
	return nil
}

// copier is an Identity session for one device and element type.
type copierKey struct {
	device Device
	id     int
	dtype  DType
}

var (
	copiersMu sync.Mutex
	copiers   = map[copierKey]*BoundSession{}
)

// copierFor returns the Identity session for k, made on first use and kept
// for the process (a session is heavy to make and small to keep).
func copierFor(k copierKey) (*BoundSession, error) {
	copiersMu.Lock()
	defer copiersMu.Unlock()
	if s, ok := copiers[k]; ok {
		return s, nil
	}
	vi := func(name string) *onnxpb.ValueInfoProto {
		return valueInfo(name, k.dtype, []any{"n"})
	}
	m := &onnxpb.ModelProto{
		IrVersion:    irVersion,
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName: "irl",
		Graph: &onnxpb.GraphProto{
			Name:   "copy",
			Node:   []*onnxpb.NodeProto{{OpType: "Identity", Input: []string{"x"}, Output: []string{"y"}, Name: "copy"}},
			Input:  []*onnxpb.ValueInfoProto{vi("x")},
			Output: []*onnxpb.ValueInfoProto{vi("y")},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	s, err := NewBoundSession(b, "", Options{Device: k.device, CUDADevice: k.id, Threads: 1})
	if err != nil {
		return nil, err
	}
	live.Add(-2) // the session and its memory info, kept for good
	copiers[k] = s
	return s, nil
}

// copyThroughGraph copies between Go memory at p and tensor t with t's
// device's Identity session: both sides are bound as flat 1-D views, so one
// session serves every shape.
func copyThroughGraph(t *DeviceTensor, p unsafe.Pointer, n int, in bool) error {
	dev := t.device
	if dev != CPU && dev != CUDA {
		return fmt.Errorf("no copy path for %s memory", dev)
	}
	s, err := copierFor(copierKey{dev, t.id, t.dtype})
	if err != nil {
		return err
	}
	hostT, err := newHostTensor(p, n, t.dtype, []int64{int64(n)})
	if err != nil {
		return err
	}
	defer hostT.Destroy()
	var mem *C.irl_memory_info // owned by t.v
	if err := statusError(C.irl_tensor_memory_info(t.v, &mem)); err != nil {
		return err
	}
	var vv *C.irl_value
	flat := []int64{int64(n)}
	if err := statusError(C.irl_tensor_over(mem, t.ptr, C.size_t(n*elemSize(t.dtype)), shapePtr(flat), 1, C.int(t.dtype), &vv)); err != nil {
		return err
	}
	if err := t.r.retain("tensor"); err != nil {
		C.irl_value_release(vv)
		return err
	}
	view, err := wrapValue(vv, t.r.drop)
	if err != nil {
		return err
	}
	defer view.Destroy()
	b, err := s.NewBinding()
	if err != nil {
		return err
	}
	defer b.Destroy()
	src, dst := hostT, view
	if !in {
		src, dst = view, hostT
	}
	if err := b.BindInput("x", src); err != nil {
		return err
	}
	if err := b.BindOutput("y", dst); err != nil {
		return err
	}
	return b.Run()
}
