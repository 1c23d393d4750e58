package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/atomicfile"
)

// Both experiments take --quiet; each refuses an --out another run holds,
// naming the holder, before any work.
func TestExperimentQuietAndLock(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	l, err := atomicfile.LockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	holder := fmt.Sprintf("pid %d on ", os.Getpid())
	if err := run(t, "experiment", "toy", "--out", out, "--quick", "--quiet"); err == nil || !strings.Contains(err.Error(), holder) {
		t.Errorf("toy: %v", err)
	}
	mini, err := filepath.Abs("../../experiments/toxicity/mini.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t, "experiment", "toxicity", "--config", mini, "--out", out, "--quiet"); err == nil || !strings.Contains(err.Error(), holder) {
		t.Errorf("toxicity: %v", err)
	}
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "sft_model: nowhere\ndataset: none.csv\nreward: lexicon:a,b\nscorer: lexicon:a,b\nseeds: 0\n")
	err = run(t, "experiment", "toxicity", "--config", bad, "--out", filepath.Join(dir, "o2"), "--quiet")
	if err == nil || !strings.Contains(err.Error(), "sft_model: nowhere does not exist") || !strings.Contains(err.Error(), "seeds: 0") {
		t.Errorf("a bad configuration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o2")); err == nil {
		t.Error("a bad configuration made its --out")
	}
}
