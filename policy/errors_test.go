package policy

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// Errors wrap their causes: a caller can tell a missing model from a broken
// one.
func TestErrorsWrapCauses(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing folder: %v does not wrap fs.ErrNotExist", err)
	}
	m := loadTinyReference(t)
	if err := m.LoadWeights(filepath.Join(t.TempDir(), "nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadWeights from a missing folder: %v", err)
	}
}
