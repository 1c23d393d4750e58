package audit

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"irl/rewardhead"
)

// looDirect is looLimit by its definition: for each distinct row, the
// rest's covariance built and factorised afresh, and the row's distance²
// from it.
func looDirect(train []*rewardhead.Features, q float64) float64 {
	all := rowsOf(train)
	var ds []float64
	for i, r := range all {
		if slices.ContainsFunc(all[:i], func(s []float32) bool { return slices.Equal(r, s) }) {
			continue // a copy of a row measured already
		}
		if d, ok := leftOut(all, r, len(r)); ok {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return math.Inf(1)
	}
	sort.Float64s(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// The closed form of looLimit agrees with leaving each text out and
// factorising afresh: more rows than features, fewer (where the ridge
// carries the covariance), repeated texts, and every quantile.
func TestLooLimitClosedForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ n, d, copies int }{{40, 6, 1}, {30, 6, 3}, {12, 20, 1}, {25, 16, 4}} {
		base := make([][]float32, c.n)
		for i := range base {
			base[i] = make([]float32, c.d)
			for j := range base[i] {
				// Correlated and of unequal scale, as hidden states are.
				base[i][j] = float32(rng.NormFloat64()*float64(j+1) + 0.5*float64(i%3))
			}
		}
		var x []float32
		rows := 0
		for i, r := range base {
			times := 1
			if i%c.copies == 0 {
				times = c.copies // some texts written several times
			}
			for k := 0; k < times; k++ {
				x = append(x, r...)
				rows++
			}
		}
		half := rows / 2
		a, _ := rewardhead.NewFeatures("a", half, c.d, x[:half*c.d], nil, nil)
		b, _ := rewardhead.NewFeatures("b", rows-half, c.d, x[half*c.d:], nil, nil)
		fs := []*rewardhead.Features{a, b}
		for _, q := range []float64{0, 0.25, 0.5, 0.9, 1} {
			got, want := looLimit(fs, q), looDirect(fs, q)
			if math.Abs(got-want) > 1e-8*math.Max(1, math.Abs(want)) {
				t.Errorf("n %d, d %d, copies %d, q %g: closed form %.12g, direct %.12g", c.n, c.d, c.copies, q, got, want)
			}
		}
	}
	// One text only, or two distinct texts (a once, b twice): left out,
	// each leaves no covariance to measure by (one point, or one point
	// twice).
	for _, c := range []struct {
		name string
		x    []float32
	}{{"one text three times", []float32{1, 2, 1, 2, 1, 2}}, {"a, b, b", []float32{0.3, 0.7, 1, 2, 1, 2}}} {
		f, _ := rewardhead.NewFeatures("f", len(c.x)/2, 2, c.x, nil, nil)
		if got := looLimit([]*rewardhead.Features{f}, 0.5); !math.IsInf(got, 1) {
			t.Errorf("%s: %v, want +Inf", c.name, got)
		}
	}
	// A text far from tight others dominates the scatter, where the
	// closed form's 1 − c·q cancels: it is measured directly.
	var x []float32
	for i := 0; i < 20; i++ {
		x = append(x, float32(i%5)*1e-3, float32(i%7)*1e-3, float32(i%3)*1e-3)
	}
	x = append(x, 1e3, -1e3, 1e3)
	far, _ := rewardhead.NewFeatures("far", 21, 3, x, nil, nil)
	if got, want := looLimit([]*rewardhead.Features{far}, 1), looDirect([]*rewardhead.Features{far}, 1); math.Abs(got-want) > 1e-6*want {
		t.Errorf("a far text: %.10g, direct %.10g", got, want)
	}
}
