package neox

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

// Save writes every tensor the model holds, a value head included, and
// LoadWeights brings it back.
func TestSaveKeepsValueHead(t *testing.T) {
	m := loadTinyReference(t)
	d := m.Config.HiddenSize
	m.Params[ValueHeadWeight] = &Param{Shape: []int{1, d}, Data: make([]float32, d)}
	m.Params[ValueHeadBias] = &Param{Shape: []int{1}, Data: []float32{0.5}}
	m.Params[ValueHeadWeight].Data[3] = 2
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	back := loadTinyReference(t)
	if err := back.LoadWeights(dir); err != nil {
		t.Fatal(err)
	}
	if back.Params[ValueHeadWeight] == nil || back.Params[ValueHeadWeight].Data[3] != 2 || back.Params[ValueHeadBias].Data[0] != 0.5 {
		t.Error("the value head was not saved and loaded")
	}
	// An ordinary load ignores it: the folder is still a Hugging Face model.
	if _, err := Load(dir); err != nil {
		t.Errorf("Load of a folder with a value head: %v", err)
	}
}
