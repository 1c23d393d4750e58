package onnx

// Device-resident state: sessions, memory info, allocators, tensors and
// IoBindings through a small C layer of our own (device_c.c), for what
// onnxruntime_go cannot do: bind outputs to a device, allocate tensors there,
// and pass such tensors to a run. Its Value types cannot be implemented
// outside its package, so these objects live beside it rather than in it:
// a BoundSession runs only through a Binding, with DeviceTensors.
//
// The C layer reaches the library onnxruntime_go loaded (Init) through
// dlopen(RTLD_NOLOAD) and OrtGetApiBase, asks for API version minAPI, and
// calls the OrtApi table by position (see device_c.c for why positions are
// stable). It takes its own reference to the process-wide OrtEnv through
// CreateEnv, which in ONNX Runtime returns the one existing environment with
// its reference count raised, so sessions of both layers share one
// environment and its thread pools and logging, and ours stay valid even if
// onnxruntime_go's reference is released.
//
// Objects here are reference-counted underneath the explicit Destroy: a
// tensor keeps its allocator alive, an allocator and a binding their session,
// a binding the tensors bound to it. Destroy may therefore be called in any
// order; ONNX Runtime objects are released when the last user lets go.

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "device_c.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// minAPI is the OrtApi version whose table holds every function the C layer
// calls (MemoryInfoGetDeviceType, the newest, arrived in API 14); API N
// ships with ONNX Runtime 1.N.
const minAPI = 14

var (
	apiMu    sync.Mutex
	apiReady bool
)

// deviceAPI loads the C layer's view of ONNX Runtime once Init has loaded
// the library. A failure before Init is not remembered, so a later call can
// succeed.
func deviceAPI() error {
	apiMu.Lock()
	defer apiMu.Unlock()
	if apiReady {
		return nil
	}
	lib := Library()
	if lib == "" || !ort.IsInitialized() {
		return errors.New("onnx: ONNX Runtime is not loaded: call onnx.Init first")
	}
	cpath := C.CString(lib)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	cver := C.irl_open(cpath, &cerr)
	if cver == nil {
		return fmt.Errorf("onnx: reaching the loaded ONNX Runtime %s: %s", lib, C.GoString(cerr))
	}
	ver := C.GoString(cver)
	if !versionAtLeast(ver, 1, minAPI) {
		return fmt.Errorf("onnx: ONNX Runtime %s (%s) is too old for device tensors and IoBinding: they need 1.%d or newer", ver, lib, minAPI)
	}
	var refused C.int
	if err := statusError(C.irl_load_api(minAPI, &refused)); err != nil {
		return fmt.Errorf("onnx: getting ONNX Runtime's environment: %w", err)
	}
	if refused != 0 {
		return fmt.Errorf("onnx: ONNX Runtime %s (%s) refused API version %d", ver, lib, minAPI)
	}
	apiReady = true
	return nil
}

var (
	arenaMu  sync.Mutex
	arenaErr error
	arenaSet bool
)

// sharedArena registers, once per process, the CPU arena that every
// session shares. Each session otherwise grows an arena of its own to its
// largest run and keeps it: a PPO run's five sessions (policy, reference,
// trainer, generator and the standard twin) held 7.3 GB where one shared
// arena holds about what the largest of them needs at a time.
func sharedArena() error {
	if err := deviceAPI(); err != nil {
		return err
	}
	arenaMu.Lock()
	defer arenaMu.Unlock()
	if !arenaSet {
		arenaSet = true
		if err := statusError(C.irl_register_cpu_arena()); err != nil {
			arenaErr = fmt.Errorf("onnx: registering the shared CPU arena: %w", err)
		}
	}
	return arenaErr
}

// versionAtLeast reports whether a version string "MAJOR.MINOR[.PATCH…]"
// is at least major.minor; an unparsable string is not.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// StatusError is an error reported by ONNX Runtime through the device layer.
type StatusError struct {
	// Code is ONNX Runtime's OrtErrorCode (1 FAIL, 2 INVALID_ARGUMENT, …).
	Code int
	// Msg is ONNX Runtime's message.
	Msg string
}

// Error is ONNX Runtime's message.
func (e *StatusError) Error() string { return e.Msg }

// statusError turns an OrtStatus into a Go error and releases it.
func statusError(st *C.irl_status) error {
	if st == nil {
		return nil
	}
	err := &StatusError{Code: int(C.irl_status_code(st)), Msg: C.GoString(C.irl_status_message(st))}
	C.irl_status_release(st)
	return err
}

// live counts the ONNX Runtime objects this layer holds, for tests that
// check every one is released.
var live atomic.Int64

// refs is the shared ownership under every object of this layer: the owner
// closes it with Destroy, users take and drop references, and release runs
// once, when it is closed and unused.
type refs struct {
	mu       sync.Mutex
	n        int
	closed   bool
	released bool
	release  func()
}

func (r *refs) init(release func()) {
	live.Add(1)
	r.release = func() { release(); live.Add(-1) }
}

// acquire takes a reference; it fails once the owner has destroyed it.
func (r *refs) acquire(what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("onnx: %s used after Destroy", what)
	}
	r.n++
	return nil
}

// retain takes a reference for something derived from a user that holds
// one already (an output of a binding, a view of a tensor being copied): it
// succeeds after Destroy, as long as the object is not yet released.
func (r *refs) retain(what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return fmt.Errorf("onnx: %s used after release", what)
	}
	r.n++
	return nil
}

func (r *refs) drop() {
	r.mu.Lock()
	r.n--
	run := r.closed && r.n == 0
	r.released = r.released || run
	r.mu.Unlock()
	if run {
		r.release()
	}
}

func (r *refs) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	run := r.n == 0
	r.released = run
	r.mu.Unlock()
	if run {
		r.release()
	}
}

func (r *refs) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// MemoryInfo says where tensors live: CPU memory, or a CUDA device's.
// Destroy it when done; tensors and bindings made with it do not need it
// afterwards.
type MemoryInfo struct {
	r      refs
	m      *C.irl_memory_info
	device Device
	id     int
}

// NewMemoryInfo describes memory on d: CPU (id ignored) or CUDA device id.
// Describing CUDA memory needs no GPU; allocating there does.
func NewMemoryInfo(d Device, id int) (*MemoryInfo, error) {
	if err := deviceAPI(); err != nil {
		return nil, err
	}
	mi := &MemoryInfo{device: d, id: id}
	var st *C.irl_status
	switch d {
	case CPU, "":
		mi.device, mi.id = CPU, 0
		st = C.irl_memory_info_cpu(&mi.m)
	case CUDA:
		if id < 0 {
			return nil, fmt.Errorf("onnx: CUDA device %d: want an index >= 0", id)
		}
		name := C.CString("Cuda") // ONNX Runtime's name for CUDA device memory
		defer C.free(unsafe.Pointer(name))
		st = C.irl_memory_info_create(name, C.int(id), &mi.m)
	default:
		return nil, fmt.Errorf("onnx: unknown device %q: want cpu or cuda", d)
	}
	if err := statusError(st); err != nil {
		return nil, fmt.Errorf("onnx: memory info for %s: %w", d, err)
	}
	m := mi.m
	mi.r.init(func() { C.irl_memory_info_release(m) })
	return mi, nil
}

// Device is where the memory is.
func (m *MemoryInfo) Device() Device { return m.device }

// DeviceID is the CUDA device index (0 for CPU).
func (m *MemoryInfo) DeviceID() int { return m.id }

// String is "cpu" or "cuda:ID".
func (m *MemoryInfo) String() string {
	if m.device == CUDA {
		return fmt.Sprintf("cuda:%d", m.id)
	}
	return string(m.device)
}

// Destroy releases the memory info.
func (m *MemoryInfo) Destroy() {
	if m != nil {
		m.r.close()
	}
}

// Allocator allocates tensors: ONNX Runtime's default CPU allocator, or a
// session's allocator for its device. A session's allocator keeps the session
// alive, and its tensors keep it alive, so Destroy may come in any order.
type Allocator struct {
	r      refs
	a      *C.irl_allocator
	device Device
	id     int
	sess   *BoundSession // nil for the default allocator
}

var (
	defaultAllocMu sync.Mutex
	defaultAlloc   *Allocator
)

// DefaultAllocator is ONNX Runtime's process-wide CPU allocator. It is shared:
// its Destroy does nothing.
func DefaultAllocator() (*Allocator, error) {
	if err := deviceAPI(); err != nil {
		return nil, err
	}
	defaultAllocMu.Lock()
	defer defaultAllocMu.Unlock()
	if defaultAlloc == nil {
		a := &Allocator{device: CPU}
		if err := statusError(C.irl_allocator_default(&a.a)); err != nil {
			return nil, fmt.Errorf("onnx: default allocator: %w", err)
		}
		defaultAlloc = a
	}
	return defaultAlloc, nil
}

// NewAllocator makes an allocator for memory m of session s (CreateAllocator);
// nil m means the session's own device. Tensors from it live where the
// session computes, so binding them costs no copies.
func (s *BoundSession) NewAllocator(m *MemoryInfo) (*Allocator, error) {
	if m == nil {
		m = s.mem
	}
	if err := s.r.acquire("session"); err != nil {
		return nil, err
	}
	a := &Allocator{device: m.device, id: m.id, sess: s}
	if err := statusError(C.irl_allocator_create(s.s, m.m, &a.a)); err != nil {
		s.r.drop()
		return nil, fmt.Errorf("onnx: allocator for %s memory of a %s session: %w", m, s.mem, err)
	}
	p := a.a
	a.r.init(func() {
		C.irl_allocator_release(p)
		s.r.drop()
	})
	return a, nil
}

// Device is where the allocator's tensors live.
func (a *Allocator) Device() Device { return a.device }

// DeviceID is the CUDA device index of the allocator's memory (0 for CPU).
func (a *Allocator) DeviceID() int { return a.id }

// Destroy releases the allocator once its tensors are destroyed; the
// default allocator is never released.
func (a *Allocator) Destroy() {
	if a != nil && a.sess != nil {
		a.r.close()
	}
}

// NewDeviceAllocator makes an allocator for the memory of the device o
// names (o.Device, o.CUDADevice), for tensors that several sessions on that
// device share: a model's weights, say, bound as inputs by each. It comes
// from a small session kept for the process (the one CopyFromHost and
// CopyToHost use there), so it outlives every session of the caller's.
// Destroy it when done; its tensors keep it alive.
func NewDeviceAllocator(o Options) (*Allocator, error) {
	dev := o.Device
	if dev == "" {
		dev = CPU
	}
	if dev != CPU && dev != CUDA {
		return nil, fmt.Errorf("onnx: unknown device %q: want cpu or cuda", o.Device)
	}
	id := o.CUDADevice
	if dev == CPU {
		id = 0
	}
	s, err := copierFor(copierKey{dev, id, Float})
	if err != nil {
		return nil, err
	}
	return s.NewAllocator(nil)
}

// LiveObjects is the number of ONNX Runtime objects this layer's sessions,
// bindings, allocators, memory infos and tensors hold that are not yet
// released (objects kept for the process aside): leak tests compare it
// before and after a loop.
func LiveObjects() int64 { return live.Load() }
