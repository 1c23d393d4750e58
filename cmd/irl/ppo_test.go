package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	// A new run into the folder is refused, naming --resume (which keeps
	// the run) before --overwrite (which discards it).
	err := run(t, ppoArgs(model, prompts, lex, out)...)
	if err == nil || !strings.Contains(err.Error(), "step 4") || !strings.Contains(err.Error(), "--overwrite") ||
		!strings.Contains(err.Error(), "--resume") || strings.Index(err.Error(), "--resume") > strings.Index(err.Error(), "--overwrite") {
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

// runErr runs irl and returns what it wrote to its error writer.
func runErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	_, stderr, err := irlRunErr(t, args...)
	return stderr, err
}

// --resume into a folder where a run was killed before its first
// checkpoint starts the run anew, clearing what it left and saying so; a
// folder holding other files is refused, untouched.
func TestPPOResumeWithoutCheckpointStartsAnew(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	out := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(filepath.Join(out, "samples"), 0o755)
	writeFile(t, filepath.Join(out, "metrics.jsonl"), `{"step":0,"reward/mean":0.25}`+"\n"+`{"step":1}`+"\n")
	writeFile(t, filepath.Join(out, "samples", "step-0.jsonl"), "{}\n")
	// A new run there is refused, naming --resume.
	if err := run(t, ppoArgs(model, prompts, lex, out)...); err == nil || !strings.Contains(err.Error(), "no checkpoint yet") || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("a new run into a killed run's folder: %v", err)
	}
	msg, err := runErr(t, ppoArgs(model, prompts, lex, out, "--resume")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "no checkpoint") || !strings.Contains(msg, "anew") || !strings.Contains(msg, "metrics.jsonl") {
		t.Errorf("no note that the run started anew: %q", msg)
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if strings.Count(string(b), `"step":0,`) != 1 || strings.Contains(string(b), "0.25") {
		t.Errorf("metrics of the new run:\n%s", b)
	}
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "thesis.tex"), "")
	if err := run(t, ppoArgs(model, prompts, lex, other, "--resume")...); err == nil || !strings.Contains(err.Error(), "thesis.tex") {
		t.Errorf("--resume into a folder of other files: %v", err)
	}
}

// --resume refuses another reward, listing what differs (the word lists'
// fingerprints, the noise, the kind), and accepts the same one read from
// another place.
func TestPPOResumeChecksTheReward(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	out := filepath.Join(t.TempDir(), "run")
	if err := run(t, ppoArgs(model, prompts, lex, out)...); err != nil {
		t.Fatal(err)
	}
	lists := strings.Split(strings.TrimPrefix(lex, "lexicon:"), ",")
	moved := t.TempDir()
	copies := make([]string, 2)
	for i, f := range lists {
		b, _ := os.ReadFile(f)
		copies[i] = writeFile(t, filepath.Join(moved, filepath.Base(f)), string(b))
	}
	if err := run(t, ppoArgs(model, prompts, "lexicon:"+strings.Join(copies, ","), out, "--resume")...); err != nil {
		t.Errorf("the same reward from another folder: %v", err)
	}
	edited := writeFile(t, filepath.Join(t.TempDir(), "toxic.txt"), "nasty\nvile\ncruel\n")
	script := writeFile(t, filepath.Join(t.TempDir(), "r.sh"), "#!/bin/sh\nwhile read l; do echo '{\"reward\": 0}'; done\n")
	os.Chmod(script, 0o755)
	for _, tc := range []struct {
		name   string
		reward string
		extra  []string
		want   []string
	}{
		{"another word list", "lexicon:" + edited + "," + lists[1], nil, []string{"reward.toxic_words_sha256"}},
		{"another noise", lex, []string{"--reward-noise", "0.1"}, []string{`reward.noise: "0.2" then, "0.1" now`}},
		{"relative", lex, []string{"--reward-relative", "original", "--original-field", "id"}, []string{`reward.relative: unset then, "id" now`}},
		{"another kind", "cmd:" + script, nil, []string{`reward.kind: "lexicon" then, "cmd" now`, "reward.program_sha256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t, ppoArgs(model, prompts, tc.reward, out, append(tc.extra, "--resume")...)...)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant %q", err, w)
				}
			}
		})
	}
}

// A finite reward too large to be one stops the run naming the row, the
// value and the bound, not with a JSON error from the overflowing moments.
func TestPPOHugeReward(t *testing.T) {
	model, prompts, _ := ppoWorld(t)
	script := writeFile(t, filepath.Join(t.TempDir(), "huge.sh"), "#!/bin/sh\nwhile read l; do echo '{\"reward\": 1e300}'; done\n")
	os.Chmod(script, 0o755)
	err := run(t, ppoArgs(model, prompts, "cmd:"+script, filepath.Join(t.TempDir(), "run"))...)
	if err == nil || !strings.Contains(err.Error(), "prompt row") || !strings.Contains(err.Error(), "1e+300") || !strings.Contains(err.Error(), "1e+09") {
		t.Errorf("a reward of 1e300: %v", err)
	}
}

// By default only the newest two checkpoints and the best are kept, the
// best named by best-checkpoint; --save-total-limit 0 keeps them all.
func TestPPOKeepsTheNewestCheckpointsAndTheBest(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	checkpoints := func(out string) []string {
		ents, _ := os.ReadDir(out)
		var names []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "checkpoint-") {
				names = append(names, e.Name())
			}
		}
		return names
	}
	out := filepath.Join(t.TempDir(), "run")
	if err := run(t, ppoArgs(model, prompts, lex, out, "--checkpoint-interval", "1", "--eval-interval", "1")...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "best-checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	best := strings.TrimSpace(string(b))
	want := map[string]bool{best: true, "checkpoint-000003": true, "checkpoint-000004": true}
	got := checkpoints(out)
	if len(got) != len(want) {
		t.Errorf("checkpoints %v, want the newest two and the best (%s)", got, best)
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("checkpoint %s kept; best is %s", n, best)
		}
	}
	// The best has the highest reward/mean of the evaluations.
	lines, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	var top float64
	topStep := -1
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var m map[string]float64
		json.Unmarshal([]byte(l), &m)
		if r, ok := m["reward/mean"]; ok && m["step"] > 0 && (topStep < 0 || r > top) {
			top, topStep = r, int(m["step"])
		}
	}
	if best != fmt.Sprintf("checkpoint-%06d", topStep) {
		t.Errorf("best %s, but the highest reward/mean is at step %d", best, topStep)
	}
	all := filepath.Join(t.TempDir(), "all")
	if err := run(t, ppoArgs(model, prompts, lex, all, "--checkpoint-interval", "1", "--save-total-limit", "0")...); err != nil {
		t.Fatal(err)
	}
	if got := checkpoints(all); len(got) != 4 {
		t.Errorf("--save-total-limit 0 kept %v", got)
	}
}

// A reward program that fails on the end of its input does not undo the
// run, and is reported; one that never answers stops the run within
// --reward-timeout, naming the row.
func TestPPORewardProgramFailures(t *testing.T) {
	model, prompts, _ := ppoWorld(t)
	dir := t.TempDir()
	failing := writeFile(t, filepath.Join(dir, "fails.sh"), "#!/bin/sh\nwhile read l; do echo '{\"reward\": 0.5}'; done\necho 'could not save the cache' >&2\nexit 3\n")
	silent := writeFile(t, filepath.Join(dir, "silent.sh"), "#!/bin/sh\nwhile read l; do :; done\n")
	os.Chmod(failing, 0o755)
	os.Chmod(silent, 0o755)
	msg, err := runErr(t, ppoArgs(model, prompts, "cmd:"+failing, filepath.Join(dir, "a"))...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "warning") || !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "could not save the cache") {
		t.Errorf("the program's failure on closing: %q", msg)
	}
	start := time.Now()
	err = run(t, ppoArgs(model, prompts, "cmd:"+silent, filepath.Join(dir, "b"), "--reward-timeout", "300ms")...)
	if err == nil || !strings.Contains(err.Error(), "row") || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("a program that never answers: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// ppo's help names its input --input (as every command does; --prompts
// still works), shows --join's default, --reward-timeout and
// --save-total-limit, and says that --target 0 keeps β fixed (the presets
// set a target).
func TestPPOHelp(t *testing.T) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"irl", "ppo", "--help"}); err != nil {
		t.Fatal(err)
	}
	h := out.String()
	for _, w := range []string{"--input PROMPTS", "--input value, --prompts value", "--join value", `(default: "", nothing`, "--reward-timeout value", "(default: 1m0s)",
		"--save-total-limit value", "(default: 2)", "--target 0 keeps β fixed"} {
		if !strings.Contains(h, w) {
			t.Errorf("ppo --help lacks %q", w)
		}
	}
	if strings.Contains(h, "--prompts PROMPTS") || strings.Contains(h, "β is fixed at\n--init-kl-coef, or") {
		t.Error("ppo --help still has the old wording")
	}
}

// A checkpoint written before rewards were recorded still resumes, with a
// note that its reward cannot be verified; its next checkpoint records it.
func TestPPOResumeOfACheckpointWithoutReward(t *testing.T) {
	model, prompts, lex := ppoWorld(t)
	out := filepath.Join(t.TempDir(), "run")
	if err := run(t, ppoArgs(model, prompts, lex, out, "--total-steps", "2")...); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(out, "checkpoint-000002", "trainer_state.json")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	json.Unmarshal(b, &st)
	settings := st["settings"].(map[string]any)
	for k := range settings {
		if strings.HasPrefix(k, "reward.") {
			delete(settings, k)
		}
	}
	b, _ = json.Marshal(st)
	os.WriteFile(state, b, 0o644)
	// --total-steps is a setting: resumed with the same 2 steps, the run
	// has nothing left to do but check.
	msg, err := runErr(t, ppoArgs(model, prompts, lex, out, "--total-steps", "2", "--resume")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "cannot be verified") {
		t.Errorf("no note: %q", msg)
	}
}
