package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// asIrlEnv makes the test binary, run again with it set, the irl command:
// main with the arguments it was given.
const asIrlEnv = "IRL_TEST_AS_IRL"

// runAsIrlIfAsked runs main and exits when asIrlEnv is set (TestMain).
func runAsIrlIfAsked() {
	if os.Getenv(asIrlEnv) != "1" {
		return
	}
	main()
	os.Exit(0)
}

// irlProcess starts the test binary as irl with args.
func irlProcess(t *testing.T, stderr *bytes.Buffer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asIrlEnv+"=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// stepsLogged counts metrics.jsonl's step lines (those with a loss).
func stepsLogged(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["loss"] != nil {
			n++
		}
	}
	return n
}

// Ctrl-C during irl sft: the run stops at the next step, saves a checkpoint
// there, says so and how to resume, and exits with 130; --resume then
// finishes the run.
func TestSFTInterruptAndResume(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "model")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--seed", "2", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < 20; i++ {
		j, _ := json.Marshal(map[string]string{"prompt": "Q: is the sky blue?", "completion": " A: yes, the sky is blue."})
		sb.Write(append(j, '\n'))
	}
	data := writeFile(t, filepath.Join(tmp, "data.jsonl"), sb.String())
	out := filepath.Join(tmp, "run")
	// 18 training rows, one a step: 18 steps an epoch, and a checkpoint
	// only at the end, so the interrupt's is its own.
	args := []string{"sft", "--model", model, "--data", data, "--out", out, "--prompt-field", "prompt", "--text-field", "completion",
		"--epochs", "4", "--batch-size", "1", "--save-every", "1000", "--seed", "1", "--quiet", "--threads", "1"}
	var stderr bytes.Buffer
	cmd := irlProcess(t, &stderr, args...)
	defer cmd.Process.Kill()
	metrics := filepath.Join(out, "metrics.jsonl")
	for start := time.Now(); stepsLogged(metrics) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no step logged; stderr: %s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("irl sft ended with %v, want exit status 130; stderr:\n%s", err, stderr.String())
	}
	said := stderr.String()
	m := regexp.MustCompile(`irl: sft: interrupted after step (\d+); checkpoint (\S+); resume with the same command and --resume\n`).FindStringSubmatch(said)
	if !strings.Contains(said, interruptMsg+"\n") || m == nil {
		t.Fatalf("stderr:\n%s", said)
	}
	t.Logf("stderr:\n%s", said)
	if _, err := os.Stat(filepath.Join(m[2], "model.safetensors")); err != nil {
		t.Errorf("the checkpoint it names: %v", err)
	}
	if last, _ := os.ReadFile(filepath.Join(out, "last-checkpoint")); strings.TrimSpace(string(last)) != filepath.Base(m[2]) {
		t.Errorf("last-checkpoint names %q, the message %s", last, m[2])
	}
	if n := stepsLogged(metrics); n != atoi(m[1]) {
		t.Errorf("%d steps logged, interrupted after %s", n, m[1])
	}
	stderr.Reset()
	cmd = irlProcess(t, &stderr, append(args, "--resume")...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("resume: %v; stderr:\n%s", err, stderr.String())
	}
	if n := stepsLogged(metrics); n != 72 {
		t.Errorf("%d steps logged after the resume, want 72", n)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
		t.Errorf("no final model: %v", err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
