package optim

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadState feeds optimiser state files to loadFrom for an optimiser
// of two parameters. It must never panic; a refused file leaves the
// optimiser unchanged, and an accepted one leaves finite moments, second
// moments ≥ 0, and a step count Step can add to.
func FuzzLoadState(f *testing.F) {
	mk := func() *AdamW {
		ps := []*Param{
			{Name: "w", Shape: []int{2, 3}, Data: make([]float32, 6), Grad: make([]float32, 6)},
			{Name: "b", Data: make([]float32, 2), Grad: make([]float32, 2)},
		}
		for i := range ps[0].Grad {
			ps[0].Grad[i] = float32(i) - 2.5
		}
		o, err := NewAdamW(ps, DefaultAdamW())
		if err != nil {
			f.Fatal(err)
		}
		return o
	}
	saved := mk()
	saved.Step(1e-3)
	saved.Step(1e-3)
	path := filepath.Join(f.TempDir(), "optimizer.safetensors")
	if err := saved.Save(path); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	ok := [2][2]int{{0, 8}, {8, 16}}
	f.Add(stateFile("5", ok[0], ok[1], []float32{1, float32(math.NaN())}, []float32{3, 4}))
	f.Add(stateFile("5", ok[0], ok[0], []float32{1, 2}, nil))
	f.Add(stateFile("-1", ok[0], ok[1], []float32{1, 2}, []float32{3, -4}))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := mk()
		err := o.loadFrom("opt.safetensors", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "opt.safetensors: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			if o.Steps() != 0 {
				t.Fatal("a refused file changed the step count")
			}
			for i := range o.m {
				for j := range o.m[i] {
					if o.m[i][j] != 0 || o.v[i][j] != 0 {
						t.Fatal("a refused file changed the moments")
					}
				}
			}
			return
		}
		if o.Steps() < 0 || o.Steps() > maxStep {
			t.Fatalf("step %d", o.Steps())
		}
		for i := range o.m {
			for j := range o.m[i] {
				m, v := float64(o.m[i][j]), float64(o.v[i][j])
				if math.IsNaN(m) || math.IsInf(m, 0) || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("moments of %d[%d]: %v, %v", i, j, m, v)
				}
			}
		}
		o.Step(1e-3) // must not panic
	})
}
