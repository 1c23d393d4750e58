package policy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/safetensors"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const fixtures = "../testdata"

type reference struct {
	f    *safetensors.File
	b, s int
}

func loadReference(t *testing.T, dir string) reference {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := f.Get("input_ids")
	return reference{f: f, b: ids.Shape[0], s: ids.Shape[1]}
}

// loadFixture loads a fixture model from testdata and its reference outputs.
func loadFixture(t *testing.T, name string) (*neox.Model, reference) {
	t.Helper()
	dir := filepath.Join(fixtures, name)
	m, err := neox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, loadReference(t, dir)
}

func (r reference) i64(t *testing.T, name string) []int64 {
	t.Helper()
	x, err := r.f.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := x.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (r reference) f32(t *testing.T, name string) []float32 {
	t.Helper()
	x, err := r.f.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// compareMasked checks got against want (B,S,W) where mask is 1, within tol
// times want's largest magnitude there.
func compareMasked(t *testing.T, name string, got, want []float32, mask []int64, width int, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	var scale, worst float64
	for p, m := range mask {
		if m == 0 {
			continue
		}
		for k := 0; k < width; k++ {
			scale = math.Max(scale, math.Abs(float64(want[p*width+k])))
		}
	}
	for p, m := range mask {
		if m == 0 {
			continue
		}
		for k := 0; k < width; k++ {
			worst = math.Max(worst, math.Abs(float64(got[p*width+k]-want[p*width+k])))
		}
	}
	t.Logf("%s: max abs error %.3g, max abs ref %.3g", name, worst, scale)
	if worst > tol*scale {
		t.Errorf("%s: max abs error %.3g exceeds %.0e × max |ref| %.3g", name, worst, tol, scale)
	}
}

// paths are the two ways every graph can be built: on ONNX Runtime's fused
// kernels (the default) and from standard operators only.
var paths = []struct {
	name     string
	standard bool
}{{"fused", false}, {"standard", true}}

func TestForwardParity(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		for _, path := range paths {
			t.Run(name+"/"+path.name, func(t *testing.T) {
				forwardParity(t, name, path.standard)
			})
		}
	}
}

func forwardParity(t *testing.T, name string, standard bool) {
	m, ref := loadFixture(t, name)
	c := m.Config
	hidden := make([]int, c.NumLayers+1)
	for i := range hidden {
		hidden[i] = i
	}
	r, err := NewRunner(m, neox.ForwardOptions{Hidden: hidden, Logits: true, Standard: standard}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	if r.Fused() == standard {
		t.Fatalf("fused graph: %v, want %v", r.Fused(), !standard)
	}
	mask := ref.i64(t, "attention_mask")
	// Positions are derived from the mask, which must give the
	// reference's position_ids.
	bt := &neox.Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask}
	out, err := r.Forward(bt)
	if err != nil {
		t.Fatal(err)
	}
	wantPos := ref.i64(t, "position_ids")
	for i := range wantPos {
		if bt.PositionIDs[i] != wantPos[i] {
			t.Fatalf("position_ids[%d] = %d, reference %d", i, bt.PositionIDs[i], wantPos[i])
		}
	}
	compareMasked(t, "logits", out[neox.LogitsOutput].Data, ref.f32(t, "logits"), mask, c.VocabSize, 1e-4)
	for _, h := range hidden {
		compareMasked(t, neox.HiddenOutput(h), out[neox.HiddenOutput(h)].Data, ref.f32(t, neox.HiddenOutput(h)), mask, c.HiddenSize, 1e-4)
	}
	if r.std != nil {
		t.Error("the fixture's batch ran on the standard fallback")
	}
}

// A graph asked for an early hidden state stops there and still matches.
func TestTruncatedGraph(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-parallel")
	m, err := neox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := neox.BuildForward(m, neox.ForwardOptions{Hidden: []int{2}})
	part, _ := neox.BuildForward(m, neox.ForwardOptions{Hidden: []int{1}})
	if part.Graph.NumNodes() >= full.Graph.NumNodes() {
		t.Errorf("graph for hidden 1 has %d nodes, full has %d", part.Graph.NumNodes(), full.Graph.NumNodes())
	}
	ref := loadReference(t, dir)
	r, err := NewRunner(m, neox.ForwardOptions{Hidden: []int{1}}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	mask := ref.i64(t, "attention_mask")
	out, err := r.Forward(&neox.Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Errorf("outputs %v", r.Outputs())
	}
	compareMasked(t, "hidden_states.1", out[neox.HiddenOutput(1)].Data, ref.f32(t, "hidden_states.1"), mask, m.Config.HiddenSize, 1e-4)
}

// Pooling in the graph equals pooling the reference by hand: the last real
// token's row, and the mean over real tokens.
func TestPooling(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-sequential")
	mask := ref.i64(t, "attention_mask")
	want := ref.f32(t, "hidden_states.2")
	d := m.Config.HiddenSize
	for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean} {
		r, err := NewRunner(m, neox.ForwardOptions{Hidden: []int{2}, Pool: pool}, onnx.Options{Threads: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Forward(&neox.Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask})
		r.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		got := out[neox.HiddenOutput(2)]
		if got.Shape[0] != ref.b || got.Shape[1] != d {
			t.Fatalf("%s: shape %v", pool, got.Shape)
		}
		for b := 0; b < ref.b; b++ {
			exp := make([]float64, d)
			n := 0
			for s := 0; s < ref.s; s++ {
				if mask[b*ref.s+s] == 0 {
					continue
				}
				n++
				for k := 0; k < d; k++ {
					v := float64(want[(b*ref.s+s)*d+k])
					if pool == neox.PoolLast {
						exp[k] = v
					} else {
						exp[k] += v
					}
				}
			}
			for k := 0; k < d; k++ {
				e := exp[k]
				if pool == neox.PoolMean {
					e /= float64(n)
				}
				if math.Abs(float64(got.Data[b*d+k])-e) > 1e-4*math.Max(1, math.Abs(e)) {
					t.Fatalf("%s row %d dim %d: got %v want %v", pool, b, k, got.Data[b*d+k], e)
				}
			}
		}
	}
}
