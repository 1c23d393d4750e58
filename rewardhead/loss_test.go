package rewardhead

import (
	"math"
	"math/rand/v2"
	"testing"
)

func allLosses() []Loss {
	return []Loss{Asymmetric{P: 2}, Asymmetric{P: 3.5}, Margin{P: 5, Delta: 5}, Margin{P: 10, Delta: 10}, Hinge{}, Logistic{}}
}

// kinks lists where a loss's derivative jumps, so finite differences can
// stay clear of them.
func kinks(l Loss) []float64 {
	switch l := l.(type) {
	case Asymmetric:
		return []float64{0}
	case Margin:
		return []float64{0, l.Delta}
	case Hinge:
		return []float64{1}
	}
	return nil
}

func TestLossDerivFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const h = 1e-6
	for _, l := range allLosses() {
		for k := 0; k < 200; k++ {
			x := rng.Float64()*30 - 15
			near := false
			for _, c := range kinks(l) {
				near = near || math.Abs(x-c) < 10*h
			}
			if near {
				continue
			}
			fd := (l.Value(x+h) - l.Value(x-h)) / (2 * h)
			if got := l.Deriv(x); math.Abs(got-fd) > 1e-6*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s%v: ℓ'(%v) = %v, finite difference %v", l.Name(), l.Params(), x, got, fd)
			}
		}
	}
}

func TestLossValuesByHand(t *testing.T) {
	cases := []struct {
		l       Loss
		x, want float64
	}{
		{Asymmetric{P: 2}, 3, -3},
		{Asymmetric{P: 2}, -3, 6},
		{Margin{P: 5, Delta: 5}, 7, 0},
		{Margin{P: 5, Delta: 5}, 2, 3},
		{Margin{P: 5, Delta: 5}, -1, 6 + 4},
		{Hinge{}, 0.25, 0.75},
		{Hinge{}, 2, 0},
		{Logistic{}, 0, math.Ln2},
		{Logistic{}, -800, 800}, // would overflow as −log σ(x) computed naively
		{Logistic{}, 800, 0},
	}
	for _, c := range cases {
		if got := c.l.Value(c.x); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s(%v) = %v, want %v", c.l.Name(), c.x, got, c.want)
		}
	}
	// At a kink the derivative takes the not-yet-satisfied side.
	if d := (Asymmetric{P: 2}).Deriv(0); d != -2 {
		t.Errorf("asymmetric ℓ'(0) = %v, want -2", d)
	}
	if d := (Hinge{}).Deriv(1); d != -1 {
		t.Errorf("hinge ℓ'(1) = %v, want -1", d)
	}
}

// TestPairObjectiveGradient checks the gradient of the mean pair loss in w,
// including the row/column-sum shortcut, against central differences.
func TestPairObjectiveGradient(t *testing.T) {
	const d = 7
	pos, neg, _ := planted(11, 9, 6, d, 0.7)
	rng := rand.New(rand.NewPCG(5, 6))
	pi := []int{0, 2, 3, 5, 8}
	nj := []int{1, 4, 5}
	for _, l := range allLosses() {
		w := make([]float64, d)
		for j := range w {
			w[j] = rng.NormFloat64()
		}
		// Scale w so pair differences straddle the loss's kinks.
		if m, ok := l.(Margin); ok {
			for j := range w {
				w[j] *= m.Delta / 3
			}
		}
		grad := make([]float64, d)
		PairObjective(l, w, pos, neg, pi, nj, grad)
		const h = 1e-6
		for j := range w {
			wp, wm := append([]float64(nil), w...), append([]float64(nil), w...)
			wp[j] += h
			wm[j] -= h
			fd := (PairObjective(l, wp, pos, neg, pi, nj, nil) - PairObjective(l, wm, pos, neg, pi, nj, nil)) / (2 * h)
			if math.Abs(grad[j]-fd) > 1e-5*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s: ∂J/∂w[%d] = %v, finite difference %v", l.Name(), j, grad[j], fd)
			}
		}
	}
}

func TestNewLoss(t *testing.T) {
	l, err := NewLoss("margin", 0, 0)
	if err != nil || l.(Margin) != (Margin{P: 5, Delta: 5}) {
		t.Errorf("margin defaults = %v, %v; want p=5 δ=5", l, err)
	}
	l, err = NewLoss("asymmetric", 0, 0)
	if err != nil || l.(Asymmetric) != (Asymmetric{P: 2}) {
		t.Errorf("asymmetric default = %v, %v; want p=2", l, err)
	}
	for _, bad := range []struct {
		name     string
		p, delta float64
	}{{"squared", 0, 0}, {"asymmetric", 0.5, 0}, {"margin", 5, -1}} {
		if _, err := NewLoss(bad.name, bad.p, bad.delta); err == nil {
			t.Errorf("NewLoss(%q, %v, %v) accepted", bad.name, bad.p, bad.delta)
		}
	}
}
