package optim

import (
	"fmt"
	"math"
)

// GradNorm returns the Euclidean norm of all gradients together. Squares are
// summed in float64, per chunk and then over chunks in a fixed order, so the
// result is reproducible for any GOMAXPROCS. It panics on malformed params.
func GradNorm(params []*Param) float64 {
	checkParams(params)
	return gradNorm(params, chunksOf(params))
}

func gradNorm(params []*Param, cs []chunk) float64 {
	partial := make([]float64, len(cs))
	forEach(cs, func(i int, c chunk) {
		var s float64
		for _, g := range params[c.param].Grad[c.lo:c.hi] {
			s += float64(g) * float64(g)
		}
		partial[i] = s
	})
	var sum float64
	for _, s := range partial {
		sum += s
	}
	return math.Sqrt(sum)
}

// ClipGradNorm scales all gradients together so that their global norm is at
// most maxNorm, as torch.nn.utils.clip_grad_norm_ does: by
// maxNorm/(norm+1e-6) when that is below 1. It returns the norm before
// clipping. A NaN or infinite norm is returned with the gradients left as
// they are, so that the caller can see it and skip the step rather than
// spread NaN through every gradient. It panics if maxNorm is not positive
// and finite, or on malformed params.
func ClipGradNorm(params []*Param, maxNorm float64) float64 {
	if !(maxNorm > 0) || math.IsInf(maxNorm, 1) {
		panic(fmt.Sprintf("optim: ClipGradNorm: max norm %v must be positive and finite", maxNorm))
	}
	checkParams(params)
	cs := chunksOf(params)
	norm := gradNorm(params, cs)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	forEach(cs, func(_ int, c chunk) {
		g := params[c.param].Grad[c.lo:c.hi]
		for i := range g {
			g[i] = float32(float64(g[i]) * coef)
		}
	})
	return norm
}
