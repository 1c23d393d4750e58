package toy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/atomicfile"
)

// A second run into a folder another run holds is refused, naming the
// holder; the lock file a finished or killed run leaves behind does not
// make the folder "not empty".
func TestOutIsLocked(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	l, err := atomicfile.LockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(Config{Out: out, Quick: true})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on ", os.Getpid())) {
		t.Errorf("a run into a held folder: %v", err)
	}
	l.Release()
	if err := atomicfile.CheckDir(out, false); err != nil {
		t.Errorf("a folder with only the lock file: %v", err)
	}
	os.WriteFile(filepath.Join(out, "report.md"), nil, 0o644)
	if err := atomicfile.CheckDir(out, false); !errors.Is(err, atomicfile.ErrNotEmpty) || !strings.Contains(err.Error(), "report.md") {
		t.Errorf("a folder with a report: %v", err)
	}
	if err := atomicfile.ClearDir(out); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != atomicfile.LockName {
		t.Errorf("after overwrite the folder holds %v", ents)
	}
}
