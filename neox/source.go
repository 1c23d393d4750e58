package neox

import (
	"fmt"
	"os"

	"irl/checkpoint"
	"irl/weights"
)

// Source is a model on disk, identified once: its path, its kind (a
// Hugging Face folder or an .onnx file), its configuration and its
// fingerprint. Open makes one; every consumer (features, reward heads,
// sft, ppo, the experiments) reads these from it instead of deciding the
// kind by the path, parsing config.json or fingerprinting the files again.
type Source struct {
	// Path is the model folder or .onnx file: a run folder or a
	// last-checkpoint file resolved to the model it means.
	Path string
	// How says which rule of checkpoint.ModelDir resolved Path ("" when
	// the path given was a model itself).
	How  string
	Kind weights.Kind
	// Config is the model's configuration: config.json in a folder, or
	// beside an .onnx file; nil for an .onnx file without a readable
	// GPT-NeoX config.json beside it.
	Config *Config
	// Fingerprint identifies the model by what it is (weights.Fingerprint).
	Fingerprint string
}

// Open resolves path (checkpoint.ModelDir), decides its kind, reads its
// config.json and computes its fingerprint, each once. A folder must hold
// a GPT-NeoX config.json; an .onnx file may have one beside it.
func Open(path string) (*Source, error) {
	dir, how, err := checkpoint.ModelDir(path)
	if err != nil {
		return nil, err
	}
	s := &Source{Path: dir, How: how, Kind: weights.KindOf(dir)}
	cfgPath := s.Kind.Beside(dir, "config.json")
	cfg, err := LoadConfig(cfgPath)
	switch {
	case err == nil:
		s.Config = &cfg
	case s.Kind == weights.KindONNX:
		// The graph holds what it needs; a config.json beside it only
		// tells the limits. (A missing file is the fingerprint's error.)
	default:
		return nil, err
	}
	if s.Fingerprint, err = weights.Fingerprint(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// Fingerprint is the fingerprint of a model in memory (one made by Init, or
// trained in place): weights.Fingerprint of the folder Save writes, which a
// temporary folder holds while it is computed. A model loaded from a
// folder and not changed since has its Source's fingerprint, which costs
// no writing; this one matches it when the folder is one Save wrote.
func (m *Model) Fingerprint() (string, error) {
	tmp, err := os.MkdirTemp("", "irl-fingerprint-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := m.Save(tmp); err != nil {
		return "", fmt.Errorf("fingerprinting the model: %w", err)
	}
	return weights.Fingerprint(tmp)
}

// IsONNX says whether the model is an .onnx file.
func (s *Source) IsONNX() bool { return s.Kind == weights.KindONNX }

// TokenizerPath is the tokenizer a command reads for this model: flag when
// given, else tokenizer.json in the folder or beside the .onnx file.
func (s *Source) TokenizerPath(flag string) string {
	if flag != "" {
		return flag
	}
	return s.Kind.Beside(s.Path, "tokenizer.json")
}

// Load reads the model's weights under the configuration already read. An
// .onnx file is a graph, not weights: it cannot be loaded as a Model.
func (s *Source) Load() (*Model, error) {
	if s.IsONNX() || s.Config == nil {
		return nil, fmt.Errorf("%s is an ONNX graph: it runs as it is and cannot be loaded as weights (give a Hugging Face model folder)", s.Path)
	}
	return load(s.Path, *s.Config)
}
