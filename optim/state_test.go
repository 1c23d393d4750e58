package optim

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"irl/safetensors"
)

func cloneParams(ps []*Param) []*Param {
	out := make([]*Param, len(ps))
	for i, p := range ps {
		out[i] = &Param{Name: p.Name, Shape: slices.Clone(p.Shape), Data: slices.Clone(p.Data), Grad: slices.Clone(p.Grad), NoDecay: p.NoDecay}
	}
	return out
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestResumeExact runs N steps, saves, restores into a fresh optimiser over
// copied parameters and runs M more; parameters and moments must match N+M
// uninterrupted steps bit for bit.
func TestResumeExact(t *testing.T) {
	const n, m = 3, 4
	sched := Warmup{Steps: 2, Then: Cosine{Peak: 1e-2, Min: 1e-3, Steps: 5}}
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	run := func(o *AdamW, ps []*Param, steps int) {
		for range steps {
			setGrads(ps, o.Steps())
			ClipGradNorm(ps, 0.5)
			o.Step(sched.LR(o.Steps()))
		}
	}

	straight := bigParams(5, 2*chunkSize+5, 3, 100)
	straight[0].Shape = []int{2*chunkSize + 5}
	straight[2].Shape = []int{10, 10}
	start := cloneParams(straight)
	so, _ := NewAdamW(straight, cfg)
	run(so, straight, n+m)

	first := cloneParams(start)
	fo, _ := NewAdamW(first, cfg)
	run(fo, first, n)
	path := filepath.Join(t.TempDir(), "opt.safetensors")
	if err := fo.Save(path); err != nil {
		t.Fatal(err)
	}

	second := cloneParams(first)
	ro, _ := NewAdamW(second, cfg)
	if err := ro.Load(path); err != nil {
		t.Fatal(err)
	}
	if ro.Steps() != n {
		t.Fatalf("restored step %d, want %d", ro.Steps(), n)
	}
	run(ro, second, m)
	for i := range straight {
		if !bitsEqual(second[i].Data, straight[i].Data) {
			t.Errorf("%s: resumed parameters differ from uninterrupted run", straight[i].Name)
		}
		if !bitsEqual(ro.m[i], so.m[i]) || !bitsEqual(ro.v[i], so.v[i]) {
			t.Errorf("%s: resumed moments differ from uninterrupted run", straight[i].Name)
		}
	}
	if ro.Steps() != so.Steps() {
		t.Errorf("steps %d, want %d", ro.Steps(), so.Steps())
	}

	// The file is plain safetensors with the documented names and metadata.
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["step"] != "3" || f.Metadata["beta2"] != "0.95" || f.Metadata["weight_decay"] != "0.1" {
		t.Errorf("metadata %v", f.Metadata)
	}
	tm, err := f.Get("v.p2")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tm.Shape, []int{10, 10}) {
		t.Errorf("v.p2 shape %v, want [10 10]", tm.Shape)
	}
	got, _ := tm.Float32s()
	if !bitsEqual(got, fo.v[2]) {
		t.Error("v.p2 in the file differs from the optimiser's")
	}
}

func TestLoadMismatch(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultAdamW()
	mk := func(names []string, sizes []int) (*AdamW, []*Param) {
		ps := make([]*Param, len(names))
		for i := range names {
			ps[i] = &Param{Name: names[i], Data: make([]float32, sizes[i]), Grad: make([]float32, sizes[i])}
			for j := range ps[i].Grad {
				ps[i].Grad[j] = float32(j + 1)
			}
		}
		o, err := NewAdamW(ps, cfg)
		if err != nil {
			t.Fatal(err)
		}
		o.Step(1e-3)
		return o, ps
	}
	src, _ := mk([]string{"a", "b"}, []int{3, 4})
	path := filepath.Join(dir, "state.safetensors")
	if err := src.Save(path); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		names []string
		sizes []int
		cfg   *AdamWConfig
		want  string
	}{
		{"shape", []string{"a", "b"}, []int{3, 5}, nil, `"m.b" has shape [4]`},
		{"missing", []string{"a", "b", "c"}, []int{3, 4, 1}, nil, `"m.c"`},
		{"extra", []string{"a"}, []int{3}, nil, `"m.b"`},
		{"beta", []string{"a", "b"}, []int{3, 4}, &AdamWConfig{Beta1: 0.8, Beta2: 0.999, Eps: 1e-8}, "beta1"},
	} {
		dst, _ := mk(c.names, c.sizes)
		if c.cfg != nil {
			dst.cfg = *c.cfg
		}
		m0 := slices.Clone(dst.m[0])
		err := dst.Load(path)
		if err == nil {
			t.Errorf("%s: Load succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q should name %s and %s", c.name, err, path, c.want)
		}
		if dst.Steps() != 1 || !bitsEqual(dst.m[0], m0) {
			t.Errorf("%s: failed Load changed the optimiser", c.name)
		}
	}

	// A file that is not optimiser state.
	other := filepath.Join(dir, "weights.safetensors")
	if err := safetensors.WriteFile(other, []safetensors.Tensor{safetensors.FromFloat32("m.a", []int{3}, make([]float32, 3))}, nil); err != nil {
		t.Fatal(err)
	}
	dst, _ := mk([]string{"a"}, []int{3})
	if err := dst.Load(other); err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("Load of a non-optimiser file: %v", err)
	}
	if err := dst.Load(filepath.Join(dir, "absent")); err == nil || !os.IsNotExist(err) {
		t.Errorf("Load of a missing file: %v", err)
	}
}
