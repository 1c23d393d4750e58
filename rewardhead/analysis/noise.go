package analysis

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"irl/plots"
	"irl/rewardhead"
)

// NoiseConfig holds the settings of the noise-robustness analyses.
type NoiseConfig struct {
	// Sigmas is the grid of noise standard deviations.
	Sigmas []float64
	// Repeats is the number of noise draws per σ.
	Repeats int
	// Seed seeds the draws; draw r at grid point i uses its own PCG stream,
	// so results do not depend on the grid's order or size.
	Seed uint64
	// Relative scales σ: for scores by the standard deviation of all clean
	// rewards, for weights by the root mean square of w. Otherwise σ is in
	// reward (or weight) units.
	Relative bool
	// Threshold is the decision rule, re-applied to each noisy draw.
	Threshold rewardhead.Threshold
}

func (c NoiseConfig) validate() error {
	if len(c.Sigmas) == 0 {
		return errors.New("noise: no σ values")
	}
	for _, s := range c.Sigmas {
		if !(s >= 0) || math.IsInf(s, 0) {
			return fmt.Errorf("noise: σ = %v, want finite and ≥ 0", s)
		}
	}
	if c.Repeats < 1 {
		return fmt.Errorf("noise: repeats %d, want ≥ 1", c.Repeats)
	}
	return nil
}

// NoisePoint is the metrics at one σ, summarised over repeats.
// "kendall_tau_clean" is τ-b between noisy and clean rewards over all rows.
type NoisePoint struct {
	Sigma float64 `json:"sigma"`
	// Std is the absolute noise standard deviation used.
	Std     float64            `json:"noise_std"`
	Metrics map[string]Summary `json:"metrics"`
}

// NoiseResult is the output of ScoreNoise and WeightNoise.
type NoiseResult struct {
	// Target is "scores" (Figure 3) or "weights" (Figure 8).
	Target string `json:"target"`
	// Scale says what σ is measured against.
	Scale   string       `json:"scale"`
	Repeats int          `json:"repeats"`
	Seed    uint64       `json:"seed"`
	Points  []NoisePoint `json:"points"`
	// Data, when set, names the rows the noise was measured on ("in
	// distribution"), for the plot's title: two results on different rows
	// must not look alike.
	Data string `json:"data,omitempty"`
}

func (c NoiseConfig) rng(i, r int) *rand.Rand {
	return rand.New(rand.NewPCG(c.Seed, uint64(i)<<32|uint64(r)))
}

// ScoreNoise adds zero-mean Gaussian noise to the rewards of non-toxic rows
// pos and toxic rows neg and recomputes the metrics, over the σ grid with
// repeats, as in the paper's Figure 3. gtPos and gtNeg are ground-truth
// rewards or nil.
func ScoreNoise(pos, neg, gtPos, gtNeg []float64, cfg NoiseConfig) (*NoiseResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	clean := concat(pos, neg)
	scale, scaleName := 1.0, "absolute: σ in reward units"
	if cfg.Relative {
		_, sd := rewardhead.MeanStd(clean)
		scale, scaleName = sd, fmt.Sprintf("relative: noise std = σ × std of all clean rewards (%.4g)", sd)
	}
	res := &NoiseResult{Target: "scores", Scale: scaleName, Repeats: cfg.Repeats, Seed: cfg.Seed}
	noisy := make([]float64, len(clean))
	for i, sigma := range cfg.Sigmas {
		std := sigma * scale
		runs := make([]map[string]rewardhead.Value, cfg.Repeats)
		for r := range runs {
			rng := cfg.rng(i, r)
			for k, v := range clean {
				noisy[k] = v + std*rng.NormFloat64()
			}
			rep := rewardhead.Evaluate(noisy[:len(pos)], noisy[len(pos):], gtPos, gtNeg, cfg.Threshold)
			m := Metrics(rep)
			m["kendall_tau_clean"] = rewardhead.KendallTauB(noisy, clean)
			runs[r] = m
		}
		res.Points = append(res.Points, NoisePoint{Sigma: sigma, Std: std, Metrics: summariseRuns(runs)})
	}
	return res, nil
}

// WeightNoise adds zero-mean Gaussian noise to every weight of h (not the
// bias), rescores the non-toxic features pos and toxic features neg, and
// recomputes the metrics, as in the paper's Figure 8.
func WeightNoise(h *rewardhead.Head, pos, neg *rewardhead.Features, gtPos, gtNeg []float64, cfg NoiseConfig) (*NoiseResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	clean := concat(h.Score(pos), h.Score(neg))
	scale, scaleName := 1.0, "absolute: σ in weight units"
	if cfg.Relative {
		var ss float64
		for _, v := range h.W {
			ss += v * v
		}
		scale = math.Sqrt(ss / float64(len(h.W)))
		scaleName = fmt.Sprintf("relative: noise std = σ × rms(w) (%.4g)", scale)
	}
	res := &NoiseResult{Target: "weights", Scale: scaleName, Repeats: cfg.Repeats, Seed: cfg.Seed}
	noisy := *h
	noisy.W = make([]float64, len(h.W))
	for i, sigma := range cfg.Sigmas {
		std := sigma * scale
		runs := make([]map[string]rewardhead.Value, cfg.Repeats)
		for r := range runs {
			rng := cfg.rng(i, r)
			for j, v := range h.W {
				noisy.W[j] = v + std*rng.NormFloat64()
			}
			sp, sn := noisy.Score(pos), noisy.Score(neg)
			m := Metrics(rewardhead.Evaluate(sp, sn, gtPos, gtNeg, cfg.Threshold))
			m["kendall_tau_clean"] = rewardhead.KendallTauB(concat(sp, sn), clean)
			runs[r] = m
		}
		res.Points = append(res.Points, NoisePoint{Sigma: sigma, Std: std, Metrics: summariseRuns(runs)})
	}
	return res, nil
}

// Plot writes the metric curves against σ (mean ± std over repeats) into
// dir as noise_<target>.png and returns the path. Seven curves share one
// plot, so each has its own colour and marker as well.
func (n *NoiseResult) Plot(dir string) (string, error) {
	names := []string{"accuracy", "precision", "recall", "f1", "separation", "kendall_tau_clean"}
	if _, ok := n.Points[0].Metrics["kendall_tau"]; ok {
		names = append(names, "kendall_tau")
	}
	var series []Series
	for _, name := range names {
		s := Series{Name: metricLabel(name)}
		for _, p := range n.Points {
			m := p.Metrics[name]
			s.X = append(s.X, p.Sigma)
			s.Y = append(s.Y, orNaN(m.Mean))
			s.Err = append(s.Err, orNaN(m.Std))
		}
		series = append(series, s)
	}
	// Metrics that coincide (all at 1 without noise) stand side by side.
	plots.Dodge(series, 0.008)
	path := filepath.Join(dir, "noise_"+n.Target+".png")
	title := fmt.Sprintf("Gaussian noise on %s (%d repeats)", n.Target, n.Repeats)
	if n.Data != "" {
		title += ", " + n.Data
	}
	return path, PlotCurves(path, title, "σ ("+n.Scale+")", "metric (mean ± std over repeats)", series)
}

// ParseGrid parses a comma-separated list of numbers, or lo:step:hi for an
// inclusive arithmetic range.
func ParseGrid(s string) ([]float64, error) {
	num := func(f string) (float64, error) {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("grid %q: %q is not a finite number", s, f)
		}
		return v, nil
	}
	if parts := strings.Split(s, ":"); len(parts) == 3 {
		var r [3]float64
		for k, p := range parts {
			v, err := num(p)
			if err != nil {
				return nil, err
			}
			r[k] = v
		}
		lo, step, hi := r[0], r[1], r[2]
		if !(step > 0) || hi < lo {
			return nil, fmt.Errorf("grid %q: want lo:step:hi with step > 0 and hi ≥ lo", s)
		}
		var out []float64
		for k := 0; ; k++ {
			v := lo + float64(k)*step
			if v > hi+step*1e-9 {
				break
			}
			out = append(out, v)
		}
		return out, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := num(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
