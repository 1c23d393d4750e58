package weights

import (
	"bytes"
	"encoding/binary"
	"runtime/metrics"
	"strings"
	"testing"
)

func readBytes(name string, b []byte) (map[string]*Tensor, error) {
	return readPickleFrom(name, bytes.NewReader(b), int64(len(b)))
}

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

func TestPickleSmallCheckpoint(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		got, err := readBytes("small.bin", smallCheckpoint().archive(deflate))
		if err != nil {
			t.Fatal(err)
		}
		w, b, wt := got["layer.weight"], got["layer.bias"], got["layer.weight_t"]
		if w == nil || b == nil || wt == nil || len(got) != 3 {
			t.Fatalf("read %v", got)
		}
		if w.Data[4] != 5 || b.Data[1] != 0.5 || wt.Data[1] != 4 || wt.Shape[0] != 3 {
			t.Errorf("read %v %v %v", w, b, wt)
		}
	}
}

// Each crafted checkpoint is refused with an error naming the file and
// saying what is wrong, and allocates little while at it. Before the fixes
// these panicked inside the reader (a numel whose byte count wraps), or
// allocated what a few bytes claimed: 2 GiB for a pickle string, 1 GiB for
// a broadcast view, 1 GiB for a record's claimed size.
func TestPickleCrafted(t *testing.T) {
	const name = "crafted.bin"
	cases := map[string]struct {
		data []byte
		want string
	}{}

	// A storage of 2^62+1 float32s: the byte count wraps to 4, which the
	// 4-byte record matched.
	c := &checkpoint{}
	c.f32("w", []int{1}, []float32{1})
	c.storages[0].numel = 1<<62 + 1
	c.views[0].size = []int{1}
	cases["numel overflow"] = struct {
		data []byte
		want string
	}{c.archive(false), "overflow"}

	// A string claiming 2 GiB in a pickle of a few bytes.
	pkl := append([]byte{0x80, 2, 'X'}, binary.LittleEndian.AppendUint32(nil, 1<<31)...)
	cases["huge string"] = struct {
		data []byte
		want string
	}{zipOf(append(pkl, "ab."...), nil, false), "claims 2147483648 bytes, 3 are left"}

	// A frame longer than the pickle.
	pkl = append([]byte{0x80, 4, 0x95}, binary.LittleEndian.AppendUint64(nil, 1<<40)...)
	cases["huge frame"] = struct {
		data []byte
		want string
	}{zipOf(append(pkl, '.'), nil, false), "frame at byte 2 claims"}

	cases["unknown opcode"] = struct {
		data []byte
		want string
	}{zipOf([]byte{0x80, 2, 0xff, '.'}, nil, false), "unknown opcode 0xff"}

	// A broadcast view: 2^28 elements from a storage of one.
	c = &checkpoint{}
	c.f32("w", []int{1}, []float32{1})
	c.views[0].size, c.views[0].stride = []int{1 << 28}, []int{0}
	cases["broadcast view"] = struct {
		data []byte
		want string
	}{c.archive(false), "more elements than its storage of 1"}

	// Sizes whose product wraps to 0.
	c = &checkpoint{}
	c.f32("w", []int{1}, []float32{1})
	c.views[0].size, c.views[0].stride = []int{1 << 32, 1 << 32}, []int{0, 0}
	cases["size overflow"] = struct {
		data []byte
		want string
	}{c.archive(false), "more elements than its storage"}

	// Negative strides and offsets.
	c = smallCheckpoint()
	c.views[0].stride = []int{-3, 1}
	c.views[0].offset = 3
	cases["negative stride"] = struct {
		data []byte
		want string
	}{c.archive(false), "negative"}

	// One large storage viewed five times over.
	c = smallCheckpoint()
	for i := range 5 {
		c.views = append(c.views, ckView{"copy" + string(rune('0'+i)), 0, 0, []int{2, 3}, []int{3, 1}})
	}
	cases["storage viewed many times"] = struct {
		data []byte
		want string
	}{c.archive(false), "more than twice over"}

	// A stored record claiming 1 GiB, backed by 4 bytes.
	c = &checkpoint{}
	c.f32("w", []int{1}, []float32{1})
	c.storages[0].numel = 1 << 28
	c.views[0].size = []int{1}
	cases["stored record size"] = struct {
		data []byte
		want string
	}{setZipSizes(c.archive(false), "archive/data/0", 4, 1<<30), "stored uncompressed but its sizes differ"}
	cases["deflated record size"] = struct {
		data []byte
		want string
	}{setZipSizes(c.archive(true), "archive/data/0", 6, 1<<30), "more than compression can give"}
	cases["record past the archive"] = struct {
		data []byte
		want string
	}{setZipSizes(c.archive(false), "archive/data/0", 1<<30, 1<<30), "more than the"}

	for what, tc := range cases {
		var err error
		n := allocated(func() { _, err = readBytes(name, tc.data) })
		if err == nil {
			t.Errorf("%s: accepted", what)
			continue
		}
		if !strings.HasPrefix(err.Error(), name+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want one naming %s and %q", what, err, name, tc.want)
		}
		if n > 1<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", what, n, len(tc.data))
		}
	}
}

// Tied weights, two names on one storage, still read.
func TestPickleTiedWeights(t *testing.T) {
	c := smallCheckpoint()
	c.views = append(c.views[:2], ckView{"tied", 0, 0, []int{2, 3}, []int{3, 1}})
	got, err := readBytes("tied.bin", c.archive(false))
	if err != nil {
		t.Fatal(err)
	}
	if got["tied"].Data[5] != 6 || &got["tied"].Data[0] == &got["layer.weight"].Data[0] {
		t.Errorf("tied weight read as %v", got["tied"])
	}
}

func TestScanPickle(t *testing.T) {
	good := smallCheckpoint().pickle()
	if err := scanPickle(good); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(good); i++ {
		if err := scanPickle(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
}

func TestViewElements(t *testing.T) {
	for _, c := range []struct {
		n, offset    int
		size, stride []int
		want         int // -1: refused
	}{
		{24, 0, []int{4, 2, 3}, []int{1, 12, 4}, 24},
		{24, 5, nil, nil, 1},
		{24, 24, nil, nil, -1},
		{24, 1, []int{2, 3, 4}, []int{12, 4, 1}, -1},
		{24, 0, []int{0, -1}, []int{1, 1}, -1}, // an empty view still may not be malformed
		{24, 0, []int{0, 1 << 62}, []int{1, 1}, 0},
		{1, 0, []int{1 << 40}, []int{0}, -1},
		{1 << 20, 0, []int{1 << 31, 1 << 31}, []int{0, 0}, -1},
		{10, 1 << 62, []int{2}, []int{1 << 62}, -1},
		{0, 0, []int{1}, []int{1}, -1},
	} {
		got, err := viewElements(c.n, c.offset, c.size, c.stride)
		if err != nil {
			got = -1
		}
		if got != c.want {
			t.Errorf("viewElements(%d, %d, %v, %v) = %d, %v; want %d", c.n, c.offset, c.size, c.stride, got, err, c.want)
		}
	}
}
