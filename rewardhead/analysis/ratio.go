package analysis

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

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
	// NPos and NNeg are the training pool sizes.
	NPos    int                `json:"n_pos_train"`
	NNeg    int                `json:"n_neg_train"`
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
	res := &RatioResult{Repeats: cfg.Repeats, Subsets: "nested: the first ⌈f·N⌉ rows of a permutation seeded per repeat"}
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
			p := RatioPoint{Fraction: f, Metrics: summariseRuns(runs)}
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

// Plot writes precision, recall and (with ground truth) Kendall τ against
// the fraction for both directions into dir, and returns the paths.
func (r *RatioResult) Plot(dir string) ([]string, error) {
	var paths []string
	for _, side := range []struct {
		name, title string
		pts         []RatioPoint
	}{
		{"ratio_add_toxic.png", "Non-toxic pool fixed, toxic examples added", r.AddToxic},
		{"ratio_add_non_toxic.png", "Toxic pool fixed, non-toxic examples added", r.AddNonToxic},
	} {
		var series []Series
		for _, name := range []string{"precision", "recall", "kendall_tau", "accuracy"} {
			if _, ok := side.pts[0].Metrics[name]; !ok {
				continue
			}
			s := Series{Name: name}
			for _, p := range side.pts {
				s.X = append(s.X, p.Fraction)
				s.Y = append(s.Y, orNaN(p.Metrics[name].Mean))
				s.Err = append(s.Err, orNaN(p.Metrics[name].Std))
			}
			series = append(series, s)
		}
		path := filepath.Join(dir, side.name)
		if err := PlotCurves(path, side.title, "fraction of the varied class used in training", "metric", series); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
