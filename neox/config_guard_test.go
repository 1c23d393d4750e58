package neox

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/safetensors"
)

// pythia70mJSON is pythia-70m's config.json as transformers 4 writes it,
// with edits applied: a key set to a value, or deleted when the value is nil.
func pythia70mJSON(t testing.TB, edits map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"model_type": "gpt_neox", "architectures": []string{"GPTNeoXForCausalLM"}, "vocab_size": 50304, "hidden_size": 512,
		"num_hidden_layers": 6, "num_attention_heads": 8, "intermediate_size": 2048, "max_position_embeddings": 2048,
		"rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-5, "use_parallel_residual": true, "hidden_act": "gelu",
	}
	for k, v := range edits {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A rotary base ≤ 0 made every output NaN with exit status 0; whichever key
// sets it, the error names the file and that key.
func TestConfigRefusesRotaryBase(t *testing.T) {
	for _, bad := range []float64{0, -1, -1e300} {
		for _, tc := range []struct {
			edits map[string]any
			key   string
		}{
			{map[string]any{"rotary_emb_base": bad}, "rotary_emb_base"},
			{map[string]any{"rope_theta": bad}, "rope_theta"},
			{map[string]any{"rope_parameters": map[string]any{"rope_theta": bad, "partial_rotary_factor": 0.25}}, "rope_parameters.rope_theta"},
		} {
			_, err := ParseConfig("cfg.json", pythia70mJSON(t, tc.edits))
			if err == nil || !strings.HasPrefix(err.Error(), "cfg.json: "+tc.key+": ") {
				t.Errorf("%s = %v: error %v, want one naming cfg.json and %s", tc.key, bad, err, tc.key)
			}
		}
	}
}

// Dimensions are bounded before anything is allocated from them: the 2 KB
// config with 2^40 positions used to die in the rotary tables with
// "runtime: out of memory".
func TestConfigBoundsDimensions(t *testing.T) {
	for _, tc := range []struct {
		key string
		v   any
	}{
		{"max_position_embeddings", 1 << 40},
		{"max_position_embeddings", maxPositions + 1},
		{"vocab_size", 1 << 40},
		{"hidden_size", 1 << 40},
		{"num_hidden_layers", 1 << 40},
		{"num_attention_heads", 1 << 40},
		{"intermediate_size", 1 << 40},
		{"vocab_size", -1},
		{"intermediate_size", 0},
	} {
		_, err := ParseConfig("cfg.json", pythia70mJSON(t, map[string]any{tc.key: tc.v}))
		if err == nil || !strings.HasPrefix(err.Error(), "cfg.json: "+tc.key+": ") {
			t.Errorf("%s = %v: error %v, want one naming cfg.json and %s", tc.key, tc.v, err, tc.key)
		}
	}
	// Each within its own bound, together too large: the rotary table and
	// the parameter count.
	_, err := ParseConfig("cfg.json", pythia70mJSON(t, map[string]any{"max_position_embeddings": maxPositions, "hidden_size": 4096, "num_attention_heads": 1}))
	if err == nil || !strings.Contains(err.Error(), "rotary table") || !strings.HasPrefix(err.Error(), "cfg.json: max_position_embeddings: ") {
		t.Errorf("huge rotary table: %v", err)
	}
	_, err = ParseConfig("cfg.json", pythia70mJSON(t, map[string]any{"vocab_size": maxVocab, "hidden_size": maxHidden, "num_attention_heads": 512,
		"intermediate_size": maxIntermediate, "num_hidden_layers": maxLayers}))
	if err == nil || !strings.Contains(err.Error(), "parameters") || !strings.HasPrefix(err.Error(), "cfg.json: ") {
		t.Errorf("huge model: %v", err)
	}
	// Real shapes stay well inside the bounds.
	for name, c := range Shapes {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	neox20b := pythia70mJSON(t, map[string]any{"vocab_size": 50432, "hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64, "intermediate_size": 24576})
	if _, err := ParseConfig("neox-20b.json", neox20b); err != nil {
		t.Errorf("GPT-NeoX-20B refused: %v", err)
	}
}

// NaN cannot be written in JSON, but a Config made in code (model init's
// flags) can hold it; Validate refuses it, naming the key.
func TestConfigValidateRefusesNaN(t *testing.T) {
	for key, edit := range map[string]func(*Config){
		"layer_norm_eps":    func(c *Config) { c.LayerNormEps = math.NaN() },
		"rotary_pct":        func(c *Config) { c.RotaryPct = math.NaN() },
		"rotary_emb_base":   func(c *Config) { c.RotaryBase = math.Inf(1) },
		"initializer_range": func(c *Config) { c.InitializerRange = math.NaN() },
	} {
		c := Shapes["pythia-70m"]
		edit(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key+": ") {
			t.Errorf("%s: %v", key, err)
		}
	}
	// A rotary fraction above 1 from rope_parameters names that key.
	_, err := ParseConfig("cfg.json", pythia70mJSON(t, map[string]any{"rope_parameters": map[string]any{"partial_rotary_factor": 1.5}}))
	if err == nil || !strings.HasPrefix(err.Error(), "cfg.json: rope_parameters.partial_rotary_factor: ") {
		t.Errorf("partial_rotary_factor 1.5: %v", err)
	}
}

// A NaN weight used to load and give all-NaN outputs; Load refuses it,
// naming the file, the tensor and the element.
func TestLoadRefusesNonFiniteWeight(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(fixtures, "tiny-neox-parallel")
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	const victim = "gpt_neox.layers.1.mlp.dense_h_to_4h.weight"
	var ts []safetensors.Tensor
	for _, name := range f.Names() {
		tn, _ := f.Get(name)
		v, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if name == victim {
			v[77] = float32(math.NaN())
		}
		ts = append(ts, safetensors.FromFloat32(name, tn.Shape, v))
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := safetensors.WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if err == nil {
		t.Fatal("a NaN weight loaded")
	}
	for _, want := range []string{path, `"` + victim + `"`, "element 77 is NaN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
