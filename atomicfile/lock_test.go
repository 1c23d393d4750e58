package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A held folder is refused with the holder's pid; once released, or when
// its holder's lock file is left from a run that is gone, it is free.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	a, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDir(dir)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on ", os.Getpid())) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second lock: %v", err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := LockDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
	// A dead holder's file, its text still there, holds no lock.
	os.WriteFile(filepath.Join(dir, LockName), []byte("pid 1 on elsewhere since 2020-01-01T00:00:00Z\n"), 0o644)
	c, err := LockDir(dir)
	if err != nil {
		t.Fatalf("a stale lock file: %v", err)
	}
	defer c.Release()
	got, _ := os.ReadFile(filepath.Join(dir, LockName))
	if !strings.HasPrefix(string(got), fmt.Sprintf("pid %d on ", os.Getpid())) || strings.Contains(string(got), "elsewhere") {
		t.Errorf("lock file %q", got)
	}
}
