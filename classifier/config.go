package classifier

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The problem types of transformers' sequence classifiers that this package
// runs. They decide what Probs computes.
const (
	SingleLabel = "single_label_classification" // softmax over the labels
	MultiLabel  = "multi_label_classification"  // a sigmoid per label
)

// Config is a RoBERTa classifier's configuration, read from a Hugging Face
// config.json.
type Config struct {
	// ModelType is "roberta" or "xlm-roberta"; both are the same network.
	ModelType string
	// The dimensions, from vocab_size, hidden_size, num_hidden_layers,
	// num_attention_heads, intermediate_size, max_position_embeddings and
	// type_vocab_size.
	VocabSize        int
	HiddenSize       int
	NumLayers        int
	NumHeads         int
	IntermediateSize int
	MaxPositions     int
	TypeVocabSize    int
	// PadTokenID is the padding token: it is also the offset of RoBERTa's
	// position numbering, so it decides MaxTokens.
	PadTokenID   int
	LayerNormEps float64
	// HiddenAct is always "gelu" (exact, erf GELU) once validated.
	HiddenAct string
	// ProblemType is "", SingleLabel or MultiLabel.
	ProblemType string
	// Labels are the class names by index, from id2label (LABEL_0, LABEL_1,
	// … when the file has none).
	Labels []string
	// Architectures is config.json's list, kept for error messages.
	Architectures []string
}

// Bounds on the dimensions a config.json may state. They are far above any
// released RoBERTa (xlm-roberta-xxl: vocabulary 250,002, width 4,096, 48
// layers) and are checked before anything is sized from the file, so a
// corrupt or hostile config.json cannot make the process allocate gigabytes.
const (
	maxVocab        = 1 << 24
	maxHidden       = 1 << 16
	maxLayers       = 1 << 10
	maxIntermediate = 1 << 18
	maxPositions    = 1 << 20
	maxTypeVocab    = 1 << 10
	maxLabels       = 1 << 16
	// maxParams bounds the parameter count the dimensions imply together
	// (64 GiB of float32), since each may be within bounds while the
	// product is not.
	maxParams = 1 << 34
)

// rawConfig is config.json as transformers writes it. Pointers tell a
// missing key (which takes RobertaConfig's default) from a zero.
type rawConfig struct {
	ModelType        *string           `json:"model_type"`
	VocabSize        *int              `json:"vocab_size"`
	HiddenSize       *int              `json:"hidden_size"`
	NumLayers        *int              `json:"num_hidden_layers"`
	NumHeads         *int              `json:"num_attention_heads"`
	IntermediateSize *int              `json:"intermediate_size"`
	MaxPositions     *int              `json:"max_position_embeddings"`
	TypeVocabSize    *int              `json:"type_vocab_size"`
	PadTokenID       *int              `json:"pad_token_id"`
	LayerNormEps     *float64          `json:"layer_norm_eps"`
	HiddenAct        *string           `json:"hidden_act"`
	ProblemType      *string           `json:"problem_type"`
	ID2Label         map[string]string `json:"id2label"`
	Label2ID         map[string]int    `json:"label2id"`
	NumLabels        *int              `json:"num_labels"`
	Architectures    []string          `json:"architectures"`
}

// LoadConfig reads a Hugging Face config.json of a RoBERTa or XLM-RoBERTa
// sequence classifier.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(path, data)
}

// ParseConfig parses and validates config.json bytes; name (a path, say)
// prefixes every error, which also names the offending key. Keys that are
// missing take transformers' RobertaConfig defaults.
func ParseConfig(name string, data []byte) (Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	mt := ""
	if raw.ModelType != nil {
		mt = *raw.ModelType
	}
	// Another model's config.json is refused before its keys are read as
	// RoBERTa's.
	if err := (Config{ModelType: mt}).checkModelType(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	pick := func(p *int, def int) int {
		if p != nil {
			return *p
		}
		return def
	}
	c := Config{
		ModelType:        mt,
		VocabSize:        pick(raw.VocabSize, 30522),
		HiddenSize:       pick(raw.HiddenSize, 768),
		NumLayers:        pick(raw.NumLayers, 12),
		NumHeads:         pick(raw.NumHeads, 12),
		IntermediateSize: pick(raw.IntermediateSize, 3072),
		MaxPositions:     pick(raw.MaxPositions, 512),
		TypeVocabSize:    pick(raw.TypeVocabSize, 2),
		PadTokenID:       pick(raw.PadTokenID, 1),
		LayerNormEps:     1e-12,
		HiddenAct:        "gelu",
		Architectures:    raw.Architectures,
	}
	if raw.LayerNormEps != nil {
		c.LayerNormEps = *raw.LayerNormEps
	}
	if raw.HiddenAct != nil {
		c.HiddenAct = *raw.HiddenAct
	}
	if raw.ProblemType != nil {
		c.ProblemType = *raw.ProblemType
	}
	labels, err := parseLabels(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.Labels = labels
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Validate checks that c describes a classifier this package can build, with
// every dimension within bounds that are checked before anything is sized
// from them. Errors name the config.json key at fault.
func (c Config) Validate() error {
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
	if err := c.checkModelType(); err != nil {
		return err
	}
	for _, d := range []struct {
		key   string
		v, hi int
	}{
		{"vocab_size", c.VocabSize, maxVocab},
		{"hidden_size", c.HiddenSize, maxHidden},
		{"num_hidden_layers", c.NumLayers, maxLayers},
		{"num_attention_heads", c.NumHeads, c.HiddenSize},
		{"intermediate_size", c.IntermediateSize, maxIntermediate},
		{"max_position_embeddings", c.MaxPositions, maxPositions},
		{"type_vocab_size", c.TypeVocabSize, maxTypeVocab},
		{"id2label", len(c.Labels), maxLabels},
	} {
		if d.v <= 0 || d.v > d.hi {
			return fail(d.key, "%d is outside [1, %d]", d.v, d.hi)
		}
	}
	if c.HiddenSize%c.NumHeads != 0 {
		return fail("num_attention_heads", "hidden_size %d is not a multiple of %d heads", c.HiddenSize, c.NumHeads)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fail("pad_token_id", "%d is outside the vocabulary [0, %d)", c.PadTokenID, c.VocabSize)
	}
	// Positions are numbered from pad_token_id+1, so the table needs at
	// least one row past the padding offset.
	if c.MaxPositions <= c.PadTokenID+1 {
		return fail("max_position_embeddings", "%d leaves no position for a token: RoBERTa numbers positions from pad_token_id+1 = %d", c.MaxPositions, c.PadTokenID+1)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) {
		return fail("layer_norm_eps", "%v must be positive and finite", c.LayerNormEps)
	}
	if c.HiddenAct != "gelu" {
		return fail("hidden_act", "%q is not supported: want \"gelu\" (the exact, erf GELU of RoBERTa)", c.HiddenAct)
	}
	switch c.ProblemType {
	case "", SingleLabel, MultiLabel:
	default:
		return fail("problem_type", "%q is not supported: want %q or %q (or none)", c.ProblemType, SingleLabel, MultiLabel)
	}
	if p := c.NumParams(); p > maxParams {
		return fmt.Errorf("the dimensions imply %d parameters, more than the %d this package loads", p, int64(maxParams))
	}
	return nil
}

func (c Config) checkModelType() error {
	if c.ModelType != "roberta" && c.ModelType != "xlm-roberta" {
		return fmt.Errorf("model_type: %q is not supported: want \"roberta\" or \"xlm-roberta\" (a RobertaForSequenceClassification checkpoint)", c.ModelType)
	}
	return nil
}

// parseLabels reads id2label (string keys "0", "1", …, which must number the
// labels 0…n-1), checks label2id against it, and falls back on num_labels or
// transformers' default of two labels.
func parseLabels(raw rawConfig) ([]string, error) {
	if raw.NumLabels != nil && (*raw.NumLabels <= 0 || *raw.NumLabels > maxLabels) {
		return nil, fmt.Errorf("num_labels: %d is outside [1, %d]", *raw.NumLabels, maxLabels)
	}
	if len(raw.ID2Label) == 0 {
		n := 2
		if raw.NumLabels != nil {
			n = *raw.NumLabels
		}
		if len(raw.Label2ID) > 0 {
			return nil, fmt.Errorf("label2id: present without id2label")
		}
		labels := make([]string, n)
		for i := range labels {
			labels[i] = fmt.Sprintf("LABEL_%d", i)
		}
		return labels, nil
	}
	n := len(raw.ID2Label)
	if n > maxLabels {
		return nil, fmt.Errorf("id2label: %d labels, more than %d", n, maxLabels)
	}
	if raw.NumLabels != nil && *raw.NumLabels != n {
		return nil, fmt.Errorf("num_labels: %d, but id2label has %d labels", *raw.NumLabels, n)
	}
	labels := make([]string, n)
	have := make([]bool, n)
	for _, k := range sortedKeys(raw.ID2Label) {
		v := raw.ID2Label[k]
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= n || strconv.Itoa(i) != k {
			return nil, fmt.Errorf("id2label: key %q: want the indices 0…%d, written as strings", k, n-1)
		}
		if have[i] {
			return nil, fmt.Errorf("id2label: index %d appears twice", i)
		}
		labels[i], have[i] = v, true
	}
	seen := map[string]int{}
	for i, l := range labels {
		if j, dup := seen[l]; dup {
			return nil, fmt.Errorf("id2label: label %q names both %d and %d", l, j, i)
		}
		seen[l] = i
	}
	if len(raw.Label2ID) > 0 {
		for _, l := range sortedKeys(raw.Label2ID) {
			i := raw.Label2ID[l]
			if j, ok := seen[l]; !ok || j != i {
				return nil, fmt.Errorf("label2id: %q → %d disagrees with id2label %s", l, i, describeLabels(labels))
			}
		}
		if len(raw.Label2ID) != n {
			return nil, fmt.Errorf("label2id: %d entries, id2label has %d labels", len(raw.Label2ID), n)
		}
	}
	return labels, nil
}

// describeLabels renders labels as {0: "neutral", 1: "toxic"} for errors.
func describeLabels(labels []string) string {
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%d: %q", i, l)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumHeads }

// NumLabels is the number of classes, the width of the logits.
func (c Config) NumLabels() int { return len(c.Labels) }

// MaxTokens is the longest input, special tokens included, that the position
// table covers: RoBERTa numbers the non-pad tokens from pad_token_id+1, so
// max_position_embeddings − pad_token_id − 1 (512 for roberta-base).
func (c Config) MaxTokens() int { return c.MaxPositions - c.PadTokenID - 1 }

// NumParams counts the parameters the configuration implies, in int64 so
// that absurd dimensions cannot overflow it.
func (c Config) NumParams() int64 {
	var n int64
	for _, s := range c.ParamSpecs() {
		n += numel64(s.Shape)
	}
	return n
}

// ParamSpec is a checkpoint tensor's name and shape.
type ParamSpec struct {
	Name  string
	Shape []int
}

// ParamSpecs lists the tensors a sequence classifier needs, named as
// transformers saves RobertaForSequenceClassification, in checkpoint order.
// Linear weights are [out, in].
func (c Config) ParamSpecs() []ParamSpec {
	d, f := c.HiddenSize, c.IntermediateSize
	e := "roberta.embeddings."
	specs := []ParamSpec{
		{e + "word_embeddings.weight", []int{c.VocabSize, d}},
		{e + "position_embeddings.weight", []int{c.MaxPositions, d}},
		{e + "token_type_embeddings.weight", []int{c.TypeVocabSize, d}},
		{e + "LayerNorm.weight", []int{d}},
		{e + "LayerNorm.bias", []int{d}},
	}
	for l := 0; l < c.NumLayers; l++ {
		p := fmt.Sprintf("roberta.encoder.layer.%d.", l)
		specs = append(specs,
			ParamSpec{p + "attention.self.query.weight", []int{d, d}},
			ParamSpec{p + "attention.self.query.bias", []int{d}},
			ParamSpec{p + "attention.self.key.weight", []int{d, d}},
			ParamSpec{p + "attention.self.key.bias", []int{d}},
			ParamSpec{p + "attention.self.value.weight", []int{d, d}},
			ParamSpec{p + "attention.self.value.bias", []int{d}},
			ParamSpec{p + "attention.output.dense.weight", []int{d, d}},
			ParamSpec{p + "attention.output.dense.bias", []int{d}},
			ParamSpec{p + "attention.output.LayerNorm.weight", []int{d}},
			ParamSpec{p + "attention.output.LayerNorm.bias", []int{d}},
			ParamSpec{p + "intermediate.dense.weight", []int{f, d}},
			ParamSpec{p + "intermediate.dense.bias", []int{f}},
			ParamSpec{p + "output.dense.weight", []int{d, f}},
			ParamSpec{p + "output.dense.bias", []int{d}},
			ParamSpec{p + "output.LayerNorm.weight", []int{d}},
			ParamSpec{p + "output.LayerNorm.bias", []int{d}},
		)
	}
	return append(specs,
		ParamSpec{"classifier.dense.weight", []int{d, d}},
		ParamSpec{"classifier.dense.bias", []int{d}},
		ParamSpec{"classifier.out_proj.weight", []int{c.NumLabels(), d}},
		ParamSpec{"classifier.out_proj.bias", []int{c.NumLabels()}},
	)
}

func numel64(shape []int) int64 {
	n := int64(1)
	for _, s := range shape {
		n *= int64(s)
	}
	return n
}

// sortedKeys is for deterministic messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
