package ppo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Curves of different scales never share an axis: β and the approximate
// KL (below one) each get a panel apart from √KL (hundreds), and Plot
// draws every figure from a metrics log.
func TestPlotPanelsKeepScalesApart(t *testing.T) {
	panelOf := map[string]string{}
	for _, f := range figures {
		for i, p := range f.panels {
			for _, n := range p.names {
				panelOf[n] = fmt.Sprintf("%s#%d", f.file, i)
			}
		}
	}
	for _, pair := range [][2]string{{"policy/sqrt_kl", "kl_ctl_value"}, {"policy/sqrt_kl", "policy/approx_kl"}, {"kl_ctl_value", "policy/approx_kl"}} {
		if panelOf[pair[0]] == "" || panelOf[pair[0]] == panelOf[pair[1]] {
			t.Errorf("%s and %s share a panel (%q)", pair[0], pair[1], panelOf[pair[0]])
		}
	}
	dir := t.TempDir()
	var log strings.Builder
	for step := 1; step <= 20; step++ {
		fmt.Fprintf(&log, `{"step":%d,"reward/mean":%g,"returns/mean":0.1,"policy/sqrt_kl":%d,"policy/approx_kl":0.01,"kl_ctl_value":0.035,"losses/total_loss":1,"losses/policy_loss":0.5,"losses/value_loss":0.5}`+"\n", step, float64(step)/10, 40*step)
	}
	metrics := filepath.Join(dir, "metrics.jsonl")
	if err := os.WriteFile(metrics, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Plot(metrics, filepath.Join(dir, "plots")); err != nil {
		t.Fatal(err)
	}
	for _, f := range figures {
		if _, err := os.Stat(filepath.Join(dir, "plots", f.file)); err != nil {
			t.Error(err)
		}
	}
}
