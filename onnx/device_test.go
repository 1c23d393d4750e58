package onnx

import (
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// affine is y = x·W + b with x [batch, 8], b [16], and r = Relu(y): a MatMul
// and an Add, with a second output to bind differently.
func affine(t testing.TB) *Graph {
	t.Helper()
	g := NewGraph("affine")
	x := g.Input("x", Float, "batch", 8)
	b := g.Input("b", Float, 16)
	w := g.Initializer("w", []int{8, 16}, randomF32(8*16, 21))
	y := g.Add(g.MatMul(x, w), b)
	g.Output(y, "y", Float, "batch", 16)
	g.Output(g.Op("Relu", []Value{y}), "r", Float, "batch", 16)
	return g
}

// f32s is a CPU tensor's data, failing the test when it cannot be read.
func f32s(t testing.TB, d *DeviceTensor) []float32 {
	t.Helper()
	v, err := d.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, unbound run gives %v", what, i, got[i], want[i])
		}
	}
}

// Bound runs give the same bits as onnxruntime_go's unbound RunInto, with
// inputs bound to host and allocator tensors and outputs bound to
// preallocated host and allocator tensors and to the device.
func TestBoundRunMatchesUnbound(t *testing.T) {
	const batch = 5
	g := affine(t)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	xs, bs := randomF32(batch*8, 22), randomF32(16, 23)

	ref, err := NewSession(model, "", []string{"x", "b"}, []string{"y", "r"}, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Destroy()
	xin, _ := TensorF32(xs, batch, 8)
	bin, _ := TensorF32(bs, 16)
	defer DestroyAll(xin, bin)
	outs := []ORTValue{nil, nil}
	if err := ref.RunInto([]ORTValue{xin, bin}, outs); err != nil {
		t.Fatal(err)
	}
	wantY, _, _ := Float32Data(outs[0])
	wantR, _, _ := Float32Data(outs[1])
	wantY, wantR = append([]float32(nil), wantY...), append([]float32(nil), wantR...)
	DestroyAll(outs...)

	s, err := NewBoundGraphSession(g, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	if got := strings.Join(s.Inputs(), ","); got != "x,b" {
		t.Errorf("inputs %s", got)
	}
	if got := strings.Join(s.Outputs(), ","); got != "y,r" {
		t.Errorf("outputs %s", got)
	}
	alloc, err := s.NewAllocator(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Destroy()
	cpu, err := NewMemoryInfo(CPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Destroy()

	// Inputs over Go memory, and the same values in allocator tensors.
	hx, err := NewHostTensorF32(xs, batch, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer hx.Destroy()
	hb, err := NewHostTensorF32(bs, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Destroy()
	ax, _ := alloc.NewTensor(Float, batch, 8)
	ab, _ := alloc.NewTensor(Float, 16)
	defer ax.Destroy()
	defer ab.Destroy()
	if err := ax.CopyFromHost(xs); err != nil {
		t.Fatal(err)
	}
	if err := ab.CopyFromHost(bs); err != nil {
		t.Fatal(err)
	}

	yHost := make([]float32, batch*16)
	hy, _ := NewHostTensorF32(yHost, batch, 16)
	defer hy.Destroy()
	ar, _ := alloc.NewTensor(Float, batch, 16)
	defer ar.Destroy()

	for _, c := range []struct {
		name   string
		x, b   *DeviceTensor
		device *MemoryInfo // for r; y goes to hy
		useAr  bool
	}{
		{"host inputs, r to allocator tensor", hx, hb, nil, true},
		{"allocator inputs, r to session device", ax, ab, nil, false},
		{"host inputs, r to cpu memory info", hx, hb, cpu, false},
	} {
		bd, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []error{bd.BindInput("x", c.x), bd.BindInput("b", c.b), bd.BindOutput("y", hy)} {
			if e != nil {
				t.Fatal(e)
			}
		}
		if c.useAr {
			err = bd.BindOutput("r", ar)
		} else {
			err = bd.BindOutputToDevice("r", c.device)
		}
		if err != nil {
			t.Fatal(err)
		}
		clear(yHost)
		if err := bd.Run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := bd.SynchronizeOutputs(); err != nil {
			t.Fatal(err)
		}
		sameBits(t, c.name+": y in Go memory", yHost, wantY)
		outs, err := bd.Outputs()
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 2 || outs[0].Name != "y" || outs[1].Name != "r" {
			t.Fatalf("%s: outputs %v", c.name, outs)
		}
		sameBits(t, c.name+": y output", f32s(t, outs[0].Tensor), wantY)
		r := outs[1].Tensor
		if sh := r.Shape(); len(sh) != 2 || sh[0] != batch || sh[1] != 16 || r.Device() != CPU {
			t.Fatalf("%s: r has shape %v on %s", c.name, sh, r.Device())
		}
		got := make([]float32, batch*16)
		if err := r.CopyToHost(got); err != nil {
			t.Fatal(err)
		}
		sameBits(t, c.name+": r", got, wantR)
		if c.useAr {
			sameBits(t, c.name+": r in its tensor", f32s(t, ar), wantR)
		}
		bd.Destroy()
		// Outputs outlive the binding that produced them.
		sameBits(t, c.name+": r after the binding", f32s(t, r), wantR)
		for _, o := range outs {
			o.Tensor.Destroy()
		}
	}
}

// A session from an .onnx file, and one through NewBoundGraphSession's
// external-data path, run like one from bytes.
func TestBoundSessionFromFile(t *testing.T) {
	g := affine(t)
	path := filepath.Join(t.TempDir(), "affine.onnx")
	if err := g.WriteFile(path, 0); err != nil {
		t.Fatal(err)
	}
	old := inlineLimit
	inlineLimit = 100
	viaGraph, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	inlineLimit = old
	if err != nil {
		t.Fatal(err)
	}
	defer viaGraph.Destroy()
	fromFile, err := NewBoundSession(nil, path, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Destroy()
	var results [][]float32
	for _, s := range []*BoundSession{fromFile, viaGraph} {
		x, _ := NewHostTensorF32(randomF32(8, 5), 1, 8)
		b, _ := NewHostTensorF32(make([]float32, 16), 16)
		bd, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		bd.BindInput("x", x)
		bd.BindInput("b", b)
		bd.BindOutputToDevice("y", nil)
		bd.BindOutputToDevice("r", nil)
		if err := bd.Run(); err != nil {
			t.Fatal(err)
		}
		y, err := bd.Output("y")
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, append([]float32(nil), f32s(t, y)...))
		y.Destroy()
		bd.Destroy()
		x.Destroy()
		b.Destroy()
	}
	sameBits(t, "file vs external data", results[0], results[1])
}

// Copies in and out round-trip for every supported type, on the direct path
// and through the Identity graph that device memory uses.
func TestDeviceTensorCopies(t *testing.T) {
	s, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	sa, err := s.NewAllocator(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Destroy()
	da, err := DefaultAllocator()
	if err != nil {
		t.Fatal(err)
	}
	defer da.Destroy() // does nothing: shared
	for _, a := range []*Allocator{sa, da} {
		for _, viaGraph := range []bool{false, true} {
			f := randomF32(3*7*2, 31)
			tf, err := a.NewTensor(Float, 3, 7, 2)
			if err != nil {
				t.Fatal(err)
			}
			if tf.Len() != 42 || tf.DType() != Float || tf.Device() != CPU || tf.DeviceID() != 0 {
				t.Fatalf("tensor %v %v %v", tf.Len(), tf.DType(), tf.Device())
			}
			if err := tf.copyHost(sliceData(f), len(f), Float, true, viaGraph); err != nil {
				t.Fatal(err)
			}
			back := make([]float32, len(f))
			if err := tf.copyHost(sliceData(back), len(back), Float, false, viaGraph); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "float32 round trip", back, f)
			tf.Destroy()

			ti, _ := a.NewTensor(Int64, 5)
			iv := []int64{-1, 1 << 40, 0, 7, math.MinInt64}
			if err := ti.copyHost(sliceData(iv), 5, Int64, true, viaGraph); err != nil {
				t.Fatal(err)
			}
			ib := make([]int64, 5)
			if err := ti.copyHost(sliceData(ib), 5, Int64, false, viaGraph); err != nil {
				t.Fatal(err)
			}
			for i := range iv {
				if ib[i] != iv[i] {
					t.Fatalf("int64 round trip: %v, want %v", ib, iv)
				}
			}
			ti.Destroy()

			td, _ := a.NewTensor(Double) // a scalar
			if err := td.copyHost(sliceData([]float64{math.Pi}), 1, Double, true, viaGraph); err != nil {
				t.Fatal(err)
			}
			db := []float64{0}
			if err := td.copyHost(sliceData(db), 1, Double, false, viaGraph); err != nil || db[0] != math.Pi {
				t.Fatalf("float64 round trip: %v %v", db, err)
			}
			td.Destroy()
		}
	}
	// The exported wrappers, an empty tensor, and the errors.
	tf, _ := sa.NewTensor(Float, 2, 2)
	defer tf.Destroy()
	if err := tf.CopyFromHost([]float32{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 4)
	if err := tf.CopyToHost(got); err != nil || got[3] != 4 {
		t.Fatalf("%v %v", got, err)
	}
	if err := tf.CopyFromHost(make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "4 values") {
		t.Errorf("wrong length: %v", err)
	}
	if err := tf.CopyFromHostI64(make([]int64, 4)); err == nil || !strings.Contains(err.Error(), "int64") {
		t.Errorf("wrong type: %v", err)
	}
	if _, err := tf.Int64s(); err == nil {
		t.Error("a float32 tensor read as int64")
	}
	empty, err := sa.NewTensor(Float, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.CopyFromHost(nil); err != nil {
		t.Error(err)
	}
	empty.Destroy()
	if _, err := sa.NewTensor(Bool, 2); err == nil {
		t.Error("bool tensors are not supported")
	}
	if _, err := sa.NewTensor(Float, 2, -1); err == nil {
		t.Error("a negative dimension")
	}
	if _, err := NewHostTensorF32(make([]float32, 5), 2, 3); err == nil {
		t.Error("a host tensor whose shape disagrees with its data")
	}
	hi, err := NewHostTensorI64([]int64{4, 5, 6}, 3)
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := hi.Int64s()
	if iv[2] != 6 {
		t.Errorf("host int64 view %v", iv)
	}
	hi.Destroy()
	hd, _ := NewHostTensorF64([]float64{2.5})
	dv, _ := hd.Float64s()
	if dv[0] != 2.5 || len(hd.Shape()) != 0 {
		t.Errorf("host float64 scalar %v %v", dv, hd.Shape())
	}
	hd.Destroy()
	if err := hd.CopyToHostF64(make([]float64, 1)); err == nil {
		t.Error("copy after Destroy")
	}
}

// Mistakes come back as Go errors that name the input or output.
func TestBindingErrors(t *testing.T) {
	s, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	bd, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bd.Destroy()
	good, _ := NewHostTensorF32(make([]float32, 16), 2, 8)
	defer good.Destroy()
	wrongShape, _ := NewHostTensorF32(make([]float32, 16), 4, 4)
	defer wrongShape.Destroy()
	wrongRank, _ := NewHostTensorF32(make([]float32, 16), 16)
	defer wrongRank.Destroy()
	ints, _ := NewHostTensorI64(make([]int64, 16), 2, 8)
	defer ints.Destroy()
	for _, c := range []struct {
		err  error
		want []string
	}{
		{bd.BindInput("xx", good), []string{`"xx"`, "no such input", "x, b"}},
		{bd.BindInput("x", wrongShape), []string{`"x"`, "[4 4]", "[? 8]"}},
		{bd.BindInput("x", wrongRank), []string{`"x"`, "[16]"}},
		{bd.BindInput("x", ints), []string{`"x"`, "int64", "float32"}},
		{bd.BindOutput("z", good), []string{`"z"`, "no such output", "y, r"}},
		{bd.BindOutputToDevice("z", nil), []string{`"z"`}},
		{bd.BindOutput("y", ints), []string{`"y"`, "int64"}},
		{bd.BindInput("x", nil), []string{`"x"`, "no tensor"}},
	} {
		if c.err == nil {
			t.Errorf("no error, want one mentioning %q", c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("error %q does not mention %s", c.err, w)
			}
		}
	}
	// ONNX Runtime's own checks at run time are Go errors too: b unbound,
	// then a preallocated output of the wrong shape.
	if err := bd.BindInput("x", good); err != nil {
		t.Fatal(err)
	}
	if err := bd.BindOutputToDevice("y", nil); err != nil {
		t.Fatal(err)
	}
	if err := bd.Run(); err == nil {
		t.Error("a run with input b unbound succeeded")
	} else {
		t.Logf("missing input: %v", err)
	}
	b, _ := NewHostTensorF32(make([]float32, 16), 16)
	defer b.Destroy()
	bd.BindInput("b", b)
	small, _ := NewHostTensorF32(make([]float32, 4), 1, 4)
	defer small.Destroy()
	if err := bd.BindOutput("r", small); err != nil {
		t.Fatal(err)
	}
	if err := bd.Run(); err == nil {
		t.Error("a run into an output of the wrong shape succeeded")
	} else {
		t.Logf("wrong output shape: %v", err)
	}
	bd.ClearOutputs()
	bd.BindOutputToDevice("y", nil)
	if err := bd.Run(); err != nil {
		t.Fatalf("after clearing outputs: %v", err)
	}
	bd.ClearInputs()
	if err := bd.Run(); err == nil {
		t.Error("a run after clearing the inputs succeeded")
	}
	dead, _ := NewHostTensorF32(make([]float32, 16), 2, 8)
	dead.Destroy()
	if err := bd.BindInput("x", dead); err == nil || !strings.Contains(err.Error(), "after Destroy") {
		t.Errorf("binding a destroyed tensor: %v", err)
	}
}

// Objects released in any order are all released once nothing uses them:
// tensors outlive their allocator, bindings and outputs their session.
func TestDeviceObjectsReleased(t *testing.T) {
	runtime.GC()
	base := live.Load()
	s, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.NewAllocator(nil)
	x, _ := a.NewTensor(Float, 3, 8)
	x.CopyFromHost(randomF32(24, 1))
	b, _ := NewHostTensorF32(randomF32(16, 2), 16)
	bd, _ := s.NewBinding()
	bd.BindInput("x", x)
	bd.BindInput("b", b)
	bd.BindOutputToDevice("y", nil)
	bd.BindOutputToDevice("r", nil)
	// Destroy the session, allocator and inputs first: the binding and the
	// tensors still work.
	s.Destroy()
	a.Destroy()
	x.Destroy()
	b.Destroy()
	if err := bd.Run(); err != nil {
		t.Fatal(err)
	}
	y, err := bd.Output("y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewBinding(); err == nil {
		t.Error("a binding from a destroyed session")
	}
	bd.Destroy()
	if got := live.Load() - base; got == 0 {
		t.Fatal("everything released while an output is alive")
	}
	if v := f32s(t, y); len(v) != 48 {
		t.Fatalf("output has %d values", len(v))
	}
	y.Destroy()
	if got := live.Load() - base; got != 0 {
		t.Errorf("%d objects still held after every Destroy", got)
	}
}

// A thousand bind–run–read–destroy cycles leave the process the same size.
func TestBindingLoopMemoryFlat(t *testing.T) {
	const batch = 256 // y and r are 16 KiB each
	s, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	a, err := s.NewAllocator(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	xs, bs := randomF32(batch*8, 41), randomF32(16, 42)
	base := live.Load()
	cycle := func() {
		x, err := NewHostTensorF32(xs, batch, 8)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := a.NewTensor(Float, 16)
		b.CopyFromHost(bs)
		yt, _ := a.NewTensor(Float, batch, 16)
		bd, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		bd.BindInput("x", x)
		bd.BindInput("b", b)
		bd.BindOutput("y", yt)
		bd.BindOutputToDevice("r", nil)
		if err := bd.Run(); err != nil {
			t.Fatal(err)
		}
		outs, err := bd.Outputs()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, batch*16)
		for _, o := range outs {
			if err := o.Tensor.CopyToHost(got); err != nil {
				t.Fatal(err)
			}
			o.Tensor.Destroy()
		}
		bd.Destroy()
		yt.Destroy()
		b.Destroy()
		x.Destroy()
	}
	// Steady state first: ONNX Runtime's arenas and the Go heap settle over
	// the first several hundred cycles (measured: RSS flat from 1000 on).
	for i := 0; i < 1000; i++ {
		cycle()
	}
	runtime.GC()
	before := rssKB(t)
	for i := 0; i < 1000; i++ {
		cycle()
	}
	runtime.GC()
	after := rssKB(t)
	// Each cycle holds over 40 KiB of tensors besides the binding and value
	// objects, so a thousand leaked cycles would add over 40 MiB; measured
	// noise is up to 1.5 MiB. The object count catches any leak exactly.
	if after-before > 8*1024 {
		t.Errorf("RSS grew from %d KiB to %d KiB over 1000 bound runs", before, after)
	}
	if got := live.Load() - base; got != 0 {
		t.Errorf("%d objects left after the loop", got)
	}
	t.Logf("RSS %d KiB -> %d KiB", before, after)
}

// Views of a tensor's leading part share its memory and keep it alive, and
// a run reads them; int32 host tensors lie over Go memory; the device
// allocator's tensors live in the memory it says.
func TestViewsInt32Allocator(t *testing.T) {
	if _, err := copierFor(copierKey{CPU, 0, Float}); err != nil { // kept for the process
		t.Fatal(err)
	}
	base := live.Load()
	a, err := NewDeviceAllocator(Options{})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := a.NewTensor(Float, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if buf.Device() != CPU {
		t.Errorf("the CPU device allocator allocated on %s", buf.Device())
	}
	if err := buf.CopyFromHost([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}); err != nil {
		t.Fatal(err)
	}
	v, err := buf.View(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buf.View(5, 3); err == nil {
		t.Error("a view larger than its tensor was made")
	}
	buf.Destroy()
	a.Destroy()
	got := f32s(t, v) // alive through the view
	sameBits(t, "view", got, []float32{0, 1, 2, 3, 4, 5})
	got[5] = 50
	// A graph that reads the view: only its six values.
	g := NewGraph("sum")
	g.Output(g.ReduceSum(g.Input("x", Float, 2, 3), false), "y", Float)
	s, err := NewBoundGraphSession(g, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.NewBinding()
	out := []float32{0}
	yt, _ := NewHostTensorF32(out)
	if err := b.BindInput("x", v); err != nil {
		t.Fatal(err)
	}
	b.BindOutput("y", yt)
	if err := b.Run(); err != nil {
		t.Fatal(err)
	}
	if out[0] != 60 {
		t.Errorf("sum over the view %v", out[0])
	}
	b.Destroy()
	yt.Destroy()
	v.Destroy()
	s.Destroy()
	if got := live.Load() - base; got != 0 {
		t.Errorf("%d objects held after every Destroy", got)
	}
	ids := []int32{7, -2, 9}
	it, err := NewHostTensorI32(ids, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Destroy()
	iv, err := it.Int32s()
	if err != nil || iv[1] != -2 || it.DType() != Int32 {
		t.Errorf("int32 tensor: %v %v %v", iv, it.DType(), err)
	}
	if _, err := it.Float32s(); err == nil {
		t.Error("an int32 tensor read as float32")
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"1.24.3", true}, {"1.14.0", true}, {"1.13.1", false}, {"2.0.0", true}, {"1.9", false}, {"1.14-dev", true}, {"garbage", false}, {"", false}} {
		if got := versionAtLeast(c.v, 1, 14); got != c.want {
			t.Errorf("versionAtLeast(%q, 1, 14) = %v", c.v, got)
		}
	}
}

func TestMemoryInfo(t *testing.T) {
	m, err := NewMemoryInfo(CUDA, 1)
	if err != nil { // a description only: no GPU needed
		t.Fatal(err)
	}
	if m.Device() != CUDA || m.DeviceID() != 1 || m.String() != "cuda:1" {
		t.Errorf("%v %v %v", m.Device(), m.DeviceID(), m)
	}
	m.Destroy()
	if _, err := NewMemoryInfo("tpu", 0); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := NewMemoryInfo(CUDA, -1); err == nil {
		t.Error("a negative CUDA device")
	}
}

// cudaSession opens a CUDA session for g or skips the test, saying why.
func cudaSession(t *testing.T, g *Graph) *BoundSession {
	t.Helper()
	s, err := NewBoundGraphSession(g, Options{Device: CUDA, Threads: 1})
	if err != nil {
		if !strings.Contains(err.Error(), "cuda") {
			t.Errorf("the error does not mention cuda: %v", err)
		}
		t.Skip("no CUDA provider: " + err.Error())
	}
	return s
}

// On a GPU: tensors in CUDA memory round-trip, and a bound run with inputs
// and outputs on the device equals the CPU run to float32 rounding.
func TestCUDABound(t *testing.T) {
	const batch = 4
	g := affine(t)
	s := cudaSession(t, g)
	defer s.Destroy()
	a, err := s.NewAllocator(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	xs, bs := randomF32(batch*8, 51), randomF32(16, 52)
	x, err := a.NewTensor(Float, batch, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	if x.Device() != CUDA {
		t.Fatalf("allocated on %s", x.Device())
	}
	if err := x.CopyFromHost(xs); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, len(xs))
	if err := x.CopyToHost(back); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "cuda round trip", back, xs)
	b, _ := a.NewTensor(Float, 16)
	defer b.Destroy()
	b.CopyFromHost(bs)
	y, _ := a.NewTensor(Float, batch, 16)
	defer y.Destroy()
	cpu, _ := NewMemoryInfo(CPU, 0)
	defer cpu.Destroy()
	bd, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bd.Destroy()
	bd.BindInput("x", x)
	bd.BindInput("b", b)
	bd.BindOutput("y", y)
	bd.BindOutputToDevice("r", cpu)
	if err := bd.Run(); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, batch*16)
	if err := y.CopyToHost(got); err != nil {
		t.Fatal(err)
	}
	r, err := bd.Output("r")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	if r.Device() != CPU {
		t.Errorf("r bound to CPU memory is on %s", r.Device())
	}
	cs, err := NewBoundGraphSession(affine(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Destroy()
	cb, _ := cs.NewBinding()
	defer cb.Destroy()
	hx, _ := NewHostTensorF32(xs, batch, 8)
	hb, _ := NewHostTensorF32(bs, 16)
	defer hx.Destroy()
	defer hb.Destroy()
	cb.BindInput("x", hx)
	cb.BindInput("b", hb)
	cb.BindOutputToDevice("y", nil)
	cb.BindOutputToDevice("r", nil)
	if err := cb.Run(); err != nil {
		t.Fatal(err)
	}
	cy, _ := cb.Output("y")
	defer cy.Destroy()
	want := f32s(t, cy)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("y[%d] = %v on CUDA, %v on CPU", i, got[i], want[i])
		}
	}
}
