package analysis

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

	"irl/plots"
	"irl/rewardhead"
)

// RatioConfig holds the settings of the data-ratio analysis.
type RatioConfig struct {
	// Fractions of the varied class to train on, each in (0, 1].
	Fractions []float64
	// Repeats trains this many heads per fraction, each with its own
	// subset order and training seed (Train.Seed + repeat).
	Repeats int
	// Train is the training configuration; OnEpoch is ignored.
	Train rewardhead.TrainConfig
	// Threshold is the decision rule for the evaluation.
	Threshold rewardhead.Threshold
}

// RatioPoint is the evaluation of heads trained at one fraction.
type RatioPoint struct {
	Fraction float64 `json:"fraction"`
	// NPos and NNeg are the numbers of non-toxic and toxic rows the heads
	// were trained on: the whole fixed pool, and max(1, ⌈f·N⌉) of the
	// varied one.
	NPos int `json:"n_pos_train"`
	NNeg int `json:"n_neg_train"`
	// NVaried repeats the varied class's count, the x of the paper's
	// Figure 2, so a reader need not know which side is which.
	NVaried int                `json:"n_varied"`
	Metrics map[string]Summary `json:"metrics"`
}

// RatioResult is the output of DataRatio: first the non-toxic pool fixed
// and the toxic pool grown, then the reverse, as in the paper's Figure 2.
type RatioResult struct {
	// AddToxic fixes the non-toxic (expert) pool and grows the toxic one.
	AddToxic []RatioPoint `json:"add_toxic"`
	// AddNonToxic fixes the toxic pool and grows the non-toxic one.
	AddNonToxic []RatioPoint `json:"add_non_toxic"`
	Repeats     int          `json:"repeats"`
	// PoolPos and PoolNeg are the sizes of the whole training pools, the
	// N that each fraction is taken of.
	PoolPos int `json:"pool_pos"`
	PoolNeg int `json:"pool_neg"`
	// Subsets says how the pools are grown.
	Subsets string `json:"subsets"`
}

// DataRatio trains heads on trainPos with growing fractions of trainNeg and
// on trainNeg with growing fractions of trainPos, and evaluates each on
// evalPos and evalNeg (with ground truth gtPos, gtNeg when not nil). The
// subsets are nested, the first ⌈f·N⌉ rows of a seeded permutation, so
// each step adds examples to the last.
func DataRatio(trainPos, trainNeg, evalPos, evalNeg *rewardhead.Features, gtPos, gtNeg []float64, cfg RatioConfig) (*RatioResult, error) {
	if len(cfg.Fractions) == 0 {
		return nil, errors.New("ratio: no fractions")
	}
	for _, f := range cfg.Fractions {
		if !(f > 0 && f <= 1) {
			return nil, fmt.Errorf("ratio: fraction %v, want 0 < f ≤ 1", f)
		}
	}
	if cfg.Repeats < 1 {
		return nil, fmt.Errorf("ratio: repeats %d, want ≥ 1", cfg.Repeats)
	}
	if err := rewardhead.SameKind(trainPos, trainNeg, evalPos, evalNeg); err != nil {
		return nil, err
	}
	cfg.Train.OnEpoch = nil
	res := &RatioResult{Repeats: cfg.Repeats, PoolPos: trainPos.N, PoolNeg: trainNeg.N, Subsets: "nested: the first ⌈f·N⌉ rows of a permutation seeded per repeat"}
	run := func(fixed, varied *rewardhead.Features, variedIsNeg bool) ([]RatioPoint, error) {
		var points []RatioPoint
		for _, f := range cfg.Fractions {
			k := max(1, int(math.Ceil(f*float64(varied.N)-1e-9)))
			runs := make([]map[string]rewardhead.Value, cfg.Repeats)
			for r := range runs {
				perm := rand.New(rand.NewPCG(cfg.Train.Seed, uint64(r))).Perm(varied.N)
				sub := varied.Subset(perm[:k])
				pos, neg := fixed, sub
				if !variedIsNeg {
					pos, neg = sub, fixed
				}
				tc := cfg.Train
				tc.Seed += uint64(r)
				tr, err := rewardhead.Train(pos, neg, tc)
				if err != nil {
					return nil, fmt.Errorf("fraction %v repeat %d: %w", f, r, err)
				}
				sp, sn := tr.Best.Score(evalPos), tr.Best.Score(evalNeg)
				runs[r] = Metrics(rewardhead.Evaluate(sp, sn, gtPos, gtNeg, cfg.Threshold))
			}
			p := RatioPoint{Fraction: f, NVaried: k, Metrics: summariseRuns(runs)}
			p.NPos, p.NNeg = fixed.N, k
			if !variedIsNeg {
				p.NPos, p.NNeg = k, fixed.N
			}
			points = append(points, p)
		}
		return points, nil
	}
	var err error
	if res.AddToxic, err = run(trainPos, trainNeg, true); err != nil {
		return nil, fmt.Errorf("ratio, adding toxic: %w", err)
	}
	if res.AddNonToxic, err = run(trainNeg, trainPos, false); err != nil {
		return nil, fmt.Errorf("ratio, adding non-toxic: %w", err)
	}
	return res, nil
}

// RatioPlotMetrics are the metrics the ratio plot shows, in order; those
// missing from a result (Kendall τ without ground truth) are left out.
var RatioPlotMetrics = []string{"precision", "recall", "separation", "kendall_tau"}

// ratioSeries are one panel's curves: each metric against the varied
// class's count, named when the panel carries the legend. The metrics often
// coincide (precision and separation both at 1), so the curves are dodged
// apart, each keeping its own error bars in sight.
func ratioSeries(pts []RatioPoint, varied func(RatioPoint) int, legend bool) []Series {
	var series []Series
	for _, name := range RatioPlotMetrics {
		if _, ok := pts[0].Metrics[name]; !ok {
			continue
		}
		s := Series{}
		if legend {
			s.Name = metricLabel(name) // one legend, on the last panel
		}
		for _, p := range pts {
			s.X = append(s.X, float64(varied(p)))
			s.Y = append(s.Y, orNaN(p.Metrics[name].Mean))
			s.Err = append(s.Err, orNaN(p.Metrics[name].Std))
		}
		series = append(series, s)
	}
	plots.Dodge(series, 0.012)
	return series
}

// Plot writes ratio.png into dir and returns its path: the paper's
// Figure 2 as two panels side by side, toxic examples added to a fixed
// non-toxic pool, then non-toxic examples added to a fixed toxic pool, each
// showing RatioPlotMetrics (mean ± std over repeats) against the number of
// samples of the varied class. The panels share their y axis.
func (r *RatioResult) Plot(dir string) (string, error) {
	path := filepath.Join(dir, "ratio.png")
	// The counts come from n_pos_train and n_neg_train, which results
	// written before n_varied existed also have.
	sides := []struct {
		title, xLabel string
		pts           []RatioPoint
		varied, fixed func(RatioPoint) int
	}{
		{"(a) Adding toxic examples", "toxic samples in training (non-toxic fixed at %d)", r.AddToxic,
			func(p RatioPoint) int { return p.NNeg }, func(p RatioPoint) int { return p.NPos }},
		{"(b) Adding non-toxic examples", "non-toxic samples in training (toxic fixed at %d)", r.AddNonToxic,
			func(p RatioPoint) int { return p.NPos }, func(p RatioPoint) int { return p.NNeg }},
	}
	var figs []*plots.Figure
	for k, side := range sides {
		if len(side.pts) == 0 {
			return "", fmt.Errorf("%s: no points to plot", path)
		}
		series := ratioSeries(side.pts, side.varied, k == len(sides)-1)
		f, err := curvesFigure(side.title, fmt.Sprintf(side.xLabel, side.fixed(side.pts[0])), "metric (mean ± std over repeats)", series)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		figs = append(figs, f)
	}
	// A shared y range lets the two directions be compared by eye.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, f := range figs {
		if f.Y.Min <= f.Y.Max {
			lo, hi = math.Min(lo, f.Y.Min), math.Max(hi, f.Y.Max)
		}
	}
	if lo <= hi {
		for _, f := range figs {
			f.Y.Min, f.Y.Max = lo, hi
		}
	}
	return path, plots.SavePanels(path, 13, 4.8, len(figs), figs...)
}
