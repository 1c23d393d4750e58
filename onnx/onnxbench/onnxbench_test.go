package onnxbench

import (
	"strings"
	"testing"
	"time"

	"irl/onnx"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		panic(err)
	}
	m.Run()
}

func mustF32(t *testing.T, data []float32, shape ...int64) onnx.ORTValue {
	t.Helper()
	v, err := onnx.TensorF32(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// affine is y = x·W + b with x [batch, 8], b [16], and r = Relu(y).
func affine(t testing.TB) *onnx.Graph {
	t.Helper()
	g := onnx.NewGraph("affine")
	x := g.Input("x", onnx.Float, "batch", 8)
	b := g.Input("b", onnx.Float, 16)
	w := g.Initializer("w", []int{8, 16}, randomF32(8*16, 21))
	y := g.Add(g.MatMul(x, w), b)
	g.Output(y, "y", onnx.Float, "batch", 16)
	g.Output(g.Op("Relu", []onnx.Value{y}), "r", onnx.Float, "batch", 16)
	return g
}

// The profiler's file sums by operator type: every node of the graph that
// ran shows up, with its calls.
func TestProfileByOpType(t *testing.T) {
	g := onnx.NewGraph("prof")
	x := g.Input("x", onnx.Float, 4, 8)
	y := g.Softmax(g.MatMul(x, g.ConstF32([]int{8, 8}, randomF32(64, 1))), -1)
	g.Output(g.GeluMS(y), "y", onnx.Float, 4, 8)
	prefix := t.TempDir() + "/p"
	s, err := onnx.NewGraphSession(g, []string{"x"}, []string{"y"}, onnx.Options{Threads: 1, Profile: prefix})
	if err != nil {
		t.Fatal(err)
	}
	in := mustF32(t, randomF32(32, 2), 4, 8)
	for i := 0; i < 3; i++ {
		outs, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		onnx.DestroyAll(outs...)
	}
	s.Destroy()
	ops, file, err := ProfileByOpType(prefix)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, o := range ops {
		calls[o.Op] = o.Calls
	}
	for _, op := range []string{"MatMul", "Softmax", "Gelu"} {
		if calls[op] < 3 {
			t.Errorf("%s: %d calls in %s, want 3 at least (%v)", op, calls[op], file, calls)
		}
	}
	if !strings.Contains(FormatProfile(ops), "Softmax") {
		t.Error("the table leaves out an operator")
	}
}

// A bound session's profiler writes every node's time when the session is
// released, as an unbound one's does.
func TestBoundProfile(t *testing.T) {
	prefix := t.TempDir() + "/p"
	s, err := onnx.NewBoundGraphSession(affine(t), onnx.Options{Threads: 1, Profile: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.NewBinding()
	x, _ := onnx.NewHostTensorF32(randomF32(16, 3), 2, 8)
	bias, _ := onnx.NewHostTensorF32(randomF32(16, 4), 16)
	b.BindInput("x", x)
	b.BindInput("b", bias)
	b.BindOutputToDevice("y", nil)
	for i := 0; i < 3; i++ {
		if err := b.Run(); err != nil {
			t.Fatal(err)
		}
	}
	b.Destroy()
	x.Destroy()
	bias.Destroy()
	s.Destroy()
	ops, file, err := ProfileByOpType(prefix)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, o := range ops {
		calls[o.Op] = o.Calls
	}
	if calls["Relu"] < 3 {
		t.Errorf("Relu: %d calls in %s, want 3 at least (%v)", calls["Relu"], file, calls)
	}
}

func BenchmarkMatMulPeak(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f, err := MatMulBestPeak(onnx.Options{}, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(f/1e9, "GFLOP/s")
	}
}
