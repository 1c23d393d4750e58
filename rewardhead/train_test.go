package rewardhead

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// heldOutAccuracy scores fresh rows drawn around the same w* and returns
// the fraction on the right side of threshold 0.
func heldOutAccuracy(h *Head, wStar []float64, shift float64) float64 {
	pos := plantedSet(901, "test-pos", wStar, 2000, shift, 1)
	neg := plantedSet(902, "test-neg", wStar, 2000, shift, -1)
	c := Classify(h.Score(pos), h.Score(neg), 0)
	return c.Accuracy().X
}

// TestRecovery plants a reward direction w* in synthetic features and
// checks that training recovers it: cosine > 0.95 with w* and held-out
// accuracy > 0.95 (a head along w* itself scores Φ(2) ≈ 0.977).
func TestRecovery(t *testing.T) {
	const d, shift = 64, 2.0
	cases := []struct {
		name string
		cfg  func(*TrainConfig)
		seed uint64
	}{
		{"asymmetric default", func(*TrainConfig) {}, 1},
		{"asymmetric default", func(*TrainConfig) {}, 2},
		{"asymmetric default", func(*TrainConfig) {}, 3},
		{"margin p=5 δ=5 ‖w‖≤1", func(c *TrainConfig) { c.Loss = Margin{P: 5, Delta: 5} }, 1},
		{"margin p=10 δ=10 ‖w‖≤1", func(c *TrainConfig) { c.Loss = Margin{P: 10, Delta: 10} }, 1},
		{"logistic ‖w‖≤1, 300 epochs", func(c *TrainConfig) { c.Loss = Logistic{}; c.Epochs = 300 }, 1},
	}
	for _, c := range cases {
		pos, neg, wStar := planted(c.seed, 1000, 1000, d, shift)
		cfg := DefaultTrainConfig()
		c.cfg(&cfg)
		res, err := Train(pos, neg, cfg)
		if err != nil {
			t.Fatal(err)
		}
		cos := cosine(res.Best.W, wStar)
		acc := heldOutAccuracy(res.Best, wStar, shift)
		t.Logf("%s seed %d: cosine %.4f, held-out accuracy %.4f", c.name, c.seed, cos, acc)
		if cos <= 0.95 || acc <= 0.95 {
			t.Errorf("%s seed %d: cosine %.4f, accuracy %.4f; want both > 0.95", c.name, c.seed, cos, acc)
		}
	}
}

func TestTrainDeterministicAndRecorded(t *testing.T) {
	pos, neg, _ := planted(4, 300, 200, 16, 1)
	cfg := DefaultTrainConfig()
	cfg.Epochs = 12
	var seen []EpochStats
	cfg.OnEpoch = func(h *Head, s EpochStats) error {
		seen = append(seen, s)
		if h.Epoch != s.Epoch {
			t.Errorf("head epoch %d with stats epoch %d", h.Epoch, s.Epoch)
		}
		return nil
	}
	a, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnEpoch = nil
	b, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Heads) != 12 || !reflect.DeepEqual(a.Stats, seen) {
		t.Fatalf("got %d heads and %d callbacks, want 12 each", len(a.Heads), len(seen))
	}
	for i := range a.Heads {
		if !reflect.DeepEqual(a.Heads[i].W, b.Heads[i].W) || a.Heads[i].B != b.Heads[i].B {
			t.Fatalf("epoch %d differs between runs with the same seed", i+1)
		}
	}
	cfg.Seed = 2
	c, _ := Train(pos, neg, cfg)
	if reflect.DeepEqual(a.Heads[11].W, c.Heads[11].W) {
		t.Error("a different seed gave the same head")
	}
	// Final selection returns the last head.
	if a.Best != a.Heads[11] {
		t.Error("default selection is not the final epoch")
	}
	muP, muN := pos.Mean(), neg.Mean()
	for i, h := range a.Heads {
		if n := norm(h.W); n > 1+1e-12 {
			t.Errorf("epoch %d: ‖w‖ = %v exceeds the bound 1", i+1, n)
		}
		// The bias puts reward 0 midway between the class mean rewards.
		mid := (dot(h.W, muP) + dot(h.W, muN)) / 2
		if math.Abs(mid+h.B) > 1e-9 {
			t.Errorf("epoch %d: b = %v, want %v", i+1, h.B, -mid)
		}
		if s := a.Stats[i]; math.Abs(s.Margin-(dot(h.W, muP)-dot(h.W, muN))) > 1e-9 || s.Pairs != 50*50 {
			t.Errorf("epoch %d: stats %+v inconsistent with the head", i+1, s)
		}
	}
}

func TestTrainSelectBest(t *testing.T) {
	pos, neg, _ := planted(5, 200, 200, 8, 1)
	cfg := DefaultTrainConfig()
	cfg.Epochs = 20
	cfg.Select = "best"
	res, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	best := 0
	for i, s := range res.Stats {
		if s.MonitorLoss < res.Stats[best].MonitorLoss {
			best = i
		}
	}
	if res.Best != res.Heads[best] {
		t.Errorf("selected epoch %d, lowest monitor loss is epoch %d", res.Best.Epoch, best+1)
	}
}

func TestTrainEarlyStop(t *testing.T) {
	pos, neg, _ := planted(6, 200, 200, 8, 3)
	cfg := DefaultTrainConfig()
	cfg.Epochs = 500
	cfg.LR = 0.05
	cfg.Epsilon = 1e-3
	res, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.Stats)
	if n == 500 || res.Stopped == "" {
		t.Fatalf("did not stop early (%d epochs)", n)
	}
	if d := math.Abs(res.Stats[n-1].MonitorLoss - res.Stats[n-2].MonitorLoss); d > cfg.Epsilon {
		t.Errorf("stopped with monitor-loss change %v > ε", d)
	}
	for i := 1; i < n-1; i++ {
		if d := math.Abs(res.Stats[i].MonitorLoss - res.Stats[i-1].MonitorLoss); d <= cfg.Epsilon {
			t.Errorf("epoch %d already met ε (change %v) but training went on", i+1, d)
		}
	}
}

func TestTrainBadInput(t *testing.T) {
	pos, neg, _ := planted(7, 20, 20, 8, 1)
	other, _, _ := planted(7, 20, 20, 9, 1)
	if _, err := Train(pos, other, DefaultTrainConfig()); err == nil || !strings.Contains(err.Error(), "dimension 8 vs 9") {
		t.Errorf("dimension mismatch: %v", err)
	}
	relabelled := *neg
	relabelled.Meta = map[string]string{"model": "synthetic", "layer": "5", "pool": "mean", "max_length": "64"}
	if _, err := Train(pos, &relabelled, DefaultTrainConfig()); err == nil || !strings.Contains(err.Error(), `layer="0" vs "5"`) {
		t.Errorf("metadata mismatch: %v", err)
	}
	cfg := DefaultTrainConfig()
	cfg.MaxNorm = 0
	if _, err := Train(pos, neg, cfg); err == nil || !strings.Contains(err.Error(), "unbounded") {
		t.Errorf("asymmetric loss without a norm bound: %v", err)
	}
	cfg = DefaultTrainConfig()
	cfg.Epochs, cfg.LR, cfg.Select = 0, -1, "worst"
	err := cfg.Validate()
	for _, want := range []string{"epochs 0", "lr -1", `select "worst"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	stop := errors.New("stop")
	cfg = DefaultTrainConfig()
	cfg.OnEpoch = func(*Head, EpochStats) error { return stop }
	if _, err := Train(pos, neg, cfg); !errors.Is(err, stop) {
		t.Errorf("OnEpoch error not returned: %v", err)
	}
}

// TestProjectGrad checks the gradient through the ball projection against
// finite differences of J(Π(v)) for J linear, J(w) = gᵀw.
func TestProjectGrad(t *testing.T) {
	v := []float64{1.5, -2, 0.5}
	g := []float64{0.3, 0.7, -1.1}
	f := func(v []float64) float64 {
		w := append([]float64(nil), v...)
		projectBall(w, 1)
		return dot(g, w)
	}
	got := append([]float64(nil), g...)
	projectGrad(v, 1, got)
	const h = 1e-6
	for j := range v {
		vp, vm := append([]float64(nil), v...), append([]float64(nil), v...)
		vp[j] += h
		vm[j] -= h
		if fd := (f(vp) - f(vm)) / (2 * h); math.Abs(fd-got[j]) > 1e-8 {
			t.Errorf("∂/∂v[%d] = %v, finite difference %v", j, got[j], fd)
		}
	}
}
