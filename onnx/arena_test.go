package onnx

import (
	"testing"
)

// Sessions share one CPU arena: a second session whose run needs as much
// scratch memory as the first's reuses the first's instead of growing the
// process by as much again, as a session's own arena would.
func TestSessionsShareOneArena(t *testing.T) {
	const n = 32 << 20 // 128 MiB of float32 scratch per run
	open := func(name string) *Session {
		g := NewGraph(name)
		x := g.Input("x", Float, 1)
		big := g.Op("Expand", []Value{x, g.ConstI64(n)})
		g.Output(g.ReduceSum(g.Exp(big), true), "y", Float, 1)
		model, err := g.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(model, "", []string{"x"}, []string{"y"}, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(s *Session) {
		in, _ := TensorF32([]float32{0}, 1)
		defer in.Destroy()
		outs, err := s.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		y, _, _ := Float32Data(outs[0])
		if y[0] != n {
			t.Fatalf("Σ exp(0) over %d = %v", n, y[0])
		}
		DestroyAll(outs...)
	}
	a, b := open("a"), open("b")
	defer a.Destroy()
	defer b.Destroy()
	run(a)
	before := rssKB(t)
	run(b)
	grew := rssKB(t) - before
	t.Logf("the second session's run grew RSS by %d KiB", grew)
	if grew > n*4/1024/4 {
		t.Errorf("the second session grew RSS by %d KiB, a quarter of its %d MiB scratch or more: it has an arena of its own", grew, n*4>>20)
	}
}

// A run that fails after ONNX Runtime made its outputs (here: a rank-0
// output, which onnxruntime_go cannot wrap) returns the error, not a panic
// from destroying what it could not wrap.
func TestFailedRunReturnsAnError(t *testing.T) {
	g := NewGraph("scalar")
	x := g.Input("x", Float, 2)
	g.Output(g.ReduceSum(x, false), "y", Float)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(model, "", []string{"x"}, []string{"y"}, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	in, _ := TensorF32([]float32{1, 2}, 2)
	defer in.Destroy()
	if _, err := s.Run(in); err == nil {
		t.Fatal("a rank-0 output ran; want onnxruntime_go's error")
	}
}
