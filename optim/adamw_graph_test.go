package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"irl/onnx"
)

// initORT loads ONNX Runtime for the graph tests. A missing library fails
// them: a skipped parity test proves nothing (make test fetches it).
func initORT(t testing.TB) {
	t.Helper()
	if err := onnx.Init(""); err != nil {
		t.Fatal(err)
	}
}

// graphTestParams are tensors of several shapes, a 0-D one included, some
// exempt from decay.
func graphTestParams(r *rand.Rand) []*Param {
	mk := func(name string, noDecay bool, shape ...int) *Param {
		n := 1
		for _, s := range shape {
			n *= s
		}
		p := &Param{Name: name, Shape: shape, Data: make([]float32, n), Grad: make([]float32, n), NoDecay: noDecay}
		for i := range p.Data {
			p.Data[i] = float32(r.NormFloat64())
		}
		return p
	}
	return []*Param{
		mk("w", false, 3, 5),
		mk("b", true, 7),
		mk("conv", false, 2, 3, 4),
		mk("gain", true),
		mk("big", false, 40000), // past one chunk of the Go code's parallel split
	}
}

// relErr is |got-want| relative to max(1, |want|), 0 for equal bits
// (including equal NaNs).
func relErr(got, want float32) float64 {
	if math.Float32bits(got) == math.Float32bits(want) {
		return 0
	}
	return math.Abs(float64(got)-float64(want)) / math.Max(1, math.Abs(float64(want)))
}

// The graph step equals ClipGradNorm + AdamW.Step over ten steps of a
// warmup+cosine schedule, with weight decay, NoDecay parameters and clipping
// that triggers on some steps only.
func TestDeviceAdamWMatchesGo(t *testing.T) {
	initORT(t)
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1}
	sched, err := ScheduleConfig{Kind: "cosine", Peak: 1e-2, Min: 1e-3, Warmup: 3, Total: 10}.Build()
	if err != nil {
		t.Fatal(err)
	}
	const maxNorm = 1.0
	r := rand.New(rand.NewPCG(11, 12))
	goPs := graphTestParams(r)
	devPs := graphTestParams(rand.New(rand.NewPCG(11, 12))) // same start
	o, err := NewAdamW(goPs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDeviceAdamW(devPs, cfg, onnx.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	total := 0
	for _, p := range goPs {
		total += len(p.Data)
	}
	// Global norms of about 0.02·scale·sqrt(40k) ≈ 4·scale: clipped when
	// scale > 1/4.
	scales := []float64{0.1, 2, 0.05, 5, 0.2, 1, 0.01, 3, 0.15, 0.5}
	clipped := 0
	var worst, worstNorm float64
	identical := map[string]int{}
	for step := range 10 {
		for i, p := range goPs {
			for j := range p.Grad {
				gv := float32(r.NormFloat64() * 0.02 * scales[step])
				p.Grad[j] = gv
				devPs[i].Grad[j] = gv
			}
		}
		if err := d.CopyGradsFromHost(); err != nil {
			t.Fatal(err)
		}
		lr := sched.LR(o.Steps())
		if d.Steps() != o.Steps() {
			t.Fatalf("steps %d vs %d", d.Steps(), o.Steps())
		}
		wantNorm := ClipGradNorm(goPs, maxNorm)
		if maxNorm/(wantNorm+1e-6) < 1 {
			clipped++
		}
		o.Step(lr)
		gotNorm, err := d.Step(lr, maxNorm)
		if err != nil {
			t.Fatal(err)
		}
		e := math.Abs(gotNorm-wantNorm) / wantNorm
		worstNorm = max(worstNorm, e)
		if e > 1e-12 {
			t.Errorf("step %d: norm %v, Go %v", step+1, gotNorm, wantNorm)
		} else if gotNorm == wantNorm {
			identical["norm"]++
		}
		if err := d.CopyParamsToHost(); err != nil {
			t.Fatal(err)
		}
		ms, vs, err := d.Moments()
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range goPs {
			m, v := ms[i], vs[i]
			for _, c := range []struct {
				what      string
				got, want []float32
			}{{"param", devPs[i].Data, p.Data}, {"m", m, o.m[i]}, {"v", v, o.v[i]}} {
				same := 0
				for j := range c.want {
					e := relErr(c.got[j], c.want[j])
					worst = max(worst, e)
					if e == 0 {
						same++
					} else if e > 1e-6 {
						t.Fatalf("step %d: %s %s[%d] = %v, Go %v", step+1, p.Name, c.what, j, c.got[j], c.want[j])
					}
				}
				identical[c.what] += same
			}
		}
	}
	if clipped == 0 || clipped == 10 {
		t.Fatalf("clipping triggered on %d of 10 steps: the test needs some of each", clipped)
	}
	t.Logf("clipped on %d of 10 steps; max relative error: params and moments %.3g, norm %.3g; bit-identical: norm %d/10, params %d/%d, m %d/%d, v %d/%d",
		clipped, worst, worstNorm, identical["norm"], identical["param"], 10*total, identical["m"], 10*total, identical["v"], 10*total)
}

// A non-finite gradient norm is returned and leaves the gradients unscaled,
// as ClipGradNorm does, and the step goes on to the same NaNs and values;
// clipping off (0) never scales.
func TestDeviceAdamWNonFiniteAndNoClip(t *testing.T) {
	initORT(t)
	cfg := DefaultAdamW()
	for _, c := range []struct {
		name    string
		bad     float32
		maxNorm float64
	}{{"inf", float32(math.Inf(1)), 1}, {"nan", float32(math.NaN()), 1}, {"no clip", 50, 0}} {
		r := rand.New(rand.NewPCG(3, 4))
		goPs, devPs := graphTestParams(r), graphTestParams(rand.New(rand.NewPCG(3, 4)))
		for i, p := range goPs {
			for j := range p.Grad {
				p.Grad[j] = float32(r.NormFloat64())
				devPs[i].Grad[j] = p.Grad[j]
			}
		}
		goPs[1].Grad[2], devPs[1].Grad[2] = c.bad, c.bad
		o, _ := NewAdamW(goPs, cfg)
		d, err := NewDeviceAdamW(devPs, cfg, onnx.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		if c.maxNorm > 0 {
			want = ClipGradNorm(goPs, c.maxNorm)
		} else {
			want = GradNorm(goPs)
		}
		o.Step(1e-3)
		d.CopyGradsFromHost()
		got, err := d.Step(1e-3, c.maxNorm)
		if err != nil {
			t.Fatal(err)
		}
		// float64 sums in another order: equal to ~1e-15, or both not finite.
		switch {
		case math.IsNaN(want) || math.IsInf(want, 0):
			if math.IsNaN(want) != math.IsNaN(got) || math.IsInf(want, 0) != math.IsInf(got, 0) {
				t.Errorf("%s: norm %v, Go %v", c.name, got, want)
			}
		case math.Abs(got-want) > 1e-12*want:
			t.Errorf("%s: norm %v, Go %v", c.name, got, want)
		}
		d.CopyParamsToHost()
		for i, p := range goPs {
			for j := range p.Data {
				if e := relErr(devPs[i].Data[j], p.Data[j]); e > 1e-6 && !(math.IsNaN(float64(p.Data[j])) && math.IsNaN(float64(devPs[i].Data[j]))) {
					t.Fatalf("%s: %s[%d] = %v, Go %v", c.name, p.Name, j, devPs[i].Data[j], p.Data[j])
				}
			}
		}
		d.Destroy()
	}
}

func TestDeviceAdamWRejects(t *testing.T) {
	initORT(t)
	ps := []*Param{{Name: "a", Data: make([]float32, 2), Grad: make([]float32, 2)}}
	if _, err := NewDeviceAdamW(ps, AdamWConfig{Beta1: 1}, onnx.Options{}); err == nil || !strings.Contains(err.Error(), "beta1") {
		t.Errorf("bad beta1: %v", err)
	}
	if _, err := NewDeviceAdamW(nil, DefaultAdamW(), onnx.Options{}); err == nil {
		t.Error("no parameters")
	}
	d, err := NewDeviceAdamW(ps, DefaultAdamW(), onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	for _, f := range []func(){func() { d.Step(-1, 1) }, func() { d.Step(1e-3, math.NaN()) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

// On a GPU, the state stays in CUDA memory and the step matches Go to within
// float32 rounding.
func TestDeviceAdamWCUDA(t *testing.T) {
	initORT(t)
	cfg := DefaultAdamW()
	r := rand.New(rand.NewPCG(5, 6))
	goPs, devPs := graphTestParams(r), graphTestParams(rand.New(rand.NewPCG(5, 6)))
	d, err := NewDeviceAdamW(devPs, cfg, onnx.Options{Device: onnx.CUDA})
	if err != nil {
		t.Skip("no CUDA provider: " + err.Error())
	}
	defer d.Destroy()
	if dev := d.ParamTensors()[0].Device(); dev != onnx.CUDA {
		t.Fatalf("parameters on %s", dev)
	}
	o, _ := NewAdamW(goPs, cfg)
	for step := range 3 {
		for i, p := range goPs {
			for j := range p.Grad {
				p.Grad[j] = float32(r.NormFloat64() * float64(step+1))
				devPs[i].Grad[j] = p.Grad[j]
			}
		}
		want := ClipGradNorm(goPs, 1)
		o.Step(1e-3)
		d.CopyGradsFromHost()
		got, err := d.Step(1e-3, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("step %d: norm %v, Go %v", step+1, got, want)
		}
	}
	d.CopyParamsToHost()
	for i, p := range goPs {
		for j := range p.Data {
			if e := relErr(devPs[i].Data[j], p.Data[j]); e > 1e-6 {
				t.Fatalf("%s[%d] = %v, Go %v", p.Name, j, devPs[i].Data[j], p.Data[j])
			}
		}
	}
}

// BenchmarkAdamWClipStep70M times ClipGradNorm + AdamW.Step in Go over
// pythia-70m's parameters: what DeviceAdamW's step computes.
//
//	go test -run '^$' -bench 'ClipStep70M' -benchtime 3x ./optim/
func BenchmarkAdamWClipStep70M(b *testing.B) {
	ps := pythia70m()
	o, err := NewAdamW(ps, DefaultAdamW())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		ClipGradNorm(ps, 1e9)
		o.Step(1e-4)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
}

// BenchmarkDeviceAdamWStep70M times DeviceAdamW's step over pythia-70m's
// parameters on CPU: the graph, bound to tensors in the session's memory.
func BenchmarkDeviceAdamWStep70M(b *testing.B) {
	initORT(b)
	ps := pythia70m()
	start := time.Now()
	d, err := NewDeviceAdamW(ps, DefaultAdamW(), onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Destroy()
	if err := d.CopyGradsFromHost(); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup (session, 7 × 70M floats, copies in): %v", time.Since(start))
	// Warm up: ONNX Runtime's arena grows over the first runs of each of the
	// two bindings (measured: 8 s, 6 s, then 0.6 s per step here, the
	// early ones page-faulting fresh memory).
	for range 4 {
		if _, err := d.Step(1e-4, 1e9); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Step(1e-4, 1e9); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
}

// NewDeviceAdamWOn steps over the caller's tensors as NewDeviceAdamW steps
// over its own, leaves them alive after Destroy, and its state file is
// AdamW's: each optimiser resumes the other's.
func TestDeviceAdamWOnAndState(t *testing.T) {
	initORT(t)
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1}
	r := rand.New(rand.NewPCG(5, 6))
	goPs := graphTestParams(r)
	o, err := NewAdamW(goPs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := onnx.NewDeviceAllocator(onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Destroy()
	var specs []*Param
	var start, grads []*onnx.DeviceTensor
	for _, p := range goPs {
		specs = append(specs, &Param{Name: p.Name, Shape: p.shape(), NoDecay: p.NoDecay})
		shape := make([]int64, len(p.shape()))
		for i, s := range p.shape() {
			shape[i] = int64(s)
		}
		for _, set := range []*[]*onnx.DeviceTensor{&start, &grads} {
			x, err := alloc.NewTensor(onnx.Float, shape...)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Destroy()
			*set = append(*set, x)
		}
		if err := start[len(start)-1].CopyFromHost(p.Data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewDeviceAdamWOn(specs, cfg, onnx.Options{}, start[1:], grads); err == nil {
		t.Error("NewDeviceAdamWOn took fewer parameter tensors than parameters")
	}
	d, err := NewDeviceAdamWOn(specs, cfg, onnx.Options{}, start, grads)
	if err != nil {
		t.Fatal(err)
	}
	step := func(scale float64) {
		for i, p := range goPs {
			for j := range p.Grad {
				p.Grad[j] = float32(r.NormFloat64() * scale)
			}
			if err := grads[i].CopyFromHost(p.Grad); err != nil {
				t.Fatal(err)
			}
		}
		ClipGradNorm(goPs, 1)
		o.Step(1e-2)
		if _, err := d.Step(1e-2, 1); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		for i, x := range d.ParamTensors() {
			got := make([]float32, len(goPs[i].Data))
			if err := x.CopyToHost(got); err != nil {
				t.Fatal(err)
			}
			for j := range got {
				if e := relErr(got[j], goPs[i].Data[j]); e > 1e-6 {
					t.Fatalf("%s: %s[%d] = %v, Go %v", what, goPs[i].Name, j, got[j], goPs[i].Data[j])
				}
			}
		}
	}
	for _, s := range []float64{0.5, 0.01, 0.2} {
		step(s)
	}
	check("three steps")
	if d.ParamTensors()[0] == start[0] {
		t.Error("after an odd number of steps the parameters are still in the caller's tensors")
	}
	// The device state through a file into a Go AdamW, and back.
	dir := t.TempDir()
	if err := d.Save(dir + "/dev.safetensors"); err != nil {
		t.Fatal(err)
	}
	back, _ := NewAdamW(graphTestParams(rand.New(rand.NewPCG(5, 6))), cfg)
	if err := back.Load(dir + "/dev.safetensors"); err != nil {
		t.Fatal(err)
	}
	if back.Steps() != 3 {
		t.Errorf("restored %d steps, want 3", back.Steps())
	}
	for i := range goPs {
		for j := range o.m[i] {
			if relErr(back.m[i][j], o.m[i][j]) > 1e-6 || relErr(back.v[i][j], o.v[i][j]) > 1e-6 {
				t.Fatalf("%s[%d]: saved moments %v %v, Go %v %v", goPs[i].Name, j, back.m[i][j], back.v[i][j], o.m[i][j], o.v[i][j])
			}
		}
	}
	// The Go state into the device optimiser: it goes on as the Go one does.
	if err := o.Save(dir + "/go.safetensors"); err != nil {
		t.Fatal(err)
	}
	if err := d.Load(dir + "/go.safetensors"); err != nil {
		t.Fatal(err)
	}
	if err := d.Load(dir + "/missing.safetensors"); err == nil {
		t.Error("loading a missing file succeeded")
	}
	step(0.3)
	check("a step after Load")
	d.Destroy()
	if err := start[0].CopyToHost(make([]float32, len(goPs[0].Data))); err != nil {
		t.Errorf("the caller's tensor after Destroy: %v", err)
	}
	if err := grads[4].CopyToHost(make([]float32, len(goPs[4].Data))); err != nil {
		t.Errorf("the caller's gradient after Destroy: %v", err)
	}
}

// The graph's node count does not grow with the number of parameters: the
// parameters enter and leave its blocks through one Concat and one Split
// per block (graph inputs and Split's outputs, not nodes). Sets of 4 and of
// 60 parameters laid out alike (two blocks, each holding parameters that
// decay and parameters exempt, a 0-D one among them) give exactly the same
// number of nodes.
func TestAdamWGraphNodesIndependentOfParams(t *testing.T) {
	specs := func(n int) []*Param {
		ps := []*Param{{Name: "gain", Shape: []int{}, NoDecay: true}, {Name: "odd", Shape: []int{3}}}
		for i := 1; i <= n-2; i++ {
			ps = append(ps, &Param{Name: fmt.Sprintf("p%d", i), Shape: []int{i, 64}, NoDecay: i%2 == 0})
		}
		return ps
	}
	count := func(n int) int {
		ps := specs(n)
		bs := AdamWBlocks(ps)
		if len(bs) != 2 || bs[0].Width != 64 || bs[1].Width != 1 {
			t.Fatalf("%d parameters: blocks %+v, want widths 64 and 1", n, bs)
		}
		for _, b := range bs {
			if b.Decayed == 0 || b.Decayed == len(b.Params) {
				t.Fatalf("%d parameters: block %+v holds only one kind", n, b)
			}
		}
		g, err := BuildAdamWGraph(ps, DefaultAdamW())
		if err != nil {
			t.Fatal(err)
		}
		return g.NumNodes()
	}
	few, many := count(4), count(60)
	if few != many {
		t.Errorf("%d nodes for 4 parameters, %d for 60", few, many)
	}
	if many > 60 {
		t.Errorf("%d nodes: the step should take a few dozen", many)
	}
	t.Logf("%d nodes for 4 and for 60 parameters", many)
}
