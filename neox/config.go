package neox

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Config is a GPT-NeoX configuration, read from a Hugging Face config.json.
type Config struct {
	VocabSize        int     `json:"vocab_size"`
	HiddenSize       int     `json:"hidden_size"`
	NumLayers        int     `json:"num_hidden_layers"`
	NumHeads         int     `json:"num_attention_heads"`
	IntermediateSize int     `json:"intermediate_size"`
	MaxPositions     int     `json:"max_position_embeddings"`
	RotaryPct        float64 `json:"rotary_pct"`
	RotaryBase       float64 `json:"rotary_emb_base"`
	LayerNormEps     float64 `json:"layer_norm_eps"`
	ParallelResidual bool    `json:"use_parallel_residual"`
	HiddenAct        string  `json:"hidden_act"`
	TieEmbeddings    bool    `json:"tie_word_embeddings"`
	BOSTokenID       int     `json:"bos_token_id"`
	EOSTokenID       int     `json:"eos_token_id"`
	InitializerRange float64 `json:"initializer_range"`
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumHeads }

// RotaryDims is how many of each head's dimensions are rotated, as
// transformers computes it: int(head_dim * rotary_pct).
func (c Config) RotaryDims() int { return int(float64(c.HeadDim()) * c.RotaryPct) }

// NumParams counts the parameters, embeddings and output head included.
// Validate bounds it; on a configuration Validate refuses it may overflow.
func (c Config) NumParams() int {
	n := 0
	for _, s := range c.ParamSpecs() {
		n += Numel(s.Shape)
	}
	return n
}

// Limits on config.json dimensions, far above any real GPT-NeoX (Pythia-12B:
// vocab 50688, hidden 5120, 36 layers, 40 heads, intermediate 20480, 2048
// positions; GPT-NeoX-20B: 20.6 billion parameters), checked before anything
// is allocated from them. The rotary tables, [positions, rotary dims] twice,
// depend on no checkpoint tensor, so they have their own bound: a million
// positions of 128 rotated dimensions.
const (
	maxVocab        = 1 << 24
	maxHidden       = 1 << 16
	maxLayers       = 1 << 10
	maxHeads        = 1 << 10
	maxIntermediate = 1 << 18
	maxPositions    = 1 << 20
	maxRotaryTable  = 1 << 27
	maxParams       = 1 << 36
)

// Validate checks that the configuration describes a model we can build.
// Every error names the config.json key at fault.
func (c Config) Validate() error {
	for _, d := range []struct {
		key   string
		v, hi int
	}{
		{"vocab_size", c.VocabSize, maxVocab},
		{"hidden_size", c.HiddenSize, maxHidden},
		{"num_hidden_layers", c.NumLayers, maxLayers},
		{"num_attention_heads", c.NumHeads, maxHeads},
		{"intermediate_size", c.IntermediateSize, maxIntermediate},
		{"max_position_embeddings", c.MaxPositions, maxPositions},
	} {
		if d.v <= 0 || d.v > d.hi {
			return fmt.Errorf("%s: %d is outside [1, %d]", d.key, d.v, d.hi)
		}
	}
	switch {
	case c.HiddenSize%c.NumHeads != 0:
		return fmt.Errorf("num_attention_heads: hidden_size %d is not a multiple of %d heads", c.HiddenSize, c.NumHeads)
	case !(c.RotaryPct >= 0 && c.RotaryPct <= 1):
		return fmt.Errorf("rotary_pct: rotary fraction %v is outside [0, 1]", c.RotaryPct)
	case c.RotaryDims()%2 != 0:
		return fmt.Errorf("rotary_pct: rotary dimensions %d (head_dim %d × %v) must be even", c.RotaryDims(), c.HeadDim(), c.RotaryPct)
	case c.MaxPositions*c.RotaryDims() > maxRotaryTable:
		return fmt.Errorf("max_position_embeddings: %d positions × %d rotary dimensions is more than the %d-entry rotary table this package builds", c.MaxPositions, c.RotaryDims(), maxRotaryTable)
	case !(c.RotaryBase > 0) || math.IsInf(c.RotaryBase, 0):
		return fmt.Errorf("rotary_emb_base: rotary base (rope_theta) %v must be positive and finite", c.RotaryBase)
	case c.HiddenAct != "gelu":
		return fmt.Errorf("hidden_act: %q is not supported: want \"gelu\" (Pythia's exact GELU)", c.HiddenAct)
	case !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0):
		return fmt.Errorf("layer_norm_eps: %v must be positive and finite", c.LayerNormEps)
	case !(c.InitializerRange >= 0) || math.IsInf(c.InitializerRange, 0):
		return fmt.Errorf("initializer_range: %v must be finite and not negative", c.InitializerRange)
	}
	// With every dimension bounded the count cannot overflow an int64.
	if n := c.NumParams(); n > maxParams {
		return fmt.Errorf("the dimensions imply %d parameters, more than the %d this package loads", n, int64(maxParams))
	}
	return nil
}

// rawConfig holds the keys that differ between transformers 4 (real Pythia
// checkpoints: rotary_pct, rotary_emb_base) and transformers 5
// (rope_parameters: partial_rotary_factor, rope_theta).
type rawConfig struct {
	Config
	ModelType      string   `json:"model_type"`
	Architectures  []string `json:"architectures"`
	RopeParameters *struct {
		PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
		RopeTheta           *float64 `json:"rope_theta"`
		RopeType            string   `json:"rope_type"`
	} `json:"rope_parameters"`
	RopeScaling json.RawMessage `json:"rope_scaling"`
	RotaryPct   *float64        `json:"rotary_pct"`
	RotaryBase  *float64        `json:"rotary_emb_base"`
	RopeTheta   *float64        `json:"rope_theta"`
	EOS         json.RawMessage `json:"eos_token_id"`
	BOS         json.RawMessage `json:"bos_token_id"`
}

// LoadConfig reads a Hugging Face config.json of a GPT-NeoX model.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(path, data)
}

// ParseConfig parses config.json bytes; name is used in errors.
func ParseConfig(name string, data []byte) (Config, error) {
	// Defaults are transformers' GPTNeoXConfig defaults.
	raw := rawConfig{Config: Config{
		RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, ParallelResidual: true,
		HiddenAct: "gelu", MaxPositions: 2048, InitializerRange: 0.02,
	}}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if raw.ModelType != "gpt_neox" {
		return Config{}, fmt.Errorf("%s: model_type %q is not supported: want \"gpt_neox\" (Pythia / GPT-NeoX)", name, raw.ModelType)
	}
	for _, a := range raw.Architectures {
		if a != "GPTNeoXForCausalLM" && a != "GPTNeoXModel" {
			return Config{}, fmt.Errorf("%s: architectures has %q: want GPTNeoXForCausalLM", name, a)
		}
	}
	c := raw.Config
	// Several keys can set the rotary fraction and base; remember which one
	// did, so that an error names what the file says.
	pctKey, baseKey := "rotary_pct", "rotary_emb_base"
	if raw.RotaryPct != nil {
		c.RotaryPct = *raw.RotaryPct
	}
	if raw.RotaryBase != nil {
		c.RotaryBase = *raw.RotaryBase
	}
	if raw.RopeTheta != nil {
		c.RotaryBase, baseKey = *raw.RopeTheta, "rope_theta"
	}
	if rp := raw.RopeParameters; rp != nil {
		if rp.RopeType != "" && rp.RopeType != "default" {
			return Config{}, fmt.Errorf("%s: rope_parameters.rope_type %q is not supported: want \"default\"", name, rp.RopeType)
		}
		if rp.PartialRotaryFactor != nil {
			c.RotaryPct, pctKey = *rp.PartialRotaryFactor, "rope_parameters.partial_rotary_factor"
		}
		if rp.RopeTheta != nil {
			c.RotaryBase, baseKey = *rp.RopeTheta, "rope_parameters.rope_theta"
		}
	}
	if !(c.RotaryBase > 0) || math.IsInf(c.RotaryBase, 0) {
		return Config{}, fmt.Errorf("%s: %s: %v must be positive and finite (a rotary base ≤ 0 makes every output NaN)", name, baseKey, c.RotaryBase)
	}
	if !(c.RotaryPct >= 0 && c.RotaryPct <= 1) {
		return Config{}, fmt.Errorf("%s: %s: rotary fraction %v is outside [0, 1]", name, pctKey, c.RotaryPct)
	}
	if len(raw.RopeScaling) > 0 && string(raw.RopeScaling) != "null" {
		return Config{}, fmt.Errorf("%s: rope_scaling is not supported", name)
	}
	c.EOSTokenID = firstID(raw.EOS, 0)
	c.BOSTokenID = firstID(raw.BOS, 0)
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// firstID reads a token id that may be a number, a list or null.
func firstID(raw json.RawMessage, def int) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var l []int
	if json.Unmarshal(raw, &l) == nil && len(l) > 0 {
		return l[0]
	}
	return def
}

// JSON renders the configuration as a Hugging Face config.json that both
// transformers 4 (rotary_pct) and 5 (rope_parameters) read.
func (c Config) JSON() []byte {
	m := map[string]any{
		"architectures":           []string{"GPTNeoXForCausalLM"},
		"model_type":              "gpt_neox",
		"vocab_size":              c.VocabSize,
		"hidden_size":             c.HiddenSize,
		"num_hidden_layers":       c.NumLayers,
		"num_attention_heads":     c.NumHeads,
		"intermediate_size":       c.IntermediateSize,
		"max_position_embeddings": c.MaxPositions,
		"rotary_pct":              c.RotaryPct,
		"rotary_emb_base":         c.RotaryBase,
		"rope_parameters": map[string]any{
			"rope_type": "default", "partial_rotary_factor": c.RotaryPct, "rope_theta": c.RotaryBase,
		},
		"layer_norm_eps":        c.LayerNormEps,
		"use_parallel_residual": c.ParallelResidual,
		"hidden_act":            c.HiddenAct,
		"tie_word_embeddings":   c.TieEmbeddings,
		"bos_token_id":          c.BOSTokenID,
		"eos_token_id":          c.EOSTokenID,
		"initializer_range":     c.InitializerRange,
		"attention_bias":        true,
		"hidden_dropout":        0.0,
		"attention_dropout":     0.0,
		"use_cache":             true,
		"torch_dtype":           "float32",
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// Shapes names the model shapes `irl model init --shape` knows: the Pythia
// suite's, from EleutherAI's released configs.
var Shapes = map[string]Config{
	"pythia-14m":  pythia(6, 128, 4),
	"pythia-70m":  pythia(6, 512, 8),
	"pythia-160m": pythia(12, 768, 12),
	"pythia-410m": pythia(24, 1024, 16),
	"pythia-1b":   pythia(16, 2048, 8),
}

func pythia(layers, hidden, heads int) Config {
	return Config{
		VocabSize: 50304, HiddenSize: hidden, NumLayers: layers, NumHeads: heads,
		IntermediateSize: 4 * hidden, MaxPositions: 2048, RotaryPct: 0.25, RotaryBase: 10000,
		LayerNormEps: 1e-5, ParallelResidual: true, HiddenAct: "gelu", BOSTokenID: 0, EOSTokenID: 0,
		InitializerRange: 0.02,
	}
}

// ParamSpec is a parameter's checkpoint name and shape.
type ParamSpec struct {
	Name  string
	Shape []int
}

// ParamSpecs lists every parameter in checkpoint order with its shape, named
// as in Pythia checkpoints.
func (c Config) ParamSpecs() []ParamSpec {
	d, f, v := c.HiddenSize, c.IntermediateSize, c.VocabSize
	specs := []ParamSpec{{"gpt_neox.embed_in.weight", []int{v, d}}}
	for l := 0; l < c.NumLayers; l++ {
		p := fmt.Sprintf("gpt_neox.layers.%d.", l)
		specs = append(specs,
			ParamSpec{p + "input_layernorm.weight", []int{d}},
			ParamSpec{p + "input_layernorm.bias", []int{d}},
			ParamSpec{p + "post_attention_layernorm.weight", []int{d}},
			ParamSpec{p + "post_attention_layernorm.bias", []int{d}},
			ParamSpec{p + "attention.query_key_value.weight", []int{3 * d, d}},
			ParamSpec{p + "attention.query_key_value.bias", []int{3 * d}},
			ParamSpec{p + "attention.dense.weight", []int{d, d}},
			ParamSpec{p + "attention.dense.bias", []int{d}},
			ParamSpec{p + "mlp.dense_h_to_4h.weight", []int{f, d}},
			ParamSpec{p + "mlp.dense_h_to_4h.bias", []int{f}},
			ParamSpec{p + "mlp.dense_4h_to_h.weight", []int{d, f}},
			ParamSpec{p + "mlp.dense_4h_to_h.bias", []int{d}},
		)
	}
	specs = append(specs,
		ParamSpec{"gpt_neox.final_layer_norm.weight", []int{d}},
		ParamSpec{"gpt_neox.final_layer_norm.bias", []int{d}},
	)
	if !c.TieEmbeddings {
		specs = append(specs, ParamSpec{"embed_out.weight", []int{v, d}})
	}
	return specs
}

// rotaryTables returns cos and sin, each [MaxPositions, RotaryDims], laid
// out as transformers does: the frequencies repeated twice (cat(freqs, freqs)).
func (c Config) rotaryTables() (cos, sin []float32) {
	r := c.RotaryDims()
	cos = make([]float32, c.MaxPositions*r)
	sin = make([]float32, c.MaxPositions*r)
	half := r / 2
	for p := 0; p < c.MaxPositions; p++ {
		for i := 0; i < half; i++ {
			// inv_freq = 1 / base^(2i/r), computed in float32 as torch does.
			invFreq := float32(1 / math.Pow(c.RotaryBase, float64(2*i)/float64(r)))
			a := float64(float32(p) * invFreq)
			cs, sn := float32(math.Cos(a)), float32(math.Sin(a))
			cos[p*r+i], cos[p*r+i+half] = cs, cs
			sin[p*r+i], sin[p*r+i+half] = sn, sn
		}
	}
	return cos, sin
}
