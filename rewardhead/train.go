package rewardhead

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// TrainConfig holds the settings of pairwise max-margin IRL training.
// DefaultTrainConfig gives the defaults; the zero value is not usable.
type TrainConfig struct {
	// Loss is the pairwise loss.
	Loss Loss
	// Epochs is the maximum number of epochs.
	Epochs int
	// LR, Beta1 and Beta2 are the Adam step size and moment decay rates.
	LR, Beta1, Beta2 float64
	// PosPerEpoch and NegPerEpoch are how many expert and baseline rows are
	// drawn, without replacement, each epoch. A pool smaller than the count
	// is used whole. Every drawn expert row is paired with every drawn
	// baseline row.
	PosPerEpoch, NegPerEpoch int
	// StepsPerEpoch is how many Adam steps are taken on each epoch's pairs.
	StepsPerEpoch int
	// MaxNorm bounds ‖w‖₂ by projection, w = Π(v) for the parameter v that
	// Adam moves; 0 means no bound. The asymmetric loss is unbounded below
	// and needs one.
	MaxNorm float64
	// Epsilon stops training after an epoch whose monitor loss changed by
	// at most Epsilon from the previous epoch's; 0 never stops early.
	Epsilon float64
	// Monitor is how many rows per class form the fixed monitor set, drawn
	// once, on which convergence and the best epoch are judged. A fixed set
	// keeps the epoch-to-epoch draw noise out of both decisions.
	Monitor int
	// Seed seeds every random draw; equal seeds give equal heads.
	Seed uint64
	// Select chooses the head returned as Result.Best: "best" for the epoch
	// with the lowest monitor loss (the earliest on ties), "final" for the
	// last epoch trained.
	Select string
	// OnEpoch, if not nil, is called after every epoch with that epoch's
	// head and statistics; an error stops training and is returned.
	OnEpoch func(h *Head, s EpochStats) error
}

// DefaultTrainConfig returns the defaults: asymmetric loss with p = 2 and
// ‖w‖ ≤ 1, 60 epochs of 50 + 50 rows, one Adam step per epoch at lr 0.01
// with betas (0.9, 0.999), a 256-row monitor set, no early stop, seed 1,
// and the final epoch's head as the result. The final head is the default
// because it has seen the most draws; the monitor set is in-sample and
// small, so its lowest loss mostly tracks draw noise.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		Loss:          Asymmetric{P: 2},
		Epochs:        60,
		LR:            0.01,
		Beta1:         0.9,
		Beta2:         0.999,
		PosPerEpoch:   50,
		NegPerEpoch:   50,
		StepsPerEpoch: 1,
		MaxNorm:       1,
		Monitor:       256,
		Seed:          1,
		Select:        "final",
	}
}

// Validate reports a setting that cannot be trained with.
func (c *TrainConfig) Validate() error {
	var errs []error
	if c.Loss == nil {
		errs = append(errs, errors.New("no loss"))
	}
	if c.Epochs < 1 {
		errs = append(errs, fmt.Errorf("epochs %d, want ≥ 1", c.Epochs))
	}
	if !(c.LR > 0) {
		errs = append(errs, fmt.Errorf("lr %v, want > 0", c.LR))
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) {
		errs = append(errs, fmt.Errorf("betas (%v, %v), want each in [0,1)", c.Beta1, c.Beta2))
	}
	if c.PosPerEpoch < 1 || c.NegPerEpoch < 1 {
		errs = append(errs, fmt.Errorf("pos/neg per epoch %d/%d, want ≥ 1 each", c.PosPerEpoch, c.NegPerEpoch))
	}
	if c.StepsPerEpoch < 1 {
		errs = append(errs, fmt.Errorf("steps per epoch %d, want ≥ 1", c.StepsPerEpoch))
	}
	if c.MaxNorm < 0 || math.IsNaN(c.MaxNorm) {
		errs = append(errs, fmt.Errorf("max norm %v, want ≥ 0 (0 for none)", c.MaxNorm))
	}
	if _, ok := c.Loss.(Asymmetric); ok && c.MaxNorm == 0 {
		errs = append(errs, errors.New("the asymmetric loss is unbounded below and needs a max norm > 0"))
	}
	if c.Epsilon < 0 || math.IsNaN(c.Epsilon) {
		errs = append(errs, fmt.Errorf("epsilon %v, want ≥ 0", c.Epsilon))
	}
	if c.Monitor < 1 {
		errs = append(errs, fmt.Errorf("monitor %d, want ≥ 1", c.Monitor))
	}
	if c.Select != "best" && c.Select != "final" {
		errs = append(errs, fmt.Errorf("select %q, want best or final", c.Select))
	}
	return errors.Join(errs...)
}

// EpochStats is one line of train.jsonl.
type EpochStats struct {
	Epoch int `json:"epoch"`
	// Loss is the mean pair loss on the epoch's draw before its updates.
	Loss float64 `json:"loss"`
	// MonitorLoss is the mean pair loss on the fixed monitor set after the
	// epoch's updates.
	MonitorLoss float64 `json:"monitor_loss"`
	// Margin is wᵀ(μ⁺ − μ⁻): the mean expert reward minus the mean baseline
	// reward over the whole training pools, after the epoch.
	Margin float64 `json:"margin"`
	// PairAccuracy is the fraction of monitor pairs with R(o⁺) > R(o⁻).
	PairAccuracy float64 `json:"pair_accuracy"`
	// WNorm is ‖w‖₂ after the epoch.
	WNorm float64 `json:"w_norm"`
	// Pairs is the number of pairs the epoch trained on.
	Pairs int `json:"pairs"`
}

// Result is the outcome of Train.
type Result struct {
	// Heads holds every epoch's head, Heads[i] from epoch i+1.
	Heads []*Head
	// Stats holds every epoch's statistics.
	Stats []EpochStats
	// Best is the selected head (see TrainConfig.Select), one of Heads.
	Best *Head
	// Stopped says why training ended before Epochs, or is empty.
	Stopped string
}

// BiasRule describes how Train sets b, which a pairwise loss cannot see
// since it cancels in R(o⁺) − R(o⁻).
const BiasRule = "b = −wᵀ(μ⁺ + μ⁻)/2 over the training pools, so reward 0 lies midway between the class mean rewards"

// Train learns a reward head by pairwise max-margin IRL: expert rows pos
// (o⁺, non-toxic) should out-score baseline rows neg (o⁻, toxic). Each
// epoch draws rows from both pools, pairs every drawn expert row with every
// drawn baseline row, and takes Adam steps on the mean of ℓ(R(o⁺) − R(o⁻)),
// with w the projection onto ‖w‖₂ ≤ MaxNorm of the parameter Adam moves.
// w starts at zero. The bias follows BiasRule.
func Train(pos, neg *Features, cfg TrainConfig) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("training settings: %w", err)
	}
	if err := SameKind(pos, neg); err != nil {
		return nil, err
	}
	d := pos.D
	muPos, muNeg := pos.Mean(), neg.Mean()
	muSum := make([]float64, d)
	muDiff := make([]float64, d)
	for j := range muSum {
		muSum[j] = muPos[j] + muNeg[j]
		muDiff[j] = muPos[j] - muNeg[j]
	}

	// Separate streams keep the epoch draws independent of the monitor size.
	drawRNG := rand.New(rand.NewPCG(cfg.Seed, 0x6472617773))
	monRNG := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6e69746f72))
	monPos := sampleRows(monRNG, pos.N, cfg.Monitor, nil)
	monNeg := sampleRows(monRNG, neg.N, cfg.Monitor, nil)
	permPos := identity(pos.N)
	permNeg := identity(neg.N)

	// Adam moves an unconstrained v and the head is its projection
	// w = Π(v) onto ‖w‖₂ ≤ MaxNorm, with gradients taken through Π.
	// Projecting the Adam iterate itself would stop where the
	// Adam-preconditioned gradient, not the gradient, is normal to the
	// sphere; for the near-linear asymmetric loss that point leans toward
	// sign(w*) rather than w*.
	v := make([]float64, d)
	w := make([]float64, d)
	grad := make([]float64, d)
	adam := newAdam(d, cfg.LR, cfg.Beta1, cfg.Beta2)
	settings := cfg.record(pos, neg)
	res := &Result{}
	bestLoss := math.Inf(1)
	prevMon := math.NaN()
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		ip := sampleRows(drawRNG, pos.N, cfg.PosPerEpoch, permPos)
		in := sampleRows(drawRNG, neg.N, cfg.NegPerEpoch, permNeg)
		var st EpochStats
		st.Epoch = epoch
		st.Pairs = len(ip) * len(in)
		for step := 0; step < cfg.StepsPerEpoch; step++ {
			loss, _ := pairObjective(cfg.Loss, w, pos, neg, ip, in, grad)
			if step == 0 {
				st.Loss = loss
			}
			if cfg.MaxNorm > 0 {
				projectGrad(v, cfg.MaxNorm, grad)
			}
			adam.step(v, grad)
			copy(w, v)
			if cfg.MaxNorm > 0 {
				projectBall(w, cfg.MaxNorm)
			}
		}
		st.MonitorLoss, st.PairAccuracy = pairObjective(cfg.Loss, w, pos, neg, monPos, monNeg, nil)
		st.Margin = dot(w, muDiff)
		st.WNorm = norm(w)

		h := &Head{
			Format:   HeadFormat,
			Kind:     KindIRL,
			W:        append([]float64(nil), w...),
			B:        -dot(w, muSum) / 2,
			Features: pos.Info(),
			Epoch:    epoch,
			Training: settings,
			Notes:    []string{BiasRule},
		}
		for _, v := range h.W {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("epoch %d: weights diverged to %v; lower the learning rate", epoch, v)
			}
		}
		res.Heads = append(res.Heads, h)
		res.Stats = append(res.Stats, st)
		if cfg.OnEpoch != nil {
			if err := cfg.OnEpoch(h, st); err != nil {
				return nil, err
			}
		}
		if st.MonitorLoss < bestLoss {
			bestLoss = st.MonitorLoss
			res.Best = h
		}
		if cfg.Epsilon > 0 && epoch > 1 && math.Abs(st.MonitorLoss-prevMon) <= cfg.Epsilon {
			res.Stopped = fmt.Sprintf("converged after epoch %d: monitor loss changed by %.3g ≤ ε = %g", epoch, math.Abs(st.MonitorLoss-prevMon), cfg.Epsilon)
			break
		}
		prevMon = st.MonitorLoss
	}
	if cfg.Select == "final" || res.Best == nil {
		res.Best = res.Heads[len(res.Heads)-1]
	}
	return res, nil
}

// record is the training settings as stored in heads.
func (c *TrainConfig) record(pos, neg *Features) map[string]any {
	m := map[string]any{
		"method":          "pairwise max-margin IRL",
		"loss":            c.Loss.Name(),
		"epochs":          c.Epochs,
		"lr":              c.LR,
		"beta1":           c.Beta1,
		"beta2":           c.Beta2,
		"pos_per_epoch":   c.PosPerEpoch,
		"neg_per_epoch":   c.NegPerEpoch,
		"steps_per_epoch": c.StepsPerEpoch,
		"max_norm":        c.MaxNorm,
		"epsilon":         c.Epsilon,
		"monitor":         c.Monitor,
		"seed":            c.Seed,
		"select":          c.Select,
		"pos":             pos.Path,
		"neg":             neg.Path,
		"n_pos":           pos.N,
		"n_neg":           neg.N,
	}
	for k, v := range c.Loss.Params() {
		m["loss_"+k] = v
	}
	return m
}

// PairObjective returns the mean of ℓ(wᵀ(h⁺ᵢ − h⁻ⱼ)) over all pairs of the
// rows pi of pos and nj of neg, and writes its gradient in w into grad when
// grad is not nil. It is exported for checking against finite differences.
func PairObjective(l Loss, w []float64, pos, neg *Features, pi, nj []int, grad []float64) float64 {
	v, _ := pairObjective(l, w, pos, neg, pi, nj, grad)
	return v
}

// pairObjective also returns the fraction of pairs ordered correctly. The
// gradient is Σᵢ aᵢh⁺ᵢ − Σⱼ cⱼh⁻ⱼ with aᵢ, cⱼ the row and column sums of
// ℓ'(xᵢⱼ), so it costs O((P+N)·D + P·N) rather than O(P·N·D).
func pairObjective(l Loss, w []float64, pos, neg *Features, pi, nj []int, grad []float64) (float64, float64) {
	s := make([]float64, len(pi))
	for k, i := range pi {
		s[k] = dot32(w, pos.Row(i))
	}
	t := make([]float64, len(nj))
	for k, j := range nj {
		t[k] = dot32(w, neg.Row(j))
	}
	var a, c []float64
	if grad != nil {
		a = make([]float64, len(pi))
		c = make([]float64, len(nj))
	}
	var sum float64
	var good int
	for p, sp := range s {
		for q, tq := range t {
			x := sp - tq
			sum += l.Value(x)
			if x > 0 {
				good++
			}
			if grad != nil {
				g := l.Deriv(x)
				a[p] += g
				c[q] += g
			}
		}
	}
	n := float64(len(s) * len(t))
	if grad != nil {
		clear(grad)
		for p, i := range pi {
			axpy32(a[p]/n, pos.Row(i), grad)
		}
		for q, j := range nj {
			axpy32(-c[q]/n, neg.Row(j), grad)
		}
	}
	return sum / n, float64(good) / n
}

// axpy32 adds alpha·x to y.
func axpy32(alpha float64, x []float32, y []float64) {
	if alpha == 0 {
		return
	}
	x = x[:len(y)]
	for j := range y {
		y[j] += alpha * float64(x[j])
	}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

// projectBall scales w onto ‖w‖₂ ≤ r, the Euclidean projection.
func projectBall(w []float64, r float64) {
	n := norm(w)
	if n > r {
		f := r / n
		for i := range w {
			w[i] *= f
		}
	}
}

// projectGrad turns grad, the gradient in w = Π(v), into the gradient in v:
// unchanged inside the ball, and outside it (r/‖v‖)(I − v̂v̂ᵀ)grad, since
// there Π(v) = r·v/‖v‖.
func projectGrad(v []float64, r float64, grad []float64) {
	n := norm(v)
	if n <= r {
		return
	}
	radial := dot(v, grad) / (n * n)
	f := r / n
	for i := range grad {
		grad[i] = f * (grad[i] - radial*v[i])
	}
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// sampleRows draws min(k, n) distinct indices below n by a partial
// Fisher–Yates shuffle of perm, which is reused across calls when not nil
// so each draw costs O(k).
func sampleRows(rng *rand.Rand, n, k int, perm []int) []int {
	if perm == nil {
		perm = identity(n)
	}
	k = min(k, n)
	for i := 0; i < k; i++ {
		j := i + rng.IntN(n-i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	return append([]int(nil), perm[:k]...)
}

// adam is the Adam optimiser with bias correction (Kingma & Ba 2015).
type adam struct {
	lr, b1, b2 float64
	m, v       []float64
	t          int
}

func newAdam(d int, lr, b1, b2 float64) *adam {
	return &adam{lr: lr, b1: b1, b2: b2, m: make([]float64, d), v: make([]float64, d)}
}

// step moves w against grad.
func (a *adam) step(w, grad []float64) {
	const eps = 1e-8
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	for i, g := range grad {
		a.m[i] = a.b1*a.m[i] + (1-a.b1)*g
		a.v[i] = a.b2*a.v[i] + (1-a.b2)*g*g
		w[i] -= a.lr * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + eps)
	}
}
