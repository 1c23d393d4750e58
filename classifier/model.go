package classifier

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"irl/weights"
)

// Model is a configuration with its checked weights.
type Model struct {
	Config Config
	// Params maps checkpoint names (see Config.ParamSpecs) to tensors in
	// checkpoint layout. Tensors the classifier does not use (a pooler, an
	// LM head) are left out.
	Params map[string]*weights.Tensor
	// Dir is the folder the model was loaded from, if any.
	Dir string
}

// Load reads a Hugging Face classifier folder: config.json and the weights
// (model.safetensors, pytorch_model.bin, or their sharded indexes). Every
// tensor the classifier needs must be present with the shape config.json
// implies and hold only finite values.
func Load(dir string) (*Model, error) {
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	wf, err := weights.ReadFolder(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Params: map[string]*weights.Tensor{}, Dir: dir}
	files := strings.Join(wf.Files, ", ")
	for _, s := range cfg.ParamSpecs() {
		t, ok := wf.Tensors[s.Name]
		if !ok {
			hint := ""
			if strings.HasPrefix(s.Name, "classifier.") && !isSequenceClassifier(cfg.Architectures) {
				hint = fmt.Sprintf(" (config.json's architectures is %v: this checkpoint may have no classification head)", cfg.Architectures)
			}
			return nil, fmt.Errorf("%s: missing tensor %q (shape %v) needed by %s%s", files, s.Name, s.Shape, cfgPath, hint)
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, %s implies %v", wf.From[s.Name], s.Name, t.Shape, cfgPath, s.Shape)
		}
		m.Params[s.Name] = t
	}
	if err := m.CheckFinite(); err != nil {
		return nil, fmt.Errorf("%s: %w", files, err)
	}
	return m, nil
}

// CheckFinite returns an error naming the first tensor, in checkpoint order,
// that holds a NaN or an infinity, and where. A non-finite weight turns every
// score it touches into NaN, far from where it came from, so loads refuse it.
func (m *Model) CheckFinite() error {
	for _, s := range m.Config.ParamSpecs() {
		t := m.Params[s.Name]
		if t == nil {
			return fmt.Errorf("no tensor %q", s.Name)
		}
		for i, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tensor %q holds %v at index %v (flat %d)", s.Name, v, unflatten(i, t.Shape), i)
			}
		}
	}
	return nil
}

// Validate checks m's configuration and that m has every tensor it needs,
// with the right shapes, as Load does; for models built in Go.
func (m *Model) Validate() error {
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	for _, s := range m.Config.ParamSpecs() {
		t, ok := m.Params[s.Name]
		if !ok || t == nil {
			return fmt.Errorf("classifier: missing tensor %q (shape %v)", s.Name, s.Shape)
		}
		if !slices.Equal(t.Shape, s.Shape) || len(t.Data) != int(numel64(s.Shape)) {
			return fmt.Errorf("classifier: tensor %q has shape %v and %d values, want %v", s.Name, t.Shape, len(t.Data), s.Shape)
		}
	}
	return nil
}

func isSequenceClassifier(archs []string) bool {
	if len(archs) == 0 {
		return true // unknown: say nothing
	}
	for _, a := range archs {
		if strings.HasSuffix(a, "ForSequenceClassification") {
			return true
		}
	}
	return false
}

// unflatten turns a flat row-major index into per-axis indices.
func unflatten(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}
