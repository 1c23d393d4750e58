package rewardhead

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestProbeObjectiveGradient(t *testing.T) {
	pos, neg, _ := planted(21, 13, 17, 5, 0.8)
	obj := &probeObjective{pos: pos, neg: neg, l2: 0.3}
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, 6)
	for j := range x {
		x[j] = rng.NormFloat64()
	}
	g := make([]float64, 6)
	obj.eval(x, g)
	const h = 1e-6
	for j := range x {
		xp, xm := append([]float64(nil), x...), append([]float64(nil), x...)
		xp[j] += h
		xm[j] -= h
		fd := (obj.eval(xp, nil) - obj.eval(xm, nil)) / (2 * h)
		if math.Abs(fd-g[j]) > 1e-7 {
			t.Errorf("∂/∂x[%d] = %v, finite difference %v", j, g[j], fd)
		}
	}
}

// TestProbeByHand fits one binary feature, where the unpenalised MLE is the
// log-odds of each group: P(toxic | x=0) = 1/4, P(toxic | x=1) = 3/4, so
// c = logit(1/4) = −ln 3 and v = logit(3/4) − logit(1/4) = 2 ln 3, and the
// head is R* = −(v·x + c).
func TestProbeByHand(t *testing.T) {
	pos, err := NewFeatures("pos", 4, 1, []float32{0, 0, 0, 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	neg, _ := NewFeatures("neg", 4, 1, []float32{0, 1, 1, 1}, nil, nil)
	res, err := TrainProbe(pos, neg, ProbeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ln3 := math.Log(3)
	if h := res.Head; math.Abs(h.W[0]+2*ln3) > 1e-7 || math.Abs(h.B-ln3) > 1e-7 {
		t.Errorf("w = %v, b = %v; want %v, %v", h.W[0], h.B, -2*ln3, ln3)
	}
	// NLL at the MLE: each group has entropy H(1/4) nats per row.
	wantNLL := -(0.25*math.Log(0.25) + 0.75*math.Log(0.75))
	if math.Abs(res.NLL-wantNLL) > 1e-9 {
		t.Errorf("nll %v, want %v", res.NLL, wantNLL)
	}
}

func TestProbeRecoversPlantedDirection(t *testing.T) {
	const shift = 2.0
	pos, neg, wStar := planted(22, 1000, 1000, 32, shift)
	res, err := TrainProbe(pos, neg, ProbeConfig{L2: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	cos := cosine(res.Head.W, wStar)
	acc := heldOutAccuracy(res.Head, wStar, shift)
	t.Logf("probe: cosine %.4f, held-out accuracy %.4f, %d iterations", cos, acc, res.Iterations)
	if cos <= 0.95 || acc <= 0.95 {
		t.Errorf("probe cosine %.4f, accuracy %.4f; want > 0.95", cos, acc)
	}
	if res.Head.Kind != KindProbe || res.Head.Features.Model != "synthetic" {
		t.Errorf("probe head %+v", res.Head)
	}
}

// TestProbePenalty checks that the fit is a stationary point of the
// penalised objective (whose gradient is checked above) and that a larger
// penalty shrinks the weights, on separable data where only the penalty
// keeps them finite.
func TestProbePenalty(t *testing.T) {
	pos, _ := NewFeatures("pos", 3, 2, []float32{1, 0.5, 2, -0.3, 1.5, 0}, nil, nil)
	neg, _ := NewFeatures("neg", 3, 2, []float32{-1, 0.2, -2, 0.1, -0.5, -0.4}, nil, nil)
	prev := math.Inf(1)
	for _, l2 := range []float64{0.01, 0.1, 1} {
		res, err := TrainProbe(pos, neg, ProbeConfig{L2: l2})
		if err != nil {
			t.Fatal(err)
		}
		x := append([]float64{-res.Head.W[0], -res.Head.W[1]}, -res.Head.B)
		g := make([]float64, 3)
		(&probeObjective{pos: pos, neg: neg, l2: l2}).eval(x, g)
		for j, v := range g {
			if math.Abs(v) > 1e-7 {
				t.Errorf("l2=%v: gradient[%d] = %v at the fit", l2, j, v)
			}
		}
		n := norm(res.Head.W)
		if n >= prev {
			t.Errorf("l2=%v: ‖w‖ = %v did not shrink from %v", l2, n, prev)
		}
		prev = n
	}
	if _, err := TrainProbe(pos, neg, ProbeConfig{L2: -1}); err == nil || !strings.Contains(err.Error(), "l2") {
		t.Errorf("negative l2: %v", err)
	}
}

// TestProbeObjectiveParallel checks the multi-worker objective against a
// direct single-pass computation, on enough rows to be split.
func TestProbeObjectiveParallel(t *testing.T) {
	pos, neg, _ := planted(23, 1500, 1500, 64, 0.5)
	obj := &probeObjective{pos: pos, neg: neg, l2: 0.01}
	rng := rand.New(rand.NewPCG(2, 2))
	x := make([]float64, 65)
	for j := range x {
		x[j] = 0.1 * rng.NormFloat64()
	}
	g := make([]float64, 65)
	f := obj.eval(x, g)
	var want float64
	wantG := make([]float64, 65)
	for i := 0; i < pos.N+neg.N; i++ {
		row, y := obj.row(i)
		z := x[64]
		for j, v := range row {
			z += x[j] * float64(v)
		}
		p := 1 / (1 + math.Exp(-z))
		want -= y*math.Log(p) + (1-y)*math.Log(1-p)
		for j, v := range row {
			wantG[j] += (p - y) * float64(v)
		}
		wantG[64] += p - y
	}
	n := float64(pos.N + neg.N)
	want /= n
	for j := 0; j < 64; j++ {
		want += 0.005 * x[j] * x[j]
		wantG[j] = wantG[j]/n + 0.01*x[j]
	}
	wantG[64] /= n
	if math.Abs(f-want) > 1e-12 {
		t.Errorf("objective %v, direct %v", f, want)
	}
	for j := range g {
		if math.Abs(g[j]-wantG[j]) > 1e-12 {
			t.Fatalf("gradient[%d] %v, direct %v", j, g[j], wantG[j])
		}
	}
}
