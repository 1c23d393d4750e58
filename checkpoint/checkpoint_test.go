package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeModel saves one file, or fails after half of it when broken.
type fakeModel struct {
	value  string
	broken bool
}

func (m *fakeModel) Save(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte(m.value), 0o644); err != nil {
		return err
	}
	if m.broken {
		return errors.New("killed")
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
}

func (m *fakeModel) LoadWeights(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	m.value = string(b)
	return err
}

func TestSaveResumeAndMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	run, st, err := Open(dir, false, false)
	if err != nil || st != nil {
		t.Fatal(err, st)
	}
	m := &fakeModel{value: "w2"}
	for step := 1; step <= 3; step++ {
		if err := run.Log(map[string]any{"step": step, "loss": 1.0 / float64(step)}); err != nil {
			t.Fatal(err)
		}
	}
	settings := map[string]any{"lr": 1e-3, "seed": 1}
	if _, err := run.Save(m, nil, State{Step: 2, Settings: settings, Trainer: []byte(`{"beta":0.5}`)}, nil); err != nil {
		t.Fatal(err)
	}
	// A checkpoint killed while being written leaves no folder under its
	// name, and last-checkpoint still names the previous one.
	if _, err := run.Save(&fakeModel{broken: true}, nil, State{Step: 3, Settings: settings}, nil); err == nil {
		t.Fatal("broken save succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, Name(3))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half checkpoint under its final name: %v", err)
	}
	// Leave a stale temporary as a kill -9 would.
	os.WriteFile(filepath.Join(dir, ".model.safetensors.tmp-42"), []byte("junk"), 0o644)
	run.Close()

	// A new run into the folder is refused, naming --overwrite.
	if _, _, err := Open(dir, false, false); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("fresh run into a used folder: %v", err)
	}

	run, st, err = Open(dir, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	var tj bytes.Buffer
	json.Compact(&tj, st.Trainer)
	if st.Step != 2 || tj.String() != `{"beta":0.5}` {
		t.Errorf("state %+v", st)
	}
	if err := CheckSettings("ckpt", st.Settings, settings); err != nil {
		t.Errorf("same settings refused: %v", err)
	}
	err = CheckSettings("ckpt", st.Settings, map[string]any{"lr": 2e-3, "seed": 1, "batch_size": 8})
	if err == nil || !strings.Contains(err.Error(), "lr: 0.001 then, 0.002 now") || !strings.Contains(err.Error(), "batch_size: unset then, 8 now") {
		t.Errorf("changed settings: %v", err)
	}
	got := &fakeModel{}
	last, _ := Last(dir)
	if err := Restore(last, got, nil); err != nil || got.value != "w2" {
		t.Errorf("restore: %v %q", err, got.value)
	}
	// The log is cut back to the checkpoint's step; the stale file is gone.
	b, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	if n := strings.Count(string(b), "\n"); n != 2 || strings.Contains(string(b), `"step":3`) {
		t.Errorf("metrics after resume:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, ".model.safetensors.tmp-42")); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale temporary file left")
	}
}

func TestOverwriteAndPrune(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "old.txt"), nil, 0o644)
	run, _, err := Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	if _, err := os.Stat(filepath.Join(dir, "old.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("--overwrite kept an earlier run's file")
	}
	for step := 1; step <= 5; step++ {
		if _, err := run.Save(&fakeModel{value: "x"}, nil, State{Step: step}, map[string]string{"extra.txt": filepath.Join(dir, MetricsFile)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, Name(5), "extra.txt")); err != nil {
		t.Errorf("extra file not copied: %v", err)
	}
	if err := run.Prune(2, Name(1)); err != nil {
		t.Fatal(err)
	}
	var names []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if strings.Join(names, ",") != Name(1)+","+Name(4)+","+Name(5) {
		t.Errorf("after pruning: %v", names)
	}
	// A resume with no checkpoint starts afresh (see
	// TestResumeWithoutCheckpointStartsFresh).
	fresh, _, err := Open(filepath.Join(dir, "nothing"), true, false)
	if err != nil || !fresh.Fresh {
		t.Errorf("resume without a checkpoint: %v", err)
	} else {
		fresh.Close()
	}
}
