package safetensors

import (
	"encoding/binary"
	"os"
	"runtime/metrics"
	"strings"
	"testing"
	"unsafe"
)

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// FuzzParse feeds bytes to Parse. It must never panic, hang or allocate
// far beyond its input, and a file it accepts must be what the format
// promises: every tensor's bytes are its elements times the element width,
// the tensors tile the data section exactly, and the conversions work.
func FuzzParse(f *testing.F) {
	for _, p := range []string{
		"../testdata/tiny-neox-parallel/model.safetensors",
		"../testdata/tiny-roberta-classifier/reference.safetensors",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range []struct {
		header string
		n      int
	}{
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"__metadata__":{"k":"v"}}`, 16},
		{`{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, 0},                                    // element count wraps
		{`{"x":{"dtype":"BF16","shape":[1125899906842624,0],"data_offsets":[0,0]}}`, 0},                                      // empty, huge extent
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12}, // overlap
		{`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}`, 4},    // hole
		{`{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2},
		{`{"x":{"dtype":"F8_E4M3","shape":[2,1],"data_offsets":[0,2]},"y":{"dtype":"BOOL","shape":[1],"data_offsets":[2,3]}}`, 3},
	} {
		f.Add(craft(c.header, c.n))
	}
	f.Add(append(binary.LittleEndian.AppendUint64(nil, 1<<40), "{}"...)) // header length past the file
	f.Add(append(binary.LittleEndian.AppendUint64(nil, 1<<64-1), "{}"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var file *File
		var err error
		n := allocated(func() { file, err = Parse("fuzz", data) })
		if limit := uint64(1<<20 + 64*len(data)); n > limit {
			t.Fatalf("Parse allocated %d bytes for %d", n, len(data))
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		body := data[8+binary.LittleEndian.Uint64(data):]
		covered := 0
		for _, name := range file.Names() {
			tn, err := file.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			count, err := elementCount(tn.Shape)
			if err != nil {
				t.Fatalf("%q: accepted shape %v: %v", name, tn.Shape, err)
			}
			if tn.NumElements() != count {
				t.Fatalf("%q: NumElements %d, want %d", name, tn.NumElements(), count)
			}
			bits, ok := bitSize[tn.DType]
			if !ok || len(tn.Data)*8 != count*bits {
				t.Fatalf("%q: %d bytes for %d elements of %s", name, len(tn.Data), count, tn.DType)
			}
			if len(tn.Data) > 0 {
				off := uintptr(unsafe.Pointer(&tn.Data[0])) - uintptr(unsafe.Pointer(unsafe.SliceData(body)))
				if off > uintptr(len(body)) || int(off)+len(tn.Data) > len(body) {
					t.Fatalf("%q: data outside the data section", name)
				}
			}
			covered += len(tn.Data)
			if tn.DType.Size() > 0 {
				if v, err := tn.Float32s(); err == nil && len(v) != count {
					t.Fatalf("%q: %d floats for %d elements", name, len(v), count)
				}
				if v, err := tn.Float32View(); err == nil && len(v) != count {
					t.Fatalf("%q: a view of %d floats for %d elements", name, len(v), count)
				}
				if v, err := tn.Int64s(); err == nil && len(v) != count {
					t.Fatalf("%q: %d ints for %d elements", name, len(v), count)
				}
			}
		}
		// Tensors within the section, covering as many bytes as it has and
		// (checked by Parse) not overlapping: they tile it.
		if covered != len(body) {
			t.Fatalf("tensors cover %d of %d data bytes", covered, len(body))
		}
	})
}
