package analysis

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"irl/rewardhead"
)

// Emphasis groups, as in the paper's Figure 6.
const (
	GroupPrecision = "precision"
	GroupNonToxic  = "rewarding non-toxic"
	GroupToxic     = "penalising toxic"
	GroupNone      = "no emphasis"
)

// GroupingRule states how heads are grouped by emphasis.
const GroupingRule = "each head's precision, specificity (non-toxic outputs rewarded above the threshold) and recall (toxic outputs penalised to or below it) are z-scored across the heads; a head joins the group of its largest positive z-score (ties in that order), or 'no emphasis' when none is above the heads' mean"

// HeadSummary is the evaluation of one head in the non-identifiability
// analysis.
type HeadSummary struct {
	Name  string `json:"name"`
	Epoch int    `json:"epoch,omitempty"`
	// Metrics holds the report's metrics.
	Metrics map[string]rewardhead.Value `json:"metrics"`
	// RewardPos and RewardNeg are the per-class reward mean and std.
	RewardPos rewardhead.ClassStats `json:"reward_pos"`
	RewardNeg rewardhead.ClassStats `json:"reward_neg"`
	// CosineToEnsemble is the cosine between the head's w and the
	// ensemble's: how far the head's direction strays from the consensus.
	CosineToEnsemble rewardhead.Value `json:"cosine_to_ensemble"`
	// Emphasis holds the z-scores that decide Group.
	Emphasis map[string]float64 `json:"emphasis,omitempty"`
	Group    string             `json:"group,omitempty"`
}

// EpochsResult is the output of Epochs.
type EpochsResult struct {
	Heads []HeadSummary `json:"heads"`
	// Spread summarises each metric across the heads.
	Spread map[string]Summary `json:"spread"`
	// Groups lists the head names in each emphasis group.
	Groups       map[string][]string `json:"groups"`
	GroupingRule string              `json:"grouping_rule"`
	// Ensemble is the head whose reward is the mean of all heads' rewards.
	Ensemble HeadSummary `json:"ensemble"`
}

// Epochs evaluates every head (for example every epoch's head of one
// training run) on non-toxic features pos and toxic features neg, groups
// the heads by what they emphasise, and scores their ensemble. names label
// the heads; gtPos, gtNeg are ground truth or nil.
func Epochs(heads []*rewardhead.Head, names []string, pos, neg *rewardhead.Features, gtPos, gtNeg []float64, thr rewardhead.Threshold) (*EpochsResult, error) {
	if len(heads) == 0 {
		return nil, errors.New("epochs: no heads")
	}
	if len(names) != len(heads) {
		panic("analysis: Epochs names and heads differ in length")
	}
	for k, h := range heads {
		for _, f := range []*rewardhead.Features{pos, neg} {
			if err := h.Check(names[k], f); err != nil {
				return nil, err
			}
		}
	}
	ens, err := rewardhead.Ensemble(heads)
	if err != nil {
		return nil, err
	}
	evalHead := func(name string, h *rewardhead.Head) HeadSummary {
		sp, sn := h.Score(pos), h.Score(neg)
		r := rewardhead.Evaluate(sp, sn, gtPos, gtNeg, thr)
		return HeadSummary{
			Name: name, Epoch: h.Epoch, Metrics: Metrics(r),
			RewardPos: r.RewardPos, RewardNeg: r.RewardNeg,
			CosineToEnsemble: cosine(h.W, ens.W),
		}
	}
	res := &EpochsResult{GroupingRule: GroupingRule, Groups: map[string][]string{}}
	for k, h := range heads {
		res.Heads = append(res.Heads, evalHead(names[k], h))
	}
	res.Ensemble = evalHead("ensemble", ens)
	res.Ensemble.Epoch = 0
	runs := make([]map[string]rewardhead.Value, len(res.Heads))
	for k, s := range res.Heads {
		runs[k] = s.Metrics
	}
	res.Spread = summariseRuns(runs)

	// z-score each emphasis across heads; an undefined precision counts as
	// the lowest seen, since the head then flags nothing as toxic.
	axes := []struct{ group, metric string }{{GroupPrecision, "precision"}, {GroupNonToxic, "specificity"}, {GroupToxic, "recall"}}
	z := make([][]float64, len(heads))
	for k := range z {
		z[k] = make([]float64, len(axes))
	}
	for a, ax := range axes {
		vals := make([]float64, len(heads))
		lowest := math.Inf(1)
		for _, s := range res.Heads {
			if v := s.Metrics[ax.metric]; v.OK() {
				lowest = math.Min(lowest, v.X)
			}
		}
		if math.IsInf(lowest, 1) {
			lowest = 0
		}
		for k, s := range res.Heads {
			vals[k] = lowest
			if v := s.Metrics[ax.metric]; v.OK() {
				vals[k] = v.X
			}
		}
		m, sd := rewardhead.MeanStd(vals)
		for k := range vals {
			if sd > 0 {
				z[k][a] = (vals[k] - m) / sd
			}
		}
	}
	for k := range res.Heads {
		best, group := 0.0, GroupNone
		em := map[string]float64{}
		for a, ax := range axes {
			em[ax.group] = z[k][a]
			if z[k][a] > best {
				best, group = z[k][a], ax.group
			}
		}
		res.Heads[k].Emphasis, res.Heads[k].Group = em, group
		res.Groups[group] = append(res.Groups[group], res.Heads[k].Name)
	}
	return res, nil
}

func cosine(a, b []float64) rewardhead.Value {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	c := ab / math.Sqrt(aa*bb)
	if math.IsNaN(c) || math.IsInf(c, 0) || aa == 0 || bb == 0 {
		// Huge weights overflow the squares and tiny ones underflow them;
		// the cosine is the same for a and b scaled to a largest entry of
		// about 1, by a power of two.
		a, b = unitScale(a), unitScale(b)
		ab, aa, bb = 0, 0, 0
		for i := range a {
			ab += a[i] * b[i]
			aa += a[i] * a[i]
			bb += b[i] * b[i]
		}
		c = ab / math.Sqrt(aa*bb)
	}
	if aa == 0 || bb == 0 {
		return rewardhead.Undefined("cosine with a zero weight vector")
	}
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return rewardhead.Undefined("cosine of weights that are not finite")
	}
	return rewardhead.Defined(math.Max(-1, math.Min(1, c)))
}

// unitScale returns x·2^-k with the largest magnitude in [½, 1).
func unitScale(x []float64) []float64 {
	var m float64
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	if m == 0 || math.IsInf(m, 0) || math.IsNaN(m) {
		return x
	}
	_, k := math.Frexp(m)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = math.Ldexp(v, -k)
	}
	return out
}

// Plot writes the metrics per head and the per-class reward mean ± std per
// head into dir, and returns the paths. The x axis is the epoch when every
// head has one, else the head's position.
func (e *EpochsResult) Plot(dir string) ([]string, error) {
	xs := make([]float64, len(e.Heads))
	xLabel := "epoch"
	for k, h := range e.Heads {
		xs[k] = float64(h.Epoch)
		if h.Epoch == 0 {
			xLabel = "head"
		}
	}
	if xLabel == "head" {
		for k := range xs {
			xs[k] = float64(k + 1)
		}
	}
	var metrics []Series
	for _, name := range []string{"accuracy", "precision", "recall", "f1", "separation", "kendall_tau"} {
		if _, ok := e.Heads[0].Metrics[name]; !ok {
			continue
		}
		s := Series{Name: metricLabel(name), X: xs}
		for _, h := range e.Heads {
			s.Y = append(s.Y, orNaN(h.Metrics[name]))
		}
		metrics = append(metrics, s)
	}
	p1 := filepath.Join(dir, "epochs_metrics.png")
	if err := PlotCurves(p1, fmt.Sprintf("Metrics of %d heads", len(e.Heads)), xLabel, "metric", metrics); err != nil {
		return nil, err
	}
	// The classes' error bars would coincide where their spreads overlap;
	// each class is nudged a tenth of the smallest x step to its side.
	step := math.Inf(1)
	for k := 1; k < len(xs); k++ {
		if d := math.Abs(xs[k] - xs[k-1]); d > 0 {
			step = math.Min(step, d)
		}
	}
	if math.IsInf(step, 1) {
		step = 1
	}
	left, right := make([]float64, len(xs)), make([]float64, len(xs))
	for k, x := range xs {
		left[k], right[k] = x-0.1*step, x+0.1*step
	}
	rewards := []Series{{Name: nonToxicName + ", mean ± std", X: left, Color: nonToxicColor}, {Name: toxicName + ", mean ± std", X: right, Color: toxicColor}}
	for _, h := range e.Heads {
		rewards[0].Y = append(rewards[0].Y, h.RewardPos.Mean)
		rewards[0].Err = append(rewards[0].Err, h.RewardPos.Std)
		rewards[1].Y = append(rewards[1].Y, h.RewardNeg.Mean)
		rewards[1].Err = append(rewards[1].Err, h.RewardNeg.Std)
	}
	p2 := filepath.Join(dir, "epochs_rewards.png")
	if err := PlotCurves(p2, "Reward by class for each head", xLabel, "reward", rewards); err != nil {
		return nil, err
	}
	return []string{p1, p2}, nil
}
