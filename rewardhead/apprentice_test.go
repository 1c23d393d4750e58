package rewardhead

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMinNormPointByHand(t *testing.T) {
	cases := []struct {
		pts  [][]float64
		want []float64
	}{
		{[][]float64{{1, 0}, {0, 1}}, []float64{0.5, 0.5}},
		{[][]float64{{1, 0}, {2, 1}}, []float64{1, 0}}, // nearest point is a vertex
		{[][]float64{{1, 0, 0}, {0, 2, 0}, {0, 0, 2}}, []float64{2.0 / 3, 1.0 / 3, 1.0 / 3}},
		{[][]float64{{1, 1}, {-1, -1}}, []float64{0, 0}}, // origin inside the hull
	}
	for _, c := range cases {
		got := MinNormPoint(c.pts)
		for j := range got {
			if math.Abs(got[j]-c.want[j]) > 1e-9 {
				t.Errorf("MinNormPoint(%v) = %v, want %v", c.pts, got, c.want)
				break
			}
		}
	}
}

// TestMaxMarginBruteForce checks the QP step against a direct search over
// the unit circle for max over w of min over j of wᵀd_j.
func TestMaxMarginBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for trial := 0; trial < 20; trial++ {
		k := 2 + rng.IntN(5)
		pts := make([][]float64, k)
		for j := range pts {
			// Keep the points in a half-plane so the margin is positive.
			a := rng.Float64()*2 - 1
			r := 0.5 + rng.Float64()
			pts[j] = []float64{r * math.Cos(a), r * math.Sin(a)}
		}
		margin := func(th float64) float64 {
			m := math.Inf(1)
			for _, p := range pts {
				m = math.Min(m, math.Cos(th)*p[0]+math.Sin(th)*p[1])
			}
			return m
		}
		best, bestTh := math.Inf(-1), 0.0
		const n = 100000
		for i := 0; i < n; i++ {
			th := 2 * math.Pi * float64(i) / n
			if m := margin(th); m > best {
				best, bestTh = m, th
			}
		}
		step := 2 * math.Pi / n
		for i := -1000; i <= 1000; i++ {
			th := bestTh + step*float64(i)/1000
			if m := margin(th); m > best {
				best = m
			}
		}
		v := MinNormPoint(pts)
		if got := norm(v); math.Abs(got-best) > 1e-7 {
			t.Fatalf("trial %d: margin ‖v‖ = %v, brute force %v", trial, got, best)
		}
		// And v/‖v‖ attains it.
		w := []float64{v[0] / norm(v), v[1] / norm(v)}
		att := math.Inf(1)
		for _, p := range pts {
			att = math.Min(att, dot(w, p))
		}
		if math.Abs(att-best) > 1e-7 {
			t.Fatalf("trial %d: w attains %v, best %v", trial, att, best)
		}
	}
}

func TestApprenticeByHand(t *testing.T) {
	muE := []float64{1, 1}
	pi0 := Policy{Name: "π0", Mu: []float64{0, 0}}
	set := FixedSet{{Name: "A", Mu: []float64{1, 0}}, {Name: "B", Mu: []float64{0, 1}}, pi0}
	// Worked by hand. w₁ ∝ μ_E − μ(π0) = (1,1), margin √2; the oracle picks
	// A (first of the tie A, B). The nearest point to the origin of the hull
	// of (1,1), (0,1) — or, for the projection method, μ_E projected onto the
	// line π0–A, (1,0) — gives w₂ = (0,1), margin 1; the oracle picks B.
	// Then both give w₃ ∝ (1,1), margin 1/√2, and the oracle's A is known.
	for _, method := range []string{"projection", "qp"} {
		res, err := Apprentice(muE, pi0, set, ApprenticeConfig{Method: method, Epsilon: 1e-9, MaxIter: 10})
		if err != nil {
			t.Fatal(err)
		}
		wantMargins := []float64{math.Sqrt2, 1, math.Sqrt(0.5)}
		wantPolicies := []string{"A", "B", "A"}
		if len(res.Steps) != 3 {
			t.Fatalf("%s: %d steps, want 3: %+v", method, len(res.Steps), res.Steps)
		}
		for i, s := range res.Steps {
			if math.Abs(s.Margin-wantMargins[i]) > 1e-9 || s.Policy != wantPolicies[i] {
				t.Errorf("%s step %d: margin %v policy %s, want %v %s", method, i+1, s.Margin, s.Policy, wantMargins[i], wantPolicies[i])
			}
		}
		if !strings.Contains(res.Stopped, "already in the set") || math.Abs(res.W[0]-math.Sqrt(0.5)) > 1e-9 || math.Abs(res.W[1]-math.Sqrt(0.5)) > 1e-9 {
			t.Errorf("%s: stopped %q with w %v", method, res.Stopped, res.W)
		}
	}
	// A policy that matches the expert closes the margin.
	set = append(set, Policy{Name: "C", Mu: []float64{1, 1}})
	res, err := Apprentice(muE, pi0, set, ApprenticeConfig{Method: "qp", Epsilon: 1e-6, MaxIter: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinalMargin > 1e-6 || !strings.Contains(res.Stopped, "≤ ε") || res.Steps[0].Policy != "C" {
		t.Errorf("matching policy: margin %v, stopped %q, steps %+v", res.FinalMargin, res.Stopped, res.Steps)
	}
	// The answer is the last separating direction, from before C was known.
	if math.Abs(res.Margin-math.Sqrt2) > 1e-9 || math.Abs(res.W[0]-math.Sqrt(0.5)) > 1e-9 {
		t.Errorf("matching policy: kept w %v with margin %v, want (1,1)/√2 and √2", res.W, res.Margin)
	}
	// An initial policy that already matches the expert leaves no direction.
	res, err = Apprentice(muE, Policy{Name: "same", Mu: []float64{1, 1}}, set, ApprenticeConfig{Method: "projection", Epsilon: 1e-6, MaxIter: 10})
	if err != nil || res.W != nil {
		t.Errorf("matched from the start: %v, w %v", err, res.W)
	}
}

func TestDiscountedAndBestOfN(t *testing.T) {
	f, err := NewFeatures("tok", 3, 2, []float32{1, 0, 0, 2, 4, 4}, []int64{7, 7, 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Discounted(f, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// Trajectory 7: (1,0) + 0.5·(0,2) = (1,1); trajectory 9: (4,4).
	if len(tr.Sums) != 2 || tr.Sums[0][0] != 1 || tr.Sums[0][1] != 1 || tr.Sums[1][0] != 4 || tr.IDs[1] != 9 {
		t.Fatalf("sums %v ids %v", tr.Sums, tr.IDs)
	}
	if mu := tr.Expectation(); mu[0] != 2.5 || mu[1] != 2.5 {
		t.Errorf("μ = %v, want [2.5 2.5]", mu)
	}
	g, _ := NewFeatures("tok", 3, 1, []float32{1, 2, 3}, []int64{1, 2, 1}, nil)
	if _, err := Discounted(g, 0.9); err == nil || !strings.Contains(err.Error(), "returns to source row 1") {
		t.Errorf("non-contiguous trajectory: %v", err)
	}
	if _, err := Discounted(f, 1.5); err == nil {
		t.Error("γ > 1 accepted")
	}
	b := &BestOfN{Name: "samples", Prompts: [][][]float64{{{1, 0}, {0, 1}}, {{2, 2}, {3, -1}}}}
	p, err := b.BestResponse([]float64{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	// Under w = (0,1) prompt 0 keeps (0,1) and prompt 1 keeps (2,2).
	if p.Mu[0] != 1 || p.Mu[1] != 1.5 {
		t.Errorf("best-of-n μ = %v, want [1 1.5]", p.Mu)
	}
}
