package onnx

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if err := Init(""); err != nil {
		// Tests need the library; make test fetches it. Failing loudly beats
		// skipping: a skipped parity test proves nothing.
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// A small graph checked against a hand computation: softmax(x·W + b).
func TestGraphMatchesHandComputation(t *testing.T) {
	g := NewGraph("t")
	x := g.Input("x", Float, "batch", 3)
	w := g.Initializer("w", []int{3, 2}, []float32{1, 0, 0, 1, 1, 1})
	b := g.Initializer("b", []int{2}, []float32{0.5, -0.5})
	y := g.Softmax(g.Add(g.MatMul(x, w), b), -1)
	g.Output(y, "y", Float, "batch", 2)
	g.Output(g.GELU(x), "gelu", Float, "batch", 3)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, "", []string{"x"}, []string{"y", "gelu"}, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	xs := []float32{1, 2, 3, -1, 0.5, 0}
	in, _ := TensorF32(xs, 2, 3)
	defer in.Destroy()
	outs, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	defer DestroyAll(outs...)
	got, shape, _ := Float32Data(outs[0])
	if shape[0] != 2 || shape[1] != 2 {
		t.Fatalf("shape %v", shape)
	}
	for r := 0; r < 2; r++ {
		z0 := float64(xs[3*r]+xs[3*r+2]) + 0.5
		z1 := float64(xs[3*r+1]+xs[3*r+2]) - 0.5
		p0 := 1 / (1 + math.Exp(z1-z0))
		if math.Abs(float64(got[2*r])-p0) > 1e-6 || math.Abs(float64(got[2*r+1])-(1-p0)) > 1e-6 {
			t.Errorf("row %d: got %v, want %v %v", r, got[2*r:2*r+2], p0, 1-p0)
		}
	}
	gl, _, _ := Float32Data(outs[1])
	for i, v := range xs {
		want := 0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2))
		if math.Abs(float64(gl[i])-want) > 1e-6 {
			t.Errorf("gelu(%v) = %v, want %v", v, gl[i], want)
		}
	}
}

func rssKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Sessions, tensors and outputs created and destroyed in a loop must not grow
// the process: every ORT object is released.
func TestSessionLoopMemoryFlat(t *testing.T) {
	const n = 64
	g := NewGraph("loop")
	x := g.Input("x", Float, "b", n)
	w := g.Initializer("w", []int{n, n}, randomF32(n*n, 3))
	g.Output(g.Softmax(g.MatMul(x, w), -1), "y", Float, "b", n)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cycle := func() {
		s, err := NewSession(model, "", []string{"x"}, []string{"y"}, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		in, _ := TensorF32(randomF32(8*n, 4), 8, n)
		outs, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		DestroyAll(outs...)
		in.Destroy()
		s.Destroy()
	}
	for i := 0; i < 50; i++ { // reach steady state: allocator arenas, Go heap
		cycle()
	}
	runtime.GC()
	before := rssKB(t)
	for i := 0; i < 400; i++ {
		cycle()
	}
	runtime.GC()
	after := rssKB(t)
	// A leaked session holds its 16 KiB weights plus ORT's per-session state
	// (well over 100 KiB), so 400 leaks would add tens of MiB.
	if after-before > 8*1024 {
		t.Errorf("RSS grew from %d KiB to %d KiB over 400 sessions", before, after)
	}
	t.Logf("RSS %d KiB -> %d KiB", before, after)
}

func TestCUDAUnavailableIsAnError(t *testing.T) {
	g := NewGraph("c")
	x := g.Input("x", Float, 1)
	g.Output(g.Neg(x), "y", Float, 1)
	model, _ := g.Marshal()
	s, err := NewSession(model, "", []string{"x"}, []string{"y"}, Options{Device: CUDA})
	if err == nil {
		// This library has a CUDA provider and a GPU: then it must run.
		defer s.Destroy()
		in, _ := TensorF32([]float32{2}, 1)
		defer in.Destroy()
		outs, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		DestroyAll(outs...)
		return
	}
	if !strings.Contains(err.Error(), "cuda") {
		t.Errorf("error does not mention cuda: %v", err)
	}
}

func TestParseDevice(t *testing.T) {
	if _, err := ParseDevice("tpu"); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("want an error naming the device, got %v", err)
	}
	if d, err := ParseDevice("CUDA"); err != nil || d != CUDA {
		t.Errorf("got %v %v", d, err)
	}
}

func TestFindLibraryOrder(t *testing.T) {
	t.Setenv(LibraryEnv, "/nonexistent/libonnxruntime.so")
	if _, err := FindLibrary(""); err == nil || !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("a bad %s must be an error naming it, got %v", LibraryEnv, err)
	}
	if _, err := FindLibrary("/nope.so"); err == nil || !strings.Contains(err.Error(), "ort_lib") {
		t.Errorf("a bad --ort-lib must be an error naming it, got %v", err)
	}
	lib := Library()
	if got, err := FindLibrary(lib); err != nil || got != lib {
		t.Errorf("the flag must win: got %q, %v", got, err)
	}
}

// A graph past the inline limit goes to ONNX Runtime through a file with
// external data and computes the same.
func TestGraphSessionThroughFile(t *testing.T) {
	build := func() *Graph {
		g := NewGraph("big")
		x := g.Input("x", Float, 1, 300)
		w := g.Initializer("w", []int{300, 2}, randomF32(600, 9))
		g.Output(g.MatMul(x, w), "y", Float, 1, 2)
		return g
	}
	in, _ := TensorF32(randomF32(300, 10), 1, 300)
	defer in.Destroy()
	var got [][]float32
	for _, limit := range []int64{1 << 30, 100} {
		old := inlineLimit
		inlineLimit = limit
		s, err := NewGraphSession(build(), []string{"x"}, []string{"y"}, Options{Threads: 1})
		inlineLimit = old
		if err != nil {
			t.Fatal(err)
		}
		outs, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		v, _, _ := Float32Data(outs[0])
		got = append(got, v)
		DestroyAll(outs...)
		s.Destroy()
	}
	if got[0][0] != got[1][0] || got[0][1] != got[1][1] {
		t.Errorf("inline %v, through a file %v", got[0], got[1])
	}
}

// randomF32 is n standard normal draws from seed.
func randomF32(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}
