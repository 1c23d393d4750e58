package weights

// A small writer of torch.save checkpoints for the tests and fuzz seeds of
// this package: a zip archive holding archive/data.pkl (a protocol 2
// pickle of an OrderedDict state dict whose storages are persistent ids)
// and the raw storages as archive/data/<key>, as PyTorch ≥ 1.6 writes it.
// policy/pickle_test.go has a fuller pickler that mimics CPython's memo
// use; this one emits no memo, which the reader does not need.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

type ckStorage struct {
	class string // FloatStorage, HalfStorage, ...
	numel int    // as the persistent id claims it
	data  []byte
}

type ckView struct {
	name         string
	storage      int // index into storages
	offset       int
	size, stride []int
}

type checkpoint struct {
	storages []ckStorage
	views    []ckView
}

// f32 adds a contiguous float32 tensor with its own storage.
func (c *checkpoint) f32(name string, shape []int, v []float32) {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	c.storages = append(c.storages, ckStorage{"FloatStorage", len(v), b})
	st := make([]int, len(shape))
	for d, s := len(shape)-1, 1; d >= 0; d-- {
		st[d], s = s, s*shape[d]
	}
	c.views = append(c.views, ckView{name, len(c.storages) - 1, 0, shape, st})
}

// pickle emits the state dict.
func (c *checkpoint) pickle() []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte('X')
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
		b.WriteString(s)
	}
	integer := func(v int) {
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			b.WriteByte('J')
			b.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
			return
		}
		b.Write([]byte{0x8a, 8}) // LONG1 of 8 bytes
		b.Write(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	}
	tuple := func(xs []int) {
		b.WriteByte('(')
		for _, x := range xs {
			integer(x)
		}
		b.WriteByte('t')
	}
	b.Write([]byte{0x80, 2})
	b.WriteString("ccollections\nOrderedDict\n)R")
	if len(c.views) > 0 {
		b.WriteByte('(')
		for _, v := range c.views {
			s := c.storages[v.storage]
			str(v.name)
			b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
			b.WriteByte('(')
			str("storage")
			fmt.Fprintf(&b, "ctorch\n%s\n", s.class)
			str(fmt.Sprint(v.storage))
			str("cpu")
			integer(s.numel)
			b.WriteString("tQ") // TUPLE, BINPERSID
			integer(v.offset)
			tuple(v.size)
			tuple(v.stride)
			b.WriteByte(0x89) // False: requires_grad
			b.WriteString("ccollections\nOrderedDict\n)R")
			b.WriteString("tR") // the six arguments, REDUCE
		}
		b.WriteByte('u')
	}
	b.WriteByte('.')
	return b.Bytes()
}

// archive writes the zip with entries stored, or deflated when deflate.
func (c *checkpoint) archive(deflate bool) []byte {
	return zipOf(c.pickle(), c.storages, deflate)
}

func zipOf(pkl []byte, storages []ckStorage, deflate bool) []byte {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	method := zip.Store
	if deflate {
		method = zip.Deflate
	}
	add := func(name string, data []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: method})
		if err != nil {
			panic(err)
		}
		w.Write(data)
	}
	add("data.pkl", pkl)
	add("byteorder", []byte("little"))
	for i, s := range storages {
		add(fmt.Sprintf("data/%d", i), s.data)
	}
	add("version", []byte("3\n"))
	if err := z.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// setZipSizes rewrites the compressed and uncompressed sizes the central
// directory gives for entry name, as a crafted archive would claim them.
func setZipSizes(b []byte, name string, compressed, uncompressed uint32) []byte {
	b = bytes.Clone(b)
	sig := []byte{'P', 'K', 1, 2}
	for i := bytes.Index(b, sig); i >= 0; {
		n := int(binary.LittleEndian.Uint16(b[i+28:]))
		if string(b[i+46:i+46+n]) == name {
			binary.LittleEndian.PutUint32(b[i+20:], compressed)
			binary.LittleEndian.PutUint32(b[i+24:], uncompressed)
			return b
		}
		j := bytes.Index(b[i+4:], sig)
		if j < 0 {
			break
		}
		i += 4 + j
	}
	panic("no entry " + name)
}

// smallCheckpoint is a two-layer toy state dict: a weight, a bias and a
// transposed view.
func smallCheckpoint() *checkpoint {
	c := &checkpoint{}
	c.f32("layer.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	c.f32("layer.bias", []int{2}, []float32{-1, 0.5})
	c.views = append(c.views, ckView{"layer.weight_t", 0, 0, []int{3, 2}, []int{1, 3}})
	return c
}
