package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unicode/utf8"

	"irl/atomicfile"
	"irl/floatbits"
)

// DType is a safetensors element type name, as written in the header.
type DType string

// The element types this package converts. The format's other types (see
// bitSize) are read and kept as bytes; names outside the format are refused.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// bitSize is the width in bits of every element type the format defines
// (huggingface/safetensors' Dtype), so that Parse can check any tensor's
// byte length against its shape, including those this package does not
// convert.
var bitSize = map[DType]int{
	Bool: 8, U8: 8, I8: 8, I16: 16, I32: 32, I64: 64, F16: 16, BF16: 16, F32: 32, F64: 64,
	"U16": 16, "U32": 32, "U64": 64, "C64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
	"F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
}

// Tensor is one named tensor. Data holds its raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
	// file is where the tensor came from, for error messages.
	file string
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

func (t *Tensor) where() string {
	if t.file == "" {
		return fmt.Sprintf("tensor %q", t.Name)
	}
	return fmt.Sprintf("%s: tensor %q", t.file, t.Name)
}

// Float32s converts the tensor to float32. F32, F16, BF16 and F64 are accepted.
func (t *Tensor) Float32s() ([]float32, error) {
	switch t.DType {
	case F32, F16, BF16, F64:
	default:
		return nil, fmt.Errorf("%s has dtype %s, want a float type (F32, F16, BF16, F64)", t.where(), t.DType)
	}
	out := make([]float32, t.NumElements())
	b := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = floatbits.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = floatbits.BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
	return out, nil
}

// Float32View returns an F32 tensor's data as []float32 sharing the file's
// memory, without a copy, when the machine is little-endian and the data is
// 4-byte aligned (safetensors writers align it); otherwise it converts like
// Float32s. Checkpoints are large, so loading them this way halves the
// memory a load needs.
func (t *Tensor) Float32View() ([]float32, error) {
	if t.DType == F32 {
		return floatbits.View(t.Data), nil
	}
	return t.Float32s()
}

// Int64s converts the tensor to int64. I64, I32, I16, I8, U8 and BOOL are accepted.
func (t *Tensor) Int64s() ([]int64, error) {
	switch t.DType {
	case I64, I32, I16, I8, U8, Bool:
	default:
		return nil, fmt.Errorf("%s has dtype %s, want an integer type (I64, I32, I16, I8, U8, BOOL)", t.where(), t.DType)
	}
	out := make([]int64, t.NumElements())
	b := t.Data
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case U8, Bool:
		for i := range out {
			out[i] = int64(b[i])
		}
	}
	return out, nil
}

// CheckShape returns an error naming the tensor unless its shape equals want.
// A negative entry in want matches any size.
func (t *Tensor) CheckShape(want ...int) error {
	ok := len(t.Shape) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = want[i] < 0 || want[i] == t.Shape[i]
	}
	if !ok {
		return fmt.Errorf("%s has shape %v, want %v", t.where(), t.Shape, want)
	}
	return nil
}

// File is a parsed safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]*Tensor
	order    []string // tensor names in the order of their data
}

// DataOrder lists the tensor names in the order their data lies in the
// file: WriteFile's order, so that a rewrite of the same tensors gives the
// same bytes.
func (f *File) DataOrder() []string { return append([]string(nil), f.order...) }

// Names lists the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.tensors))
	for n := range f.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether the file holds the named tensor.
func (f *File) Has(name string) bool { _, ok := f.tensors[name]; return ok }

// Get returns the named tensor, or an error naming the file and the tensor.
func (f *File) Get(name string) (*Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q (file has %d tensors)", f.Path, name, len(f.tensors))
	}
	return t, nil
}

// ReadFile reads and validates a whole safetensors file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

type headerEntry struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// Limits on what a header may declare. The header bound is the reference
// implementation's (huggingface/safetensors, MAX_HEADER_SIZE), so any file it
// reads we read; it caps the memory the JSON decoder may take. No framework
// makes tensors of more than 64 dimensions.
const (
	MaxHeaderLen = 100_000_000
	MaxRank      = 64
)

// maxExtent bounds the product of a shape's dimensions (zeros counted as
// ones), so that element counts, bit counts (at most 64 bits an element)
// and the index arithmetic of every reader fit in an int.
const maxExtent = math.MaxInt / 64

// elementCount returns the number of elements of shape, or an error when a
// dimension is negative or the dimensions multiply past maxExtent. A zero
// dimension makes the count 0, but the other dimensions must still multiply
// within the bound: readers index rows by them.
func elementCount(shape []int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("shape has %d dimensions, more than %d", len(shape), MaxRank)
	}
	extent, zero := 1, false
	for _, s := range shape {
		switch {
		case s < 0:
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		case s == 0:
			zero = true
		case extent > maxExtent/s:
			return 0, fmt.Errorf("shape %v has more elements than an int can count", shape)
		default:
			extent *= s
		}
	}
	if zero {
		return 0, nil
	}
	return extent, nil
}

// rawEntry is a header entry as decoded, with pointers so that a missing or
// null field is told apart from a zero one.
type rawEntry struct {
	DType   *DType   `json:"dtype"`
	Shape   *[]int   `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

// Parse validates data as a safetensors file; name is used in errors. The
// tensors share data's memory.
//
// It enforces the format as its specification states it: a header of at
// most MaxHeaderLen bytes of UTF-8 JSON starting with '{', no duplicate
// keys, string-to-string metadata, and tensors whose shapes match their
// byte ranges and whose ranges, ordered by offset, cover the data section
// exactly: no overlaps, no holes, nothing after the last tensor.
func Parse(name string, data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file (truncated?)", name, len(data))
	}
	hlen := binary.LittleEndian.Uint64(data)
	if hlen > MaxHeaderLen {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit of the format (corrupt or not safetensors)", name, hlen, MaxHeaderLen)
	}
	if hlen > uint64(len(data)-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds file size %d (truncated or not safetensors)", name, hlen, len(data))
	}
	header := data[8 : 8+hlen]
	if len(header) == 0 || header[0] != '{' {
		return nil, fmt.Errorf("%s: bad safetensors header: it must start with '{'", name)
	}
	if !utf8.Valid(header) {
		return nil, fmt.Errorf("%s: bad safetensors header: not valid UTF-8", name)
	}
	keys, raws, err := headerObject(header)
	if err != nil {
		return nil, fmt.Errorf("%s: bad safetensors header: %w", name, err)
	}
	body := data[8+hlen:]
	f := &File{Path: name, tensors: make(map[string]*Tensor, len(keys))}
	type span struct {
		lo, hi int64
		name   string
	}
	spans := make([]span, 0, len(keys))
	for i, key := range keys {
		msg := raws[i]
		if key == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %w", name, err)
			}
			continue
		}
		var h rawEntry
		if err := json.Unmarshal(msg, &h); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %w", name, key, err)
		}
		switch {
		case h.DType == nil:
			return nil, fmt.Errorf("%s: tensor %q: header entry has no dtype", name, key)
		case h.Shape == nil:
			return nil, fmt.Errorf("%s: tensor %q: header entry has no shape", name, key)
		case h.Offsets == nil || len(*h.Offsets) != 2:
			return nil, fmt.Errorf("%s: tensor %q: data_offsets must be [begin, end]", name, key)
		}
		t := &Tensor{Name: key, DType: *h.DType, Shape: *h.Shape, file: name}
		if t.Shape == nil {
			t.Shape = []int{}
		}
		bits, ok := bitSize[t.DType]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: dtype %q is not a safetensors element type", name, key, t.DType)
		}
		lo, hi := (*h.Offsets)[0], (*h.Offsets)[1]
		if lo < 0 || hi < lo || hi > int64(len(body)) {
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d,%d] outside the %d data bytes (truncated?)", name, key, lo, hi, len(body))
		}
		n, err := elementCount(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", name, key, err)
		}
		if nbits := int64(n) * int64(bits); nbits%8 != 0 {
			return nil, fmt.Errorf("%s: tensor %q: shape %v of %s is %d bits, not a whole number of bytes", name, key, t.Shape, t.DType, nbits)
		} else if nbits/8 != hi-lo {
			return nil, fmt.Errorf("%s: tensor %q: shape %v of %s needs %d bytes, offsets give %d", name, key, t.Shape, t.DType, nbits/8, hi-lo)
		}
		t.Data = body[lo:hi:hi]
		f.tensors[key] = t
		spans = append(spans, span{lo, hi, key})
	}
	// The format requires the data section to be exactly the tensors laid
	// end to end: an overlap would let two tensors alias one another's
	// bytes, and a hole or a tail could hide a second file in this one.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].lo != spans[j].lo {
			return spans[i].lo < spans[j].lo
		}
		return spans[i].hi < spans[j].hi
	})
	var end int64
	prev := -1
	for i, s := range spans {
		switch {
		case s.lo < end:
			p := spans[prev]
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d,%d] overlap tensor %q's [%d,%d]; tensors must not overlap", name, s.name, s.lo, s.hi, p.name, p.lo, p.hi)
		case s.lo > end:
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d,%d] leave bytes [%d,%d) of the data section unused; the tensors must cover it without holes", name, s.name, s.lo, s.hi, end, s.lo)
		}
		if s.hi > s.lo || prev < 0 {
			prev = i
		}
		end = s.hi
		f.order = append(f.order, s.name)
	}
	if end != int64(len(body)) {
		return nil, fmt.Errorf("%s: the tensors cover %d of the %d data bytes; bytes [%d,%d) belong to no tensor", name, end, len(body), end, len(body))
	}
	return f, nil
}

// headerObject splits the header's top-level object into its keys and
// values, refusing a key given twice (encoding/json would keep the last
// silently) and anything after the object but whitespace.
func headerObject(header []byte) (keys []string, vals []json.RawMessage, err error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil {
		return nil, nil, err
	} else if tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("unexpected %v", tok)
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, err)
		}
		keys, vals = append(keys, key), append(vals, v)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("unexpected %v after the header object", tok)
		}
		return nil, nil, err
	}
	return keys, vals, nil
}

// FromFloat32 makes an F32 tensor. On a little-endian machine its Data is a
// view of v, not a copy (weights and optimiser moments are large), so v must
// not change until the tensor is written. It panics if the shape does not
// match the data, which is a programmer error.
func FromFloat32(name string, shape []int, v []float32) Tensor {
	t := Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: floatbits.Bytes(v)}
	if t.NumElements() != len(v) {
		panic(fmt.Sprintf("safetensors: %s: shape %v holds %d elements, data has %d", name, shape, t.NumElements(), len(v)))
	}
	return t
}

// FromInt64 makes an I64 tensor, a view of v as FromFloat32's is. It panics
// if the shape does not match the data.
func FromInt64(name string, shape []int, v []int64) Tensor {
	t := Tensor{Name: name, DType: I64, Shape: append([]int(nil), shape...), Data: floatbits.Int64Bytes(v)}
	if t.NumElements() != len(v) {
		panic(fmt.Sprintf("safetensors: %s: shape %v holds %d elements, data has %d", name, shape, t.NumElements(), len(v)))
	}
	return t
}

// WriteFile writes tensors in the given order, with optional metadata. It
// writes to a temporary file in the same folder and renames it, so a crash
// never leaves a half-written file at path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for i := range tensors {
		t := &tensors[i]
		if _, dup := header[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("%s: duplicate or reserved tensor name %q", path, t.Name)
		}
		if es := t.DType.Size(); es > 0 && t.NumElements()*es != len(t.Data) {
			return fmt.Errorf("%s: tensor %q: shape %v of %s needs %d bytes, has %d", path, t.Name, t.Shape, t.DType, t.NumElements()*es, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, Offsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	for (8+len(hj))%8 != 0 {
		hj = append(hj, ' ')
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		var lenb [8]byte
		binary.LittleEndian.PutUint64(lenb[:], uint64(len(hj)))
		if _, err := w.Write(lenb[:]); err != nil {
			return err
		}
		if _, err := w.Write(hj); err != nil {
			return err
		}
		for i := range tensors {
			if _, err := w.Write(tensors[i].Data); err != nil {
				return err
			}
		}
		return nil
	})
}
