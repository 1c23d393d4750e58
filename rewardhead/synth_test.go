package rewardhead

import "math/rand/v2"

// plantedW returns a random unit vector: the planted reward direction w*.
func plantedW(seed uint64, d int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := make([]float64, d)
	for j := range w {
		w[j] = rng.NormFloat64()
	}
	n := norm(w)
	for j := range w {
		w[j] /= n
	}
	return w
}

// plantedSet draws n rows of standard normal noise shifted by sign·shift
// along wStar. With sign +1 for the expert and −1 for the baseline, the
// best linear reward direction is wStar itself and a head along it has
// accuracy Φ(shift) at threshold 0.
func plantedSet(seed uint64, name string, wStar []float64, n int, shift, sign float64) *Features {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := len(wStar)
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(rng.NormFloat64() + sign*shift*wStar[j])
		}
	}
	f, err := NewFeatures(name, n, d, x, nil, synthMeta())
	if err != nil {
		panic(err)
	}
	return f
}

func synthMeta() map[string]string {
	return map[string]string{"model": "synthetic", "layer": "0", "pool": "mean", "max_length": "64"}
}

// planted makes expert and baseline sets around a fresh w*.
func planted(seed uint64, nPos, nNeg, d int, shift float64) (pos, neg *Features, wStar []float64) {
	wStar = plantedW(seed, d)
	return plantedSet(seed*2+1, "pos", wStar, nPos, shift, 1), plantedSet(seed*2+2, "neg", wStar, nNeg, shift, -1), wStar
}

func cosine(a, b []float64) float64 { return dot(a, b) / (norm(a) * norm(b)) }
