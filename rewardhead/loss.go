package rewardhead

import (
	"fmt"
	"math"
)

// Loss is a pairwise loss ℓ(x) of the reward difference x = R(o⁺) − R(o⁻)
// between an expert (non-toxic) output o⁺ and a baseline (toxic) output o⁻.
// Training minimises the mean of ℓ over pairs.
type Loss interface {
	// Name is the --loss spelling.
	Name() string
	// Value is ℓ(x).
	Value(x float64) float64
	// Deriv is dℓ/dx. At a kink it returns the one-sided derivative of the
	// side that treats the pair as not yet satisfied, so a tie still pushes
	// the expert up.
	Deriv(x float64) float64
	// Params records the loss parameters in a head's training settings.
	Params() map[string]float64
}

// Asymmetric is the paper's max-margin loss: −x for x > 0 and −P·x for
// x ≤ 0, so a misordered pair costs P times what a well-ordered one gains.
// It is unbounded below; train it with a norm bound on w (MaxNorm).
type Asymmetric struct{ P float64 }

// Name implements Loss.
func (Asymmetric) Name() string { return "asymmetric" }

// Value implements Loss.
func (l Asymmetric) Value(x float64) float64 {
	if x > 0 {
		return -x
	}
	return -l.P * x
}

// Deriv implements Loss.
func (l Asymmetric) Deriv(x float64) float64 {
	if x > 0 {
		return -1
	}
	return -l.P
}

// Params implements Loss.
func (l Asymmetric) Params() map[string]float64 { return map[string]float64{"p": l.P} }

// Margin is max(0, δ − x) + (P − 1)·max(0, −x): a hinge at margin δ plus an
// extra (P − 1) slope for misordered pairs, so the slope below 0 is P.
type Margin struct{ P, Delta float64 }

// Name implements Loss.
func (Margin) Name() string { return "margin" }

// Value implements Loss.
func (l Margin) Value(x float64) float64 {
	return math.Max(0, l.Delta-x) + (l.P-1)*math.Max(0, -x)
}

// Deriv implements Loss.
func (l Margin) Deriv(x float64) float64 {
	var d float64
	if x <= l.Delta {
		d = -1
	}
	if x <= 0 {
		d -= l.P - 1
	}
	return d
}

// Params implements Loss.
func (l Margin) Params() map[string]float64 { return map[string]float64{"p": l.P, "delta": l.Delta} }

// Hinge is max(0, 1 − x).
type Hinge struct{}

// Name implements Loss.
func (Hinge) Name() string { return "hinge" }

// Value implements Loss.
func (Hinge) Value(x float64) float64 { return math.Max(0, 1-x) }

// Deriv implements Loss.
func (Hinge) Deriv(x float64) float64 {
	if x <= 1 {
		return -1
	}
	return 0
}

// Params implements Loss.
func (Hinge) Params() map[string]float64 { return nil }

// Logistic is −log σ(x), the Bradley–Terry negative log-likelihood.
type Logistic struct{}

// Name implements Loss.
func (Logistic) Name() string { return "logistic" }

// Value implements Loss. It is softplus(−x), computed without overflow.
func (Logistic) Value(x float64) float64 { return softplus(-x) }

// Deriv implements Loss: −σ(−x).
func (Logistic) Deriv(x float64) float64 { return -sigmoid(-x) }

// Params implements Loss.
func (Logistic) Params() map[string]float64 { return nil }

// softplus is log(1 + eˣ) without overflow for large x or loss of precision
// for very negative x.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// sigmoid is 1/(1 + e⁻ˣ), evaluated so neither branch overflows.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// NewLoss makes a loss by its --loss name. p and delta are used by the
// asymmetric (p) and margin (p, delta) losses; a zero value takes the
// default (asymmetric p = 2; margin p = 5, δ = 5, the paper's 70M setting).
func NewLoss(name string, p, delta float64) (Loss, error) {
	// NaN passes every comparison below; it must not reach training, where
	// it would surface as a bad learning rate.
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return nil, fmt.Errorf("%s loss: slope p is %v; it must be a finite number", name, p)
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return nil, fmt.Errorf("%s loss: margin δ is %v; it must be a finite number", name, delta)
	}
	switch name {
	case "asymmetric":
		if p == 0 {
			p = 2
		}
		if p < 1 {
			return nil, fmt.Errorf("asymmetric loss needs p ≥ 1 (misordered pairs cost at least as much as ordered ones gain), got %v", p)
		}
		return Asymmetric{P: p}, nil
	case "margin":
		if p == 0 {
			p = 5
		}
		if delta == 0 {
			delta = 5
		}
		if p < 1 || delta < 0 {
			return nil, fmt.Errorf("margin loss needs p ≥ 1 and δ ≥ 0, got p=%v δ=%v", p, delta)
		}
		return Margin{P: p, Delta: delta}, nil
	case "hinge":
		return Hinge{}, nil
	case "logistic":
		return Logistic{}, nil
	}
	return nil, fmt.Errorf("unknown loss %q: want asymmetric, margin, hinge or logistic", name)
}
