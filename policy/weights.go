package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"irl/atomicfile"
	"irl/safetensors"
	"irl/weights"
)

// Param is one parameter tensor, float32, row-major, in checkpoint layout.
type Param = weights.Tensor

// Model is a configuration with its weights.
type Model struct {
	Config Config
	// Params maps checkpoint names (see Config.ParamSpecs) to tensors.
	Params map[string]*Param
	// Dir is the folder the model was loaded from, if any.
	Dir string
}

// Load reads a Hugging Face model folder: config.json and the weights, from
// model.safetensors, a sharded model.safetensors.index.json, or
// pytorch_model.bin (and its sharded index).
func Load(dir string) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	wf, err := weights.ReadFolder(dir)
	if err != nil {
		return nil, err
	}
	found, from, files := wf.Tensors, wf.From, wf.Files
	m := &Model{Config: cfg, Params: map[string]*Param{}, Dir: dir}
	where := strings.Join(files, ", ")
	for _, s := range cfg.ParamSpecs() {
		p, ok := found[s.Name]
		if !ok {
			return nil, fmt.Errorf("%s: missing tensor %q (shape %v) needed by %s", where, s.Name, s.Shape, filepath.Join(dir, "config.json"))
		}
		if !equalShape(p.Shape, s.Shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", from[s.Name], s.Name, p.Shape, s.Shape)
		}
		m.Params[s.Name] = p
	}
	return m, nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Save writes the model as a Hugging Face folder: config.json and
// model.safetensors, each through a temporary file and a rename.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var ts []safetensors.Tensor
	for _, s := range m.Config.ParamSpecs() {
		p := m.Params[s.Name]
		ts = append(ts, safetensors.FromFloat32(s.Name, p.Shape, p.Data))
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg := m.Config.JSON()
	return atomicfile.WriteBytes(filepath.Join(dir, "config.json"), cfg)
}
