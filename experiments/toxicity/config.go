// Package toxicity is the paper's Section 4 as one resumable pipeline:
// Jigsaw prompts → RLHF against a toxicity classifier → IRL on the RLHF
// model's demonstrations → IRL-RLHF with a good and a poor recovered head →
// toxicity at every stage (Table 2) and the IRL curves (Figure 4), with a
// report beside the paper's numbers.
//
// Each stage writes under OUT/<stage>/ and records, in its stage.json, a hash
// of its settings and of the stages it reads. A finished stage whose hash is
// unchanged is skipped; a stage that failed or was killed starts over, and
// the PPO stages resume from their checkpoints. `irl experiment toxicity
// --config FILE --out DIR [--from STAGE]` runs it; experiments/toxicity/
// holds the paper's configurations for pythia-70m and 410m and a miniature
// that runs anywhere in minutes.
package toxicity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"irl/ppo"
)

// ModelSpec is a model folder, or a small random model the pipeline makes
// (as `irl model init` does), for the miniature.
type ModelSpec struct {
	Path string    `json:"path,omitempty"`
	Init *InitSpec `json:"init,omitempty"`
}

// InitSpec describes a random model: a named shape with overrides, and the
// tokenizer.json to give it.
type InitSpec struct {
	Shape     string `json:"shape"`
	Layers    int    `json:"layers,omitempty"`
	Hidden    int    `json:"hidden_size,omitempty"`
	Heads     int    `json:"heads,omitempty"`
	Positions int    `json:"max_positions,omitempty"`
	Tokenizer string `json:"tokenizer"`
	Seed      uint64 `json:"seed"`
}

// UnmarshalJSON reads a path string or {path: …} / {init: {…}}.
func (m *ModelSpec) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		m.Path = s
		return nil
	}
	type plain ModelSpec
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var p plain
	if err := d.Decode(&p); err != nil {
		return err
	}
	*m = ModelSpec(p)
	return nil
}

// Config is a pipeline's configuration: every value the paper or the
// official code fixes, and the paths of the user's local copies.
type Config struct {
	// Models and data (local copies of the Hugging Face names the
	// configurations give in comments).
	SFTModel ModelSpec `json:"sft_model"`
	// Encoder is the frozen model whose hidden states the IRL head reads
	// (default: the SFT model).
	Encoder ModelSpec `json:"encoder"`
	// Dataset is jigsaw-long-2000 (Parquet or CSV: prompt, original_output,
	// toxic).
	Dataset string `json:"dataset"`
	// RTP is real-toxicity-prompts JSON lines; "" leaves the rtp protocol
	// out.
	RTP            string `json:"rtp,omitempty"`
	RTPChallenging bool   `json:"rtp_challenging_only,omitempty"`
	RTPMaxPrompts  int    `json:"rtp_max_prompts,omitempty"`

	// Reward is RLHF's reward spec (classifier:…), scored relative to the
	// prompt's original continuation, joined with Join.
	Reward      string `json:"reward"`
	RewardLabel string `json:"reward_label"`
	Join        string `json:"join"`
	// RewardNoise is the lexicon's noise when Reward is a lexicon (the
	// miniature); 0 is none.
	RewardNoise float64 `json:"reward_noise,omitempty"`
	// Scorer is the toxicity scorer's spec, ScorerLabel its label.
	Scorer      string `json:"scorer"`
	ScorerLabel string `json:"scorer_label"`

	// Split is the official 80/20 split.
	EvalFraction float64 `json:"eval_fraction"`
	SplitSeed    uint32  `json:"split_seed"`

	// PPO is the RLHF and IRL-RLHF settings: a preset (pythia-70m,
	// pythia-410m) and overrides with the preset files' keys.
	PPOPreset    string         `json:"ppo_preset"`
	PPOOverrides map[string]any `json:"ppo"`

	// Demonstrations: greedy continuations of the first ExpertPrompts
	// training prompts by the RLHF model and of the next BaselinePrompts by
	// the SFT model, MaxLength tokens counting the prompt.
	ExpertPrompts   int `json:"expert_prompts"`
	BaselinePrompts int `json:"baseline_prompts"`
	MaxLength       int `json:"max_length"`

	// Features of the demonstrations.
	Layer     int    `json:"layer"`
	Pool      string `json:"pool"`
	BatchSize int    `json:"batch_size"`

	// IRL: the loss, its slope p and margin δ, epochs and rows per epoch.
	Loss        string  `json:"loss"`
	P           float64 `json:"p"`
	Delta       float64 `json:"delta"`
	Epochs      int     `json:"epochs"`
	PosPerEpoch int     `json:"pos_per_epoch"`
	NegPerEpoch int     `json:"neg_per_epoch"`
	IRLSeed     uint64  `json:"irl_seed"`

	// IRL-RLHF: which heads are "good" and "poor" (final, best, worst — by
	// F1 against the classifier on the demonstrations — or epoch-N), and
	// the reward transform (none, official-rf2).
	GoodHead  string `json:"good_head"`
	PoorHead  string `json:"poor_head"`
	Transform string `json:"transform"`

	// Toxicity evaluation: seeds of the sampled protocol, and limits.
	Seeds      int `json:"seeds"`
	MaxPrompts int `json:"max_prompts,omitempty"`
	EvalBatch  int `json:"eval_batch_size"`

	// dir is the configuration file's folder: relative paths are read from
	// it.
	dir string
}

// defaults are the values the official code uses where a configuration is
// silent.
func defaults() Config {
	return Config{RewardLabel: "toxic", ScorerLabel: "hate", EvalFraction: 0.2, SplitSeed: 0, PPOPreset: "pythia-70m",
		ExpertPrompts: 500, BaselinePrompts: 500, MaxLength: 100, Layer: -1, Pool: "last", BatchSize: 32,
		Loss: "margin", P: 5, Delta: 5, Epochs: 60, PosPerEpoch: 50, NegPerEpoch: 50, IRLSeed: 1,
		GoodHead: "final", PoorHead: "worst", Transform: "none", Seeds: 15, EvalBatch: 32}
}

// LoadConfig reads a YAML configuration; an unknown key is an error naming
// it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := defaults()
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "json: "))
	}
	c.dir = filepath.Dir(path)
	return &c, c.validate(path)
}

func (c *Config) validate(path string) error {
	var bad []string
	if c.SFTModel.Path == "" && c.SFTModel.Init == nil {
		bad = append(bad, "sft_model is missing")
	}
	if c.Dataset == "" {
		bad = append(bad, "dataset is missing")
	}
	if c.Reward == "" || c.Scorer == "" {
		bad = append(bad, "reward and scorer are required")
	}
	if !(c.EvalFraction > 0 && c.EvalFraction < 1) {
		bad = append(bad, fmt.Sprintf("eval_fraction %v must lie in (0, 1)", c.EvalFraction))
	}
	if c.ExpertPrompts <= 0 || c.BaselinePrompts <= 0 || c.MaxLength <= 1 {
		bad = append(bad, "expert_prompts, baseline_prompts and max_length must be positive")
	}
	if c.Seeds <= 0 || c.Epochs <= 0 {
		bad = append(bad, "seeds and epochs must be positive")
	}
	if _, err := c.ppoConfig(); err != nil {
		bad = append(bad, err.Error())
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s", path, strings.Join(bad, "; "))
	}
	return nil
}

// resolve reads a relative path from the configuration's folder.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// resolveSpec resolves the path inside a reward spec (kind:PATH[,PATH]).
func (c *Config) resolveSpec(spec string) string {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || kind == "cmd" {
		return spec
	}
	parts := strings.Split(rest, ",")
	for i, p := range parts {
		parts[i] = c.resolve(p)
	}
	return kind + ":" + strings.Join(parts, ",")
}

// ppoConfig is the preset with the overrides.
func (c *Config) ppoConfig() (ppo.Config, error) {
	pc, err := ppo.LoadConfig(c.PPOPreset)
	if err != nil {
		return pc, err
	}
	if len(c.PPOOverrides) > 0 {
		j, _ := json.Marshal(c.PPOOverrides)
		d := json.NewDecoder(bytes.NewReader(j))
		d.DisallowUnknownFields()
		if err := d.Decode(&pc); err != nil {
			return pc, fmt.Errorf("ppo: %v", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return pc, pc.Validate()
}
