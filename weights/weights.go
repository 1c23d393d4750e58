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
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"irl/floatbits"
	"irl/safetensors"
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
		return parseIndex(p, data, dir)
	}
	for _, name := range []string{"model.safetensors", "pytorch_model.bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	return nil, fmt.Errorf("%s: no weights: want model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json", dir)
}

// parseIndex reads a sharded index, the JSON bytes data of the file at path
// in folder dir, and returns its shard files in dir, sorted, each once.
func parseIndex(path string, data []byte, dir string) ([]string, error) {
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is empty", path)
	}
	seen := map[string]bool{}
	var files []string
	for name, f := range index.WeightMap {
		// A shard is a file of this folder: a path that leaves it (an
		// absolute path, "..", a subfolder) is refused, not opened.
		if f == "" || filepath.IsAbs(f) || filepath.Base(f) != f || f == "." || f == ".." {
			return nil, fmt.Errorf("%s: weight_map[%q] = %q is not a file name in %s", path, name, f, dir)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, filepath.Join(dir, f))
		}
	}
	sort.Strings(files)
	return files, nil
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
func readPickle(path string) (map[string]*Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readPickleFrom(path, f, st.Size())
}

// readPickleFrom is readPickle on the size bytes of r; path is used in
// errors. What it allocates is bounded by the input: records by their
// compressed size (see readRecord), every length in the pickle by the bytes
// left in it (see scanPickle), and the tensors by the storages they view.
func readPickleFrom(path string, r io.ReaderAt, size int64) (map[string]*Tensor, error) {
	fail := func(err any) error {
		if e, ok := err.(error); ok {
			return fmt.Errorf("%s: reading PyTorch checkpoint: %w", path, e)
		}
		return fmt.Errorf("%s: reading PyTorch checkpoint: %v", path, err)
	}
	z, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fail(fmt.Errorf("not the zip archive torch.save writes (PyTorch >= 1.6): %w", err))
	}
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
	pkl, err := readRecord(records[prefix+"data.pkl"], -1, size)
	if err != nil {
		return nil, fail(err)
	}
	// gopickle allocates whatever a length in the pickle says before it
	// reads; checking every length first keeps a few crafted bytes from
	// asking for terabytes.
	if err := scanPickle(pkl); err != nil {
		return nil, fail(fmt.Errorf("%sdata.pkl: %w", prefix, err))
	}
	storages := map[string]*torchStorage{}
	var stored int // elements of all float storages read
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
		s, err := readStorage(records[prefix+"data/"+key], prefix+"data/"+key, string(class), numel, size)
		if err != nil {
			return nil, err
		}
		storages[key] = s
		stored += len(s.data)
		return s, nil
	}
	obj, err := func() (obj interface{}, err error) {
		defer func() {
			if r := recover(); r != nil { // gopickle panics on some malformed pickles
				obj, err = nil, fmt.Errorf("%v", r)
			}
		}()
		return u.Load()
	}()
	if err != nil {
		return nil, fail(err)
	}
	var entries []types.DictEntry
	switch d := obj.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			ent := e.Value.(*types.OrderedDictEntry)
			entries = append(entries, types.DictEntry{Key: ent.Key, Value: ent.Value})
		}
	case *types.Dict: // transformers' shards are plain dicts
		entries = *d
	default:
		return nil, fmt.Errorf("%s: want a state dict, found %T", path, obj)
	}
	// Each tensor is copied out of its storage, so a pickle naming one large
	// storage many times could ask for far more memory than the file holds.
	// Tied weights view a storage twice; more than that is refused.
	budget := 2 * stored
	out := map[string]*Tensor{}
	for _, ent := range entries {
		name, _ := ent.Key.(string)
		t, ok := ent.Value.(*torchTensor)
		if !ok || t.storage.data == nil {
			continue // not a tensor, or an integer or boolean buffer (attention masks)
		}
		n, err := viewElements(len(t.storage.data), t.offset, t.size, t.stride)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		if budget -= n; budget < 0 {
			return nil, fmt.Errorf("%s: tensor %q: the tensors view their storages more than twice over (%d elements stored)", path, name, stored)
		}
		data, err := contiguous(t.storage.data, t.offset, t.size, t.stride)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		out[name] = &Tensor{Shape: t.size, Data: data}
	}
	return out, nil
}

// scanPickle walks the opcodes of a pickle up to its STOP without running
// them, as Python's pickletools.genops does, and checks that every argument
// lies within the data: counted strings and frames no longer than what is
// left, lines ended by a newline. Unknown opcodes are refused.
func scanPickle(b []byte) error {
	for i := 0; i < len(b); {
		op := b[i]
		at := i
		i++
		fixed, counted, lines := 0, 0, 0
		switch op {
		case '(', '.', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
		case 'K', 'h', 'q', 0x80, 0x82:
			fixed = 1
		case 'M', 0x83:
			fixed = 2
		case 'J', 'j', 'r', 0x84:
			fixed = 4
		case 'G', 0x95:
			fixed = 8
		case 'F', 'I', 'L', 'P', 'S', 'V', 'g', 'p':
			lines = 1
		case 'c', 'i':
			lines = 2
		case 'U', 'C', 0x8c, 0x8a:
			counted = 1
		case 'T', 'X', 'B', 0x8b:
			counted = 4
		case 0x8d, 0x8e, 0x96:
			counted = 8
		default:
			return fmt.Errorf("unknown opcode 0x%02x at byte %d", op, at)
		}
		left := uint64(len(b) - i)
		switch {
		case fixed > 0:
			if uint64(fixed) > left {
				return fmt.Errorf("opcode 0x%02x at byte %d: truncated", op, at)
			}
			if op == 0x95 { // FRAME: its length must fit what follows
				if n := binary.LittleEndian.Uint64(b[i:]); n > left-8 {
					return fmt.Errorf("frame at byte %d claims %d bytes, %d are left", at, n, left-8)
				}
			}
			i += fixed
		case counted > 0:
			if uint64(counted) > left {
				return fmt.Errorf("opcode 0x%02x at byte %d: truncated", op, at)
			}
			var n uint64
			switch counted {
			case 1:
				n = uint64(b[i])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(b[i:]))
				if op == 'T' || op == 0x8b { // signed counts
					n = uint64(int64(int32(n)))
				}
			case 8:
				n = binary.LittleEndian.Uint64(b[i:])
			}
			if n > left-uint64(counted) {
				return fmt.Errorf("opcode 0x%02x at byte %d claims %d bytes, %d are left", op, at, n, left-uint64(counted))
			}
			i += counted + int(n)
		case lines > 0:
			for range lines {
				nl := bytes.IndexByte(b[i:], '\n')
				if nl < 0 {
					return fmt.Errorf("opcode 0x%02x at byte %d: line not ended", op, at)
				}
				i += nl + 1
			}
		}
		if op == '.' {
			return nil
		}
	}
	return errors.New("no STOP opcode: truncated")
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

// readStorage reads the record of a storage of numel elements of a class;
// archive is the size of the zip archive, which bounds the record.
func readStorage(f *zip.File, name, class string, numel int, archive int64) (*torchStorage, error) {
	size, ok := storageElemSize[class]
	if !ok {
		return nil, fmt.Errorf("%s: unsupported storage type torch.%s", name, class)
	}
	if f == nil {
		return nil, fmt.Errorf("record %s is missing", name)
	}
	if numel > math.MaxInt/size {
		return nil, fmt.Errorf("%s: %d elements of torch.%s overflow a byte count", name, numel, class)
	}
	b, err := readRecord(f, numel*size, archive)
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

// maxDeflateRatio is the most DEFLATE can expand: 258 bytes from a 2-bit
// code gives 1032:1.
const maxDeflateRatio = 1032

// readRecord reads a zip entry whole, which checks its CRC; if want >= 0 the
// entry must hold exactly want bytes. The sizes in the zip directory are
// only claims, so before allocating for one it checks that the entry's
// compressed bytes fit in the archive (of archive bytes) and could expand to
// that size.
func readRecord(f *zip.File, want int, archive int64) ([]byte, error) {
	if want >= 0 && f.UncompressedSize64 != uint64(want) {
		return nil, fmt.Errorf("record %s holds %d bytes, want %d", f.Name, f.UncompressedSize64, want)
	}
	if f.CompressedSize64 > uint64(archive) {
		return nil, fmt.Errorf("record %s claims %d compressed bytes, more than the %d-byte archive", f.Name, f.CompressedSize64, archive)
	}
	switch f.Method {
	case zip.Store:
		if f.UncompressedSize64 != f.CompressedSize64 {
			return nil, fmt.Errorf("record %s is stored uncompressed but its sizes differ (%d, %d)", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	default:
		if f.UncompressedSize64/maxDeflateRatio > f.CompressedSize64 {
			return nil, fmt.Errorf("record %s claims %d bytes from %d compressed ones, more than compression can give", f.Name, f.UncompressedSize64, f.CompressedSize64)
		}
	}
	if f.UncompressedSize64 > math.MaxInt {
		return nil, fmt.Errorf("record %s claims %d bytes", f.Name, f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
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
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	return b, nil
}

// viewElements checks a strided view (offset, size, stride) of a storage of
// n elements before anything is allocated for it: no negative sizes or
// strides, every element inside the storage, and no more elements than the
// storage holds (a broadcast view, stride 0, could otherwise claim any
// number). It returns the view's element count.
func viewElements(n, offset int, size, stride []int) (int, error) {
	if len(size) != len(stride) {
		return 0, fmt.Errorf("view has %d sizes but %d strides", len(size), len(stride))
	}
	if offset < 0 {
		return 0, fmt.Errorf("view offset %d is negative", offset)
	}
	for d := range size {
		if size[d] < 0 || stride[d] < 0 {
			return 0, fmt.Errorf("view (size %v, stride %v) has a negative entry", size, stride)
		}
	}
	if slices.Contains(size, 0) {
		return 0, nil
	}
	count, last := 1, offset // last: the largest position the view reads
	for d := range size {
		if count > n/size[d] {
			return 0, fmt.Errorf("view of size %v has more elements than its storage of %d", size, n)
		}
		count *= size[d]
		if stride[d] > 0 && size[d]-1 > (n-last)/stride[d] {
			return 0, fmt.Errorf("view (offset %d, size %v, stride %v) reaches outside its storage of %d", offset, size, stride, n)
		}
		last += (size[d] - 1) * stride[d]
	}
	if last >= n {
		return 0, fmt.Errorf("view (offset %d, size %v, stride %v) reaches outside its storage of %d", offset, size, stride, n)
	}
	return count, nil
}

// contiguous copies a strided view into a row-major slice.
func contiguous(src []float32, offset int, size, stride []int) ([]float32, error) {
	n, err := viewElements(len(src), offset, size, stride)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	idx := make([]int, len(size))
	for i := 0; i < n; i++ {
		pos := offset
		for d := range size {
			pos += idx[d] * stride[d]
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
