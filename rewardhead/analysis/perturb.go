package analysis

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"irl/rewardhead"
)

// ProbeSet is one kind of perturbation: features of the perturbed outputs,
// row-aligned with the originals.
type ProbeSet struct {
	Name     string
	Features *rewardhead.Features
}

// PerturbSummary is the reward change a perturbation causes, Δ = R(probe)
// − R(original) per row, as in the paper's Table 6.
type PerturbSummary struct {
	Name         string  `json:"name"`
	N            int     `json:"n"`
	MeanOriginal float64 `json:"mean_original"`
	MeanProbe    float64 `json:"mean_probe"`
	MeanDelta    float64 `json:"mean_delta"`
	// StdDelta is the sample standard deviation of Δ (0 for one row).
	StdDelta    float64 `json:"std_delta"`
	MedianDelta float64 `json:"median_delta"`
	MinDelta    float64 `json:"min_delta"`
	MaxDelta    float64 `json:"max_delta"`
	// FracUp and FracDown are the fractions of rows whose reward rose or
	// fell.
	FracUp   float64   `json:"frac_up"`
	FracDown float64   `json:"frac_down"`
	Deltas   []float64 `json:"deltas"`
}

// PerturbResult is the output of Perturb.
type PerturbResult struct {
	Original string           `json:"original"`
	Probes   []PerturbSummary `json:"probes"`
}

// Perturb scores original outputs and each probe set with h and reports
// the per-row reward deltas. Every probe set must have the original's row
// count and, where both have a `row` tensor, the same source rows in the
// same order.
func Perturb(h *rewardhead.Head, headName string, original *rewardhead.Features, probes []ProbeSet) (*PerturbResult, error) {
	if len(probes) == 0 {
		return nil, errors.New("perturb: no probe sets")
	}
	if err := h.Check(headName, original); err != nil {
		return nil, err
	}
	base := h.Score(original)
	res := &PerturbResult{Original: original.Path}
	for _, p := range probes {
		f := p.Features
		if err := h.Check(headName, f); err != nil {
			return nil, err
		}
		if f.N != original.N {
			return nil, fmt.Errorf("%s: probe %q has %d rows, the original %s has %d; pairs must be row-aligned", f.Path, p.Name, f.N, original.Path, original.N)
		}
		if f.Rows != nil && original.Rows != nil {
			for i := range f.Rows {
				if f.Rows[i] != original.Rows[i] {
					return nil, fmt.Errorf("%s: probe %q row %d is source row %d but the original's row %d is source row %d", f.Path, p.Name, i, f.Rows[i], i, original.Rows[i])
				}
			}
		}
		sc := h.Score(f)
		d := make([]float64, len(sc))
		s := PerturbSummary{Name: p.Name, N: len(sc), Deltas: d}
		for i := range sc {
			d[i] = sc[i] - base[i]
			s.MeanOriginal += base[i]
			s.MeanProbe += sc[i]
			switch {
			case d[i] > 0:
				s.FracUp++
			case d[i] < 0:
				s.FracDown++
			}
		}
		n := float64(len(d))
		s.MeanOriginal /= n
		s.MeanProbe /= n
		s.FracUp /= n
		s.FracDown /= n
		s.MeanDelta, s.StdDelta = rewardhead.MeanStd(d)
		sorted := slices.Clone(d)
		slices.Sort(sorted)
		s.MinDelta, s.MaxDelta = sorted[0], sorted[len(sorted)-1]
		if m := len(sorted); m%2 == 1 {
			s.MedianDelta = sorted[m/2]
		} else {
			s.MedianDelta = (sorted[m/2-1] + sorted[m/2]) / 2
		}
		res.Probes = append(res.Probes, s)
	}
	return res, nil
}

// Plot writes a box plot of the deltas per probe set into dir and returns
// its path.
func (r *PerturbResult) Plot(dir string) (string, error) {
	names := make([]string, len(r.Probes))
	vals := make([][]float64, len(r.Probes))
	for k, p := range r.Probes {
		names[k], vals[k] = p.Name, p.Deltas
	}
	path := filepath.Join(dir, "perturb_deltas.png")
	return path, PlotBoxes(path, "Reward change under perturbation", "R(probe) − R(original)", names, vals)
}
