package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"irl/safetensors"
)

// Param is one parameter tensor, float32, row-major, in checkpoint layout.
type Param struct {
	Shape []int
	Data  []float32
}

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
	files, err := weightFiles(dir)
	if err != nil {
		return nil, err
	}
	found := map[string]*Param{}
	from := map[string]string{}
	for _, f := range files {
		var ps map[string]*Param
		if strings.HasSuffix(f, ".safetensors") {
			ps, err = readSafetensors(f)
		} else {
			ps, err = readPickle(f)
		}
		if err != nil {
			return nil, err
		}
		for k, v := range ps {
			found[k], from[k] = v, f
		}
	}
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

// weightFiles finds the checkpoint files of a folder, preferring safetensors.
func weightFiles(dir string) ([]string, error) {
	for _, idx := range []string{"model.safetensors.index.json", "pytorch_model.bin.index.json"} {
		p := filepath.Join(dir, idx)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &index); err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		if len(index.WeightMap) == 0 {
			return nil, fmt.Errorf("%s: weight_map is empty", p)
		}
		seen := map[string]bool{}
		var files []string
		for _, f := range index.WeightMap {
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		sort.Strings(files)
		return files, nil
	}
	for _, name := range []string{"model.safetensors", "pytorch_model.bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	return nil, fmt.Errorf("%s: no weights: want model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json", dir)
}

func readSafetensors(path string) (map[string]*Param, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]*Param{}
	for _, name := range f.Names() {
		t, _ := f.Get(name)
		switch t.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		default:
			continue // buffers such as masks; the loader checks what is needed
		}
		data, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		out[name] = &Param{Shape: t.Shape, Data: data}
	}
	return out, nil
}

// readPickle reads a PyTorch state dict saved by torch.save.
func readPickle(path string) (map[string]*Param, error) {
	obj, err := pytorch.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: reading PyTorch checkpoint: %v", path, err)
	}
	dict, ok := obj.(*types.OrderedDict)
	if !ok {
		if d, ok2 := obj.(*types.Dict); ok2 {
			dict = types.NewOrderedDict()
			for _, e := range *d {
				dict.Set(e.Key, e.Value)
			}
		} else {
			return nil, fmt.Errorf("%s: want a state dict, found %T", path, obj)
		}
	}
	out := map[string]*Param{}
	for e := dict.List.Front(); e != nil; e = e.Next() {
		ent := e.Value.(*types.OrderedDictEntry)
		name, _ := ent.Key.(string)
		t, ok := ent.Value.(*pytorch.Tensor)
		if !ok {
			continue
		}
		var src []float32
		switch s := t.Source.(type) {
		case *pytorch.FloatStorage:
			src = s.Data
		case *pytorch.HalfStorage:
			src = s.Data
		case *pytorch.BFloat16Storage:
			src = s.Data
		default:
			continue // integer and boolean buffers (attention masks)
		}
		data, err := contiguous(src, t.StorageOffset, t.Size, t.Stride)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", path, name, err)
		}
		out[name] = &Param{Shape: append([]int(nil), t.Size...), Data: data}
	}
	return out, nil
}

// contiguous copies a strided view into a row-major slice.
func contiguous(src []float32, offset int, size, stride []int) ([]float32, error) {
	n := numel(size)
	out := make([]float32, n)
	idx := make([]int, len(size))
	for i := 0; i < n; i++ {
		pos := offset
		for d := range size {
			pos += idx[d] * stride[d]
		}
		if pos < 0 || pos >= len(src) {
			return nil, fmt.Errorf("view (offset %d, size %v, stride %v) reaches outside its storage of %d", offset, size, stride, len(src))
		}
		out[i] = src[pos]
		for d := len(size) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
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
	return safetensors.WriteAtomic(filepath.Join(dir, "config.json"), func(f *os.File) error {
		_, err := f.Write(cfg)
		return err
	})
}
