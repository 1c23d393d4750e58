package ppo

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/onnx"
)

// A tiny run in each TRLx compat mode: β, as metrics.jsonl logs it at each
// step (before that step's move), moves when PhasePlan says (the fork:
// after each minibatch's ppo_epochs steps; carper: after each pass; never
// after the run's last step), by the phase's KL (policy/sqrt_kl²) with n =
// batch size; and a run killed mid-phase and resumed logs what the
// uninterrupted run logs.
func TestCompatLoop(t *testing.T) {
	w := newToyWorld(t)
	for _, mode := range []string{CompatFork, CompatCarper} {
		t.Run(mode, func(t *testing.T) {
			cfg := toyConfig()
			cfg.TRLxCompat = mode
			cfg.NumRollouts, cfg.ChunkSize, cfg.BatchSize, cfg.PPOEpochs = 16, 8, 8, 2 // 4 steps a phase
			cfg.Target, cfg.Horizon, cfg.InitKLCoef = 0.01, 10, 0.05                   // β moves visibly
			cfg.TotalSteps, cfg.EvalInterval, cfg.CheckpointInterval = 8, 0, 2
			so := onnx.Options{Threads: 1}
			a := filepath.Join(t.TempDir(), "a")
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so}); err != nil {
				t.Fatal(err)
			}
			var steps []map[string]any
			for _, l := range readLines(t, filepath.Join(a, "metrics.jsonl")) {
				if _, ok := l["losses/total_loss"]; ok {
					steps = append(steps, l)
				}
			}
			if len(steps) != cfg.TotalSteps {
				t.Fatalf("%d step lines, want %d", len(steps), cfg.TotalSteps)
			}
			plan := PhasePlan(mode, cfg.NumRollouts, cfg.BatchSize, cfg.PPOEpochs, func(int) []int { return make([]int, cfg.NumRollouts) })
			kl := KLController{Value: cfg.InitKLCoef, Target: cfg.Target, Horizon: cfg.Horizon}
			for i, l := range steps {
				got := l["kl_ctl_value"].(float64)
				if math.Abs(got-kl.Value) > 1e-12 {
					t.Errorf("step %d: β %v, want %v", i+1, got, kl.Value)
				}
				sq := l["policy/sqrt_kl"].(float64)
				if i+1 == cfg.TotalSteps {
					break
				}
				for j := 0; j < plan[i%len(plan)].KLUpdate; j++ {
					kl.Update(sq*sq, cfg.BatchSize)
				}
			}
			if steps[0]["kl_ctl_value"] == steps[len(steps)-1]["kl_ctl_value"] {
				t.Error("β never moved")
			}

			b := filepath.Join(t.TempDir(), "b")
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, StopAfter: 6}); err != nil {
				t.Fatal(err)
			}
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Resume: true}); err != nil {
				t.Fatal(err)
			}
			la, lb := readLines(t, filepath.Join(a, "metrics.jsonl")), readLines(t, filepath.Join(b, "metrics.jsonl"))
			if len(la) != len(lb) {
				t.Fatalf("%d metric lines resumed, uninterrupted %d", len(lb), len(la))
			}
			for i := range la {
				for k, va := range la[i] {
					if strings.HasPrefix(k, "time/") || k == "tokens_per_s" {
						continue
					}
					if vb := lb[i][k]; vb != va {
						t.Errorf("line %d (step %v): %s = %v resumed, %v uninterrupted", i, la[i]["step"], k, vb, va)
					}
				}
			}
			wa, _ := os.ReadFile(filepath.Join(a, "final", "model.safetensors"))
			wb, _ := os.ReadFile(filepath.Join(b, "final", "model.safetensors"))
			if len(wa) == 0 || string(wa) != string(wb) {
				t.Error("the final weights differ")
			}
		})
	}
}

// trlx_compat: the presets name the fork, a bad value is refused naming the
// key, and "none" is recorded as "" is (by omission), so runs from before
// the key resume.
func TestCompatConfig(t *testing.T) {
	for _, p := range Presets() {
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.TRLxCompat != CompatFork || c.MaxGradNorm != 0 {
			t.Errorf("preset %s: trlx_compat %q, max_grad_norm %v; want %s and 0 (neither TRLx clips)", p, c.TRLxCompat, c.MaxGradNorm, CompatFork)
		}
	}
	c := Defaults()
	if c.TRLxCompat != "" {
		t.Errorf("Defaults: trlx_compat %q, want empty (the package's own loop)", c.TRLxCompat)
	}
	c.TRLxCompat = "trlx"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "trlx_compat") {
		t.Errorf("trlx_compat trlx: %v", err)
	}
	c.TRLxCompat = CompatNone
	if _, ok := c.settings("", 1, 1)["trlx_compat"]; ok {
		t.Error("trlx_compat none is recorded in the settings; runs from before the key would not resume")
	}
	c.TRLxCompat = CompatFork
	if c.settings("", 1, 1)["trlx_compat"] != CompatFork {
		t.Error("trlx_compat is not among the settings a resume checks")
	}
}
