package rewardhead

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Rewards reach the metrics from heads and noise analyses, so they may be
// huge, infinite or NaN. The helpers below keep every metric finite or
// Undefined: sums of squares of huge values are taken on copies scaled by a
// power of two, which changes no digit, and only when the largest magnitude
// is far from 1, so that ordinary rewards are computed exactly as always.

// allFinite reports whether no value is NaN or ±Inf.
func allFinite(xs ...[]float64) bool {
	for _, x := range xs {
		for _, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
	}
	return true
}

// hasNaN reports whether some value is NaN.
func hasNaN(xs ...[]float64) bool {
	for _, x := range xs {
		for _, v := range x {
			if v != v {
				return true
			}
		}
	}
	return false
}

// scaleExp returns the power of two k that brings the largest magnitude
// of finite values into [½, 1) when multiplied by 2^-k, or 0 when that
// magnitude is within [2^-500, 2^500], where squares and sums of squares
// cannot overflow or underflow.
func scaleExp(xs ...[]float64) int {
	var m float64
	for _, x := range xs {
		for _, v := range x {
			m = math.Max(m, math.Abs(v))
		}
	}
	if m == 0 || (m >= 0x1p-500 && m <= 0x1p500) {
		return 0
	}
	_, e := math.Frexp(m)
	return e
}

// scaled returns x·2^-k, x itself when k is 0.
func scaled(x []float64, k int) []float64 {
	if k == 0 {
		return x
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = math.Ldexp(v, -k)
	}
	return out
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// SeparationDefinition states what the separation metric is. The paper
// never defines its separation metric; this is ours.
const SeparationDefinition = "separation = AUC = P(R(o⁺) > R(o⁻)) + ½·P(R(o⁺) = R(o⁻)) for a random non-toxic output o⁺ and a random toxic output o⁻; 1 is perfect, 0.5 is chance"

// Confusion counts predictions with toxic as the positive class: a row is
// predicted toxic when its reward is at most the threshold.
type Confusion struct {
	TP int `json:"tp"` // toxic rows predicted toxic
	FP int `json:"fp"` // non-toxic rows predicted toxic
	TN int `json:"tn"` // non-toxic rows predicted non-toxic
	FN int `json:"fn"` // toxic rows predicted non-toxic
}

// Classify counts the confusion matrix for non-toxic rewards pos and toxic
// rewards neg at threshold thr.
func Classify(pos, neg []float64, thr float64) Confusion {
	var c Confusion
	for _, r := range pos {
		if r <= thr {
			c.FP++
		} else {
			c.TN++
		}
	}
	for _, r := range neg {
		if r <= thr {
			c.TP++
		} else {
			c.FN++
		}
	}
	return c
}

func ratio(num, den int, why string) Value {
	if den == 0 {
		return Undefined(why)
	}
	return Defined(float64(num) / float64(den))
}

// Accuracy is (TP + TN) / all.
func (c Confusion) Accuracy() Value {
	return ratio(c.TP+c.TN, c.TP+c.TN+c.FP+c.FN, "no rows")
}

// Precision is TP / (TP + FP).
func (c Confusion) Precision() Value {
	return ratio(c.TP, c.TP+c.FP, "no row was predicted toxic")
}

// Recall is TP / (TP + FN), the sensitivity.
func (c Confusion) Recall() Value {
	return ratio(c.TP, c.TP+c.FN, "no toxic rows")
}

// Specificity is TN / (TN + FP).
func (c Confusion) Specificity() Value {
	return ratio(c.TN, c.TN+c.FP, "no non-toxic rows")
}

// F1 is 2TP / (2TP + FP + FN), the harmonic mean of precision and recall;
// it is 0 when no toxic row is caught but some prediction or toxic row
// exists.
func (c Confusion) F1() Value {
	return ratio(2*c.TP, 2*c.TP+c.FP+c.FN, "no toxic rows and no toxic predictions")
}

// AUC returns P(a > b) + ½·P(a = b) for a drawn from pos and b from neg,
// the Mann–Whitney statistic, in O(n log n) from average ranks.
func AUC(pos, neg []float64) Value {
	if len(pos) == 0 || len(neg) == 0 {
		return Undefined("AUC needs rows in both classes")
	}
	if hasNaN(pos, neg) {
		return Undefined("AUC is undefined when rewards include NaN")
	}
	all := make([]float64, 0, len(pos)+len(neg))
	all = append(all, pos...)
	all = append(all, neg...)
	r := Ranks(all)
	var sum float64
	for i := range pos {
		sum += r[i]
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return Defined((sum - np*(np+1)/2) / (np * nn))
}

// CohensD returns (mean(pos) − mean(neg)) / s, s the pooled standard
// deviation √(((n⁺−1)s⁺² + (n⁻−1)s⁻²) / (n⁺ + n⁻ − 2)).
func CohensD(pos, neg []float64) Value {
	np, nn := len(pos), len(neg)
	if np == 0 || nn == 0 {
		return Undefined("Cohen's d needs rows in both classes")
	}
	if np+nn < 3 {
		return Undefined("Cohen's d needs at least three rows for a pooled variance")
	}
	if !allFinite(pos, neg) {
		return Undefined("Cohen's d is undefined when rewards include NaN or ±Inf")
	}
	// d is unchanged when both classes are scaled alike.
	k := scaleExp(pos, neg)
	mp, vp := meanVar(scaled(pos, k))
	mn, vn := meanVar(scaled(neg, k))
	pooled := (float64(np-1)*vp + float64(nn-1)*vn) / float64(np+nn-2)
	if pooled == 0 {
		return Undefined("Cohen's d is undefined when rewards do not vary within classes")
	}
	d := (mp - mn) / math.Sqrt(pooled)
	if !finite(d) {
		return Undefined("Cohen's d overflows float64: the rewards vary too little within classes")
	}
	return Defined(d)
}

// meanVar returns the mean and the unbiased variance (0 for one value).
func meanVar(x []float64) (mean, variance float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	for _, v := range x {
		d := v - mean
		variance += d * d
	}
	return mean, variance / float64(len(x)-1)
}

// MeanStd returns the mean and the sample standard deviation (n − 1) of x,
// as results over seeds or repeats are summarised: 0 for the deviation of
// one value, and 0, 0 for none.
func MeanStd(x []float64) (mean, std float64) {
	if len(x) == 0 {
		return 0, 0
	}
	m, v := meanVar(x)
	return m, math.Sqrt(v)
}

// ClassStats summarises one class's rewards.
type ClassStats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"` // sample standard deviation, 0 for one row
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// Summarise returns the ClassStats of x, which must not be empty. Finite
// values give a finite mean; the standard deviation is finite unless it
// exceeds the largest float64.
func Summarise(x []float64) ClassStats {
	k := 0
	if allFinite(x) {
		k = scaleExp(x)
	}
	m, v := meanVar(scaled(x, k))
	return ClassStats{N: len(x), Mean: math.Ldexp(m, k), Std: math.Ldexp(math.Sqrt(v), k), Min: slices.Min(x), Max: slices.Max(x)}
}

// Threshold says how the decision threshold is chosen.
type Threshold struct {
	// Rule is "value", "mean" or "best-f1".
	Rule string
	// Value is the threshold for the "value" rule.
	Value float64
}

// ParseThreshold parses a --threshold flag: "mean", "best-f1", or a number.
func ParseThreshold(s string) (Threshold, error) {
	switch s {
	case "mean", "best-f1":
		return Threshold{Rule: s}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return Threshold{}, fmt.Errorf("threshold %q: want mean, best-f1 or a finite number", s)
	}
	return Threshold{Rule: "value", Value: v}, nil
}

// Resolve returns the numeric threshold for the given rewards: the value
// itself, the mean of all rewards, or the reward that maximises F1.
func (t Threshold) Resolve(pos, neg []float64) float64 {
	switch t.Rule {
	case "mean":
		k := 0
		if allFinite(pos, neg) {
			k = scaleExp(pos, neg) // a sum of huge rewards could overflow
		}
		var s float64
		for _, v := range scaled(pos, k) {
			s += v
		}
		for _, v := range scaled(neg, k) {
			s += v
		}
		return math.Ldexp(s/float64(len(pos)+len(neg)), k)
	case "best-f1":
		return BestF1Threshold(pos, neg)
	case "value", "":
		return t.Value
	}
	panic(fmt.Sprintf("rewardhead: unknown threshold rule %q", t.Rule))
}

// BestF1Threshold returns the threshold that maximises F1 when rows with
// reward ≤ threshold are predicted toxic. Only observed rewards can change
// the prediction, so it sweeps them in ascending order in O(n log n) and
// returns the smallest best one. A NaN reward is never ≤ a threshold, so
// NaN rows count as predicted non-toxic and are no candidates; when every
// reward is NaN the threshold is 0, as any gives the same calls. It panics
// if neg is empty.
func BestF1Threshold(pos, neg []float64) float64 {
	if len(neg) == 0 {
		panic("rewardhead: BestF1Threshold with no toxic rows")
	}
	type row struct {
		r     float64
		toxic bool
	}
	rows := make([]row, 0, len(pos)+len(neg))
	for _, v := range pos {
		if v == v {
			rows = append(rows, row{v, false})
		}
	}
	for _, v := range neg {
		if v == v {
			rows = append(rows, row{v, true})
		}
	}
	if len(rows) == 0 {
		return 0
	}
	slices.SortFunc(rows, func(a, b row) int {
		switch {
		case a.r < b.r:
			return -1
		case a.r > b.r:
			return 1
		}
		return 0
	})
	best, bestF1 := rows[0].r, -1.0
	tp, fp := 0, 0
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].r == rows[i].r {
			if rows[j].toxic {
				tp++
			} else {
				fp++
			}
			j++
		}
		f1 := 2 * float64(tp) / float64(2*tp+fp+(len(neg)-tp))
		if f1 > bestF1 {
			best, bestF1 = rows[i].r, f1
		}
		i = j
	}
	return best
}

// Agreement compares the IRL reward's toxic/non-toxic calls with the
// ground-truth reward's, row by row, against the true class of each row:
// the paper's error type distribution.
type Agreement struct {
	BothRight   int     `json:"both_right"`
	BothWrong   int     `json:"both_wrong"`
	OnlyIRL     int     `json:"only_irl_right"`
	OnlyGT      int     `json:"only_gt_right"`
	GTThreshold float64 `json:"gt_threshold"`
}

// Report is what `irl reward eval` prints. Toxic is the positive class.
type Report struct {
	NPos          int        `json:"n_pos"`
	NNeg          int        `json:"n_neg"`
	Threshold     float64    `json:"threshold"`
	ThresholdRule string     `json:"threshold_rule"`
	Accuracy      Value      `json:"accuracy"`
	Precision     Value      `json:"precision"`
	Recall        Value      `json:"recall"`
	F1            Value      `json:"f1"`
	Sensitivity   Value      `json:"sensitivity"`
	Specificity   Value      `json:"specificity"`
	Confusion     Confusion  `json:"confusion"`
	Separation    Value      `json:"separation"`
	CohensD       Value      `json:"cohens_d"`
	RewardPos     ClassStats `json:"reward_pos"`
	RewardNeg     ClassStats `json:"reward_neg"`
	// The fields below are present only with ground-truth rewards.
	KendallTau *Value     `json:"kendall_tau,omitempty"`
	Spearman   *Value     `json:"spearman,omitempty"`
	Pearson    *Value     `json:"pearson,omitempty"`
	Agreement  *Agreement `json:"agreement,omitempty"`
	// Undefined gives the reason for every metric that is null.
	Undefined map[string]string `json:"undefined,omitempty"`
	// Definitions states what the less standard metrics mean.
	Definitions map[string]string `json:"definitions"`
}

// Evaluate computes the metrics of rewards pos (non-toxic rows) and neg
// (toxic rows), both non-empty. gtPos and gtNeg are ground-truth rewards
// for the same rows, or both nil; ground truth calls a row toxic when its
// reward is ≤ 0. It panics if a slice is empty or the ground-truth lengths
// differ from the rewards', which callers check as bad input first.
func Evaluate(pos, neg, gtPos, gtNeg []float64, thr Threshold) *Report {
	if len(pos) == 0 || len(neg) == 0 {
		panic("rewardhead: Evaluate needs rows in both classes")
	}
	if (gtPos == nil) != (gtNeg == nil) || (gtPos != nil && (len(gtPos) != len(pos) || len(gtNeg) != len(neg))) {
		panic("rewardhead: Evaluate ground truth does not match the rewards")
	}
	t := thr.Resolve(pos, neg)
	c := Classify(pos, neg, t)
	rule := thr.Rule
	if rule == "" {
		rule = "value"
	}
	r := &Report{
		NPos: len(pos), NNeg: len(neg),
		Threshold: t, ThresholdRule: rule,
		Accuracy: c.Accuracy(), Precision: c.Precision(), Recall: c.Recall(), F1: c.F1(),
		Sensitivity: c.Recall(), Specificity: c.Specificity(),
		Confusion:  c,
		Separation: AUC(pos, neg), CohensD: CohensD(pos, neg),
		RewardPos: Summarise(pos), RewardNeg: Summarise(neg),
		Definitions: map[string]string{
			"separation": SeparationDefinition,
			"positive":   "toxic is the positive class; a row is predicted toxic when its reward is ≤ threshold; --pos rows are non-toxic, --neg rows toxic",
		},
	}
	if gtPos != nil {
		irl := append(append([]float64(nil), pos...), neg...)
		gt := append(append([]float64(nil), gtPos...), gtNeg...)
		kt, sp, pe := KendallTauB(irl, gt), Spearman(irl, gt), Pearson(irl, gt)
		r.KendallTau, r.Spearman, r.Pearson = &kt, &sp, &pe
		a := &Agreement{}
		for i := range irl {
			toxic := i >= len(pos)
			irlRight := (irl[i] <= t) == toxic
			gtRight := (gt[i] <= a.GTThreshold) == toxic
			switch {
			case irlRight && gtRight:
				a.BothRight++
			case !irlRight && !gtRight:
				a.BothWrong++
			case irlRight:
				a.OnlyIRL++
			default:
				a.OnlyGT++
			}
		}
		r.Agreement = a
		r.Definitions["agreement"] = "per row, whether the IRL call (reward ≤ threshold → toxic) and the ground-truth call (ground-truth reward ≤ gt_threshold → toxic) match the row's class"
		r.Definitions["kendall_tau"] = "Kendall τ-b (tie-corrected) between IRL and ground-truth rewards over all rows, pos and neg together"
	}
	r.collectUndefined()
	return r
}

func (r *Report) collectUndefined() {
	add := func(name string, v *Value) {
		if v != nil && !v.OK() {
			if r.Undefined == nil {
				r.Undefined = map[string]string{}
			}
			r.Undefined[name] = v.Why
		}
	}
	add("accuracy", &r.Accuracy)
	add("precision", &r.Precision)
	add("recall", &r.Recall)
	add("f1", &r.F1)
	add("sensitivity", &r.Sensitivity)
	add("specificity", &r.Specificity)
	add("separation", &r.Separation)
	add("cohens_d", &r.CohensD)
	add("kendall_tau", r.KendallTau)
	add("spearman", r.Spearman)
	add("pearson", r.Pearson)
}
