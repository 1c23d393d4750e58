package neox

// Tests of the pytorch_model.bin path of Load. No PyTorch is available here,
// so the checkpoints are written from Go in the format torch.save has used
// since PyTorch 1.6: a zip archive holding <prefix>/data.pkl (a protocol 2
// pickle of the state dict, whose storages are persistent ids), the raw
// little-endian storages as <prefix>/data/<key>, and <prefix>/version. The
// pickle opcodes are emitted the way CPython's pickle.Pickler emits them for a
// state dict (memo puts and gets, TUPLE1..3, MARK/SETITEMS batches, the
// OrderedDict reduce with its _metadata BUILD), so a real Pythia
// pytorch_model.bin takes the same path. The reference is the safetensors
// fixture of the same model.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"irl/weights"
)

const tinyNeox = fixtures + "/tiny-neox-parallel"

// ---- a minimal pickler (protocol 2) ----

// Python values the pickler knows.
type (
	pyTuple  []any
	pyGlobal struct{ module, name string }
	// pyReduce is callable(*args), as __reduce__ returns it.
	pyReduce struct {
		fn   pyGlobal
		args pyTuple
	}
	// pyPersID is an object pickled as a persistent id (BINPERSID).
	pyPersID struct{ id pyTuple }
	pyDict   struct {
		keys []string
		vals []any
	}
	// pyOrderedDict is collections.OrderedDict; state, if any, is its
	// __dict__ (a state dict carries _metadata there).
	pyOrderedDict struct {
		pyDict
		state *pyDict
	}
)

func (d *pyDict) set(k string, v any) { d.keys, d.vals = append(d.keys, k), append(d.vals, v) }

const (
	opProto      = 0x80
	opGlobal     = 'c'
	opMark       = '('
	opTuple      = 't'
	opTuple1     = 0x85
	opTuple2     = 0x86
	opTuple3     = 0x87
	opEmptyTuple = ')'
	opBinUnicode = 'X'
	opBinInt     = 'J'
	opBinInt1    = 'K'
	opBinInt2    = 'M'
	opLong1      = 0x8a
	opEmptyDict  = '}'
	opReduce     = 'R'
	opSetItem    = 's'
	opSetItems   = 'u'
	opBinPersID  = 'Q'
	opNewTrue    = 0x88
	opNewFalse   = 0x89
	opNone       = 'N'
	opBuild      = 'b'
	opBinPut     = 'q'
	opLongBinPut = 'r'
	opBinGet     = 'h'
	opLongBinGet = 'j'
	opStop       = '.'
)

type pickler struct {
	b    bytes.Buffer
	memo map[any]int // globals and strings, which CPython shares by identity
	n    int
}

// pickleBytes returns the protocol 2 pickle of v.
func pickleBytes(v any) []byte {
	p := &pickler{memo: map[any]int{}}
	p.b.Write([]byte{opProto, 2})
	p.save(v)
	p.b.WriteByte(opStop)
	return p.b.Bytes()
}

func (p *pickler) put(key any) {
	if key != nil {
		p.memo[key] = p.n
	}
	if p.n < 256 {
		p.b.Write([]byte{opBinPut, byte(p.n)})
	} else {
		p.b.WriteByte(opLongBinPut)
		p.b.Write(binary.LittleEndian.AppendUint32(nil, uint32(p.n)))
	}
	p.n++
}

func (p *pickler) get(key any) bool {
	i, ok := p.memo[key]
	if !ok {
		return false
	}
	if i < 256 {
		p.b.Write([]byte{opBinGet, byte(i)})
	} else {
		p.b.WriteByte(opLongBinGet)
		p.b.Write(binary.LittleEndian.AppendUint32(nil, uint32(i)))
	}
	return true
}

func (p *pickler) save(v any) {
	switch v := v.(type) {
	case nil:
		p.b.WriteByte(opNone)
	case bool:
		if v {
			p.b.WriteByte(opNewTrue)
		} else {
			p.b.WriteByte(opNewFalse)
		}
	case int:
		switch {
		case v >= 0 && v <= 0xff:
			p.b.Write([]byte{opBinInt1, byte(v)})
		case v >= 0 && v <= 0xffff:
			p.b.WriteByte(opBinInt2)
			p.b.Write(binary.LittleEndian.AppendUint16(nil, uint16(v)))
		case v >= math.MinInt32 && v <= math.MaxInt32:
			p.b.WriteByte(opBinInt)
			p.b.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
		default: // two's complement, little-endian, shortest form
			var enc []byte
			for x := int64(v); ; x >>= 8 {
				enc = append(enc, byte(x))
				if x >= -0x80 && x < 0x80 { // the last byte carries the sign
					break
				}
			}
			p.b.Write([]byte{opLong1, byte(len(enc))})
			p.b.Write(enc)
		}
	case string:
		if p.get(v) {
			return
		}
		p.b.WriteByte(opBinUnicode)
		p.b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(v))))
		p.b.WriteString(v)
		p.put(v)
	case pyGlobal:
		if p.get(v) {
			return
		}
		fmt.Fprintf(&p.b, "%c%s\n%s\n", opGlobal, v.module, v.name)
		p.put(v)
	case pyTuple:
		switch len(v) {
		case 0:
			p.b.WriteByte(opEmptyTuple)
			return
		case 1, 2, 3:
			for _, e := range v {
				p.save(e)
			}
			p.b.WriteByte([]byte{opTuple1, opTuple2, opTuple3}[len(v)-1])
		default:
			p.b.WriteByte(opMark)
			for _, e := range v {
				p.save(e)
			}
			p.b.WriteByte(opTuple)
		}
		p.put(nil)
	case pyPersID:
		p.save(v.id)
		p.b.WriteByte(opBinPersID)
	case pyReduce:
		p.save(v.fn)
		p.save(v.args)
		p.b.WriteByte(opReduce)
		p.put(nil)
	case *pyDict:
		p.b.WriteByte(opEmptyDict)
		p.put(nil)
		p.setItems(v)
	case *pyOrderedDict:
		p.save(pyReduce{pyGlobal{"collections", "OrderedDict"}, nil})
		p.setItems(&v.pyDict)
		if v.state != nil {
			p.save(v.state)
			p.b.WriteByte(opBuild)
		}
	default:
		panic(fmt.Sprintf("pickler: %T", v))
	}
}

// setItems is CPython's _batch_setitems: batches of 1000, SETITEM for one.
func (p *pickler) setItems(d *pyDict) {
	for i := 0; i < len(d.keys); i += 1000 {
		j := min(i+1000, len(d.keys))
		if j-i == 1 {
			p.save(d.keys[i])
			p.save(d.vals[i])
			p.b.WriteByte(opSetItem)
			continue
		}
		p.b.WriteByte(opMark)
		for k := i; k < j; k++ {
			p.save(d.keys[k])
			p.save(d.vals[k])
		}
		p.b.WriteByte(opSetItems)
	}
}

// ---- torch.save's zip format ----

type ptStorage struct {
	key, class string // class: FloatStorage, HalfStorage, ...
	numel      int
	data       []byte
}

// ptCheckpoint is a state dict being written as torch.save would.
type ptCheckpoint struct {
	prefix   string // the archive's top folder: "archive" or the file's stem
	plain    bool   // a plain dict (transformers' shards) instead of an OrderedDict
	storages []*ptStorage
	byKey    map[string]*ptStorage
	dict     pyDict
}

func newCheckpoint(prefix string) *ptCheckpoint {
	return &ptCheckpoint{prefix: prefix, byKey: map[string]*ptStorage{}}
}

// storage adds a storage of the given class holding raw bytes; it returns
// its key.
func (c *ptCheckpoint) storage(class string, data []byte) string {
	size := map[string]int{"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "BoolStorage": 1, "ByteStorage": 1, "LongStorage": 8}[class]
	if size == 0 || len(data)%size != 0 {
		panic("storage: " + class)
	}
	s := &ptStorage{key: fmt.Sprint(len(c.storages)), class: class, numel: len(data) / size, data: data}
	c.storages = append(c.storages, s)
	c.byKey[s.key] = s
	return s.key
}

// view adds a tensor that views storage key at offset with size and stride,
// pickled as torch._utils._rebuild_tensor_v2 does it.
func (c *ptCheckpoint) view(name, key string, offset int, size, stride []int) {
	s := c.byKey[key]
	sz, st := pyTuple{}, pyTuple{}
	for i := range size {
		sz, st = append(sz, size[i]), append(st, stride[i])
	}
	t := pyReduce{pyGlobal{"torch._utils", "_rebuild_tensor_v2"}, pyTuple{
		pyPersID{pyTuple{"storage", pyGlobal{"torch", s.class}, s.key, "cpu", s.numel}},
		offset, sz, st,
		false, // requires_grad
		&pyOrderedDict{pyDict: pyDict{}, state: nil}, // backward_hooks
	}}
	c.dict.set(name, t)
}

// f32 adds a contiguous float32 tensor with its own storage.
func (c *ptCheckpoint) f32(name string, shape []int, data []float32) {
	c.view(name, c.storage("FloatStorage", f32Bytes(data)), 0, shape, rowMajor(shape))
}

// buffers adds the non-parameter buffers Pythia checkpoints carry for layer l:
// the causal mask (bool), masked_bias (a 0-d float) and rotary inv_freq.
func (c *ptCheckpoint) buffers(cfg Config, l int) {
	p := fmt.Sprintf("gpt_neox.layers.%d.attention.", l)
	n := cfg.MaxPositions
	mask := make([]byte, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			mask[i*n+j] = 1
		}
	}
	c.view(p+"bias", c.storage("BoolStorage", mask), 0, []int{1, 1, n, n}, []int{n * n, n * n, n, 1})
	c.view(p+"masked_bias", c.storage("FloatStorage", f32Bytes([]float32{-1e9})), 0, []int{}, []int{})
	r := cfg.RotaryDims()
	inv := make([]float32, r/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(cfg.RotaryBase, float64(2*i)/float64(r)))
	}
	c.f32(p+"rotary_emb.inv_freq", []int{r / 2}, inv)
}

// write saves the checkpoint at path, each entry with the given zip method.
func (c *ptCheckpoint) write(t *testing.T, path string, method uint16) {
	t.Helper()
	var root any
	if c.plain {
		root = &c.dict
	} else {
		// state_dict() keeps per-module versions in _metadata.
		meta := &pyOrderedDict{}
		for _, m := range []string{"", "gpt_neox", "gpt_neox.embed_in", "gpt_neox.layers.0.attention", "embed_out"} {
			v := &pyDict{}
			v.set("version", 1)
			meta.set(m, v)
		}
		state := &pyDict{}
		state.set("_metadata", meta)
		root = &pyOrderedDict{pyDict: c.dict, state: state}
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: c.prefix + "/" + name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("data.pkl", pickleBytes(root))
	add("byteorder", []byte("little"))
	for _, s := range c.storages {
		add("data/"+s.key, s.data)
	}
	add("version", []byte("3\n"))
	add(".data/serialization_id", []byte("1234567890123456789012345678901234567890"))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func rowMajor(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for d := len(shape) - 1; d >= 0; d-- {
		st[d] = s
		s *= shape[d]
	}
	return st
}

// f32ToF16 rounds to the nearest float16, ties to even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	e := int(b>>23) & 0xff
	man := b & 0x7fffff
	if e == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e = e - 127 + 15
	if e >= 31 {
		return sign | 0x7c00
	}
	if e <= 0 { // subnormal half
		if e < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint(14 - e)
		h, rem, half := man>>shift, man&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || rem == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	h, rem := uint32(e)<<10|man>>13, man&0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is still right, up to infinity
	}
	return sign | uint16(h)
}

func f16ToF32(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e, man := int(h>>10)&0x1f, float64(h&0x3ff)
	switch e {
	case 0:
		return sign * float32(man*math.Pow(2, -24))
	case 31:
		if man != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32((1+man/1024)*math.Pow(2, float64(e-15)))
}

// f32ToBF16 rounds to the nearest bfloat16, ties to even (finite inputs).
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// ---- helpers ----

func loadTinyReference(t *testing.T) *Model {
	t.Helper()
	m, err := Load(tinyNeox)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// binDir makes a temporary model folder holding tiny-neox-parallel's
// config.json.
func binDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(tinyNeox, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadGuarded runs Load with a deadline and turns a panic into a failure, so
// a corrupt file cannot hang or crash the test binary.
func loadGuarded(t *testing.T, dir string) (*Model, error) {
	t.Helper()
	type result struct {
		m   *Model
		err error
		pan any
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{pan: r}
			}
		}()
		m, err := Load(dir)
		ch <- result{m: m, err: err}
	}()
	select {
	case r := <-ch:
		if r.pan != nil {
			t.Fatalf("Load(%s) panicked: %v", dir, r.pan)
		}
		return r.m, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Load(%s) did not return within 30s", dir)
		return nil, nil
	}
}

// sameParams checks got holds exactly the parameters of want, bit for bit,
// except those in skip.
func sameParams(t *testing.T, got, want *Model, skip ...string) {
	t.Helper()
	if got.Config != want.Config {
		t.Errorf("config %+v, want %+v", got.Config, want.Config)
	}
	if len(got.Params) != len(want.Params) {
		t.Errorf("%d params, want %d", len(got.Params), len(want.Params))
	}
	for name, w := range want.Params {
		if slices.Contains(skip, name) {
			continue
		}
		g, ok := got.Params[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			t.Errorf("%s: shape %v (%d values), want %v (%d)", name, g.Shape, len(g.Data), w.Shape, len(w.Data))
			continue
		}
		for i := range w.Data {
			if math.Float32bits(g.Data[i]) != math.Float32bits(w.Data[i]) {
				t.Errorf("%s[%d] = %v, want %v", name, i, g.Data[i], w.Data[i])
				break
			}
		}
	}
}

// fullCheckpoint writes every parameter of ref as contiguous float32, with
// layer 0's buffers after its parameters, as a Pythia state dict has them.
func fullCheckpoint(ref *Model, prefix string, override func(c *ptCheckpoint, name string, p *Param) bool) *ptCheckpoint {
	c := newCheckpoint(prefix)
	for _, s := range ref.Config.ParamSpecs() {
		p := ref.Params[s.Name]
		if override == nil || !override(c, s.Name, p) {
			c.f32(s.Name, p.Shape, p.Data)
		}
		if strings.HasSuffix(s.Name, "layers.0.mlp.dense_4h_to_h.bias") {
			c.buffers(ref.Config, 0)
		}
	}
	return c
}

// ---- tests ----

// The pickler itself writes what CPython writes for a few values (bytes taken
// from pickle.dumps(v, protocol=2)).
func TestPickleEncoder(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{pyTuple{1, 300, 70000}, "\x80\x02K\x01M,\x01J\x70\x11\x01\x00\x87q\x00."},
		{pyTuple{-1, 1 << 40}, "\x80\x02J\xff\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01\x86q\x00."},
		{pyTuple{}, "\x80\x02)."},
		{pyTuple{"a", "a", false}, "\x80\x02X\x01\x00\x00\x00aq\x00h\x00\x89\x87q\x01."},
	} {
		if got := string(pickleBytes(tc.v)); got != tc.want {
			t.Errorf("pickleBytes(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// (a) The whole state dict as float32 in one pytorch_model.bin, with the
// buffers Pythia checkpoints carry, loads bit-identical to model.safetensors.
func TestPickleFullFloat32(t *testing.T) {
	ref := loadTinyReference(t)
	dir := binDir(t)
	fullCheckpoint(ref, "pytorch_model", nil).write(t, filepath.Join(dir, "pytorch_model.bin"), zip.Store)
	got, err := loadGuarded(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, got, ref)

	// readPickle itself sees the buffers: float ones as tensors, the bool
	// mask skipped.
	all, err := weights.ReadFile(filepath.Join(dir, "pytorch_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if p := all["gpt_neox.layers.0.attention.masked_bias"]; p == nil || len(p.Shape) != 0 || len(p.Data) != 1 || p.Data[0] != -1e9 {
		t.Errorf("0-d masked_bias read as %+v", p)
	}
	if _, ok := all["gpt_neox.layers.0.attention.bias"]; ok {
		t.Error("the bool attention mask was read as a float tensor")
	}
	if p := all["gpt_neox.layers.0.attention.rotary_emb.inv_freq"]; p == nil || p.Data[0] != 1 {
		t.Errorf("inv_freq read as %+v", p)
	}
}

// (b) Non-contiguous views: a weight stored transposed (stride (1, rows)) at
// a nonzero offset of a storage it shares with another tensor, and a bias
// read with stride 2.
func TestPickleStrided(t *testing.T) {
	ref := loadTinyReference(t)
	qkv := "gpt_neox.layers.0.attention.query_key_value.weight"
	dense := "gpt_neox.layers.1.attention.dense.weight"
	lnb := "gpt_neox.final_layer_norm.bias"
	poison := math.Float32frombits(0x7fc0dead) // in the gaps; must never be read
	pad := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = poison
		}
		return x
	}

	w := ref.Params[qkv]
	rows, cols := w.Shape[0], w.Shape[1]
	const off = 7
	shared := pad(off)
	tr := make([]float32, rows*cols) // w transposed, row-major [cols, rows]
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			tr[c*rows+r] = w.Data[r*cols+c]
		}
	}
	shared = append(shared, tr...)
	shared = append(shared, pad(5)...)
	denseOff := len(shared)
	shared = append(shared, ref.Params[dense].Data...)
	shared = append(shared, pad(3)...)

	b := ref.Params[lnb].Data
	inter := pad(1 + 2*len(b))
	for i, v := range b {
		inter[1+2*i] = v
	}

	dir := binDir(t)
	var sharedKey string // qkv (layer 0) comes before dense (layer 1)
	c := fullCheckpoint(ref, "archive", func(c *ptCheckpoint, name string, p *Param) bool {
		switch name {
		case qkv:
			sharedKey = c.storage("FloatStorage", f32Bytes(shared))
			c.view(name, sharedKey, off, []int{rows, cols}, []int{1, rows})
		case dense:
			c.view(name, sharedKey, denseOff, p.Shape, rowMajor(p.Shape))
		case lnb:
			c.view(name, c.storage("FloatStorage", f32Bytes(inter)), 1, p.Shape, []int{2})
		default:
			return false
		}
		return true
	})
	c.write(t, filepath.Join(dir, "pytorch_model.bin"), zip.Store)
	got, err := loadGuarded(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, got, ref)
}

// (c) Half and bfloat16 storages are widened exactly.
func TestPickleHalf(t *testing.T) {
	ref := loadTinyReference(t)
	half := "gpt_neox.layers.0.mlp.dense_h_to_4h.weight"
	bf := "gpt_neox.layers.1.attention.dense.weight"
	dir := binDir(t)
	fullCheckpoint(ref, "pytorch_model", func(c *ptCheckpoint, name string, p *Param) bool {
		var class string
		var enc func(float32) uint16
		switch name {
		case half:
			class, enc = "HalfStorage", f32ToF16
		case bf:
			class, enc = "BFloat16Storage", f32ToBF16
		default:
			return false
		}
		var b []byte
		for _, v := range p.Data {
			b = binary.LittleEndian.AppendUint16(b, enc(v))
		}
		c.view(name, c.storage(class, b), 0, p.Shape, rowMajor(p.Shape))
		return true
	}).write(t, filepath.Join(dir, "pytorch_model.bin"), zip.Store)
	got, err := loadGuarded(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, got, ref, half, bf)
	check := func(name string, exact func(float32) float32, relTol, absTol float64) {
		w, g := ref.Params[name], got.Params[name]
		if g == nil || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("%s: %+v", name, g)
		}
		for i, v := range w.Data {
			if e := exact(v); math.Float32bits(g.Data[i]) != math.Float32bits(e) {
				t.Fatalf("%s[%d] = %v, want %v (the rounding of %v)", name, i, g.Data[i], e, v)
			}
			if d := math.Abs(float64(g.Data[i]) - float64(v)); d > math.Max(relTol*math.Abs(float64(v)), absTol) {
				t.Fatalf("%s[%d] = %v is %g from %v", name, i, g.Data[i], d, v)
			}
		}
	}
	check(half, func(v float32) float32 { return f16ToF32(f32ToF16(v)) }, 0x1p-11, 0x1p-25)
	check(bf, func(v float32) float32 { return math.Float32frombits(uint32(f32ToBF16(v)) << 16) }, 0x1p-8, 0)
}

// (d) Two shards and pytorch_model.bin.index.json, as transformers writes
// them (plain dicts, the buffers listed too); the second shard deflated.
func TestPickleSharded(t *testing.T) {
	ref := loadTinyReference(t)
	dir := binDir(t)
	names := [2]string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"}
	shards := [2]*ptCheckpoint{newCheckpoint("archive"), newCheckpoint("archive")}
	index := map[string]any{"metadata": map[string]any{"total_size": 4 * ref.Config.NumParams()}}
	wm := map[string]string{}
	for i, s := range ref.Config.ParamSpecs() {
		k := 0
		if i >= len(ref.Config.ParamSpecs())/2 {
			k = 1
		}
		shards[k].f32(s.Name, ref.Params[s.Name].Shape, ref.Params[s.Name].Data)
		wm[s.Name] = names[k]
		if strings.HasSuffix(s.Name, "layers.0.mlp.dense_4h_to_h.bias") {
			shards[k].buffers(ref.Config, 0)
			for _, b := range shards[k].dict.keys[len(shards[k].dict.keys)-3:] {
				wm[b] = names[k]
			}
		}
	}
	index["weight_map"] = wm
	for k, c := range shards {
		c.plain = true
		c.write(t, filepath.Join(dir, names[k]), []uint16{zip.Store, zip.Deflate}[k])
	}
	js, _ := json.Marshal(index)
	if err := os.WriteFile(filepath.Join(dir, "pytorch_model.bin.index.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := loadGuarded(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, got, ref)
}

// (e) Truncated or corrupted files give an error that names the file, and
// never hang or panic.
func TestPickleCorrupt(t *testing.T) {
	ref := loadTinyReference(t)
	var good bytes.Buffer
	{
		dir := binDir(t)
		fullCheckpoint(ref, "archive", nil).write(t, filepath.Join(dir, "pytorch_model.bin"), zip.Store)
		b, err := os.ReadFile(filepath.Join(dir, "pytorch_model.bin"))
		if err != nil {
			t.Fatal(err)
		}
		good.Write(b)
	}
	n := good.Len()
	flipped := bytes.Clone(good.Bytes())
	flipped[n/2] ^= 0x40 // inside a storage: the zip CRC no longer matches

	// A zip whose one storage is shorter than its persistent id says.
	short := newCheckpoint("archive")
	short.f32("gpt_neox.embed_in.weight", ref.Params["gpt_neox.embed_in.weight"].Shape, ref.Params["gpt_neox.embed_in.weight"].Data)
	short.storages[0].data = short.storages[0].data[:100]

	cases := []struct {
		name  string
		bytes []byte
		build *ptCheckpoint
		pkl   []byte
	}{
		{name: "empty", bytes: []byte{}},
		{name: "one byte", bytes: good.Bytes()[:1]},
		{name: "header only", bytes: good.Bytes()[:100]},
		{name: "half", bytes: good.Bytes()[:n/2]},
		{name: "no end record", bytes: good.Bytes()[:n-1]},
		{name: "zeros", bytes: make([]byte, 4096)},
		{name: "bit flip", bytes: flipped},
		{name: "short storage", build: short},
		{name: "bad data.pkl", pkl: []byte("\x80\x02\x8a\x00garbage")},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			dir := binDir(t)
			path := filepath.Join(dir, "pytorch_model.bin")
			switch {
			case tc.pkl != nil:
				var buf bytes.Buffer
				z := zip.NewWriter(&buf)
				w, _ := z.Create("archive/data.pkl")
				w.Write(tc.pkl)
				w, _ = z.Create("archive/version")
				w.Write([]byte("3\n"))
				z.Close()
				tc.bytes = buf.Bytes()
			case tc.build != nil:
				tc.build.write(t, path, zip.Store)
				tc.bytes = nil
			}
			if tc.bytes != nil {
				if err := os.WriteFile(path, tc.bytes, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadGuarded(t, dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name %s: %v", path, err)
			}
			t.Log(err)
		})
	}
}
