package weights

import (
	"os"
	"path/filepath"
	"testing"
)

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	os.MkdirAll(dst, 0o755)
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
}

// The same model anywhere has one fingerprint; one changed weight, or
// another config, gives another.
func TestFingerprint(t *testing.T) {
	src := filepath.Join("..", "testdata", "tiny-neox-parallel")
	a, err := Fingerprint(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "elsewhere")
	copyDir(t, src, dst)
	if b, _ := Fingerprint(dst); b != a {
		t.Errorf("a copy has another fingerprint: %s vs %s", b, a)
	}
	abs, _ := filepath.Abs(dst)
	if b, _ := Fingerprint(abs); b != a {
		t.Errorf("an absolute path has another fingerprint")
	}
	w := filepath.Join(dst, "model.safetensors")
	data, _ := os.ReadFile(w)
	data[len(data)/2] ^= 1
	os.WriteFile(w, data, 0o644)
	if b, _ := Fingerprint(dst); b == a {
		t.Error("a changed weight kept the fingerprint")
	}
	if b, _ := Fingerprint(filepath.Join("..", "testdata", "tiny-neox-sequential")); b == a {
		t.Error("another model has the same fingerprint")
	}
	if _, err := Fingerprint(t.TempDir()); err == nil {
		t.Error("a folder without weights has a fingerprint")
	}
}
