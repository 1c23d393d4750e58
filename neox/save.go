package neox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"irl/atomicfile"
	"irl/safetensors"
	"irl/weights"
)

// Save writes the model as a Hugging Face folder: config.json and
// model.safetensors holding every tensor the model has, the configuration's
// parameters in checkpoint order and then any others (a PPO value head)
// by name. The weights are written from the model's memory without a copy,
// each file through a temporary name and a rename.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var ts []safetensors.Tensor
	seen := map[string]bool{}
	for _, s := range m.Config.ParamSpecs() {
		p := m.Params[s.Name]
		ts = append(ts, safetensors.FromFloat32(s.Name, p.Shape, p.Data))
		seen[s.Name] = true
	}
	var extra []string
	for name := range m.Params {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		p := m.Params[name]
		ts = append(ts, safetensors.FromFloat32(name, p.Shape, p.Data))
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "config.json"), m.Config.JSON())
}

// LoadWeights replaces the model's weights by a saved folder's, copying in
// place: a trainer's tensors and an optimiser hold these slices, so they see
// the restored values. The folder must hold a model of the same
// configuration and every tensor the model has; tensors it has beyond the
// configuration's (a value head) are added when the model lacks them.
func (m *Model) LoadWeights(dir string) error {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	if cfg != m.Config {
		return fmt.Errorf("neox: %s holds a model of another configuration than this one", dir)
	}
	wf, err := weights.ReadFolder(dir)
	if err != nil {
		return err
	}
	for name, p := range m.Params {
		src, ok := wf.Tensors[name]
		if !ok {
			return fmt.Errorf("neox: %s has no tensor %q", dir, name)
		}
		if !slices.Equal(src.Shape, p.Shape) {
			return fmt.Errorf("neox: %s: tensor %q has shape %v, the model's is %v", wf.From[name], name, src.Shape, p.Shape)
		}
		copy(p.Data, src.Data)
	}
	for _, name := range []string{ValueHeadWeight, ValueHeadBias} {
		if src, ok := wf.Tensors[name]; ok && m.Params[name] == nil {
			m.Params[name] = &Param{Shape: src.Shape, Data: append([]float32(nil), src.Data...)}
		}
	}
	return nil
}
