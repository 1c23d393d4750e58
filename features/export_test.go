package features

import (
	"os"
	"path/filepath"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// A snapshot written by neox.Export loads as an .onnx model and gives the
// Hugging Face folder's features at any layer, with the weights inline or in
// an external-data file.
func TestExportedSnapshotParity(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-sequential")
	m, err := neox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, _, _, _ := fixtureRows(t, dir)
	for _, external := range []int64{0, 1} {
		path := filepath.Join(t.TempDir(), "model.onnx")
		if err := neox.Export(m, path, external); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(path + ".data")
		if (external == 1) != (err == nil) {
			t.Errorf("external=%d: external data file present: %v", external, err == nil)
		}
		for _, layer := range []int{-1, 1, 0} {
			o := Options{Layer: layer, Pool: neox.PoolMean, BatchSize: 2, Session: onnx.Options{Threads: 1}}
			var got [][]float32
			for _, model := range []string{path, dir} {
				e, err := openPath(model, o)
				if err != nil {
					t.Fatal(err)
				}
				f, _, err := Extract(e, rows, o)
				e.Destroy()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f)
			}
			closeRel(t, "snapshot vs folder", got[0], got[1], 1e-5)
		}
	}
}
