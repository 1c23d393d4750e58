// Package weights reads the tensors of Hugging Face checkpoint folders:
// model.safetensors (F32, F16, BF16, F64; F32 loads as a view of the file's
// memory), pytorch_model.bin (torch.save's zip format, read without running
// any pickle code), and their sharded indexes. Every model family in this
// project (GPT-NeoX policies, RoBERTa classifiers) loads through it; the model
// packages check names and shapes against their configurations.
package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"irl/floatbits"
	"irl/safetensors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// Tensor is one float32 tensor, row-major, in checkpoint layout.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Folder holds the float tensors of a checkpoint folder.
type Folder struct {
	// Tensors maps checkpoint names to tensors.
	Tensors map[string]*Tensor
	// From maps each name to the file it came from, for errors.
	From map[string]string
	// Files lists the weight files read, in order.
	Files []string
}

// ReadFolder reads every weight file of a Hugging Face folder: a sharded
// index (model.safetensors.index.json, pytorch_model.bin.index.json) if there
// is one, else model.safetensors, else pytorch_model.bin.
func ReadFolder(dir string) (*Folder, error) {
	files, err := Files(dir)
	if err != nil {
		return nil, err
	}
	f := &Folder{Tensors: map[string]*Tensor{}, From: map[string]string{}, Files: files}
	for _, p := range files {
		ts, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		for k, v := range ts {
			f.Tensors[k], f.From[k] = v, p
		}
	}
	return f, nil
}

// ReadFile reads the float tensors of one weight file, safetensors or a
// PyTorch checkpoint by its extension. Integer and boolean tensors (buffers
// such as attention masks) are left out.
func ReadFile(path string) (map[string]*Tensor, error) {
	if strings.HasSuffix(path, ".safetensors") {
		return readSafetensors(path)
	}
	return readPickle(path)
}

// Files lists the checkpoint files of a folder, preferring safetensors.
func Files(dir string) ([]string, error) {
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
		for name, f := range index.WeightMap {
			// A shard is a file of this folder: a path that leaves it (an
			// absolute path, "..", a subfolder) is refused, not opened.
			if f == "" || filepath.IsAbs(f) || filepath.Base(f) != f || f == "." || f == ".." {
				return nil, fmt.Errorf("%s: weight_map[%q] = %q is not a file name in %s", p, name, f, dir)
			}
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

func readSafetensors(path string) (map[string]*Tensor, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]*Tensor{}
	for _, name := range f.Names() {
		t, _ := f.Get(name)
		switch t.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		default:
			continue // buffers such as masks; the loader checks what is needed
		}
		data, err := t.Float32View()
		if err != nil {
			return nil, err
		}
		out[name] = &Tensor{Shape: t.Shape, Data: data}
	}
	return out, nil
}

// readPickle reads a PyTorch state dict saved by torch.save in the zip format
// of PyTorch 1.6 and later: <prefix>/data.pkl, a pickle whose storages are
// persistent ids ('storage', torch.<Type>Storage, key, location, numel), and
// the storages' raw little-endian bytes as <prefix>/data/<key>. gopickle
// unpickles data.pkl; the storages are read here rather than by gopickle's
// pytorch.Load, which decodes float16 subnormals wrongly (each gains 2^-14),
// never checks the zip CRCs, fails on deflated entries, and loops forever on
// an empty file.
func readPickle(path string) (params map[string]*Tensor, err error) {
	fail := func(err any) error {
		return fmt.Errorf("%s: reading PyTorch checkpoint: %v", path, err)
	}
	defer func() {
		if r := recover(); r != nil { // gopickle panics on some malformed pickles
			params, err = nil, fail(r)
		}
	}()
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, fail(fmt.Sprintf("not the zip archive torch.save writes (PyTorch >= 1.6): %v", err))
	}
	defer z.Close()
	records := map[string]*zip.File{}
	prefix := ""
	for _, f := range z.File {
		records[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && prefix == "" && !strings.Contains(dir, "/") {
			prefix = dir + "/"
		}
	}
	if prefix == "" {
		return nil, fail("no <prefix>/data.pkl in the archive")
	}
	if records[prefix+"constants.pkl"] != nil {
		return nil, fail("a TorchScript archive, not a state dict")
	}
	pkl, err := readRecord(records[prefix+"data.pkl"], -1)
	if err != nil {
		return nil, fail(err)
	}
	storages := map[string]*torchStorage{}
	u := pickle.NewUnpickler(bytes.NewReader(pkl))
	u.FindClass = func(module, name string) (interface{}, error) {
		switch {
		case module == "torch._utils" && name == "_rebuild_tensor_v2":
			return rebuildTensor{}, nil
		case module == "torch" && strings.HasSuffix(name, "Storage"):
			return storageClass(name), nil
		}
		return types.NewGenericClass(module, name), nil
	}
	u.PersistentLoad = func(id interface{}) (interface{}, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() != 5 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("unexpected persistent id %v", id)
		}
		class, ok1 := t.Get(1).(storageClass)
		key, ok2 := t.Get(2).(string)
		numel, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || numel < 0 {
			return nil, fmt.Errorf("unexpected persistent id %v", id)
		}
		if s := storages[key]; s != nil {
			return s, nil
		}
		s, err := readStorage(records[prefix+"data/"+key], prefix+"data/"+key, string(class), numel)
		if err != nil {
			return nil, err
		}
		storages[key] = s
		return s, nil
	}
	obj, err := u.Load()
	if err != nil {
		return nil, fail(err)
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
	out := map[string]*Tensor{}
	for e := dict.List.Front(); e != nil; e = e.Next() {
		ent := e.Value.(*types.OrderedDictEntry)
		name, _ := ent.Key.(string)
		t, ok := ent.Value.(*torchTensor)
		if !ok || t.storage.data == nil {
			continue // not a tensor, or an integer or boolean buffer (attention masks)
		}
		data, err := contiguous(t.storage.data, t.offset, t.size, t.stride)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", path, name, err)
		}
		out[name] = &Tensor{Shape: t.size, Data: data}
	}
	return out, nil
}

// storageClass is a torch.<Type>Storage class named in a pickle.
type storageClass string

// torchStorage is a loaded storage: data holds floating-point storages
// widened to float32, and is nil for the others.
type torchStorage struct{ data []float32 }

// torchTensor is a view of a storage, as torch._utils._rebuild_tensor_v2
// describes it.
type torchTensor struct {
	storage      *torchStorage
	offset       int
	size, stride []int
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]).
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...interface{}) (interface{}, error) {
	ints := func(v interface{}) ([]int, bool) {
		t, ok := v.(*types.Tuple)
		if !ok {
			return nil, false
		}
		out := make([]int, t.Len())
		for i := range out {
			if out[i], ok = t.Get(i).(int); !ok {
				return nil, false
			}
		}
		return out, true
	}
	if len(args) == 6 || len(args) == 7 {
		s, ok1 := args[0].(*torchStorage)
		offset, ok2 := args[1].(int)
		size, ok3 := ints(args[2])
		stride, ok4 := ints(args[3])
		if ok1 && ok2 && ok3 && ok4 && len(size) == len(stride) {
			return &torchTensor{storage: s, offset: offset, size: size, stride: stride}, nil
		}
	}
	return nil, fmt.Errorf("_rebuild_tensor_v2: unexpected arguments %v", args)
}

var storageElemSize = map[string]int{
	"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8,
	"LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
}

// readStorage reads the record of a storage of numel elements of a class.
func readStorage(f *zip.File, name, class string, numel int) (*torchStorage, error) {
	size, ok := storageElemSize[class]
	if !ok {
		return nil, fmt.Errorf("%s: unsupported storage type torch.%s", name, class)
	}
	if f == nil {
		return nil, fmt.Errorf("record %s is missing", name)
	}
	b, err := readRecord(f, numel*size)
	if err != nil {
		return nil, err
	}
	s := &torchStorage{}
	switch class {
	case "FloatStorage":
		s.data = make([]float32, numel)
		for i := range s.data {
			s.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "HalfStorage":
		s.data = make([]float32, numel)
		for i := range s.data {
			s.data[i] = floatbits.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "BFloat16Storage":
		s.data = make([]float32, numel)
		for i := range s.data {
			s.data[i] = floatbits.BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "DoubleStorage":
		s.data = make([]float32, numel)
		for i := range s.data {
			s.data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
	return s, nil
}

// readRecord reads a zip entry whole, which checks its CRC; if want >= 0 the
// entry must hold exactly want bytes.
func readRecord(f *zip.File, want int) ([]byte, error) {
	if want >= 0 && f.UncompressedSize64 != uint64(want) {
		return nil, fmt.Errorf("record %s holds %d bytes, want %d", f.Name, f.UncompressedSize64, want)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %v", f.Name, err)
	}
	defer rc.Close()
	var b []byte
	if want < 0 {
		b, err = io.ReadAll(rc)
	} else {
		b = make([]byte, want)
		if _, err = io.ReadFull(rc, b); err == nil {
			// Reading on to the end is what makes archive/zip check the CRC.
			if _, err = rc.Read(make([]byte, 1)); err == io.EOF {
				err = nil
			} else if err == nil {
				err = errors.New("longer than its header says")
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("record %s: %v", f.Name, err)
	}
	return b, nil
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

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}
