package ppo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"irl/plots"
)

// Plot draws a run's curves from its metrics.jsonl into dir: reward/mean,
// returns/mean, the KL estimate and β, and the losses, against the step.
func Plot(metrics, dir string) error {
	f, err := os.Open(metrics)
	if err != nil {
		return err
	}
	defer f.Close()
	series := map[string]*plots.Series{}
	get := func(name string) *plots.Series {
		if series[name] == nil {
			series[name] = &plots.Series{Name: name}
		}
		return series[name]
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("%s:%d: %w", metrics, line, err)
		}
		step, ok := m["step"].(float64)
		if !ok {
			continue
		}
		for k, v := range m {
			if x, ok := v.(float64); ok && k != "step" {
				s := get(k)
				s.X, s.Y = append(s.X, step), append(s.Y, x)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", metrics, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, fig := range figures {
		var panels []*plots.Figure
		for _, pn := range fig.panels {
			var ss []plots.Series
			for _, name := range pn.names {
				if s := series[name]; s != nil {
					ss = append(ss, *s)
				}
			}
			if len(ss) == 0 {
				continue
			}
			if len(ss) == 1 {
				ss[0].Name = "" // the axis says what it is
			}
			p := plots.New(pn.title, "optimiser step", pn.y)
			if err := plots.Lines(p, ss...); err != nil {
				return err
			}
			panels = append(panels, p)
		}
		if len(panels) == 0 {
			continue
		}
		if err := plots.SavePanels(filepath.Join(dir, fig.file), 6*float64(len(panels)), 3.6, len(panels), panels...); err != nil {
			return err
		}
	}
	return nil
}

// panel is one plot of a figure: series that share a scale.
type panel struct {
	title, y string
	names    []string
}

// figures are Plot's files. Quantities of different scales get panels of
// their own: √KL runs to hundreds while β and the approximate KL stay below
// one, and on one axis those two would lie flat on zero.
var figures = []struct {
	file   string
	panels []panel
}{
	{"reward.png", []panel{{"Held-out reward", "reward/mean", []string{"reward/mean"}}}},
	{"returns.png", []panel{{"Returns", "returns/mean", []string{"returns/mean"}}}},
	{"kl.png", []panel{
		{"KL to the reference (TRLx's √KL)", "policy/sqrt_kl", []string{"policy/sqrt_kl"}},
		{"PPO's approximate KL between updates", "policy/approx_kl", []string{"policy/approx_kl"}},
		{"KL coefficient β", "kl_ctl_value", []string{"kl_ctl_value"}},
	}},
	{"losses.png", []panel{{"Losses", "loss", []string{"losses/total_loss", "losses/policy_loss", "losses/value_loss"}}}},
}
