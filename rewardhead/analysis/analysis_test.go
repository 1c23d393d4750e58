package analysis

import (
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"irl/rewardhead"
)

func phi(x float64) float64 { return distuv.UnitNormal.CDF(x) }

func meta() map[string]string {
	return map[string]string{"model": "synthetic", "layer": "0", "pool": "mean", "max_length": "64"}
}

// features1D makes a one-column feature set.
func features1D(t testing.TB, name string, xs []float64) *rewardhead.Features {
	t.Helper()
	x := make([]float32, len(xs))
	for i, v := range xs {
		x[i] = float32(v)
	}
	f, err := rewardhead.NewFeatures(name, len(xs), 1, x, nil, meta())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// planted draws n rows per class of standard normal noise shifted by ±shift
// along a random unit vector.
func planted(t testing.TB, seed uint64, n, d int, shift float64) (pos, neg *rewardhead.Features) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	w := make([]float64, d)
	var s float64
	for j := range w {
		w[j] = rng.NormFloat64()
		s += w[j] * w[j]
	}
	mk := func(name string, sign float64) *rewardhead.Features {
		x := make([]float32, n*d)
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				x[i*d+j] = float32(rng.NormFloat64() + sign*shift*w[j]/math.Sqrt(s))
			}
		}
		f, err := rewardhead.NewFeatures(name, n, d, x, nil, meta())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	return mk("pos", 1), mk("neg", -1)
}

func constant(n int, v float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = v
	}
	return x
}

// TestScoreNoiseClosedForm uses rewards +1 (non-toxic) and −1 (toxic): with
// noise σ the expected accuracy at threshold 0 is Φ(1/σ) and the expected
// AUC is P(1 + σz₁ > −1 + σz₂) = Φ(√2/σ).
func TestScoreNoiseClosedForm(t *testing.T) {
	pos, neg := constant(3000, 1), constant(3000, -1)
	cfg := NoiseConfig{Sigmas: []float64{0, 0.5, 1, 2}, Repeats: 8, Seed: 3}
	res, err := ScoreNoise(pos, neg, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Points[0].Metrics; m["accuracy"].Mean.X != 1 || m["accuracy"].Std.X != 0 || m["kendall_tau_clean"].Mean.X != 1 {
		t.Errorf("σ = 0 changed the metrics: %+v", m)
	}
	for _, p := range res.Points[1:] {
		acc, auc := p.Metrics["accuracy"].Mean.X, p.Metrics["separation"].Mean.X
		if want := phi(1 / p.Sigma); math.Abs(acc-want) > 0.01 {
			t.Errorf("σ=%v: accuracy %.4f, want Φ(1/σ) = %.4f", p.Sigma, acc, want)
		}
		if want := phi(math.Sqrt2 / p.Sigma); math.Abs(auc-want) > 0.01 {
			t.Errorf("σ=%v: AUC %.4f, want Φ(√2/σ) = %.4f", p.Sigma, auc, want)
		}
	}
	again, _ := ScoreNoise(pos, neg, nil, nil, cfg)
	if !reflect.DeepEqual(res, again) {
		t.Error("same seed, different result")
	}
	if _, err := ScoreNoise(pos, neg, nil, nil, NoiseConfig{Sigmas: []float64{-1}, Repeats: 1}); err == nil {
		t.Error("negative σ accepted")
	}
}

// TestWeightNoiseClosedForm uses one feature, +1 for non-toxic rows and −1
// for toxic ones, and w = 1. Weight noise ε scales every score by 1 + ε, so
// a draw classifies all rows right when ε > −1 and all wrong otherwise:
// the expected accuracy is Φ(1/σ).
func TestWeightNoiseClosedForm(t *testing.T) {
	pos, neg := features1D(t, "pos", constant(5, 1)), features1D(t, "neg", constant(5, -1))
	h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: []float64{1}, Features: pos.Info()}
	res, err := WeightNoise(h, pos, neg, nil, nil, NoiseConfig{Sigmas: []float64{0.5, 1, 2}, Repeats: 4000, Seed: 1, Relative: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Points {
		if want := phi(1 / p.Sigma); math.Abs(p.Metrics["accuracy"].Mean.X-want) > 0.02 {
			t.Errorf("σ=%v: accuracy %.4f, want %.4f", p.Sigma, p.Metrics["accuracy"].Mean.X, want)
		}
		if p.Std != p.Sigma {
			t.Errorf("relative scale with rms(w) = 1 gave std %v for σ %v", p.Std, p.Sigma)
		}
	}
}

func TestDataRatio(t *testing.T) {
	pos, neg := planted(t, 1, 200, 8, 2)
	cfg := RatioConfig{Fractions: []float64{0.1, 0.5, 1}, Repeats: 2, Train: rewardhead.DefaultTrainConfig()}
	cfg.Train.Epochs = 30
	res, err := DataRatio(pos, neg, pos, neg, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range []int{20, 100, 200} {
		a, b := res.AddToxic[k], res.AddNonToxic[k]
		if a.NPos != 200 || a.NNeg != want || b.NPos != want || b.NNeg != 200 {
			t.Errorf("fraction %v: pools %d/%d and %d/%d", a.Fraction, a.NPos, a.NNeg, b.NPos, b.NNeg)
		}
		// Classes this far apart are learned even from 20 rows.
		if acc := a.Metrics["accuracy"].Mean.X; acc < 0.9 {
			t.Errorf("fraction %v: accuracy %v", a.Fraction, acc)
		}
	}
	if _, err := DataRatio(pos, neg, pos, neg, nil, nil, RatioConfig{Fractions: []float64{0}, Repeats: 1, Train: cfg.Train}); err == nil {
		t.Error("fraction 0 accepted")
	}
}

// TestEpochsGrouping uses two heads that differ only in bias. The higher
// bias calls fewer rows toxic: higher precision and specificity, lower
// recall. With two heads every z-score is ±1/√2, so it ties between
// precision and rewarding non-toxic (precision wins by order) and the
// other head penalises toxic.
func TestEpochsGrouping(t *testing.T) {
	pos := features1D(t, "pos", []float64{-0.5, 1, 2, 3})
	neg := features1D(t, "neg", []float64{-3, -2, -1, 0.5})
	mk := func(b float64, epoch int) *rewardhead.Head {
		return &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: []float64{1}, B: b, Epoch: epoch, Features: pos.Info()}
	}
	// b = +1.5 calls ≤ −1.5 toxic: TP 2, FP 0 → precision 1, recall ½, spec 1.
	// b = −1.5 calls ≤ 1.5 toxic: TP 4, FP 2 → precision ⅔, recall 1, spec ½.
	res, err := Epochs([]*rewardhead.Head{mk(1.5, 1), mk(-1.5, 2)}, []string{"e1", "e2"}, pos, neg, nil, nil, rewardhead.Threshold{})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Groups; !reflect.DeepEqual(g[GroupPrecision], []string{"e1"}) || !reflect.DeepEqual(g[GroupToxic], []string{"e2"}) {
		t.Errorf("groups %v", g)
	}
	if z := res.Heads[0].Emphasis[GroupPrecision]; math.Abs(z-1/math.Sqrt2) > 1e-12 {
		t.Errorf("z = %v, want 1/√2", z)
	}
	if p := res.Heads[1].Metrics["precision"].X; math.Abs(p-2.0/3) > 1e-12 {
		t.Errorf("precision of e2 = %v, want 2/3", p)
	}
	// The ensemble has b = 0: TP 3, FP 1.
	if p := res.Ensemble.Metrics["precision"].X; math.Abs(p-0.75) > 1e-12 {
		t.Errorf("ensemble precision %v, want 3/4", p)
	}
	if s := res.Spread["recall"]; math.Abs(s.Mean.X-0.75) > 1e-12 {
		t.Errorf("recall spread %+v", s)
	}
	one, err := Epochs([]*rewardhead.Head{mk(0, 1)}, []string{"only"}, pos, neg, nil, nil, rewardhead.Threshold{})
	if err != nil || one.Heads[0].Group != GroupNone {
		t.Errorf("single head: %v %+v", err, one)
	}
	other := mk(0, 3)
	other.Features.Layer = "9"
	if _, err := Epochs([]*rewardhead.Head{other}, []string{"x"}, pos, neg, nil, nil, rewardhead.Threshold{}); err == nil || !strings.Contains(err.Error(), "layer") {
		t.Errorf("head on other features: %v", err)
	}
}

func TestPerturbByHand(t *testing.T) {
	orig := features1D(t, "orig", []float64{1, 2, 3})
	probe := features1D(t, "probe", []float64{1.5, 2, 2})
	h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: []float64{2}, Features: orig.Info()}
	res, err := Perturb(h, "h.json", orig, []ProbeSet{{Name: "p", Features: probe}})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Probes[0]
	// Δ = 2·(0.5, 0, −1) = (1, 0, −2).
	if !reflect.DeepEqual(s.Deltas, []float64{1, 0, -2}) || math.Abs(s.MeanDelta+1.0/3) > 1e-12 || s.MedianDelta != 0 ||
		s.MinDelta != -2 || s.MaxDelta != 1 || math.Abs(s.FracUp-1.0/3) > 1e-12 || math.Abs(s.StdDelta-math.Sqrt(7.0/3)) > 1e-12 {
		t.Errorf("summary %+v", s)
	}
	short := features1D(t, "short", []float64{1, 2})
	if _, err := Perturb(h, "h.json", orig, []ProbeSet{{Name: "s", Features: short}}); err == nil || !strings.Contains(err.Error(), "row-aligned") {
		t.Errorf("misaligned probe: %v", err)
	}
	orig.Rows, probe.Rows = []int64{1, 2, 3}, []int64{1, 3, 2}
	if _, err := Perturb(h, "h.json", orig, []ProbeSet{{Name: "p", Features: probe}}); err == nil || !strings.Contains(err.Error(), "row 1 is source row 3") {
		t.Errorf("reordered probe: %v", err)
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("%s: %v is too small", path, b)
	}
}

func TestPlotsWritePNGs(t *testing.T) {
	dir := t.TempDir()
	pos, neg := []float64{1, 2, 2.5, 3, 0.2}, []float64{-1, -2, 0.5, -0.3}
	r := rewardhead.Evaluate(pos, neg, []float64{1, 1, 2, 3, -1}, []float64{-2, -1, 1, -1}, rewardhead.Threshold{})
	paths, err := EvalPlots(dir, r, pos, neg, []float64{1, 1, 2, 3, -1}, []float64{-2, -1, 1, -1})
	if err != nil {
		t.Fatal(err)
	}
	// The three panels on their own, and figure1.png with all of them.
	if len(paths) != 4 || filepath.Base(paths[3]) != "figure1.png" {
		t.Fatalf("wrote %v", paths)
	}
	for _, p := range paths {
		checkPNG(t, p)
	}
	// Constant rewards still draw.
	if err := PlotDistributions(filepath.Join(dir, "const.png"), []float64{1, 1}, []float64{1}, 0); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "const.png"))
	noise, err := ScoreNoise(pos, neg, nil, nil, NoiseConfig{Sigmas: []float64{0, 1}, Repeats: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := noise.Plot(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, p)
}

func TestKDEIntegratesToOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	x := make([]float64, 500)
	for i := range x {
		x[i] = rng.NormFloat64()*2 + 1
	}
	at, d := KDE(x, 400)
	var area float64
	for i := 1; i < len(at); i++ {
		area += (at[i] - at[i-1]) * (d[i] + d[i-1]) / 2
	}
	if math.Abs(area-1) > 0.01 {
		t.Errorf("KDE integrates to %v", area)
	}
}

func TestParseGrid(t *testing.T) {
	g, err := ParseGrid("0:0.25:1")
	if err != nil || !reflect.DeepEqual(g, []float64{0, 0.25, 0.5, 0.75, 1}) {
		t.Errorf("range: %v %v", g, err)
	}
	g, err = ParseGrid("0.1, 0.5,2")
	if err != nil || !reflect.DeepEqual(g, []float64{0.1, 0.5, 2}) {
		t.Errorf("list: %v %v", g, err)
	}
	for _, bad := range []string{"", "1,x", "1:0:2", "2:1:1", "1,,2"} {
		if _, err := ParseGrid(bad); err == nil {
			t.Errorf("ParseGrid(%q) accepted", bad)
		}
	}
}
