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
	figures := []struct {
		file, title, y string
		names          []string
	}{
		{"reward.png", "Held-out reward", "reward/mean", []string{"reward/mean"}},
		{"returns.png", "Returns", "returns/mean", []string{"returns/mean"}},
		{"kl.png", "KL to the reference and its coefficient β", "value", []string{"policy/sqrt_kl", "kl_ctl_value", "policy/approx_kl"}},
		{"losses.png", "Losses", "loss", []string{"losses/total_loss", "losses/policy_loss", "losses/value_loss"}},
	}
	for _, fig := range figures {
		p := plots.New(fig.title, "optimiser step", fig.y)
		var ss []plots.Series
		for _, name := range fig.names {
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
		if err := plots.Lines(p, ss...); err != nil {
			return err
		}
		if err := p.Save(filepath.Join(dir, fig.file), 6, 3.6); err != nil {
			return err
		}
	}
	return nil
}
