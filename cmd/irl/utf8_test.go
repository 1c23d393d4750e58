package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A row whose text is not valid UTF-8 is a bad row, named by file and line,
// in every command that reads text: never silently turned into U+FFFD.
// --skip-bad leaves it out.
func TestInvalidUTF8IsABadRow(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "model")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--seed", "2", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := 0; i < 6; i++ {
		lines = append(lines, `{"text": "the sky is blue and the sea is green"}`)
	}
	lines[2] = "{\"text\": \"a bad \xff byte\"}"
	in := writeFile(t, filepath.Join(tmp, "rows.jsonl"), strings.Join(lines, "\n")+"\n")
	wantErr := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "rows.jsonl:3") || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s: got %v, want an error naming rows.jsonl:3 and UTF-8", what, err)
		}
	}
	feats := filepath.Join(tmp, "f.safetensors")
	wantErr("features", run(t, "features", "--model", model, "--input", in, "--out", feats, "--quiet", "--threads", "1"))
	if err := run(t, "features", "--model", model, "--input", in, "--out", feats, "--quiet", "--threads", "1", "--skip-bad"); err != nil {
		t.Errorf("features --skip-bad: %v", err)
	}
	tok := "../../testdata/gpt2-bpe/tokenizer.json"
	_, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", in)
	wantErr("tokenize", err)
	out, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", in, "--skip-bad")
	if err != nil {
		t.Errorf("tokenize --skip-bad: %v", err)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 5 || !strings.HasPrefix(got[1], `{"line":2,"ids":[`) || !strings.HasPrefix(got[2], `{"line":4,"ids":[`) {
		t.Errorf("tokenize --skip-bad wrote %d lines, want 5 carrying their input lines 1,2,4,5,6:\n%s", len(got), out)
	}
	run := filepath.Join(tmp, "sft")
	args := []string{"sft", "--model", model, "--input", in, "--out", run, "--epochs", "1", "--batch-size", "2", "--quiet", "--threads", "1"}
	wantErr("sft", runArgs(t, args...))
	if _, err := os.Stat(run); err == nil {
		os.RemoveAll(run)
	}
	if err := runArgs(t, append(args, "--skip-bad")...); err != nil {
		t.Errorf("sft --skip-bad: %v", err)
	}
}

func runArgs(t *testing.T, args ...string) error { return run(t, args...) }
