package safetensors

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
)

// craft builds a safetensors file from a literal header and a body of n
// zero bytes.
func craft(header string, n int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, n)...)
}

// Crafted headers the format forbids. Each must be refused with an error
// naming the file and, where there is one, the tensor and what is wrong.
func TestParseRefusesMalformedHeaders(t *testing.T) {
	const name = "crafted.safetensors"
	cases := []struct {
		name   string
		data   []byte
		wants  []string // substrings of the error
		tensor string   // the tensor the error must name, if any
	}{
		// 2^62 × 4 elements wrap to 0 in an int, which matched 0 data bytes.
		{"element count overflow", craft(`{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, 0),
			[]string{"more elements than an int can count"}, "x"},
		{"overflow hidden behind a zero", craft(`{"x":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}}`, 0),
			[]string{"more elements than an int can count"}, "x"},
		{"overflow of the byte count", craft(`{"x":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, 0),
			[]string{"more elements than an int can count"}, "x"},
		{"overlap", craft(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12),
			[]string{"overlap", `"a"`}, "b"},
		{"aliasing", craft(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8),
			[]string{"overlap"}, ""},
		{"hole", craft(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12),
			[]string{"[4,8)", "holes"}, "b"},
		{"hole at the start", craft(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
			[]string{"[0,4)"}, "a"},
		{"trailing bytes", craft(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 9),
			[]string{"cover 4 of the 9 data bytes"}, ""},
		{"bytes but no tensors", craft(`{}`, 3),
			[]string{"cover 0 of the 3 data bytes"}, ""},
		{"header length past the file", append(binary.LittleEndian.AppendUint64(nil, 1<<20), `{}`...),
			[]string{"exceeds file size"}, ""},
		{"header length past the limit", append(binary.LittleEndian.AppendUint64(nil, MaxHeaderLen+1), `{}`...),
			[]string{"limit"}, ""},
		{"header length near 2^64", append(binary.LittleEndian.AppendUint64(nil, 1<<64-1), `{}`...),
			[]string{"limit"}, ""},
		{"too many dimensions", craft(`{"x":{"dtype":"U8","shape":[`+strings.Repeat("1,", MaxRank)+`1],"data_offsets":[0,1]}}`, 1),
			[]string{"65 dimensions"}, "x"},
		{"negative dimension", craft(`{"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 0),
			[]string{"negative dimension"}, "x"},
		{"duplicate tensor", craft(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2),
			[]string{`"x" appears twice`}, ""},
		{"leading space", craft(` {}`, 0), []string{"must start with '{'"}, ""},
		{"not an object", craft(`[1]`, 0), []string{"must start with '{'"}, ""},
		{"second object", craft(`{}{}`, 0), []string{"after the header object"}, ""},
		{"bad utf-8", craft("{\"\xff\":{}}", 0), []string{"UTF-8"}, ""},
		{"three offsets", craft(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 1), []string{"[begin, end]"}, "x"},
		{"one offset", craft(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[1]}}`, 1), []string{"[begin, end]"}, "x"},
		{"no dtype", craft(`{"x":{"shape":[1],"data_offsets":[0,1]}}`, 1), []string{"no dtype"}, "x"},
		{"no shape", craft(`{"x":{"dtype":"U8","shape":null,"data_offsets":[0,1]}}`, 1), []string{"no shape"}, "x"},
		{"unknown dtype", craft(`{"x":{"dtype":"Q7","shape":[1125899906842624],"data_offsets":[0,0]}}`, 0),
			[]string{"not a safetensors element type"}, "x"},
		{"half a byte", craft(`{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`, 1), []string{"not a whole number of bytes"}, "x"},
		{"metadata not strings", craft(`{"__metadata__":{"k":1}}`, 0), []string{"__metadata__"}, ""},
	}
	for _, c := range cases {
		_, err := Parse(name, c.data)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		ok := strings.HasPrefix(msg, name+": ")
		for _, w := range c.wants {
			ok = ok && strings.Contains(msg, w)
		}
		if c.tensor != "" {
			ok = ok && strings.Contains(msg, `tensor "`+c.tensor+`"`)
		}
		if !ok {
			t.Errorf("%s: error %q, want the file, tensor %q and %q", c.name, msg, c.tensor, c.wants)
		}
	}
}

// What the format allows must still read: empty tensors (also several at
// one offset), scalars, types this package only keeps as bytes, tensors
// listed out of offset order, and a header padded with spaces.
func TestParseAcceptsEdgeCases(t *testing.T) {
	header := `{"z":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},` +
		`"e1":{"dtype":"F32","shape":[0,1125899906842624],"data_offsets":[2,2]},` +
		`"e2":{"dtype":"I64","shape":[3,0],"data_offsets":[2,2]},` +
		`"h":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},` +
		`"s":{"dtype":"U16","shape":[],"data_offsets":[6,8]},` +
		`"__metadata__":{"format":"pt"}}    `
	f, err := Parse("edge", craft(header, 8))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Names(), ","); got != "e1,e2,h,s,z" {
		t.Errorf("names %s", got)
	}
	e1, _ := f.Get("e1")
	if e1.NumElements() != 0 || len(e1.Data) != 0 {
		t.Errorf("empty tensor holds %d elements, %d bytes", e1.NumElements(), len(e1.Data))
	}
	if v, err := e1.Float32s(); err != nil || len(v) != 0 {
		t.Errorf("empty tensor as floats: %v, %v", v, err)
	}
	s, _ := f.Get("s")
	if len(s.Shape) != 0 || s.NumElements() != 1 || len(s.Data) != 2 {
		t.Errorf("scalar: shape %v, %d bytes", s.Shape, len(s.Data))
	}
	if _, err := s.Int64s(); err == nil {
		t.Error("U16 converted though the package does not convert it")
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
}

// Every safetensors file the project ships must satisfy the stricter
// reader.
func TestParseFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/*/*.safetensors")
	if len(paths) == 0 {
		t.Fatal("no fixtures found")
	}
	for _, p := range paths {
		if _, err := ReadFile(p); err != nil {
			t.Error(err)
		}
	}
}

// A tensor of a type Float32s or Int64s does not convert is refused before
// anything is allocated for it.
func TestConvertWrongTypeAllocatesNothing(t *testing.T) {
	big := &Tensor{Name: "x", DType: "U64", Shape: []int{1 << 40}}
	if _, err := big.Float32s(); err == nil {
		t.Error("U64 as floats accepted")
	}
	if _, err := big.Int64s(); err == nil {
		t.Error("U64 as int64 accepted")
	}
}
