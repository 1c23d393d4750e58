package optim

import (
	"math"
	"slices"
	"testing"
)

func TestClipGradNormHand(t *testing.T) {
	// Gradients (3, 4) and (12): norm sqrt(9+16+144) = 13. Clipping to 6.5
	// scales by 6.5/(13+1e-6) ≈ 1/2, giving (1.5, 2) and (6).
	a := &Param{Name: "a", Data: make([]float32, 2), Grad: []float32{3, 4}}
	b := &Param{Name: "b", Data: make([]float32, 1), Grad: []float32{12}}
	ps := []*Param{a, b}
	if n := GradNorm(ps); n != 13 {
		t.Errorf("GradNorm = %v, want 13", n)
	}
	if n := ClipGradNorm(ps, 6.5); n != 13 {
		t.Errorf("ClipGradNorm returned %v, want the pre-clip norm 13", n)
	}
	coef := 6.5 / (13 + 1e-6)
	for _, c := range []struct {
		got  float32
		want float64
	}{{a.Grad[0], 3 * coef}, {a.Grad[1], 4 * coef}, {b.Grad[0], 12 * coef}} {
		if float64(c.got) != float64(float32(c.want)) {
			t.Errorf("clipped gradient %v, want %v", c.got, float32(c.want))
		}
	}
	if n := GradNorm(ps); math.Abs(n-6.5) > 1e-5 {
		t.Errorf("norm after clipping %v, want 6.5", n)
	}

	// Below the limit the gradients are left exactly as they are.
	a.Grad = []float32{3, 4}
	b.Grad = []float32{12}
	if n := ClipGradNorm(ps, 20); n != 13 {
		t.Errorf("ClipGradNorm(20) returned %v, want 13", n)
	}
	if !slices.Equal(a.Grad, []float32{3, 4}) || b.Grad[0] != 12 {
		t.Errorf("gradients changed below the limit: %v %v", a.Grad, b.Grad)
	}
}

func TestGradNormLarge(t *testing.T) {
	// Many chunks: the chunked float64 sum agrees with a plain float64 sum.
	ps := bigParams(3, 4*chunkSize+3, 7, chunkSize+1)
	var s float64
	for _, p := range ps {
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
	}
	if got, want := GradNorm(ps), math.Sqrt(s); math.Abs(got-want) > 1e-12*want {
		t.Errorf("GradNorm = %.17g, plain sum gives %.17g", got, want)
	}
}

func TestClipGradNormNonFinite(t *testing.T) {
	p := &Param{Name: "a", Data: make([]float32, 3), Grad: []float32{1, float32(math.NaN()), 2}}
	if n := ClipGradNorm([]*Param{p}, 1); !math.IsNaN(n) {
		t.Errorf("norm %v, want NaN", n)
	}
	if p.Grad[0] != 1 || p.Grad[2] != 2 {
		t.Errorf("gradients scaled despite a NaN norm: %v", p.Grad)
	}
	p.Grad[1] = float32(math.Inf(-1))
	if n := ClipGradNorm([]*Param{p}, 1); !math.IsInf(n, 1) {
		t.Errorf("norm %v, want +Inf", n)
	}
	mustPanic(t, "max norm 0", func() { ClipGradNorm([]*Param{p}, 0) })
}
