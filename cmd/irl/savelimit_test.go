package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// irl sft keeps, by default, its newest two checkpoints and the one with
// the lowest eval loss, not every checkpoint of the run (each as large as
// the model three times over, with the optimiser's moments).
func TestSFTKeepsTheNewestCheckpointsAndTheBest(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "model")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--seed", "2", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < 12; i++ {
		j, _ := json.Marshal(map[string]string{"prompt": "Q: is the sky blue?", "completion": " A: yes, the sky is blue."})
		sb.Write(append(j, '\n'))
	}
	data := writeFile(t, filepath.Join(tmp, "data.jsonl"), sb.String())
	out := filepath.Join(tmp, "run")
	if err := run(t, "sft", "--model", model, "--input", data, "--out", out, "--prompt-field", "prompt", "--text-field", "completion",
		"--epochs", "4", "--batch-size", "4", "--eval-fraction", "0.25", "--lr", "3e-3", "--quiet", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	var kept []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "checkpoint-") {
			kept = append(kept, e.Name())
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "best-checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{strings.TrimSpace(string(b)): true, "checkpoint-000009": true, "checkpoint-000012": true}
	if len(kept) != len(want) {
		t.Errorf("kept %v, want the newest two and the best (%v)", kept, want)
	}
	for _, n := range kept {
		if !want[n] {
			t.Errorf("kept %s", n)
		}
	}
}
