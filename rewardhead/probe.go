package rewardhead

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/floats"
)

// ProbeConfig holds the settings of the ground-truth probe.
type ProbeConfig struct {
	// L2 is the ridge penalty λ on the weights (not the intercept): the
	// objective is the mean negative log-likelihood plus λ/2·‖v‖².
	L2 float64
	// MaxIter bounds the L-BFGS iterations; 0 means 1000.
	MaxIter int
	// GradTol stops when the largest gradient entry is below it; 0 means
	// 1e-8.
	GradTol float64
}

// ProbeResult reports how the probe fit went.
type ProbeResult struct {
	Head *Head
	// NLL is the mean negative log-likelihood at the solution.
	NLL float64
	// Iterations and Status describe the L-BFGS run.
	Iterations int
	Status     string
}

// TrainProbe fits a logistic-regression probe on labelled features:
// P(toxic | h) = σ(f(h)) with f(h) = vᵀh + c, rows of neg labelled toxic and
// rows of pos non-toxic. The returned head scores R*(o) = −f(o), so R* is
// positive where the probe calls an output non-toxic, and follows the same
// convention as an IRL head: higher is less toxic, ≤ 0 is predicted toxic.
// This is how a user makes a ground-truth reward model from a labelled set.
func TrainProbe(pos, neg *Features, cfg ProbeConfig) (*ProbeResult, error) {
	if err := SameKind(pos, neg); err != nil {
		return nil, err
	}
	if cfg.L2 < 0 || math.IsNaN(cfg.L2) {
		return nil, fmt.Errorf("probe: l2 %v, want ≥ 0", cfg.L2)
	}
	if cfg.MaxIter == 0 {
		cfg.MaxIter = 1000
	}
	if cfg.GradTol == 0 {
		cfg.GradTol = 1e-8
	}
	d := pos.D
	obj := &probeObjective{pos: pos, neg: neg, l2: cfg.L2}
	x, iters, gmax := lbfgs(obj.eval, make([]float64, d+1), cfg.MaxIter, cfg.GradTol)
	status := "converged"
	if gmax > cfg.GradTol {
		status = fmt.Sprintf("stopped after %d iterations with gradient %.3g", iters, gmax)
	}
	// A line search can stall at a solution good to rounding; accept that,
	// but not a run that stopped far from one.
	if gmax > 1e-5 {
		return nil, fmt.Errorf("probe: L-BFGS %s (try a larger l2 penalty or more iterations)", status)
	}
	w := make([]float64, d)
	for j := range w {
		w[j] = -x[j]
	}
	h := &Head{
		Format:   HeadFormat,
		Kind:     KindProbe,
		W:        w,
		B:        -x[d],
		Features: pos.Info(),
		Training: map[string]any{
			"method":     "logistic regression probe",
			"l2":         cfg.L2,
			"pos":        pos.Path,
			"neg":        neg.Path,
			"n_pos":      pos.N,
			"n_neg":      neg.N,
			"iterations": iters,
			"status":     status,
		},
		Notes: []string{"R* = −f(o), f(o) = vᵀh + c the probe's toxicity logit; R* ≤ 0 ⇔ P(toxic) ≥ ½"},
	}
	nll := obj.eval(x, nil) - cfg.L2/2*floats.Dot(x[:d], x[:d])
	h.Training["nll"] = nll
	if err := h.validate("probe"); err != nil {
		return nil, errors.New("probe: fit diverged; try a larger l2 penalty")
	}
	return &ProbeResult{Head: h, NLL: nll, Iterations: iters, Status: status}, nil
}

// probeObjective is the regularised mean negative log-likelihood of the
// probe over x = (v, c).
type probeObjective struct {
	pos, neg *Features
	l2       float64
}

// eval returns the objective at x and writes its gradient into g when g is
// not nil. Rows are split across CPUs with one gradient buffer per worker.
func (o *probeObjective) eval(x, g []float64) float64 {
	d := o.pos.D
	v, c := x[:d], x[d]
	n := o.pos.N + o.neg.N
	workers := max(1, min(runtime.GOMAXPROCS(0), n*d/(1<<16)))
	chunk := (n + workers - 1) / workers
	sums := make([]float64, workers)
	grads := make([][]float64, workers)
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		lo, hi := k*chunk, min((k+1)*chunk, n)
		if g != nil {
			grads[k] = make([]float64, d+1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gk := grads[k]
			for i := lo; i < hi; i++ {
				row, y := o.row(i)
				z := dot32(v, row) + c
				// −log p(y|z) = softplus(z) − y·z.
				sums[k] += softplus(z) - y*z
				if gk != nil {
					r := sigmoid(z) - y
					axpy32(r, row, gk[:d])
					gk[d] += r
				}
			}
		}()
	}
	wg.Wait()
	var f float64
	for _, s := range sums {
		f += s
	}
	f = f/float64(n) + o.l2/2*floats.Dot(v, v)
	if g != nil {
		clear(g)
		for _, gk := range grads {
			floats.Add(g, gk)
		}
		floats.Scale(1/float64(n), g)
		floats.AddScaled(g[:d], o.l2, v)
	}
	return f
}

// row returns row i of the stacked data and its label, 1 for toxic.
func (o *probeObjective) row(i int) ([]float32, float64) {
	if i < o.pos.N {
		return o.pos.Row(i), 0
	}
	return o.neg.Row(i - o.pos.N), 1
}

// lbfgs minimises a smooth function f (which writes its gradient into g
// when g is not nil) from x0 by limited-memory BFGS with a backtracking
// Armijo line search. It returns the minimiser, the iterations used and the
// final gradient's largest entry.
func lbfgs(f func(x, g []float64) float64, x0 []float64, maxIter int, gtol float64) ([]float64, int, float64) {
	const mem = 10
	n := len(x0)
	x := slices.Clone(x0)
	g := make([]float64, n)
	fx := f(x, g)
	var ss, ys [][]float64
	var rhos []float64
	dir := make([]float64, n)
	xNew := make([]float64, n)
	gNew := make([]float64, n)
	alpha := make([]float64, mem)
	iter := 0
	for ; iter < maxIter; iter++ {
		if floats.Norm(g, math.Inf(1)) <= gtol {
			break
		}
		// Two-loop recursion for dir = −H·g.
		copy(dir, g)
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rhos[k] * floats.Dot(ss[k], dir)
			floats.AddScaled(dir, -alpha[k], ys[k])
		}
		if len(ss) > 0 {
			last := len(ss) - 1
			floats.Scale(floats.Dot(ss[last], ys[last])/floats.Dot(ys[last], ys[last]), dir)
		} else {
			// Without curvature yet, take a first step of unit length.
			floats.Scale(1/math.Max(floats.Norm(g, 2), 1e-300), dir)
		}
		for k := range ss {
			beta := rhos[k] * floats.Dot(ys[k], dir)
			floats.AddScaled(dir, alpha[k]-beta, ss[k])
		}
		floats.Scale(-1, dir)
		slope := floats.Dot(g, dir)
		if slope >= 0 {
			// Not a descent direction: forget the curvature pairs.
			ss, ys, rhos = nil, nil, nil
			copy(dir, g)
			floats.Scale(-1/math.Max(floats.Norm(g, 2), 1e-300), dir)
			slope = floats.Dot(g, dir)
		}
		step := 1.0
		var fNew float64
		accepted := false
		for try := 0; try < 60; try++ {
			floats.AddScaledTo(xNew, x, step, dir)
			fNew = f(xNew, gNew)
			if fNew <= fx+1e-4*step*slope {
				accepted = true
				break
			}
			step /= 2
		}
		if !accepted {
			break
		}
		s := make([]float64, n)
		y := make([]float64, n)
		floats.SubTo(s, xNew, x)
		floats.SubTo(y, gNew, g)
		copy(x, xNew)
		copy(g, gNew)
		fx = fNew
		if sy := floats.Dot(s, y); sy > 1e-12*floats.Dot(y, y) {
			ss, ys, rhos = append(ss, s), append(ys, y), append(rhos, 1/sy)
			if len(ss) > mem {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
		}
	}
	return x, iter, floats.Norm(g, math.Inf(1))
}
