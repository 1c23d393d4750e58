package analysis

import (
	"fmt"
	"math"
	"slices"

	"irl/atomicfile"
	"irl/rewardhead"
)

// Summary is a metric's mean and sample standard deviation over repeats in
// which it was defined.
type Summary struct {
	Mean rewardhead.Value `json:"mean"`
	Std  rewardhead.Value `json:"std"`
	// N counts the repeats with a defined value; Undefined the others.
	N         int `json:"n"`
	Undefined int `json:"undefined,omitempty"`
	// Why is one reason a repeat was undefined, when any was.
	Why string `json:"why,omitempty"`
}

// Summarise reduces repeated metric values to a Summary.
func Summarise(vals []rewardhead.Value) Summary {
	var xs []float64
	var s Summary
	for _, v := range vals {
		if v.OK() {
			xs = append(xs, v.X)
		} else {
			s.Undefined++
			s.Why = v.Why
		}
	}
	s.N = len(xs)
	if len(xs) == 0 {
		s.Mean = rewardhead.Undefined("undefined in every repeat: " + s.Why)
		s.Std = s.Mean
		return s
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if math.IsInf(m, 0) { // finite values, but their sum overflowed
		s.Mean = rewardhead.Undefined("the mean of the repeats overflows float64")
		s.Std = s.Mean
		return s
	}
	s.Mean = rewardhead.Defined(m)
	if len(xs) < 2 {
		s.Std = rewardhead.Undefined("one defined repeat has no spread")
		return s
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	if sd := math.Sqrt(v / float64(len(xs)-1)); math.IsInf(sd, 0) {
		s.Std = rewardhead.Undefined("the spread of the repeats overflows float64")
	} else {
		s.Std = rewardhead.Defined(sd)
	}
	return s
}

// MetricNames lists the metrics the analyses track, in report order. The
// ground-truth ones are present only with ground truth.
var MetricNames = []string{"accuracy", "precision", "recall", "f1", "specificity", "separation", "cohens_d", "kendall_tau", "spearman", "pearson"}

// Metrics flattens a report to named values.
func Metrics(r *rewardhead.Report) map[string]rewardhead.Value {
	m := map[string]rewardhead.Value{
		"accuracy":    r.Accuracy,
		"precision":   r.Precision,
		"recall":      r.Recall,
		"f1":          r.F1,
		"specificity": r.Specificity,
		"separation":  r.Separation,
		"cohens_d":    r.CohensD,
	}
	if r.KendallTau != nil {
		m["kendall_tau"], m["spearman"], m["pearson"] = *r.KendallTau, *r.Spearman, *r.Pearson
	}
	return m
}

// summariseRuns reduces per-repeat metric maps to per-metric summaries.
func summariseRuns(runs []map[string]rewardhead.Value) map[string]Summary {
	keys := map[string]bool{}
	for _, r := range runs {
		for k := range r {
			keys[k] = true
		}
	}
	out := map[string]Summary{}
	for k := range keys {
		vals := make([]rewardhead.Value, 0, len(runs))
		for _, r := range runs {
			if v, ok := r[k]; ok {
				vals = append(vals, v)
			}
		}
		out[k] = Summarise(vals)
	}
	return out
}

// orNaN is a value for plotting: NaN marks a point to leave out.
func orNaN(v rewardhead.Value) float64 {
	if !v.OK() {
		return math.NaN()
	}
	return v.X
}

// WriteJSON writes v as indented JSON to path, atomically.
func WriteJSON(path string, v any) error {
	b, err := rewardhead.MarshalJSON(v)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, b)
}

// concat joins two slices into a new one.
func concat(a, b []float64) []float64 {
	return append(slices.Clip(slices.Clone(a)), b...)
}

// OneClass names the class, "toxic" or "non-toxic", that a threshold put
// every row in, given the metrics of one evaluation (as from Metrics), or
// returns "" when both classes were predicted or the metrics are missing.
// Every row predicted toxic is recall 1 with specificity 0; every row
// predicted non-toxic is the reverse.
func OneClass(m map[string]rewardhead.Value) string {
	rec, spec := m["recall"], m["specificity"]
	if !rec.OK() || !spec.OK() {
		return ""
	}
	switch {
	case rec.X == 1 && spec.X == 0:
		return "toxic"
	case rec.X == 0 && spec.X == 1:
		return "non-toxic"
	}
	return ""
}

// OneClassWarning returns a one-line warning when r's threshold puts every
// row in one predicted class, and "" otherwise. Such a threshold makes
// accuracy, precision, recall and F1 describe the threshold rather than the
// head; best-f1 picks one whenever no cut beats calling every row toxic.
func OneClassWarning(r *rewardhead.Report) string {
	class := OneClass(Metrics(r))
	if class == "" {
		return ""
	}
	hint := "the classification metrics describe the threshold, not the head; separation does not depend on it"
	if r.ThresholdRule == "best-f1" {
		hint = "best-f1 does this when no cut beats calling every row toxic, as on a weak head; " + hint
	}
	return fmt.Sprintf("warning: threshold %.6g (rule %s) predicts all %d rows %s: %s", r.Threshold, r.ThresholdRule, r.NPos+r.NNeg, class, hint)
}
