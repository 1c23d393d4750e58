package neox

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

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
	return load(dir, cfg)
}

// load reads a folder's weights for a configuration already read.
func load(dir string, cfg Config) (*Model, error) {
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
		if !slices.Equal(p.Shape, s.Shape) {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", from[s.Name], s.Name, p.Shape, s.Shape)
		}
		// A NaN or infinite weight would make every output NaN without an
		// error; the check reads the weights once, about 90 ms for
		// pythia-410m.
		if err := weights.CheckFinite(fmt.Sprintf("%s: tensor %q (shape %v)", from[s.Name], s.Name, p.Shape), p.Data); err != nil {
			return nil, err
		}
		m.Params[s.Name] = p
	}
	return m, nil
}
