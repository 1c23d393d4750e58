package rewardhead

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat"
)

// kendallBrute is τ-b from its definition, over all O(n²) pairs.
func kendallBrute(x, y []float64) float64 {
	var nc, nd, tx, ty float64
	n := len(x)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			dx, dy := x[i]-x[j], y[i]-y[j]
			switch {
			case dx == 0 && dy == 0:
				tx++
				ty++
			case dx == 0:
				tx++
			case dy == 0:
				ty++
			case dx*dy > 0:
				nc++
			default:
				nd++
			}
		}
	}
	n0 := float64(n*(n-1)) / 2
	return (nc - nd) / math.Sqrt((n0-tx)*(n0-ty))
}

func TestKendallTauBByHand(t *testing.T) {
	cases := []struct {
		x, y []float64
		want float64
	}{
		// 4 concordant, 0 discordant, one pair tied in x, one in y: 4/√(5·5).
		{[]float64{1, 2, 2, 3}, []float64{1, 3, 2, 3}, 0.8},
		// 4 concordant, 1 discordant, one pair tied in both: 3/√(5·5).
		{[]float64{1, 2, 3, 3}, []float64{2, 1, 3, 3}, 0.6},
		{[]float64{1, 2, 3}, []float64{3, 2, 1}, -1},
	}
	for _, c := range cases {
		if got := KendallTauB(c.x, c.y); !got.OK() || !near(got.X, c.want) {
			t.Errorf("τ-b(%v, %v) = %+v, want %v", c.x, c.y, got, c.want)
		}
	}
	if v := KendallTauB([]float64{1, 2, 3}, []float64{5, 5, 5}); v.OK() {
		t.Errorf("τ-b with a constant variable = %v, want undefined", v.X)
	}
	if v := KendallTauB([]float64{1}, []float64{2}); v.OK() {
		t.Error("τ-b of one point is defined")
	}
}

func TestKendallTauBBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 40; trial++ {
		n := 2 + rng.IntN(200)
		x, y := make([]float64, n), make([]float64, n)
		for i := range x {
			x[i] = float64(rng.IntN(1 + trial%9)) // heavy ties on some trials
			y[i] = float64(rng.IntN(12)) + 0.5*x[i]
		}
		got := KendallTauB(x, y)
		want := kendallBrute(x, y)
		if math.IsNaN(want) {
			if got.OK() {
				t.Fatalf("n=%d: τ-b %v where brute force is undefined", n, got.X)
			}
			continue
		}
		if !got.OK() || math.Abs(got.X-want) > 1e-12 {
			t.Fatalf("n=%d: τ-b %+v, brute force %v", n, got, want)
		}
	}
	// Without ties τ-b is τ-a, which gonum computes independently.
	x, y := make([]float64, 300), make([]float64, 300)
	for i := range x {
		x[i] = rng.NormFloat64()
		y[i] = x[i] + rng.NormFloat64()
	}
	if got, want := KendallTauB(x, y).X, stat.Kendall(x, y, nil); math.Abs(got-want) > 1e-12 {
		t.Errorf("τ-b %v, gonum τ-a %v", got, want)
	}
}

func TestSpearmanAndRanks(t *testing.T) {
	// Σd² = 2 over n = 4: ρ = 1 − 6·2/(4·15) = 0.8.
	if v := Spearman([]float64{1, 2, 3, 4}, []float64{1, 3, 2, 4}); !near(v.X, 0.8) {
		t.Errorf("ρ = %v, want 0.8", v.X)
	}
	r := Ranks([]float64{10, 20, 10, 30, 20, 20})
	want := []float64{1.5, 4, 1.5, 6, 4, 4}
	for i := range r {
		if r[i] != want[i] {
			t.Fatalf("ranks %v, want %v", r, want)
		}
	}
	if v := Pearson([]float64{1, 2}, []float64{3, 3}); v.OK() {
		t.Error("Pearson with zero variance is defined")
	}
}
