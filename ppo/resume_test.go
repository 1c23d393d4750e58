package ppo

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/onnx"
)

// A run killed after a checkpoint in the middle of a phase, and resumed,
// logs exactly what an uninterrupted run logs, step for step, bit for bit
// (wall-clock timings aside): on CPU's Go path, and on the device path
// (weights, gradients and AdamW's moments in ONNX Runtime's memory, the
// AdamW graph, the standard decoder's cache there too, as on CUDA), where
// it also matches the Go path's run.
func TestResumeIsExact(t *testing.T) {
	var views []map[string]any
	for _, resident := range []bool{false, true} {
		name := "views"
		if resident {
			name = "resident"
		}
		t.Run(name, func(t *testing.T) {
			a := resumeIsExact(t, resident)
			if !resident {
				views = a
				return
			}
			if views == nil {
				t.Skip("the views run failed")
			}
			// The device path decodes on the standard graph, the Go path on
			// the fused one: the runs agree on the metrics' first steps,
			// not bit for bit.
			la, lb := views, a
			if len(la) != len(lb) || len(la) == 0 {
				t.Fatalf("%d metric lines, views %d", len(lb), len(la))
			}
			for _, k := range []string{"losses/total_loss", "rollout_scores/mean"} {
				x, y := la[1][k], lb[1][k]
				xf, ok1 := x.(float64)
				yf, ok2 := y.(float64)
				if !ok1 || !ok2 || math.Abs(xf-yf) > 1e-3*math.Max(1, math.Abs(xf)) {
					t.Errorf("step 1: %s = %v on the device path, %v on the views", k, y, x)
				}
			}
		})
	}
}

// resumeIsExact runs the test on one path and returns the uninterrupted
// run's metric lines.
func resumeIsExact(t *testing.T, resident bool) []map[string]any {
	w := newToyWorld(t)
	cfg := toyConfig()
	cfg.TotalSteps = 24
	so := onnx.Options{Threads: 1}
	a := filepath.Join(t.TempDir(), "a")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so, resident: resident}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b")
	// Four steps a phase: step 10 is the middle of the third.
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, StopAfter: 13, resident: resident}); err != nil {
		t.Fatal(err)
	}
	// As if killed after step 13, before its checkpoint was written.
	os.RemoveAll(filepath.Join(b, "checkpoint-000013"))
	os.WriteFile(filepath.Join(b, "last-checkpoint"), []byte("checkpoint-000010\n"), 0o644)
	if _, err := os.Stat(filepath.Join(b, "checkpoint-000010", rolloutsFile)); err != nil {
		t.Fatalf("the mid-phase checkpoint holds no rollouts: %v", err)
	}
	// The resumed run is given a fresh copy of the starting model, as the
	// command line gives it --model again.
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Resume: true, resident: resident}); err != nil {
		t.Fatal(err)
	}
	la, lb := readLines(t, filepath.Join(a, "metrics.jsonl")), readLines(t, filepath.Join(b, "metrics.jsonl"))
	sameMetrics(t, la, lb, true)
	sa, _ := os.ReadFile(filepath.Join(a, "samples", "step-20.jsonl"))
	sb, _ := os.ReadFile(filepath.Join(b, "samples", "step-20.jsonl"))
	if len(sa) == 0 || string(sa) != string(sb) {
		t.Error("the step-20 evaluation samples differ")
	}
	sameFinal(t, a, b)
	return la
}

// sameMetrics checks a resumed run's metric lines lb against an
// uninterrupted run's la: every value but the timings equal, and with keys
// the same keys on each line.
func sameMetrics(t *testing.T, la, lb []map[string]any, keys bool) {
	t.Helper()
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
		if keys && len(la[i]) != len(lb[i]) {
			t.Errorf("line %d: %d keys resumed, %d uninterrupted", i, len(lb[i]), len(la[i]))
		}
	}
}

// sameFinal checks that the runs in folders a and b ended with the same
// weights.
func sameFinal(t *testing.T, a, b string) {
	t.Helper()
	wa, _ := os.ReadFile(filepath.Join(a, "final", "model.safetensors"))
	wb, _ := os.ReadFile(filepath.Join(b, "final", "model.safetensors"))
	if len(wa) == 0 || string(wa) != string(wb) {
		t.Error("the final weights differ")
	}
}

// A checkpoint whose trainer state decodes but does not fit the run (here a
// prompt position past the training prompts, which would never end the loop
// that takes prompts) is refused on resume, naming the checkpoint and the
// field.
func TestResumeRefusesABadState(t *testing.T) {
	w := newToyWorld(t)
	cfg := toyConfig()
	cfg.TotalSteps = 24
	so := onnx.Options{Threads: 1}
	out := filepath.Join(t.TempDir(), "run")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: out, Session: so, StopAfter: 10}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "checkpoint-000010")
	path := filepath.Join(dir, "trainer_state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	tr, ok := st["trainer"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no trainer object", path)
	}
	tr["prompt_pos"] = len(w.train) + 5
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: out, Session: so, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "prompt position") || !strings.Contains(err.Error(), "checkpoint-000010") {
		t.Fatalf("resuming from a prompt position past the prompts: %v", err)
	}
}
