package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/atomicfile"
)

// A new run into a folder that holds a run names --resume first (the flag
// that keeps the run), then --overwrite, and says how far the run got.
func TestNewRunIntoARunNamesResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	run, _, err := Open(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	run.Log(map[string]any{"step": 1})
	if _, err := run.Save(&fakeModel{value: "w"}, nil, State{Step: 7}, nil); err != nil {
		t.Fatal(err)
	}
	run.Close()
	for name, err := range map[string]error{"CheckNew": CheckNew(dir, false), "Open": func() error { _, _, err := Open(dir, false, false); return err }()} {
		var re *RunExistsError
		if !errors.As(err, &re) || re.Step != 7 || !errors.Is(err, atomicfile.ErrNotEmpty) {
			t.Fatalf("%s: %v, want a RunExistsError at step 7", name, err)
		}
		msg := err.Error()
		r, o := strings.Index(msg, "--resume"), strings.Index(msg, "--overwrite")
		if r < 0 || o < r || !strings.Contains(msg, "step 7") || !strings.Contains(msg, dir) {
			t.Errorf("%s: %q: want the folder, its step, --resume and then --overwrite", name, msg)
		}
	}
	if err := CheckNew(dir, true); err != nil {
		t.Errorf("with overwrite: %v", err)
	}

	// Killed before its first checkpoint: still a run, to resume afresh.
	early := filepath.Join(t.TempDir(), "early")
	os.MkdirAll(filepath.Join(early, "samples"), 0o755)
	os.WriteFile(filepath.Join(early, MetricsFile), []byte(`{"step":0}`+"\n"), 0o644)
	err = CheckNew(early, false, "samples")
	var re *RunExistsError
	if !errors.As(err, &re) || re.Step != -1 || !strings.Contains(err.Error(), "no checkpoint yet") || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("a run with no checkpoint: %v", err)
	}
	// A folder that is not a run keeps atomicfile's message.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), nil, 0o644)
	err = CheckNew(other, false)
	if errors.As(err, &re) || !errors.Is(err, atomicfile.ErrNotEmpty) || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("a folder of other files: %v", err)
	}
}

// --resume on a folder with no checkpoint starts a new run there and says
// so: absent, empty, or holding what a run killed before its first
// checkpoint left (cleared); a folder holding other files is refused, and
// a last-checkpoint that names nothing usable is still an error.
func TestResumeWithoutCheckpointStartsFresh(t *testing.T) {
	absent := filepath.Join(t.TempDir(), "absent")
	run, st, err := OpenRun(absent, Options{Resume: true})
	if err != nil || st != nil || !run.Fresh {
		t.Fatalf("absent folder: %v %v fresh=%v", err, st, run != nil && run.Fresh)
	}
	run.Close()

	killed := t.TempDir()
	os.WriteFile(filepath.Join(killed, MetricsFile), []byte(`{"step":0,"reward/mean":1}`+"\n"+`{"step":1}`+"\n"), 0o644)
	os.MkdirAll(filepath.Join(killed, "samples"), 0o755)
	os.WriteFile(filepath.Join(killed, "samples", "step-0.jsonl"), []byte("{}\n"), 0o644)
	os.WriteFile(filepath.Join(killed, ".last-checkpoint.tmp-9"), nil, 0o644)
	run, st, err = OpenRun(killed, Options{Resume: true, Files: []string{"samples"}})
	if err != nil || st != nil || !run.Fresh {
		t.Fatalf("killed before a checkpoint: %v %v", err, st)
	}
	run.Close()
	if strings.Join(run.Cleared, ",") != MetricsFile+",samples" {
		t.Errorf("cleared %v", run.Cleared)
	}
	b, _ := os.ReadFile(filepath.Join(killed, MetricsFile))
	if len(b) != 0 {
		t.Errorf("the killed run's metrics were kept: %q", b)
	}
	if _, err := os.Stat(filepath.Join(killed, "samples")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the killed run's samples were kept")
	}

	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "thesis.tex"), nil, 0o644)
	if _, _, err := OpenRun(other, Options{Resume: true}); err == nil || !strings.Contains(err.Error(), "thesis.tex") || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("resume into a folder of other files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "thesis.tex")); err != nil {
		t.Error("a refused resume removed a file")
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, LastFile), []byte("../elsewhere\n"), 0o644)
	if _, _, err := OpenRun(bad, Options{Resume: true}); err == nil || !strings.Contains(err.Error(), "not a checkpoint name") {
		t.Errorf("a bad last-checkpoint: %v", err)
	}
}
