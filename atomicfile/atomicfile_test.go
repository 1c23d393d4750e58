package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAndFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteBytes(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves the old file and no temporary behind.
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "one" {
		t.Errorf("file holds %q after a failed write", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries, want 1", len(ents))
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if err := Copy(p, filepath.Join(dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b.txt")); string(b) != "one" {
		t.Errorf("copy holds %q", b)
	}
}

func TestWriteDirReplacesWhole(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "ckpt")
	fill := func(files ...string) func(string) error {
		return func(tmp string) error {
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(tmp, f), []byte(f), 0o644); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := WriteDir(final, fill("a", "stale")); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(final, fill("a", "b")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(final)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("folder holds %v, want a,b (the old folder's files must go)", names)
	}
	// A failing fill leaves the previous folder and nothing else.
	if err := WriteDir(final, func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
		return errors.New("killed")
	}); err == nil {
		t.Fatal("no error")
	}
	ents, _ = os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "ckpt" {
		t.Errorf("parent holds %v", ents)
	}
}

func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".model.safetensors.tmp-123"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, ".checkpoint-000004.tmp-9"), 0o755)
	os.WriteFile(filepath.Join(dir, "keep.json"), []byte("x"), 0o644)
	got, err := CleanStale(dir)
	if err != nil || len(got) != 2 {
		t.Fatalf("removed %v, %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep.json" {
		t.Errorf("left %v", ents)
	}
}

func TestChecks(t *testing.T) {
	dir := t.TempDir()
	if err := CheckFile(filepath.Join(dir, "missing", "f.safetensors")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing folder: %v", err)
	}
	if err := CheckFile(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder as file: %v", err)
	}
	if err := CheckFile(filepath.Join(dir, "ok.safetensors")); err != nil {
		t.Error(err)
	}
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "config.json"), nil, 0o644)
	if err := CheckDir(full, false); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("non-empty folder: %v", err)
	}
	if err := CheckDir(full, true); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	if err := CheckDir(filepath.Join(dir, "new"), false); err != nil {
		t.Errorf("new folder: %v", err)
	}
	if err := CheckDir(filepath.Join(dir, "no", "new"), false); err == nil {
		t.Error("missing parent accepted")
	}
	if err := CheckDir(filepath.Join(full, "config.json"), true); err == nil {
		t.Error("a file accepted as a folder")
	}
}
