package weights

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzIndex feeds sharded index JSON to parseIndex: it must never panic,
// and what it accepts is a sorted list of distinct files directly inside
// the folder.
func FuzzIndex(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"total_size":1234},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}`,
		`{"weight_map":{"w":"pytorch_model.bin"}}`,
		`{"weight_map":{"w":"../secret.safetensors"}}`,
		`{"weight_map":{"w":"/etc/passwd"}}`,
		`{"weight_map":{"w":"sub/model.safetensors"}}`,
		`{"weight_map":{"w":".."}}`,
		`{"weight_map":{}}`,
		`{"weight_map":null}`,
		`{"weight_map":{"w":1}}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	const dir = "/models/m"
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := parseIndex(dir+"/model.safetensors.index.json", data, dir)
		if err != nil {
			if !strings.HasPrefix(err.Error(), dir+"/model.safetensors.index.json: ") {
				t.Fatalf("error does not name the index: %v", err)
			}
			return
		}
		if len(files) == 0 {
			t.Fatal("accepted an index of no files")
		}
		if !slices.IsSorted(files) || len(slices.Compact(slices.Clone(files))) != len(files) {
			t.Fatalf("files not sorted and distinct: %q", files)
		}
		for _, p := range files {
			if filepath.Dir(p) != dir || filepath.Base(p) == ".." {
				t.Fatalf("shard %q is not a file of %s", p, dir)
			}
		}
	})
}

// FuzzPickle feeds PyTorch checkpoints to readPickleFrom: as whole archives
// (asPickle false), and as data.pkl alone inside a well-formed archive
// holding the seed's storages (asPickle true), so that mutations reach the
// unpickler rather than stopping at the zip CRC. The reader must never
// panic, hang or allocate far beyond its input, and every tensor it returns
// must hold exactly the elements its shape says.
func FuzzPickle(f *testing.F) {
	seed := smallCheckpoint()
	f.Add(seed.archive(false), false)
	f.Add(seed.archive(true), false)
	f.Add(seed.pickle(), true)
	tied := smallCheckpoint()
	tied.views = append(tied.views[:2], ckView{"tied", 0, 0, []int{2, 3}, []int{3, 1}})
	f.Add(tied.pickle(), true)
	f.Add([]byte("\x80\x02X\x00\x00\x00\x80ab."), true)                  // a string longer than the pickle
	f.Add([]byte("\x80\x04\x95\x00\x00\x00\x00\x01\x00\x00\x00."), true) // a frame longer than the pickle
	f.Fuzz(func(t *testing.T, data []byte, asPickle bool) {
		archive := data
		if asPickle {
			archive = zipOf(data, seed.storages, false)
		}
		var got map[string]*Tensor
		var err error
		n := allocated(func() { got, err = readBytes("fuzz.bin", archive) })
		// Records may be deflated (at most 1032:1), widened to float32
		// (2× for half storages) and copied out twice.
		if limit := uint64(1<<20 + 8*1032*len(archive)); n > limit {
			t.Fatalf("allocated %d bytes reading %d", n, len(archive))
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.bin: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for name, tn := range got {
			count := 1
			for _, s := range tn.Shape {
				if s < 0 || (s > 0 && count > math.MaxInt/s) {
					t.Fatalf("%q: shape %v for %d values", name, tn.Shape, len(tn.Data))
				}
				count *= s
			}
			if count != len(tn.Data) {
				t.Fatalf("%q: shape %v holds %d elements, data has %d", name, tn.Shape, count, len(tn.Data))
			}
		}
	})
}
