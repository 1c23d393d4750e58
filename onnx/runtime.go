package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime library.
const LibraryEnv = "ONNXRUNTIME_LIB"

// cacheDir is where tools/fetch-ort.sh puts the library, relative to the
// project root.
const cacheDir = ".cache/ort"

// ErrNoLibrary is returned when no ONNX Runtime library can be found.
var ErrNoLibrary = errors.New(`no ONNX Runtime library found.
Get one with "make ort" (or tools/fetch-ort.sh) in the irl source folder, which
puts it in .cache/ort, or point --ort-lib or ONNXRUNTIME_LIB at a
libonnxruntime.so (1.24 or newer)`)

// FindLibrary returns the ONNX Runtime shared library to load, looking in
// this order: flag (a --ort-lib value), $ONNXRUNTIME_LIB, the project's cache
// (.cache/ort/<version>/ above the executable or the working directory), then
// the system's library folders.
func FindLibrary(flag string) (string, error) {
	for _, p := range []struct{ path, from string }{{flag, "ort_lib"}, {os.Getenv(LibraryEnv), LibraryEnv}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return "", fmt.Errorf("%s names %s: %w", p.from, p.path, err)
		}
		return p.path, nil
	}
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if lib := newestCached(filepath.Join(dir, cacheDir)); lib != "" {
				return lib, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if home, err := os.UserCacheDir(); err == nil {
		if lib := newestCached(filepath.Join(home, "irl", "ort")); lib != "" {
			return lib, nil
		}
	}
	for _, dir := range []string{"/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/opt/onnxruntime/lib"} {
		for _, name := range []string{"libonnxruntime.so", "libonnxruntime.so.1"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p, nil
			}
		}
	}
	return "", ErrNoLibrary
}

// newestCached returns the library of the highest version under dir, if any.
func newestCached(dir string) string {
	libs, _ := filepath.Glob(filepath.Join(dir, "*", "libonnxruntime.so*"))
	sort.Slice(libs, func(i, j int) bool { return versionLess(libs[i], libs[j]) })
	if len(libs) == 0 {
		return ""
	}
	return libs[len(libs)-1]
}

func versionLess(a, b string) bool {
	pa := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	pb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		var x, y int
		fmt.Sscan(pa[i], &x)
		fmt.Sscan(pb[i], &y)
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

var (
	initMu   sync.Mutex
	initLib  string
	initDone bool
)

// Init loads the ONNX Runtime library (see FindLibrary) once per process.
// Later calls return nil, or an error if they name a different library.
func Init(libFlag string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		if libFlag != "" && libFlag != initLib {
			return fmt.Errorf("onnx: ONNX Runtime already loaded from %s, cannot switch to %s", initLib, libFlag)
		}
		return nil
	}
	lib, err := FindLibrary(libFlag)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnx: loading ONNX Runtime from %s: %w", lib, err)
	}
	initLib, initDone = lib, true
	return nil
}

// Library is the path of the loaded ONNX Runtime library, or "" before Init.
func Library() string {
	initMu.Lock()
	defer initMu.Unlock()
	return initLib
}

// Version is the loaded ONNX Runtime's version.
func Version() string { return ort.GetVersion() }

// Device is where a session runs.
type Device string

// The devices a session can run on.
const (
	CPU  Device = "cpu"
	CUDA Device = "cuda"
)

// ParseDevice checks a --device value.
func ParseDevice(s string) (Device, error) {
	switch Device(strings.ToLower(s)) {
	case CPU, "":
		return CPU, nil
	case CUDA:
		return CUDA, nil
	}
	return "", fmt.Errorf("unknown device %q: want cpu or cuda", s)
}

// Options configures a session.
type Options struct {
	Device Device
	// Threads is the intra-op thread count; 0 means one per core.
	Threads int
	// CUDADevice is the GPU index for Device CUDA.
	CUDADevice int
	// TF32 lets CUDA MatMuls round their inputs to TensorFloat-32 (10-bit
	// mantissas), which is faster on Ampere and later GPUs. Off by
	// default, as in PyTorch, so that float32 means float32 on either
	// device.
	TF32 bool
	// CUDAGraph sets the CUDA provider's enable_cuda_graph: the session's
	// first run(s) are captured as a CUDA graph and later runs replay it,
	// without launching each kernel from the host. ONNX Runtime allows it
	// only for graphs whose every node runs on CUDA and whose shapes never
	// change (neox.BuildStep), run through a binding whose inputs and
	// outputs stay bound to the same device buffers (BoundSession,
	// DeviceTensor): a replay reads and writes the addresses captured.
	// Untested here (no GPU); ignored on CPU.
	CUDAGraph bool
	// Profile, if set, turns on ONNX Runtime's profiler: every node's run
	// time goes to a JSON file whose name starts with Profile, written when
	// the session is destroyed (see onnxbench.ProfileByOpType).
	Profile string
	// OptimizedModel, if set, is where ONNX Runtime writes the graph as it
	// runs it, after its own fusions, to inspect what it fused.
	OptimizedModel string
}

// Session is an ONNX Runtime session with fixed input and output names.
// Destroy it when done.
type Session struct {
	s       *ort.DynamicAdvancedSession
	Inputs  []string
	Outputs []string
}

// NewSession creates a session from a serialised model. model may instead be
// nil with path naming an .onnx file (which may use external data files).
func NewSession(model []byte, path string, inputs, outputs []string, o Options) (*Session, error) {
	if !ort.IsInitialized() {
		return nil, errors.New("onnx: ONNX Runtime is not loaded: call onnx.Init first")
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer so.Destroy()
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := sharedArena(); err != nil {
		return nil, err
	}
	if err := so.AddSessionConfigEntry("session.use_env_allocators", "1"); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("onnx: setting %d threads: %w", threads, err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("onnx: setting inter-op threads: %w", err)
	}
	if o.Profile != "" {
		if err := so.EnableProfiling(o.Profile); err != nil {
			return nil, fmt.Errorf("onnx: enabling the profiler: %w", err)
		}
	}
	if o.OptimizedModel != "" {
		if err := so.SetOptimizedModelFilePath(o.OptimizedModel); err != nil {
			return nil, fmt.Errorf("onnx: setting the optimized model path: %w", err)
		}
	}
	switch o.Device {
	case CPU, "":
	case CUDA:
		if err := appendCUDA(so, o); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("onnx: unknown device %q: want cpu or cuda", o.Device)
	}
	var s *ort.DynamicAdvancedSession
	if model != nil {
		s, err = ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, so)
	} else {
		s, err = ort.NewDynamicAdvancedSession(path, inputs, outputs, so)
	}
	if err != nil {
		where := "graph"
		if path != "" {
			where = path
		}
		return nil, fmt.Errorf("onnx: creating session for %s: %w", where, err)
	}
	return &Session{s: s, Inputs: inputs, Outputs: outputs}, nil
}

func appendCUDA(so *ort.SessionOptions, o Options) error {
	device := o.CUDADevice
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("onnx: device cuda: this ONNX Runtime (%s) has no CUDA provider: %w", Library(), err)
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": fmt.Sprint(device), "use_tf32": o.cudaTF32(), "enable_cuda_graph": o.cudaGraph()}); err != nil {
		return fmt.Errorf("onnx: device cuda: setting CUDA device %d: %w", device, err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("onnx: device cuda: the CUDA execution provider could not be loaded by %s "+
			"(it needs libonnxruntime_providers_cuda.so beside it, with CUDA and cuDNN on the library path): %w", Library(), err)
	}
	return nil
}

// cudaTF32 is the CUDA provider's use_tf32 value for o.
func (o Options) cudaTF32() string {
	if o.TF32 {
		return "1"
	}
	return "0"
}

// cudaGraph is the CUDA provider's enable_cuda_graph value for o.
func (o Options) cudaGraph() string {
	if o.CUDAGraph {
		return "1"
	}
	return "0"
}

// Run runs the session. inputs are in the order of s.Inputs. Outputs are
// allocated by ONNX Runtime and returned in the order of s.Outputs; the caller
// destroys them (see DestroyAll).
func (s *Session) Run(inputs ...ORTValue) ([]ORTValue, error) {
	outs := make([]ORTValue, len(s.Outputs))
	if err := s.s.Run(inputs, outs); err != nil {
		DestroyAll(outs...)
		return nil, err
	}
	return outs, nil
}

// RunInto runs the session writing into caller-allocated outputs. An output
// left nil is allocated by ONNX Runtime and stored back in outs.
func (s *Session) RunInto(inputs, outs []ORTValue) error {
	return s.s.Run(inputs, outs)
}

// Destroy releases the session.
func (s *Session) Destroy() {
	if s != nil && s.s != nil {
		s.s.Destroy()
		s.s = nil
	}
}

// DestroyAll destroys every non-nil value. A failed run can leave typed
// nil pointers among its outputs (onnxruntime_go stores the tensor it failed
// to wrap); those are skipped too.
func DestroyAll(vs ...ORTValue) {
	for _, v := range vs {
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// Float32Data returns the data of a float32 tensor output.
func Float32Data(v ORTValue) ([]float32, []int64, error) {
	t, ok := v.(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("onnx: output is %T, want a float32 tensor", v)
	}
	return t.GetData(), t.GetShape(), nil
}

// Int64Data returns the data of an int64 tensor output.
func Int64Data(v ORTValue) ([]int64, []int64, error) {
	t, ok := v.(*ort.Tensor[int64])
	if !ok {
		return nil, nil, fmt.Errorf("onnx: output is %T, want an int64 tensor", v)
	}
	return t.GetData(), t.GetShape(), nil
}

// TensorF32 wraps Go data as an input tensor without copying.
func TensorF32(data []float32, shape ...int64) (*ort.Tensor[float32], error) {
	return ort.NewTensor(ort.NewShape(shape...), data)
}

// TensorI64 wraps Go data as an input tensor without copying.
func TensorI64(data []int64, shape ...int64) (*ort.Tensor[int64], error) {
	return ort.NewTensor(ort.NewShape(shape...), data)
}

// IOInfo lists the input and output names of an .onnx file or serialised model.
func IOInfo(model []byte, path string) (inputs, outputs []string, err error) {
	var in, out []ort.InputOutputInfo
	if model != nil {
		in, out, err = ort.GetInputOutputInfoWithONNXData(model)
	} else {
		in, out, err = ort.GetInputOutputInfo(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: reading inputs and outputs of %s: %w", path, err)
	}
	for _, i := range in {
		inputs = append(inputs, i.Name)
	}
	for _, o := range out {
		outputs = append(outputs, o.Name)
	}
	return inputs, outputs, nil
}

// ORTValue is an ONNX Runtime value (a tensor), as onnxruntime_go defines it.
type ORTValue = ort.Value

// NewEmptyF32 allocates a zeroed float32 tensor in Go memory.
func NewEmptyF32(shape ...int64) (*ort.Tensor[float32], error) {
	return ort.NewEmptyTensor[float32](ort.NewShape(shape...))
}
