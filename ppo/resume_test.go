package ppo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/onnx"
)

// A run killed after a checkpoint in the middle of a phase, and resumed,
// logs exactly what an uninterrupted run logs, step for step, bit for bit
// (wall-clock timings aside).
func TestResumeIsExact(t *testing.T) {
	w := newToyWorld(t)
	cfg := toyConfig()
	cfg.TotalSteps = 24
	so := onnx.Options{Threads: 1}
	a := filepath.Join(t.TempDir(), "a")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b")
	// Four steps a phase: step 10 is the middle of the third.
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, StopAfter: 13}); err != nil {
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
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Resume: true}); err != nil {
		t.Fatal(err)
	}
	la, lb := readLines(t, filepath.Join(a, "metrics.jsonl")), readLines(t, filepath.Join(b, "metrics.jsonl"))
	if len(la) != len(lb) {
		t.Fatalf("%d metric lines, uninterrupted %d", len(lb), len(la))
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
		if len(la[i]) != len(lb[i]) {
			t.Errorf("line %d: %d keys resumed, %d uninterrupted", i, len(lb[i]), len(la[i]))
		}
	}
	sa, _ := os.ReadFile(filepath.Join(a, "samples", "step-20.jsonl"))
	sb, _ := os.ReadFile(filepath.Join(b, "samples", "step-20.jsonl"))
	if len(sa) == 0 || string(sa) != string(sb) {
		t.Error("the step-20 evaluation samples differ")
	}
	wa, _ := os.ReadFile(filepath.Join(a, "final", "model.safetensors"))
	wb, _ := os.ReadFile(filepath.Join(b, "final", "model.safetensors"))
	if len(wa) == 0 || string(wa) != string(wb) {
		t.Error("the final weights differ")
	}
}
