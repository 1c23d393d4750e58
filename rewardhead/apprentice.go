package rewardhead

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// This file is Algorithm 1 of the paper, classic max-margin apprenticeship
// learning (Abbeel & Ng 2004): find w with ‖w‖₂ ≤ 1 under which the expert
// beats every known policy by the largest margin, ask for a policy that is
// good under w, and repeat until no policy is left that the expert beats by
// more than ε.

// Trajectories holds the discounted feature sums Σₜ γᵗ φ(sₜ) of a set of
// trajectories, one per source row of a feature file.
type Trajectories struct {
	// Name identifies the set (its file) in messages.
	Name string
	// Sums[k] is trajectory k's discounted feature sum; IDs[k] its source row.
	Sums [][]float64
	IDs  []int64
}

// Discounted groups the rows of f into trajectories and sums each with
// discount γ: token-level features of one output share a `row` id and are
// in token order, so a trajectory is a run of equal ids. Without a `row`
// tensor every row is a one-state trajectory. A row id that reappears after
// another is an error, since the states of one output must be contiguous.
func Discounted(f *Features, gamma float64) (*Trajectories, error) {
	if !(gamma > 0 && gamma <= 1) {
		return nil, fmt.Errorf("discount γ = %v, want 0 < γ ≤ 1", gamma)
	}
	t := &Trajectories{Name: f.Path}
	seen := map[int64]bool{}
	for i := 0; i < f.N; {
		var id int64 = int64(i)
		if f.Rows != nil {
			id = f.Rows[i]
		}
		if seen[id] {
			return nil, fmt.Errorf("%s: feature row %d returns to source row %d after other rows; a trajectory's tokens must be contiguous", f.Path, i, id)
		}
		seen[id] = true
		sum := make([]float64, f.D)
		disc := 1.0
		for ; i < f.N && (f.Rows == nil && int64(i) == id || f.Rows != nil && f.Rows[i] == id); i++ {
			axpy32(disc, f.Row(i), sum)
			disc *= gamma
		}
		t.Sums = append(t.Sums, sum)
		t.IDs = append(t.IDs, id)
	}
	return t, nil
}

// Expectation is μ, the mean discounted feature sum over the trajectories.
func (t *Trajectories) Expectation() []float64 {
	mu := make([]float64, len(t.Sums[0]))
	for _, s := range t.Sums {
		for j, v := range s {
			mu[j] += v
		}
	}
	for j := range mu {
		mu[j] /= float64(len(t.Sums))
	}
	return mu
}

// Policy is a policy represented by its feature expectations μ(π).
type Policy struct {
	Name string    `json:"name"`
	Mu   []float64 `json:"-"`
}

// Oracle is the step "generate trajectories with R_t": given reward
// weights w it returns a policy that does well under R(s) = wᵀφ(s), with
// its feature expectations. An online oracle would run RL; the offline
// ones here choose among trajectories that already exist.
type Oracle interface {
	BestResponse(w []float64) (Policy, error)
}

// FixedSet is an offline Oracle over a given set of candidate policies: it
// returns the one with the highest expected reward wᵀμ(π), the first on
// ties.
type FixedSet []Policy

// BestResponse implements Oracle.
func (s FixedSet) BestResponse(w []float64) (Policy, error) {
	if len(s) == 0 {
		return Policy{}, errors.New("fixed policy set is empty")
	}
	best, bestV := 0, math.Inf(-1)
	for k, p := range s {
		if v := dot(w, p.Mu); v > bestV {
			best, bestV = k, v
		}
	}
	return s[best], nil
}

// BestOfN is an offline Oracle that reranks samples: for every prompt it
// keeps the one of its n sampled trajectories with the highest return
// wᵀ(Σₜ γᵗφ), and returns the policy made of the kept samples.
type BestOfN struct {
	// Name prefixes the names of the returned policies.
	Name string
	// Prompts[p] holds the discounted feature sums of prompt p's samples.
	Prompts [][][]float64
}

// BestResponse implements Oracle.
func (b *BestOfN) BestResponse(w []float64) (Policy, error) {
	if len(b.Prompts) == 0 {
		return Policy{}, errors.New("best-of-n oracle has no prompts")
	}
	var mu []float64
	for p, samples := range b.Prompts {
		if len(samples) == 0 {
			return Policy{}, fmt.Errorf("best-of-n oracle: prompt %d has no samples", p)
		}
		best, bestV := 0, math.Inf(-1)
		for k, s := range samples {
			if v := dot(w, s); v > bestV {
				best, bestV = k, v
			}
		}
		if mu == nil {
			mu = make([]float64, len(samples[best]))
		}
		for j, v := range samples[best] {
			mu[j] += v
		}
	}
	for j := range mu {
		mu[j] /= float64(len(b.Prompts))
	}
	return Policy{Name: fmt.Sprintf("%s best-of-n under w", b.Name), Mu: mu}, nil
}

// ApprenticeConfig holds the settings of Apprentice.
type ApprenticeConfig struct {
	// Method is "projection" (Abbeel & Ng's projection method) or "qp"
	// (the max-margin problem solved exactly over the policies so far).
	Method string
	// Epsilon stops when the margin is at most Epsilon.
	Epsilon float64
	// MaxIter bounds the number of oracle calls.
	MaxIter int
}

// ApprenticeStep records one iteration.
type ApprenticeStep struct {
	Iter int `json:"iter"`
	// Margin is t = min over the policies so far of wᵀ(μ_E − μ(π)) for
	// the qp method, and ‖μ_E − μ̄‖ for the projection method.
	Margin float64   `json:"margin"`
	W      []float64 `json:"-"`
	// Policy is the policy the oracle returned for this w, if it was asked.
	Policy string `json:"policy,omitempty"`
}

// ApprenticeResult is the outcome of Apprentice.
type ApprenticeResult struct {
	// W is the last reward direction under which the expert still beat
	// every known policy by more than ε, with ‖W‖₂ = 1, and Margin that
	// margin. Once a policy matches the expert no direction separates them,
	// so the last separating one is the answer. W is nil when even the
	// initial policy is within ε of the expert.
	W      []float64
	Margin float64
	// FinalMargin is the margin when the loop stopped.
	FinalMargin float64
	Steps       []ApprenticeStep
	Stopped     string
}

// Apprentice runs Algorithm 1 from the expert feature expectations muE and
// an initial policy, asking oracle for a new policy under each w_t, until
// the margin is ≤ Epsilon, the oracle returns nothing new, or MaxIter
// oracle calls have been made. It panics if lengths differ.
func Apprentice(muE []float64, initial Policy, oracle Oracle, cfg ApprenticeConfig) (*ApprenticeResult, error) {
	if len(initial.Mu) != len(muE) {
		panic("rewardhead: Apprentice dimension mismatch")
	}
	if cfg.Method != "projection" && cfg.Method != "qp" {
		return nil, fmt.Errorf("apprenticeship method %q, want projection or qp", cfg.Method)
	}
	if cfg.MaxIter < 1 {
		return nil, fmt.Errorf("apprenticeship max iterations %d, want ≥ 1", cfg.MaxIter)
	}
	d := len(muE)
	res := &ApprenticeResult{}
	policies := []Policy{initial}
	// muBar is the projection method's closest known point to muE.
	muBar := slices.Clone(initial.Mu)
	w := make([]float64, d)
	margin := 0.0
	update := func() {
		switch cfg.Method {
		case "projection":
			for j := range w {
				w[j] = muE[j] - muBar[j]
			}
			margin = norm(w)
		case "qp":
			diffs := make([][]float64, len(policies))
			for k, p := range policies {
				diffs[k] = make([]float64, d)
				for j := range diffs[k] {
					diffs[k][j] = muE[j] - p.Mu[j]
				}
			}
			v := MinNormPoint(diffs)
			copy(w, v)
			margin = norm(v)
		}
		if margin > 0 {
			for j := range w {
				w[j] /= margin
			}
		}
	}
	update()
	for iter := 1; ; iter++ {
		step := ApprenticeStep{Iter: iter, Margin: margin, W: slices.Clone(w)}
		if margin <= cfg.Epsilon {
			res.Steps = append(res.Steps, step)
			res.Stopped = fmt.Sprintf("margin %.4g ≤ ε = %g", margin, cfg.Epsilon)
			break
		}
		if iter > cfg.MaxIter {
			res.Steps = append(res.Steps, step)
			res.Stopped = fmt.Sprintf("reached %d oracle calls", cfg.MaxIter)
			break
		}
		p, err := oracle.BestResponse(w)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: %w", iter, err)
		}
		if len(p.Mu) != d {
			return nil, fmt.Errorf("iteration %d: oracle returned μ of dimension %d, want %d", iter, len(p.Mu), d)
		}
		step.Policy = p.Name
		res.Steps = append(res.Steps, step)
		if slices.ContainsFunc(policies, func(q Policy) bool { return slices.Equal(q.Mu, p.Mu) }) {
			res.Stopped = fmt.Sprintf("oracle returned %q, already in the set: no policy left to separate", p.Name)
			break
		}
		policies = append(policies, p)
		if cfg.Method == "projection" {
			// Project muE onto the line through muBar and μ(π).
			dir := make([]float64, d)
			for j := range dir {
				dir[j] = p.Mu[j] - muBar[j]
			}
			var num float64
			for j := range dir {
				num += dir[j] * (muE[j] - muBar[j])
			}
			if den := dot(dir, dir); den > 0 {
				for j := range muBar {
					muBar[j] += num / den * dir[j]
				}
			}
		}
		update()
	}
	res.FinalMargin = margin
	for k := len(res.Steps) - 1; k >= 0; k-- {
		if st := res.Steps[k]; st.Margin > cfg.Epsilon {
			res.W, res.Margin = st.W, st.Margin
			break
		}
	}
	return res, nil
}

// MinNormPoint returns the point of smallest Euclidean norm in the convex
// hull of points. By minimax duality, when it is v ≠ 0, w = v/‖v‖ solves
// max over ‖w‖ ≤ 1 of min over k of wᵀpoints[k], with value ‖v‖; this is
// the max-margin step as a small QP, min λᵀGλ over the simplex with G the
// Gram matrix. It is solved by accelerated projected gradient to 1e-13
// in the objective's relative change. It panics on no points.
func MinNormPoint(points [][]float64) []float64 {
	k := len(points)
	if k == 0 {
		panic("rewardhead: MinNormPoint of no points")
	}
	g := make([]float64, k*k)
	var trace float64
	for a := range points {
		for b := range points {
			g[a*k+b] = dot(points[a], points[b])
		}
		trace += g[a*k+a]
	}
	lam := make([]float64, k)
	lam[0] = 1
	if trace > 0 {
		// FISTA with step 1/L, L = 2·λmax(G) ≤ 2·trace(G).
		step := 1 / (2 * trace)
		y := slices.Clone(lam)
		prev := slices.Clone(lam)
		grad := make([]float64, k)
		t := 1.0
		fPrev := math.Inf(1)
		for it := 0; it < 200000; it++ {
			for a := 0; a < k; a++ {
				var s float64
				for b := 0; b < k; b++ {
					s += g[a*k+b] * y[b]
				}
				grad[a] = 2 * s
			}
			copy(prev, lam)
			for a := range lam {
				lam[a] = y[a] - step*grad[a]
			}
			projectSimplex(lam)
			tNext := (1 + math.Sqrt(1+4*t*t)) / 2
			for a := range y {
				y[a] = lam[a] + (t-1)/tNext*(lam[a]-prev[a])
			}
			t = tNext
			if it%100 == 99 {
				f := quad(g, lam)
				if fPrev-f <= 1e-13*math.Max(f, 1e-300) && fPrev >= f {
					break
				}
				fPrev = f
			}
		}
	}
	v := make([]float64, len(points[0]))
	for a, p := range points {
		for j, x := range p {
			v[j] += lam[a] * x
		}
	}
	return v
}

func quad(g, x []float64) float64 {
	k := len(x)
	var s float64
	for a := 0; a < k; a++ {
		for b := 0; b < k; b++ {
			s += x[a] * g[a*k+b] * x[b]
		}
	}
	return s
}

// projectSimplex replaces x by its Euclidean projection onto the
// probability simplex (Held, Wolfe & Crowder; sort-based).
func projectSimplex(x []float64) {
	u := slices.Clone(x)
	slices.Sort(u)
	slices.Reverse(u)
	var cum, theta float64
	for i, v := range u {
		cum += v
		if t := (cum - 1) / float64(i+1); v-t > 0 {
			theta = t
		}
	}
	for i := range x {
		x[i] = math.Max(0, x[i]-theta)
	}
}
