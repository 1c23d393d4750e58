package rewardhead_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	"irl/rewardhead"
)

// synthetic draws n rows of two-dimensional features: non-toxic outputs sit
// around (+1, 0), toxic ones around (−1, 0), with unit noise.
func synthetic(name string, n int, sign float64, rng *rand.Rand) *rewardhead.Features {
	x := make([]float32, 2*n)
	for i := 0; i < n; i++ {
		x[2*i] = float32(sign + rng.NormFloat64())
		x[2*i+1] = float32(rng.NormFloat64())
	}
	meta := map[string]string{"model": "example", "layer": "-1", "pool": "last", "max_length": "128"}
	f, err := rewardhead.NewFeatures(name, n, 2, x, nil, meta)
	if err != nil {
		panic(err)
	}
	return f
}

func Example() {
	rng := rand.New(rand.NewPCG(1, 2))
	pos := synthetic("non-toxic", 500, +1, rng)
	neg := synthetic("toxic", 500, -1, rng)

	// Pairwise max-margin IRL with the defaults: asymmetric loss, p = 2,
	// ‖w‖ ≤ 1, 60 epochs of 50 + 50 rows.
	res, err := rewardhead.Train(pos, neg, rewardhead.DefaultTrainConfig())
	if err != nil {
		panic(err)
	}
	h := res.Best
	norm := math.Hypot(h.W[0], h.W[1])
	fmt.Printf("epochs: %d, ‖w‖ = %.2f\n", len(res.Heads), norm)
	// The planted reward direction is the first feature.
	fmt.Printf("cosine with (1, 0): %.3f\n", h.W[0]/norm)

	r := rewardhead.Evaluate(h.Score(pos), h.Score(neg), nil, nil, rewardhead.Threshold{})
	fmt.Printf("accuracy %.2f, separation (AUC) %.2f\n", r.Accuracy.X, r.Separation.X)
	// Sixty Adam steps of 0.01 have not yet reached the bound ‖w‖ = 1, and
	// a head along (1, 0) would score Φ(1) ≈ 0.84 and AUC Φ(√2) ≈ 0.92.

	// Output:
	// epochs: 60, ‖w‖ = 0.57
	// cosine with (1, 0): 0.988
	// accuracy 0.83, separation (AUC) 0.92
}

func ExampleKendallTauB() {
	// Four concordant pairs, none discordant, one pair tied in each variable.
	tau := rewardhead.KendallTauB([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 3})
	fmt.Printf("τ-b = %.2f\n", tau.X)
	// A constant variable leaves τ-b undefined, with a reason.
	tau = rewardhead.KendallTauB([]float64{1, 2, 3}, []float64{5, 5, 5})
	fmt.Println(tau.OK(), tau.Why)
	// Output:
	// τ-b = 0.80
	// false Kendall τ-b is undefined when the second variable is constant
}
