package rewardhead

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/safetensors"
)

func writeFeatures(t *testing.T, dir, name string, n, d int, x []float32, rows []int64, meta map[string]string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	ts := []safetensors.Tensor{safetensors.FromFloat32("features", []int{n, d}, x)}
	if rows != nil {
		ts = append(ts, safetensors.FromInt64("row", []int{len(rows)}, rows))
	}
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFeatures(t *testing.T) {
	dir := t.TempDir()
	x := []float32{1, 2, 3, 4, 5, 6}
	path := writeFeatures(t, dir, "f.safetensors", 3, 2, x, []int64{10, 11, 12}, synthMeta())
	f, err := LoadFeatures(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.N != 3 || f.D != 2 || f.Rows[2] != 12 || f.Row(1)[1] != 4 || f.Info().Layer != "0" {
		t.Errorf("loaded %+v", f)
	}
	if m := f.Mean(); m[0] != 3 || m[1] != 4 {
		t.Errorf("mean %v, want [3 4]", m)
	}
	s := f.Subset([]int{2, 0})
	if s.N != 2 || s.Row(0)[0] != 5 || s.Rows[1] != 10 {
		t.Errorf("subset %+v", s)
	}
}

func TestLoadFeaturesBadInput(t *testing.T) {
	dir := t.TempDir()
	nan := []float32{1, 2, 3, float32(math.NaN()), 5, 6}
	inf := []float32{1, 2, 3, 4, float32(math.Inf(-1)), 6}
	cases := []struct {
		name string
		make func() string
		want string
	}{
		{"nan", func() string { return writeFeatures(t, dir, "nan.safetensors", 3, 2, nan, []int64{7, 8, 9}, nil) }, "row 1 (source row 8) column 1 is NaN"},
		{"inf", func() string { return writeFeatures(t, dir, "inf.safetensors", 3, 2, inf, nil, nil) }, "row 2 column 0 is -Inf"},
		{"empty", func() string { return writeFeatures(t, dir, "empty.safetensors", 0, 2, nil, nil, nil) }, "no rows"},
		{"1-D", func() string {
			p := filepath.Join(dir, "flat.safetensors")
			if err := safetensors.WriteFile(p, []safetensors.Tensor{safetensors.FromFloat32("features", []int{4}, []float32{1, 2, 3, 4})}, nil); err != nil {
				t.Fatal(err)
			}
			return p
		}, "want [-1 -1]"},
		{"rows", func() string { return writeFeatures(t, dir, "rows.safetensors", 3, 2, x6(), []int64{1, 2}, nil) }, `tensor "row" has shape [2], want [3]`},
		{"missing", func() string {
			p := filepath.Join(dir, "none.safetensors")
			if err := safetensors.WriteFile(p, []safetensors.Tensor{safetensors.FromFloat32("reward", []int{2}, []float32{1, 2})}, nil); err != nil {
				t.Fatal(err)
			}
			return p
		}, `no tensor "features"`},
	}
	for _, c := range cases {
		path := c.make()
		_, err := LoadFeatures(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Errorf("%s: error %v, want it to name the file and say %q", c.name, err, c.want)
		}
	}
	if _, err := LoadFeatures(filepath.Join(dir, "absent.safetensors")); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}

func x6() []float32 { return []float32{1, 2, 3, 4, 5, 6} }

func TestFeatureInfoCompare(t *testing.T) {
	a := FeatureInfo{Model: "m", Layer: "3", Pool: "mean", MaxLength: "128", Dim: 4}
	if err := a.Compare(a, "x", "y"); err != nil {
		t.Error(err)
	}
	b := a
	b.Layer, b.Dim = "4", 5
	err := a.Compare(b, "head h.json was trained on", "f.safetensors")
	if err == nil || !strings.Contains(err.Error(), "dimension 4 vs 5") || !strings.Contains(err.Error(), `layer="3" vs "4"`) {
		t.Errorf("Compare = %v", err)
	}
	c := a
	c.Model = ""
	if err := a.Compare(c, "a", "b"); err == nil || !strings.Contains(err.Error(), `model="m" vs ""`) {
		t.Errorf("missing metadata not reported: %v", err)
	}
}

// With fingerprints, the path a model was given as is information only:
// the same model under two paths matches, two models under one path don't.
func TestFeatureInfoFingerprint(t *testing.T) {
	a := FeatureInfo{Model: "audit/model", Fingerprint: "sha256:aa", Layer: "3", Pool: "last", MaxLength: "128", Dim: 4}
	b := a
	b.Model = "/abs/path/audit/model"
	if err := a.Compare(b, "x", "y"); err != nil {
		t.Errorf("the same model under another path: %v", err)
	}
	c := a
	c.Fingerprint = "sha256:bb"
	if err := a.Compare(c, "x", "y"); err == nil || !strings.Contains(err.Error(), `model_fingerprint="sha256:aa" vs "sha256:bb"`) {
		t.Errorf("another model under the same path: %v", err)
	}
	d := a
	d.Fingerprint = ""
	if err := a.Compare(d, "x", "y"); err == nil {
		t.Error("a file without a fingerprint matched one with")
	}
}
