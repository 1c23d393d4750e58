package policy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
func loadFixture(t *testing.T, name string) (*Model, reference) {
	t.Helper()
	dir := filepath.Join(fixtures, name)
	m, err := Load(dir)
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
	r, err := NewRunner(m, ForwardOptions{Hidden: hidden, Logits: true, Standard: standard}, onnx.Options{Threads: 1})
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
	bt := &Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask}
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
	compareMasked(t, "logits", out[LogitsOutput].Data, ref.f32(t, "logits"), mask, c.VocabSize, 1e-4)
	for _, h := range hidden {
		compareMasked(t, HiddenOutput(h), out[HiddenOutput(h)].Data, ref.f32(t, HiddenOutput(h)), mask, c.HiddenSize, 1e-4)
	}
	if r.std != nil {
		t.Error("the fixture's batch ran on the standard fallback")
	}
}

// A graph asked for an early hidden state stops there and still matches.
func TestTruncatedGraph(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-parallel")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := BuildForward(m, ForwardOptions{Hidden: []int{2}})
	part, _ := BuildForward(m, ForwardOptions{Hidden: []int{1}})
	if part.Graph.NumNodes() >= full.Graph.NumNodes() {
		t.Errorf("graph for hidden 1 has %d nodes, full has %d", part.Graph.NumNodes(), full.Graph.NumNodes())
	}
	ref := loadReference(t, dir)
	r, err := NewRunner(m, ForwardOptions{Hidden: []int{1}}, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	mask := ref.i64(t, "attention_mask")
	out, err := r.Forward(&Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Errorf("outputs %v", r.Outputs())
	}
	compareMasked(t, "hidden_states.1", out[HiddenOutput(1)].Data, ref.f32(t, "hidden_states.1"), mask, m.Config.HiddenSize, 1e-4)
}

// Pooling in the graph equals pooling the reference by hand: the last real
// token's row, and the mean over real tokens.
func TestPooling(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-sequential")
	mask := ref.i64(t, "attention_mask")
	want := ref.f32(t, "hidden_states.2")
	d := m.Config.HiddenSize
	for _, pool := range []Pooling{PoolLast, PoolMean} {
		r, err := NewRunner(m, ForwardOptions{Hidden: []int{2}, Pool: pool}, onnx.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Forward(&Batch{B: ref.b, S: ref.s, InputIDs: ref.i64(t, "input_ids"), AttentionMask: mask})
		r.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		got := out[HiddenOutput(2)]
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
					if pool == PoolLast {
						exp[k] = v
					} else {
						exp[k] += v
					}
				}
			}
			for k := 0; k < d; k++ {
				e := exp[k]
				if pool == PoolMean {
					e /= float64(n)
				}
				if math.Abs(float64(got.Data[b*d+k])-e) > 1e-4*math.Max(1, math.Abs(e)) {
					t.Fatalf("%s row %d dim %d: got %v want %v", pool, b, k, got.Data[b*d+k], e)
				}
			}
		}
	}
}

func TestConfigStyles(t *testing.T) {
	old := []byte(`{"model_type":"gpt_neox","architectures":["GPTNeoXForCausalLM"],"vocab_size":50304,"hidden_size":512,
	"num_hidden_layers":6,"num_attention_heads":8,"intermediate_size":2048,"max_position_embeddings":2048,
	"rotary_pct":0.25,"rotary_emb_base":10000,"layer_norm_eps":1e-5,"use_parallel_residual":true,"hidden_act":"gelu","eos_token_id":0}`)
	c, err := ParseConfig("old.json", old)
	if err != nil {
		t.Fatal(err)
	}
	if c.RotaryDims() != 16 || c.RotaryBase != 10000 {
		t.Errorf("rotary dims %d base %v, want 16 10000", c.RotaryDims(), c.RotaryBase)
	}
	if c != Shapes["pythia-70m"] {
		t.Errorf("pythia-70m config %+v differs from the named shape %+v", c, Shapes["pythia-70m"])
	}
	c2, err := LoadConfig(filepath.Join(fixtures, "tiny-neox-parallel", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c2.RotaryPct != 0.25 || c2.RotaryBase != 10000 || !c2.ParallelResidual {
		t.Errorf("transformers 5 config read as %+v", c2)
	}
	// Our own JSON round-trips.
	c3, err := ParseConfig("ours", c2.JSON())
	if err != nil || c3 != c2 {
		t.Errorf("round trip: %+v, %v", c3, err)
	}
}

func TestBadInput(t *testing.T) {
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src := filepath.Join(fixtures, "tiny-neox-parallel")
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	weights, _ := os.ReadFile(filepath.Join(src, "model.safetensors"))

	cases := []struct {
		name   string
		setup  func() string
		expect []string
	}{
		{"missing folder", func() string { return filepath.Join(tmp, "nope") }, []string{"nope", "config.json"}},
		{"unknown architecture", func() string {
			write("arch/config.json", strings.Replace(string(cfg), `"gpt_neox"`, `"llama"`, 1))
			return filepath.Join(tmp, "arch")
		}, []string{"config.json", "model_type", "llama"}},
		{"no weights", func() string {
			write("now/config.json", string(cfg))
			return filepath.Join(tmp, "now")
		}, []string{"now", "model.safetensors"}},
		{"truncated safetensors", func() string {
			write("trunc/config.json", string(cfg))
			write("trunc/model.safetensors", string(weights[:len(weights)/2]))
			return filepath.Join(tmp, "trunc")
		}, []string{"model.safetensors", "truncated"}},
		{"wrong shape", func() string {
			c := strings.Replace(string(cfg), `"intermediate_size": 256`, `"intermediate_size": 128`, 1)
			write("shape/config.json", c)
			write("shape/model.safetensors", string(weights))
			return filepath.Join(tmp, "shape")
		}, []string{"model.safetensors", "dense_h_to_4h", "shape"}},
		{"missing tensor", func() string {
			c := strings.Replace(string(cfg), `"num_hidden_layers": 2`, `"num_hidden_layers": 3`, 1)
			write("miss/config.json", c)
			write("miss/model.safetensors", string(weights))
			return filepath.Join(tmp, "miss")
		}, []string{"model.safetensors", "gpt_neox.layers.2.", "missing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.setup())
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.expect {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	m, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	bt := &Batch{B: 1, S: 2, InputIDs: []int64{1, 512}}
	if err := bt.Validate(m.Config, "in.safetensors"); err == nil || !strings.Contains(err.Error(), "input_ids[0,1] = 512") {
		t.Errorf("out-of-vocabulary id: %v", err)
	}
}

// Init + Save + Load round-trips exactly, and the same seed gives the same
// weights.
func TestInitSaveLoad(t *testing.T) {
	cfg := Config{VocabSize: 100, HiddenSize: 32, NumLayers: 2, NumHeads: 4, IntermediateSize: 64,
		MaxPositions: 64, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu", InitializerRange: 0.02}
	a, err := Init(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Init(cfg, 7)
	c, _ := Init(cfg, 8)
	w := "gpt_neox.layers.1.attention.query_key_value.weight"
	if a.Params[w].Data[5] != b.Params[w].Data[5] || a.Params[w].Data[5] == c.Params[w].Data[5] {
		t.Error("seeding is not deterministic or ignores the seed")
	}
	dir := t.TempDir()
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Config != a.Config {
		t.Errorf("config %+v != %+v", back.Config, a.Config)
	}
	for name, p := range a.Params {
		q := back.Params[name]
		for i := range p.Data {
			if p.Data[i] != q.Data[i] {
				t.Fatalf("%s[%d] changed", name, i)
			}
		}
	}
}
