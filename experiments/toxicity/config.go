package toxicity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"irl/checkpoint"
	"irl/neox"
	"irl/ppo"
	"irl/reward"
	"irl/rewardhead"
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
	// prompt's original continuation, joined with Join. The stages' hashes
	// see the files a spec names, and for cmd: the program's own file as
	// the PATH finds it, but not what that program reads or runs: after
	// changing those, rerun with --from.
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

	// RLHFPoorPPO overrides PPO's settings (on top of ppo_preset and ppo)
	// for the rlhf-poor stage: a poorly conducted RLHF run (the paper's
	// §4.1 and Appendix F), whose demonstrations give the poor head when
	// poor_head is rlhf-poor.
	RLHFPoorPPO map[string]any `json:"rlhf_poor_ppo"`
	// IRLRLHFPPO overrides PPO's settings (on top of ppo_preset and ppo)
	// for the IRL-RLHF runs: the official train_rlhf_irl_rm.py has its own
	// (410M: batch 2, 11,500 steps, init_kl_coef 0.2).
	IRLRLHFPPO map[string]any `json:"irl_rlhf_ppo"`

	// Demonstrations (create_dataset_irl.py): the first DemoPrompts training
	// prompts, each continued greedily by the RLHF model (expert) and by
	// BaselineModel, in the same order, MaxLength tokens counting the
	// prompt. BaselineModel defaults to the SFT model; the paper's is the
	// pretrained base model (EleutherAI/pythia-70m, -410m).
	BaselineModel ModelSpec `json:"baseline_model"`
	DemoPrompts   int       `json:"demo_prompts"`
	MaxLength     int       `json:"max_length"`

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
	// F1 against the classifier on the demonstrations — or epoch-N of the
	// good run's IRL; for poor_head also rlhf-poor, the final head of IRL
	// on the rlhf-poor run's demonstrations, the paper's), and the reward
	// (Transform): relative-rf2, the official
	// rf2(head(p + gen + EOS)) − rf2(head(p + orig + EOS)) (default); none,
	// the head alone; official-rf2, rf2 of the head alone.
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
		DemoPrompts: 500, MaxLength: 100, Layer: -1, Pool: "last", BatchSize: 32,
		Loss: "margin", P: 5, Delta: 5, Epochs: 60, PosPerEpoch: 50, NegPerEpoch: 50, IRLSeed: 1,
		GoodHead: "final", PoorHead: PoorRLHF, Transform: TransformRelativeRF2, Seeds: 15, EvalBatch: 32}
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

// maxSeeds bounds seeds: each is a full sampled evaluation of every
// policy, and the paper uses 15.
const maxSeeds = 10000

// validate checks every path and bound before the first stage, so that a
// mistake is not found hours into a run, and reports every problem at once
// by its YAML key.
func (c *Config) validate(path string) error {
	var bad []string
	add := func(key, format string, a ...any) { bad = append(bad, key+": "+fmt.Sprintf(format, a...)) }
	// exists says whether a path the configuration names is there, as a
	// folder when dir is set.
	exists := func(key, p string, dir bool) bool {
		st, err := os.Stat(c.resolve(p))
		switch {
		case err != nil:
			add(key, "%s does not exist (paths are read from the configuration's folder, %s)", p, c.dir)
			return false
		case dir && !st.IsDir():
			add(key, "%s is a file; want a model folder", p)
			return false
		case !dir && st.IsDir():
			add(key, "%s is a folder; want a file", p)
			return false
		}
		return true
	}
	// layers is the model's layer count, or -1 where it cannot be known.
	model := func(key string, m ModelSpec) (layers int) {
		switch {
		case m.Path != "" && m.Init != nil:
			add(key, "give path or init, not both")
		case m.Init != nil:
			in := m.Init
			shape, ok := neox.Shapes[in.Shape]
			if !ok {
				add(key+".init.shape", "unknown shape %q: want one of %s", in.Shape, strings.Join(slices.Sorted(maps.Keys(neox.Shapes)), ", "))
				return -1
			}
			for _, d := range []struct {
				k string
				v int
			}{{"layers", in.Layers}, {"hidden_size", in.Hidden}, {"heads", in.Heads}, {"max_positions", in.Positions}} {
				if d.v < 0 {
					add(key+".init."+d.k, "%d is negative (0 keeps the shape's)", d.v)
					return -1
				}
			}
			if err := initShape(shape, in).Validate(); err != nil {
				add(key+".init", "%v", err)
				return -1
			}
			if in.Tokenizer == "" {
				add(key+".init.tokenizer", "missing: the tokenizer.json the model gets")
			} else {
				exists(key+".init.tokenizer", in.Tokenizer, false)
			}
			return initShape(shape, in).NumLayers
		case m.Path != "":
			if !exists(key, m.Path, true) {
				return -1
			}
			dir, _, err := checkpoint.ModelDir(c.resolve(m.Path))
			if err != nil {
				add(key, "%v", err)
				return -1
			}
			pc, err := neox.LoadConfig(filepath.Join(dir, "config.json"))
			if err != nil {
				add(key, "%s is not a model folder: %v", m.Path, err)
				return -1
			}
			return pc.NumLayers
		}
		return -1
	}
	spec := func(key, s string) {
		kind, err := reward.SpecKind(s)
		if err != nil {
			add(key, "%v", err)
			return
		}
		_, rest, _ := strings.Cut(s, ":")
		switch kind {
		case "cmd":
			argv := strings.Fields(rest)
			if len(argv) == 0 {
				add(key, "no program after cmd:")
			} else if _, err := exec.LookPath(argv[0]); err != nil {
				add(key, "program %s: %v", argv[0], err)
			}
		case "lexicon":
			files := strings.Split(rest, ",")
			if len(files) != 2 {
				add(key, "want lexicon:TOXIC.txt,NONTOXIC.txt, got %d files", len(files))
				return
			}
			for _, f := range files {
				exists(key, f, false)
			}
		case "head":
			exists(key, rest, false)
		case "classifier":
			exists(key, rest, true)
		}
	}

	sftLayers := -1
	if c.SFTModel.Path == "" && c.SFTModel.Init == nil {
		add("sft_model", "missing: a model folder, or init: {…}")
	} else {
		sftLayers = model("sft_model", c.SFTModel)
	}
	encLayers := sftLayers
	if c.Encoder.Path != "" || c.Encoder.Init != nil {
		encLayers = model("encoder", c.Encoder)
	}
	if c.Dataset == "" {
		add("dataset", "missing: jigsaw-long-2000 as Parquet or CSV")
	} else {
		exists("dataset", c.Dataset, false)
	}
	if c.RTP != "" {
		exists("rtp", c.RTP, false)
	} else if c.RTPChallenging {
		add("rtp_challenging_only", "needs rtp")
	}
	if c.Reward == "" {
		add("reward", "missing: the RLHF reward's spec")
	} else {
		spec("reward", c.Reward)
	}
	if c.Scorer == "" {
		add("scorer", "missing: the toxicity scorer's spec")
	} else {
		spec("scorer", c.Scorer)
	}
	if !(c.RewardNoise >= 0) || math.IsInf(c.RewardNoise, 0) {
		add("reward_noise", "%v: want a finite amplitude ≥ 0 (0: none)", c.RewardNoise)
	}
	if !(c.EvalFraction > 0 && c.EvalFraction < 1) {
		add("eval_fraction", "%v must lie in (0, 1)", c.EvalFraction)
	}
	if _, err := c.ppoConfig(nil); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			bad = append(bad, ppoKeys(e))
		}
	}
	if c.BaselineModel.Path != "" || c.BaselineModel.Init != nil {
		model("baseline_model", c.BaselineModel)
	}
	for _, o := range []struct {
		key string
		m   map[string]any
	}{{"rlhf_poor_ppo", c.RLHFPoorPPO}, {"irl_rlhf_ppo", c.IRLRLHFPPO}} {
		if _, err := c.ppoConfig(o.m); err != nil {
			for _, e := range strings.Split(err.Error(), "\n") {
				bad = append(bad, o.key+": "+ppoKeys(e))
			}
		}
	}
	if c.DemoPrompts <= 0 {
		add("demo_prompts", "%d must be positive", c.DemoPrompts)
	}
	if c.MaxLength <= 1 {
		add("max_length", "%d must be at least 2 (a prompt token and a new one)", c.MaxLength)
	}
	if encLayers >= 0 && (c.Layer < -(encLayers+1) || c.Layer > encLayers) {
		add("layer", "%d is outside the encoder's hidden states 0…%d (or -1…-%d)", c.Layer, encLayers, encLayers+1)
	}
	if _, err := neox.ParsePooling(c.Pool); err != nil {
		add("pool", "%v", err)
	}
	if c.BatchSize <= 0 {
		add("batch_size", "%d must be positive", c.BatchSize)
	}
	if _, err := rewardhead.NewLoss(c.Loss, c.P, c.Delta); err != nil {
		add("loss", "%v", err)
	}
	if c.Epochs <= 0 {
		add("epochs", "%d must be positive", c.Epochs)
	}
	if c.PosPerEpoch <= 0 {
		add("pos_per_epoch", "%d must be positive", c.PosPerEpoch)
	}
	if c.NegPerEpoch <= 0 {
		add("neg_per_epoch", "%d must be positive", c.NegPerEpoch)
	}
	if err := checkHeadRule(c.GoodHead, c.Epochs); err != nil {
		add("good_head", "%v", err)
	}
	if c.PoorHead != PoorRLHF {
		if err := checkHeadRule(c.PoorHead, c.Epochs); err != nil {
			add("poor_head", "%v (or %s)", err, PoorRLHF)
		}
	}
	if c.Transform != TransformRelativeRF2 && (c.Transform == "" || !slices.Contains(reward.Transforms, c.Transform)) {
		add("transform", "unknown transform %q: want %s or one of %s", c.Transform, TransformRelativeRF2, strings.Join(reward.Transforms, ", "))
	}
	if c.Seeds < 1 || c.Seeds > maxSeeds {
		add("seeds", "%d: want 1 to %d", c.Seeds, maxSeeds)
	}
	if c.MaxPrompts < 0 {
		add("max_prompts", "%d must not be negative (0: every prompt)", c.MaxPrompts)
	}
	if c.RTPMaxPrompts < 0 {
		add("rtp_max_prompts", "%d must not be negative (0: every prompt)", c.RTPMaxPrompts)
	}
	if c.EvalBatch <= 0 {
		add("eval_batch_size", "%d must be positive", c.EvalBatch)
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: %s", path, bad[0])
	}
	return fmt.Errorf("%s: %d problems:\n  %s", path, len(bad), strings.Join(bad, "\n  "))
}

// ppoKeys names ppo's settings in its messages by this file's keys
// (ppo.num_rollouts).
func ppoKeys(msg string) string {
	msg = ppo.RenameKeys(msg, func(k string) string { return "ppo." + k })
	if !strings.HasPrefix(msg, "ppo") {
		msg = "ppo: " + msg
	}
	return msg
}

// checkHeadRule checks a good_head or poor_head value against the epochs
// IRL trains.
func checkHeadRule(rule string, epochs int) error {
	switch rule {
	case "final", "best", "worst":
		return nil
	}
	var n int
	if _, err := fmt.Sscanf(rule, "epoch-%d", &n); err != nil || rule != fmt.Sprintf("epoch-%d", n) {
		return fmt.Errorf("%q: want final, best, worst or epoch-N", rule)
	}
	if n < 1 || (epochs > 0 && n > epochs) {
		return fmt.Errorf("%q: IRL trains epochs 1…%d", rule, epochs)
	}
	return nil
}

// initShape is the shape an init spec makes, before the tokenizer gives
// its EOS.
func initShape(shape neox.Config, in *InitSpec) neox.Config {
	if in.Layers > 0 {
		shape.NumLayers = in.Layers
	}
	if in.Hidden > 0 {
		shape.HiddenSize, shape.IntermediateSize = in.Hidden, 4*in.Hidden
	}
	if in.Heads > 0 {
		shape.NumHeads = in.Heads
	}
	if in.Positions > 0 {
		shape.MaxPositions = in.Positions
	}
	return shape
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

// PoorRLHF is the poor_head value that takes the poor head from IRL on the
// rlhf-poor stage's demonstrations.
const PoorRLHF = "rlhf-poor"

// TransformRelativeRF2 is the official IRL-RLHF reward (reward.RelativeRF2).
const TransformRelativeRF2 = "relative-rf2"

// ppoConfig is the preset with the ppo overrides, then a stage's own
// (rlhf_poor_ppo, irl_rlhf_ppo; nil for none).
func (c *Config) ppoConfig(stage map[string]any) (ppo.Config, error) {
	pc, err := ppo.LoadConfig(c.PPOPreset)
	if err != nil {
		return pc, err
	}
	for _, over := range []map[string]any{c.PPOOverrides, stage} {
		if len(over) == 0 {
			continue
		}
		j, _ := json.Marshal(over)
		d := json.NewDecoder(bytes.NewReader(j))
		d.DisallowUnknownFields()
		if err := d.Decode(&pc); err != nil {
			return pc, fmt.Errorf("ppo: %v", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return pc, pc.Validate()
}
