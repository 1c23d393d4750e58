package analysis_test

import (
	"fmt"

	"irl/rewardhead/analysis"
)

func ExampleScoreNoise() {
	// Non-toxic rows all score +1 and toxic rows −1. Noise of σ flips a
	// row with probability Φ(−1/σ): none at σ = 0, about 16% at σ = 1.
	pos, neg := make([]float64, 2000), make([]float64, 2000)
	for i := range pos {
		pos[i], neg[i] = 1, -1
	}
	res, err := analysis.ScoreNoise(pos, neg, nil, nil, analysis.NoiseConfig{
		Sigmas: []float64{0, 1}, Repeats: 5, Seed: 1,
	})
	if err != nil {
		panic(err)
	}
	for _, p := range res.Points {
		acc := p.Metrics["accuracy"]
		fmt.Printf("σ = %g: accuracy %.2f over %d repeats\n", p.Sigma, acc.Mean.X, acc.N)
	}
	// Output:
	// σ = 0: accuracy 1.00 over 5 repeats
	// σ = 1: accuracy 0.84 over 5 repeats
}
