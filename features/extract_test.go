package features

import (
	"fmt"
	"math"
	"math/rand/v2"
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

// fixtureRows returns the reference's rows without padding, the reference
// tensors, and B, S.
func fixtureRows(t *testing.T, dir string) ([][]int64, *safetensors.File, []int64, int, int) {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	it, _ := f.Get("input_ids")
	mt, _ := f.Get("attention_mask")
	ids, _ := it.Int64s()
	mask, _ := mt.Int64s()
	b, s := it.Shape[0], it.Shape[1]
	rows := make([][]int64, b)
	for r := 0; r < b; r++ {
		for j := 0; j < s; j++ {
			if mask[r*s+j] == 1 {
				rows[r] = append(rows[r], ids[r*s+j])
			}
		}
	}
	return rows, f, mask, b, s
}

func f32(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	x, err := f.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func closeRel(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i] - want[i]))
		if d > rel*scale {
			t.Fatalf("%s[%d]: got %v, want %v (tolerance %.1e × %.3g)", what, i, got[i], want[i], rel, scale)
		}
		worst = math.Max(worst, d)
	}
	if testing.Verbose() {
		t.Logf("%s: max abs error %.3g, max |value| %.3g", what, worst, scale)
	}
}

// expected pools the reference hidden state (B,S,D) by hand.
func expected(h []float32, mask []int64, b, s, d int, pool neox.Pooling) []float32 {
	out := make([]float32, b*d)
	for r := 0; r < b; r++ {
		var acc = make([]float64, d)
		n := 0
		var real []int
		for j := 0; j < s; j++ {
			if mask[r*s+j] == 0 {
				continue
			}
			n++
			real = append(real, j)
			for k := 0; k < d; k++ {
				acc[k] += float64(h[(r*s+j)*d+k])
			}
		}
		back, ok := pool.FromEnd()
		if !ok {
			back = 1
		}
		last := real[max(len(real)-back, 0)]
		for k := 0; k < d; k++ {
			if pool == neox.PoolMean {
				out[r*d+k] = float32(acc[k] / float64(n))
			} else {
				out[r*d+k] = h[(r*s+last)*d+k]
			}
		}
	}
	return out
}

// The two ways to run the model: ONNX Runtime's fused kernels (the
// default) and standard operators only.
var paths = []struct {
	name     string
	standard bool
}{{"fused", false}, {"standard", true}}

func TestFeaturesMatchFixtures(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		for _, layer := range []int{-1, 1} {
			for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean, "last:2", "last:4"} {
				for _, path := range paths {
					t.Run(fmt.Sprintf("%s/layer%d/%s/%s", name, layer, pool, path.name), func(t *testing.T) {
						featuresMatchFixture(t, name, layer, pool, path.standard)
					})
				}
			}
		}
	}
}

func featuresMatchFixture(t *testing.T, name string, layer int, pool neox.Pooling, standard bool) {
	dir := filepath.Join(fixtures, name)
	rows, ref, mask, b, s := fixtureRows(t, dir)
	o := Options{Layer: layer, Pool: pool, BatchSize: 8, Session: onnx.Options{Threads: 1}, Standard: standard}
	e, err := openPath(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	got, st, err := Extract(e, rows, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != b {
		t.Errorf("rows %d", st.Rows)
	}
	hidx := e.Layer()
	if layer == -1 && hidx != 2 {
		t.Errorf("layer -1 resolved to %d", hidx)
	}
	h := f32(t, ref, neox.HiddenOutput(hidx))
	closeRel(t, "features", got, expected(h, mask, b, s, e.Dim(), pool), 1e-4)
}

// Rows of mixed lengths come back in input order, whatever the bucketing.
func TestFeaturesOrderUnderBucketing(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-parallel")
	m, err := neox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	seqs := make([][]int64, 23)
	for i := range seqs {
		seqs[i] = make([]int64, 1+r.IntN(30))
		for j := range seqs[i] {
			seqs[i][j] = r.Int64N(int64(m.Config.VocabSize))
		}
	}
	o := Options{Layer: -1, BatchSize: 4, Session: onnx.Options{Threads: 1}}
	e, err := NewModelExtractor(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	all, st, err := Extract(e, seqs, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Batches != 6 {
		t.Errorf("%d batches, want 6", st.Batches)
	}
	d := e.Dim()
	for i, s := range seqs {
		one, _, err := Extract(e, [][]int64{s}, Options{BatchSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		closeRel(t, fmt.Sprintf("row %d", i), all[i*d:(i+1)*d], one, 1e-5)
	}
}

// The exported ONNX file and the Hugging Face folder of the same weights give
// the same features, and both match the export's reference last_hidden_state.
func TestONNXFileParity(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-torch-export")
	rows, ref, mask, b, s := fixtureRows(t, dir)
	h := f32(t, ref, "last_hidden_state")
	for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean} {
		o := Options{Layer: -1, Pool: pool, BatchSize: 2, Session: onnx.Options{Threads: 1}}
		var results [][]float32
		for _, model := range []string{filepath.Join(dir, "model.onnx"), dir} {
			e, err := openPath(model, o)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := Extract(e, rows, o)
			e.Destroy()
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, got)
		}
		want := expected(h, mask, b, s, len(h)/(b*s), pool)
		closeRel(t, string(pool)+" onnx file", results[0], want, 1e-4)
		closeRel(t, string(pool)+" hf folder", results[1], want, 1e-4)
	}
	if _, err := openPath(filepath.Join(dir, "model.onnx"), Options{Layer: 1}); err == nil {
		t.Error("a file exporting only last_hidden_state must refuse --layer 1")
	}
}

func TestLayerOutOfRange(t *testing.T) {
	_, err := openPath(filepath.Join(fixtures, "tiny-neox-parallel"), Options{Layer: 3})
	if err == nil {
		t.Fatal("layer 3 of a 2-layer model accepted")
	}
	_, err = openPath(filepath.Join(fixtures, "tiny-neox-parallel"), Options{Layer: -4})
	if err == nil {
		t.Fatal("layer -4 of a 2-layer model accepted")
	}
}

// Features from ONNX Runtime's fused kernels equal those from standard
// operators within 1e-5, for rows of mixed lengths, every pooling, and
// runs capped at a few rows.
func TestFeaturesFusedMatchStandard(t *testing.T) {
	cfg := neox.Config{VocabSize: 97, HiddenSize: 64, NumLayers: 2, NumHeads: 4, IntermediateSize: 128,
		MaxPositions: 64, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.2}
	for _, parallel := range []bool{true, false} {
		cfg.ParallelResidual = parallel
		m, err := neox.Init(cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		seqs := make([][]int64, 29)
		for i := range seqs {
			seqs[i] = make([]int64, 1+r.IntN(40))
			for j := range seqs[i] {
				seqs[i][j] = r.Int64N(int64(cfg.VocabSize))
			}
		}
		for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean, "last:3"} {
			var got [][]float32
			for _, o := range []Options{
				{Layer: -1, Pool: pool, BatchSize: 8, Standard: true},
				{Layer: -1, Pool: pool, BatchSize: 8},
				{Layer: -1, Pool: pool, BatchSize: 8, MaxTokens: 50},
			} {
				o.Session = onnx.Options{Threads: 1}
				e, err := NewModelExtractor(m, o)
				if err != nil {
					t.Fatal(err)
				}
				x, _, err := Extract(e, seqs, o)
				e.Destroy()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, x)
			}
			closeRel(t, fmt.Sprintf("parallel=%v %s fused", parallel, pool), got[1], got[0], 1e-5)
			closeRel(t, fmt.Sprintf("parallel=%v %s fused, 50 tokens a run", parallel, pool), got[2], got[0], 1e-5)
		}
	}
}

// The model extractor's bound runs, which bring back only the pooled
// [B, D] features, give the bits of a plain onnxruntime_go run of the same
// forward graph, on the fused and the standard graphs.
func TestBoundMatchesPlain(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-parallel")
	m, err := neox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, f, mask, b, s := fixtureRows(t, dir)
	it, _ := f.Get("input_ids")
	ids, _ := it.Int64s()
	for _, standard := range []bool{false, true} {
		for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean} {
			e, err := NewModelExtractor(m, Options{Layer: -1, Pool: pool, MaxTokens: -1, Standard: standard, Session: onnx.Options{Threads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			bt := &neox.Batch{B: b, S: s, InputIDs: ids, AttentionMask: mask}
			got, err := e.(*modelExtractor).run(bt)
			if err != nil {
				t.Fatal(err)
			}
			e.Destroy()
			fo := neox.ForwardOptions{Hidden: []int{m.Config.NumLayers}, Pool: pool, Standard: standard}
			fg, err := neox.BuildForward(m, fo)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := onnx.NewGraphSession(fg.Graph, fg.Inputs, fg.Outputs, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			var ins []onnx.ORTValue
			for _, x := range [][]int64{bt.InputIDs, bt.AttentionMask, bt.PositionIDs} {
				v, err := onnx.TensorI64(x, int64(b), int64(s))
				if err != nil {
					t.Fatal(err)
				}
				ins = append(ins, v)
			}
			outs, err := sess.Run(ins...)
			if err != nil {
				t.Fatal(err)
			}
			want, shape, _ := onnx.Float32Data(outs[0])
			if len(shape) != 2 || len(got) != len(want) {
				t.Fatalf("shape %v, %d values; bound run %d", shape, len(want), len(got))
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("standard %v, %s: feature %d = %v, plain run %v", standard, pool, i, got[i], want[i])
				}
			}
			onnx.DestroyAll(outs...)
			onnx.DestroyAll(ins...)
			sess.Destroy()
		}
	}
}

// openPath opens the model at path, as neox.Open does for every consumer,
// and its extractor.
func openPath(path string, o Options) (Extractor, error) {
	src, err := neox.Open(path)
	if err != nil {
		return nil, err
	}
	return Open(src, o)
}
