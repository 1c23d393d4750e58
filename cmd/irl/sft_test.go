package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// irl sft and irl generate end to end on a model made by irl model init:
// prompt/completion rows, a checkpoint with the tokenizer beside it, metrics,
// resume, then text generated from the checkpoint.
func TestSFTAndGenerateEndToEnd(t *testing.T) {
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
	args := []string{"sft", "--model", model, "--data", data, "--out", out, "--prompt-field", "prompt", "--text-field", "completion",
		"--epochs", "2", "--batch-size", "4", "--lr", "3e-3", "--seed", "1", "--quiet", "--threads", "1"}
	if err := run(t, args...); err != nil {
		t.Fatal(err)
	}
	last, err := os.ReadFile(filepath.Join(out, "last-checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(out, strings.TrimSpace(string(last)))
	for _, f := range []string{"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(ckpt, f)); err != nil {
			t.Errorf("checkpoint lacks %s", f)
		}
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var first, lastLoss float64
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if l, ok := m["loss"]; ok {
			if n == 0 {
				first = l
			}
			lastLoss = l
			n++
			for _, k := range []string{"lr", "grad_norm", "tokens_per_s"} {
				if _, ok := m[k]; !ok {
					t.Errorf("metrics line lacks %s", k)
				}
			}
		}
	}
	f.Close()
	if n != 6 || !(lastLoss < first) {
		t.Errorf("%d steps, loss %v → %v", n, first, lastLoss)
	}
	// Resuming a finished run does nothing more and succeeds.
	if err := run(t, append(args, "--resume")...); err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(tmp, "gen.jsonl")
	if err := run(t, "generate", "--model", ckpt, "--prompt-ids", "48,25,318", "--greedy", "--max-new-tokens", "5", "--out", gen); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(gen)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		IDs      []int     `json:"ids"`
		LogProbs []float64 `json:"logprobs"`
		Text     *string   `json:"text"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(g.IDs) == 0 || len(g.IDs) != len(g.LogProbs) || g.Text == nil {
		t.Errorf("generation %s", b)
	}
}
