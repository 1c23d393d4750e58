package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"irl/rewardhead"
)

// noiseSummaryMetrics are the metrics NoiseResult.Summary gives.
var noiseSummaryMetrics = []string{"accuracy", "precision", "recall", "f1", "separation", "kendall_tau_clean", "kendall_tau"}

// Summary is the mean metrics at the smallest and the largest σ: where the
// head starts and how far the noise takes it.
func (r *NoiseResult) Summary() []map[string]any {
	lo, hi := 0, 0
	for k, p := range r.Points {
		if p.Sigma < r.Points[lo].Sigma {
			lo = k
		}
		if p.Sigma > r.Points[hi].Sigma {
			hi = k
		}
	}
	var out []map[string]any
	for _, k := range []int{lo, hi} {
		if k >= len(r.Points) {
			break
		}
		p := r.Points[k]
		m := map[string]any{"sigma": p.Sigma}
		for _, name := range noiseSummaryMetrics {
			if s, ok := p.Metrics[name]; ok {
				m[name] = s.Mean
			}
		}
		out = append(out, m)
		if lo == hi {
			break
		}
	}
	return out
}

// Summary is, for each side of the ratio sweep, the mean plotted metrics at
// the smallest and the largest count of the varied class.
func (r *RatioResult) Summary() map[string]any {
	return map[string]any{"add_toxic": ratioEnds(r.AddToxic), "add_non_toxic": ratioEnds(r.AddNonToxic)}
}

func ratioEnds(pts []RatioPoint) []map[string]any {
	if len(pts) == 0 {
		return nil
	}
	lo, hi := 0, 0
	for k, p := range pts {
		if p.NVaried < pts[lo].NVaried {
			lo = k
		}
		if p.NVaried > pts[hi].NVaried {
			hi = k
		}
	}
	var out []map[string]any
	for _, k := range []int{lo, hi} {
		p := pts[k]
		m := map[string]any{"n_varied": p.NVaried, "fraction": p.Fraction, "n_pos_train": p.NPos, "n_neg_train": p.NNeg}
		for _, name := range RatioPlotMetrics {
			if s, ok := p.Metrics[name]; ok {
				m[name] = s.Mean
			}
		}
		out = append(out, m)
		if lo == hi {
			break
		}
	}
	return out
}

// OneClassWarnings returns a warning for each side of the sweep whose
// threshold t put every evaluation row in one class, in every repeat, at
// some sample count: there the classification metrics describe t, not the
// heads.
func (r *RatioResult) OneClassWarnings(t rewardhead.Threshold) []string {
	var out []string
	for _, side := range []struct {
		name string
		pts  []RatioPoint
	}{{"adding toxic", r.AddToxic}, {"adding non-toxic", r.AddNonToxic}} {
		var at []string
		for _, p := range side.pts {
			m := map[string]rewardhead.Value{}
			for k, v := range p.Metrics {
				m[k] = v.Mean
			}
			// A mean recall of 1 with specificity 0 means every repeat
			// called every row toxic.
			if cl := OneClass(m); cl != "" {
				at = append(at, fmt.Sprintf("%d (%s)", p.NVaried, cl))
			}
		}
		if len(at) > 0 {
			out = append(out, fmt.Sprintf("warning: %s examples, %s puts every evaluation row in one class at %d of %d sample counts, in every repeat: %s",
				side.name, thresholdName(t), len(at), len(side.pts), strings.Join(at, ", ")))
		}
	}
	return out
}

// Summary is the spread of accuracy, F1 and separation across the heads
// (mean, std, min, max) beside the ensemble's: how much the choice of epoch
// matters, and whether averaging the heads helps.
func (r *EpochsResult) Summary() map[string]any {
	spread, ens := map[string]any{}, map[string]any{}
	for _, name := range []string{"accuracy", "f1", "separation"} {
		s := r.Spread[name]
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, h := range r.Heads {
			if v := h.Metrics[name]; v.OK() {
				lo, hi = math.Min(lo, v.X), math.Max(hi, v.X)
			}
		}
		m := map[string]any{"mean": s.Mean, "std": s.Std}
		if lo <= hi {
			m["min"], m["max"] = lo, hi
		}
		spread[name] = m
		ens[name] = r.Ensemble.Metrics[name]
	}
	groups := map[string]int{}
	for g, names := range r.Groups {
		groups[g] = len(names)
	}
	return map[string]any{"heads": len(r.Heads), "spread": spread, "ensemble": ens, "groups": groups}
}

// OneClassWarning returns a warning when threshold t puts every row in one
// class for some of the heads or the ensemble, and "" otherwise.
func (r *EpochsResult) OneClassWarning(t rewardhead.Threshold) string {
	var one []string
	for _, hs := range append(slices.Clone(r.Heads), r.Ensemble) {
		if cl := OneClass(hs.Metrics); cl != "" {
			one = append(one, fmt.Sprintf("%s (%s)", hs.Name, cl))
		}
	}
	if len(one) == 0 {
		return ""
	}
	return fmt.Sprintf("warning: %s puts every row in one class for %d of the %d heads and the ensemble: %s", thresholdName(t), len(one), len(r.Heads)+1, strings.Join(one, ", "))
}

// thresholdName says which threshold a warning is about.
func thresholdName(t rewardhead.Threshold) string {
	if t.Rule == "" || t.Rule == "value" {
		return fmt.Sprintf("the threshold %g", t.Value)
	}
	return "the threshold rule " + t.Rule
}
