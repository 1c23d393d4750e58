package analysis

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"irl/rewardhead"
)

// guarded runs f, failing on a panic or on f running past 20 s: gonum/plot
// looped without end on an axis range that overflows float64.
func guarded(t *testing.T, what string, f func() error) error {
	t.Helper()
	type result struct {
		err error
		pan any
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{pan: r}
			}
		}()
		done <- result{err: f()}
	}()
	select {
	case r := <-done:
		if r.pan != nil {
			t.Errorf("%s: panic: %v", what, r.pan)
		}
		return r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: did not return", what)
		return nil
	}
}

// Plots of huge or constant values give an error or a plot, never a hang
// or gonum/plot's "illegal range" panic.
func TestPlotsOfExtremeValues(t *testing.T) {
	dir := t.TempDir()
	for _, v := range [][]float64{
		{8e307, -8e307, 1},                           // a range past float64: hung
		{math.MaxFloat64, -math.MaxFloat64},          // hung
		{math.MaxFloat64, math.MaxFloat64},           // "illegal range"
		{1e20, 1e20},                                 // constant past 2^53: "illegal range"
		{1e299, -1e299, 0}, {5, 5}, {1e-320, 2e-320}, // these draw
	} {
		tooWide := math.Abs(v[0]) > maxAxis
		for name, f := range map[string]func() error{
			"scatter": func() error { return PlotScatter(filepath.Join(dir, "s.png"), v, v, v, v, 0) },
			"boxes":   func() error { return PlotBoxes(filepath.Join(dir, "b.png"), "t", "y", []string{"a"}, [][]float64{v}) },
			"curves": func() error {
				return PlotCurves(filepath.Join(dir, "c.png"), "t", "x", "y", []Series{{Name: "a", X: v, Y: v}})
			},
			"distributions": func() error { return PlotDistributions(filepath.Join(dir, "d.png"), v, v, v[0]) },
		} {
			err := guarded(t, name, f)
			switch {
			case tooWide && err == nil:
				t.Errorf("%s of %v: no error", name, v)
			case !tooWide && err != nil:
				t.Errorf("%s of %v: %v", name, v, err)
			case err != nil && !strings.Contains(err.Error(), dir):
				t.Errorf("%s of %v: error %v does not name the file", name, v, err)
			}
		}
	}
}

// A head with huge but admissible weights overflowed the cosine's squares
// (NaN, then a panic in Defined); the mean of huge repeats overflowed too.
func TestEpochsHugeWeights(t *testing.T) {
	pos := features1D(t, "pos", []float64{-0.5, 1, 2, 3})
	neg := features1D(t, "neg", []float64{-3, -2, -1, 0.5})
	mk := func(w float64, epoch int) *rewardhead.Head {
		return &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: []float64{w}, Epoch: epoch, Features: pos.Info()}
	}
	var res *EpochsResult
	guarded(t, "epochs", func() (err error) {
		res, err = Epochs([]*rewardhead.Head{mk(1e200, 1), mk(3e200, 2)}, []string{"e1", "e2"}, pos, neg, nil, nil, rewardhead.Threshold{})
		return err
	})
	if res == nil {
		t.Fatal("no result")
	}
	for _, h := range res.Heads {
		if c := h.CosineToEnsemble; !c.OK() || c.X != 1 {
			t.Errorf("%s: cosine to the ensemble %+v, want 1", h.Name, c)
		}
	}
	if c := cosine([]float64{1e-300, 0}, []float64{0, 1e-300}); !c.OK() || c.X != 0 {
		t.Errorf("cosine of tiny orthogonal vectors %+v", c)
	}
	s := Summarise([]rewardhead.Value{rewardhead.Defined(1.5e308), rewardhead.Defined(1.5e308)})
	if s.Mean.OK() || s.N != 2 {
		t.Errorf("mean of repeats past float64: %+v", s)
	}
}
