package ppo

import (
	"path/filepath"
	"testing"

	"irl/onnx"
)

// The old log-probs are recomputed by a forward pass of the policy, as TRLx
// does, not taken from the sampler: so with top-k, top-p and a temperature
// other than 1 in force, the probability ratio before each phase's first
// update is still exactly 1, and every phase logs it.
func TestRatioIsOneUnderFiltering(t *testing.T) {
	w := newToyWorld(t)
	cfg := toyConfig()
	cfg.TopK, cfg.TopP, cfg.Temperature = 5, 0.9, 0.7
	cfg.TotalSteps, cfg.EvalInterval, cfg.CheckpointInterval = 12, 0, 0
	out := filepath.Join(t.TempDir(), "run")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: out, TokenizerPath: w.tokPath, Session: onnx.Options{Threads: 2}}); err != nil {
		t.Fatal(err)
	}
	phases := 0
	for _, l := range readLines(t, filepath.Join(out, "metrics.jsonl")) {
		r, ok := l["policy/ratio_first_minibatch"].(float64)
		if !ok {
			continue
		}
		phases++
		if r != 1 {
			t.Errorf("step %v: the ratio before the phase's first update is %v, want exactly 1", l["step"], r)
		}
	}
	// 32 rollouts in minibatches of 16, 2 epochs: 4 steps a phase.
	if phases != 3 {
		t.Errorf("%d phases logged the ratio, want 3", phases)
	}
}
