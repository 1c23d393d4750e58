package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ppoWorld makes a tiny model with the GPT-2 tokenizer, prompts and word
// lists for the lexicon reward.
func ppoWorld(t *testing.T) (model, prompts, lexicon string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, "model")
	if err := run(t, "model", "init", "--shape", "pythia-14m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--max-positions", "64", "--seed", "3", "--out", model, "--tokenizer", filepath.Join("..", "..", "testdata", "gpt2-bpe", "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range []string{"cat", "dog", "bird", "fish", "horse", "cow", "goat", "duck", "frog", "bear"} {
		b.WriteString(`{"prompt": "The ` + e + ` is", "id": "` + e + `"}` + "\n")
	}
	prompts = writeFile(t, filepath.Join(dir, "prompts.jsonl"), b.String())
	tox := writeFile(t, filepath.Join(dir, "toxic.txt"), "nasty\nvile\n")
	non := writeFile(t, filepath.Join(dir, "nontoxic.txt"), "kind\ngentle\n")
	return model, prompts, "lexicon:" + tox + "," + non
}

func ppoArgs(model, prompts, rw, out string, extra ...string) []string {
	return append([]string{"ppo", "--model", model, "--prompts", prompts, "--reward", rw, "--out", out, "--quiet", "--threads", "2",
		"--num-rollouts", "8", "--chunk-size", "4", "--batch-size", "4", "--ppo-epochs", "1", "--max-new-tokens", "3",
		"--seq-length", "16", "--total-steps", "4", "--eval-interval", "2", "--checkpoint-interval", "2", "--top-k", "0"}, extra...)
}

// irl ppo runs end to end on a model made by irl model init, with the
// lexicon reward, writes what it promises, and resumes.
func TestPPOCommandEndToEnd(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	out := filepath.Join(t.TempDir(), "run")
	if err := run(t, ppoArgs(model, prompts, lex, out, "--config", "pythia-70m")...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metrics.jsonl", "last-checkpoint", "checkpoint-000004/model.safetensors", "checkpoint-000004/tokenizer.json",
		"checkpoint-000004/optimizer.safetensors", "checkpoint-000004/trainer_state.json", "final/model.onnx", "final/config.json",
		"samples/step-0.jsonl", "samples/step-4.jsonl", "plots/reward.png", "plots/losses.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	for _, k := range []string{"reward/mean", "rollout_scores/mean", "rollout_scores/std", "rollout_scores/running_std", "returns/mean",
		"losses/policy_loss", "losses/value_loss", "losses/total_loss", "policy/approx_kl", "policy/clipfrac", "policy/sqrt_kl",
		"kl_ctl_value", "values/mean", "entropy", "learning_rate", "time/rollout_generate", "time/rollout_score", "time/forward",
		"time/backward", "tokens_per_s"} {
		if !strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("metrics.jsonl has no %s", k)
		}
	}
	// The final model is an ordinary model folder: irl generate reads it.
	if err := run(t, "generate", "--model", filepath.Join(out, "final"), "--prompt-ids", "464,3797,318", "--greedy", "--max-new-tokens", "2", "--out", filepath.Join(t.TempDir(), "g.jsonl")); err != nil {
		t.Errorf("generate from the final model: %v", err)
	}
	// Resuming a finished run changes nothing; a new run into the folder is refused.
	if err := run(t, ppoArgs(model, prompts, lex, out, "--config", "pythia-70m", "--resume")...); err != nil {
		t.Errorf("resume of a finished run: %v", err)
	}
	if err := run(t, ppoArgs(model, prompts, lex, out)...); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("a new run into a used folder: %v", err)
	}
	if err := run(t, ppoArgs(model, prompts, lex, out, "--config", "pythia-70m", "--resume", "--lr", "1e-4")...); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("resume with another --lr: %v", err)
	}
}

func TestPPOCommandBadInput(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	dir := t.TempDir()
	empty := writeFile(t, filepath.Join(dir, "empty.jsonl"), "\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"empty prompts", ppoArgs(model, empty, lex, filepath.Join(dir, "a")), "no prompts"},
		{"unknown reward", ppoArgs(model, prompts, "oracle:x", filepath.Join(dir, "b")), "lexicon"},
		{"no checkpoint", ppoArgs(model, prompts, lex, filepath.Join(dir, "c"), "--resume"), "nothing to resume"},
		{"no room for a prompt", ppoArgs(model, prompts, lex, filepath.Join(dir, "d"), "--max-new-tokens", "64", "--seq-length", "80"), "positions"},
		{"bad setting", ppoArgs(model, prompts, lex, filepath.Join(dir, "e"), "--scale-reward", "median"), "--scale-reward"},
		{"unknown config key", ppoArgs(model, prompts, lex, filepath.Join(dir, "f"), "--config", writeFile(t, filepath.Join(dir, "c.yaml"), "learning_rate: 1\n")), "learning_rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// IRL-RLHF end to end: features of two kinds of text from a model, a head
// trained on them, and irl ppo against that head; and a reward that is not
// a number stops the run naming the row.
func TestPPOCommandHeadAndNaN(t *testing.T) {
	model, prompts, _ := ppoWorld(t)
	dir := t.TempDir()
	pos := writeFile(t, filepath.Join(dir, "pos.jsonl"), strings.Repeat(`{"prompt": "The cat is", "text": " kind and gentle."}`+"\n", 6))
	neg := writeFile(t, filepath.Join(dir, "neg.jsonl"), strings.Repeat(`{"prompt": "The cat is", "text": " nasty and vile."}`+"\n", 6))
	for _, f := range []struct{ in, out string }{{pos, "pos.safetensors"}, {neg, "neg.safetensors"}} {
		if err := run(t, "features", "--model", model, "--input", f.in, "--prompt-field", "prompt", "--out", filepath.Join(dir, f.out), "--quiet"); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(t, "reward", "train", "--pos", filepath.Join(dir, "pos.safetensors"), "--neg", filepath.Join(dir, "neg.safetensors"), "--out", filepath.Join(dir, "heads"), "--epochs", "3"); err != nil {
		t.Fatal(err)
	}
	head := "head:" + filepath.Join(dir, "heads", "head.json")
	out := filepath.Join(dir, "irl-rlhf")
	if err := run(t, ppoArgs(model, prompts, head, out, "--reward-model", model)...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
		t.Error(err)
	}
	// A head whose features came from another model is refused.
	other := filepath.Join(dir, "other")
	if err := run(t, "model", "init", "--shape", "pythia-14m", "--layers", "1", "--hidden-size", "32", "--heads", "2", "--seed", "9", "--out", other,
		"--tokenizer", filepath.Join("..", "..", "testdata", "gpt2-bpe", "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	if err := run(t, ppoArgs(model, prompts, head, filepath.Join(dir, "x"), "--reward-model", other)...); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("a head on another encoder: %v", err)
	}
	script := writeFile(t, filepath.Join(dir, "nan.sh"), "#!/bin/sh\nwhile read l; do echo '{\"reward\": \"NaN\"}'; done\n")
	os.Chmod(script, 0o755)
	err := run(t, ppoArgs(model, prompts, "cmd:"+script, filepath.Join(dir, "y"))...)
	if err == nil || !strings.Contains(err.Error(), "row") {
		t.Errorf("a NaN reward: %v", err)
	}
}
