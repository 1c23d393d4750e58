package neox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../testdata"

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
