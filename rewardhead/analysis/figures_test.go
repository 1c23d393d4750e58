package analysis

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/rewardhead"
)

// pngSize decodes the PNG at path and returns its size.
func pngSize(t *testing.T, path string) (w, h int) {
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
	return img.Bounds().Dx(), img.Bounds().Dy()
}

// The ratio JSON carries, per point, the rows of each class trained on,
// and they are the fraction of the varied pool (rounded up) beside the
// whole fixed pool.
func TestRatioPlotCounts(t *testing.T) {
	pos, neg := planted(t, 4, 120, 6, 2)
	neg = neg.Subset(seq(90)) // pools of different sizes, so the sides differ
	cfg := RatioConfig{Fractions: []float64{0.01, 0.25, 0.5, 1}, Repeats: 1, Train: rewardhead.DefaultTrainConfig()}
	cfg.Train.Epochs = 5
	res, err := DataRatio(pos, neg, pos, neg, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ratio.json")
	if err := WriteJSON(path, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type point struct {
		Fraction float64                    `json:"fraction"`
		NPos     *int                       `json:"n_pos_train"`
		NNeg     *int                       `json:"n_neg_train"`
		NVaried  *int                       `json:"n_varied"`
		Metrics  map[string]json.RawMessage `json:"metrics"`
	}
	var got struct {
		AddToxic    []point `json:"add_toxic"`
		AddNonToxic []point `json:"add_non_toxic"`
		PoolPos     int     `json:"pool_pos"`
		PoolNeg     int     `json:"pool_neg"`
		Repeats     *int    `json:"repeats"`
		Subsets     *string `json:"subsets"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.PoolPos != 120 || got.PoolNeg != 90 || got.Repeats == nil || got.Subsets == nil {
		t.Fatalf("pools %d/%d, repeats %v, subsets %v", got.PoolPos, got.PoolNeg, got.Repeats, got.Subsets)
	}
	want := func(f float64, pool int) int { return max(1, int(math.Ceil(f*float64(pool)))) }
	for _, side := range []struct {
		name          string
		pts           []point
		pool, fixed   int
		variedIsToxic bool
	}{{"add_toxic", got.AddToxic, 90, 120, true}, {"add_non_toxic", got.AddNonToxic, 120, 90, false}} {
		if len(side.pts) != len(cfg.Fractions) {
			t.Fatalf("%s: %d points", side.name, len(side.pts))
		}
		for k, p := range side.pts {
			if p.NPos == nil || p.NNeg == nil || p.NVaried == nil || p.Metrics["precision"] == nil {
				t.Fatalf("%s point %d lacks a key: %+v", side.name, k, p)
			}
			varied, fixed := *p.NNeg, *p.NPos
			if !side.variedIsToxic {
				varied, fixed = *p.NPos, *p.NNeg
			}
			if w := want(p.Fraction, side.pool); varied != w || *p.NVaried != w || fixed != side.fixed {
				t.Errorf("%s at fraction %v: varied %d (n_varied %d), fixed %d; want %d of %d, fixed %d",
					side.name, p.Fraction, varied, *p.NVaried, fixed, w, side.pool, side.fixed)
			}
		}
	}
	// 1% of 90 rows rounds up to one row, not zero.
	if n := *got.AddToxic[0].NVaried; n != 1 {
		t.Errorf("1%% of 90 toxic rows gave %d", n)
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// figure1.png and ratio.png are single PNGs of side-by-side panels, so
// wider than tall.
func TestPlotMultiPanel(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	pos, neg := make([]float64, 80), make([]float64, 60)
	gtPos, gtNeg := make([]float64, 80), make([]float64, 60)
	for i := range pos {
		gtPos[i] = rng.NormFloat64() + 1
		pos[i] = gtPos[i] + 0.5*rng.NormFloat64()
	}
	for i := range neg {
		gtNeg[i] = rng.NormFloat64() - 1
		neg[i] = gtNeg[i] + 0.5*rng.NormFloat64()
	}
	r := rewardhead.Evaluate(pos, neg, gtPos, gtNeg, rewardhead.Threshold{})
	withGT := filepath.Join(dir, "figure1.png")
	if err := Figure1(withGT, r, pos, neg, gtPos, gtNeg); err != nil {
		t.Fatal(err)
	}
	noGT := filepath.Join(dir, "figure1_no_gt.png")
	if err := Figure1(noGT, rewardhead.Evaluate(pos, neg, nil, nil, rewardhead.Threshold{}), pos, neg, nil, nil); err != nil {
		t.Fatal(err)
	}
	w3, h3 := pngSize(t, withGT)
	w2, h2 := pngSize(t, noGT)
	if w3 <= 2*h3 || w2 <= h2 || w3 <= w2 {
		t.Errorf("figure1 %d×%d with ground truth (three panels), %d×%d without (two)", w3, h3, w2, h2)
	}

	fp, fn := planted(t, 2, 60, 4, 2)
	cfg := RatioConfig{Fractions: []float64{0.2, 1}, Repeats: 2, Train: rewardhead.DefaultTrainConfig()}
	cfg.Train.Epochs = 5
	gp, gn := make([]float64, 60), make([]float64, 60)
	for i := range gp {
		gp[i], gn[i] = float64(fp.Row(i)[0]), float64(fn.Row(i)[0])
	}
	res, err := DataRatio(fp, fn, fp, fn, gp, gn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path, err := res.Plot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "ratio.png" {
		t.Errorf("ratio plot at %s", path)
	}
	if w, h := pngSize(t, path); w <= h {
		t.Errorf("ratio.png is %d×%d, want two panels side by side", w, h)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "ratio_*.png")); len(m) != 0 {
		t.Errorf("per-direction ratio files are back: %v", m)
	}
}

func TestOneClassWarning(t *testing.T) {
	pos, neg := []float64{1, 2, 3}, []float64{-1, -2, 0.5}
	if w := OneClassWarning(rewardhead.Evaluate(pos, neg, nil, nil, rewardhead.Threshold{})); w != "" {
		t.Errorf("warning on a threshold that splits the rows: %s", w)
	}
	for _, c := range []struct {
		thr   rewardhead.Threshold
		class string
	}{
		{rewardhead.Threshold{Rule: "value", Value: 10}, "all 6 rows toxic"},
		{rewardhead.Threshold{Rule: "value", Value: -10}, "all 6 rows non-toxic"},
	} {
		w := OneClassWarning(rewardhead.Evaluate(pos, neg, nil, nil, c.thr))
		if !strings.HasPrefix(w, "warning:") || !strings.Contains(w, c.class) {
			t.Errorf("threshold %v: warning %q, want one saying %q", c.thr.Value, w, c.class)
		}
	}
	// A head that ranks the classes backwards: no cut beats calling every
	// row toxic, so best-f1 does that.
	r := rewardhead.Evaluate(neg, pos, nil, nil, rewardhead.Threshold{Rule: "best-f1"})
	if w := OneClassWarning(r); !strings.Contains(w, "toxic") || !strings.Contains(w, "best-f1") {
		t.Errorf("best-f1 on a reversed head (confusion %+v): warning %q", r.Confusion, w)
	}
}

// TestPlotGallery draws every plot of the package from one synthetic
// data set, for looking at: set IRL_PLOT_DIR to keep them there.
func TestPlotGallery(t *testing.T) {
	dir := os.Getenv("IRL_PLOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	rng := rand.New(rand.NewPCG(1, 1))
	fp, fn := planted(t, 1, 200, 8, 1)
	gtPos, gtNeg := make([]float64, fp.N), make([]float64, fn.N)
	for i := range gtPos {
		gtPos[i] = float64(fp.Row(i)[0]) + 0.3*rng.NormFloat64()
		gtNeg[i] = float64(fn.Row(i)[0]) + 0.3*rng.NormFloat64()
	}
	cfg := RatioConfig{Fractions: []float64{0.1, 0.25, 0.5, 0.75, 1}, Repeats: 2, Train: rewardhead.DefaultTrainConfig()}
	cfg.Train.Epochs = 12
	tr, err := rewardhead.Train(fp, fn, cfg.Train)
	if err != nil {
		t.Fatal(err)
	}
	pos, neg := tr.Best.Score(fp), tr.Best.Score(fn)
	if _, err := EvalPlots(dir, rewardhead.Evaluate(pos, neg, gtPos, gtNeg, rewardhead.Threshold{}), pos, neg, gtPos, gtNeg); err != nil {
		t.Fatal(err)
	}
	if err := Figure1(filepath.Join(dir, "figure1_no_gt.png"), rewardhead.Evaluate(pos, neg, nil, nil, rewardhead.Threshold{}), pos, neg, nil, nil); err != nil {
		t.Fatal(err)
	}
	noiseCfg := NoiseConfig{Sigmas: []float64{0, 0.25, 0.5, 1, 1.5, 2}, Repeats: 4, Seed: 1, Relative: true}
	sn, err := ScoreNoise(pos, neg, gtPos, gtNeg, noiseCfg)
	if err != nil {
		t.Fatal(err)
	}
	wn, err := WeightNoise(tr.Best, fp, fn, gtPos, gtNeg, noiseCfg)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := DataRatio(fp, fn, fp, fn, gtPos, gtNeg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(tr.Heads))
	for k := range names {
		names[k] = fmt.Sprintf("epoch-%03d.json", k+1)
	}
	er, err := Epochs(tr.Heads, names, fp, fn, gtPos, gtNeg, rewardhead.Threshold{})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Perturb(tr.Best, "head.json", fn, []ProbeSet{{Name: "toward non-toxic", Features: fp}, {Name: "unchanged", Features: fn}})
	if err != nil {
		t.Fatal(err)
	}
	for _, plot := range []func() error{
		func() error { _, err := sn.Plot(dir); return err },
		func() error { _, err := wn.Plot(dir); return err },
		func() error { _, err := rr.Plot(dir); return err },
		func() error { _, err := er.Plot(dir); return err },
		func() error { _, err := pr.Plot(dir); return err },
	} {
		if err := plot(); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, p := range m {
		checkPNG(t, p)
	}
	if len(m) < 11 {
		t.Errorf("%d plots: %v", len(m), m)
	}
}

// Metrics that coincide (precision and separation both 1) are drawn side
// by side in the ratio plot, not one hidden under the other.
func TestRatioCurvesDoNotHideEachOther(t *testing.T) {
	one := Summary{Mean: rewardhead.Defined(1), Std: rewardhead.Defined(0), N: 1}
	pts := []RatioPoint{{NNeg: 10, Metrics: map[string]Summary{"precision": one, "recall": one, "separation": one}},
		{NNeg: 40, Metrics: map[string]Summary{"precision": one, "recall": one, "separation": one}}}
	series := ratioSeries(pts, func(p RatioPoint) int { return p.NNeg }, true)
	if len(series) != 3 {
		t.Fatalf("%d series", len(series))
	}
	for i := range series {
		for j := range i {
			for k := range series[i].X {
				if series[i].X[k] == series[j].X[k] && series[i].Y[k] == series[j].Y[k] {
					t.Errorf("%s and %s share the point (%v, %v)", series[i].Name, series[j].Name, series[i].X[k], series[i].Y[k])
				}
			}
		}
	}
}
