package optim

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// refAdamW is AdamW written out in float64 from the paper's formulas, with
// none of the package's code, for a single scalar parameter over the given
// gradients and learning rates.
func refAdamW(p float64, grads, lrs []float64, b1, b2, eps, wd float64) float64 {
	var m, v float64
	for i, g := range grads {
		t := float64(i + 1)
		p -= lrs[i] * wd * p
		m = b1*m + (1-b1)*g
		v = b2*v + (1-b2)*g*g
		mhat := m / (1 - math.Pow(b1, t))
		vhat := v / (1 - math.Pow(b2, t))
		p -= lrs[i] * mhat / (math.Sqrt(vhat) + eps)
	}
	return p
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestAdamWHandTwoSteps(t *testing.T) {
	// A constant gradient has mhat = g and vhat = g² at every step, so each
	// step is p ← p(1-lr·wd) - lr·g/(|g|+eps). With p=1, g=0.5, lr=0.1,
	// wd=0.01, eps=1e-8:
	//   step 1: 0.999 - 0.1·0.5/0.50000001       = 0.899000002
	//   step 2: 0.899000002·0.999 - 0.099999998  = 0.798101003998
	p := &Param{Name: "w", Data: []float32{1}, Grad: []float32{0.5}}
	o, err := NewAdamW([]*Param{p}, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	o.Step(0.1)
	if !near(float64(p.Data[0]), 0.899000002, 1e-7) {
		t.Errorf("step 1: p = %.9g, want 0.899000002", p.Data[0])
	}
	o.Step(0.1)
	if !near(float64(p.Data[0]), 0.798101003998, 1e-7) {
		t.Errorf("step 2: p = %.9g, want 0.798101004", p.Data[0])
	}
	if o.Steps() != 2 {
		t.Errorf("Steps() = %d, want 2", o.Steps())
	}

	// Changing gradients, by hand: g1=1, g2=-3, betas (0.9, 0.999), lr 0.01
	// then 0.005, wd 0.1, p0=2, eps=1e-8.
	//   step 1: p = 2(1-0.001) - 0.01·1/(1+1e-8)             = 1.98799999990
	//   step 2: m = 0.09-0.3 = -0.21, mhat = -0.21/0.19 = -1.10526315789
	//           v = 0.000999+0.009 = 0.009999, vhat = 0.009999/0.001999 = 5.00200100050
	//           p = 1.9879999999·(1-0.0005) + 0.005·1.10526315789/2.23651537…
	q := &Param{Name: "q", Data: []float32{2}, Grad: []float32{1}}
	o, _ = NewAdamW([]*Param{q}, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	o.Step(0.01)
	if !near(float64(q.Data[0]), 1.9879999999, 1e-7) {
		t.Errorf("step 1: p = %.9g, want 1.98799999990", q.Data[0])
	}
	q.Grad[0] = -3
	o.Step(0.005)
	want := 1.9879999999*(1-0.0005) + 0.005*(0.21/0.19)/(math.Sqrt(0.009999/0.001999)+1e-8)
	if !near(float64(q.Data[0]), want, 3e-7) {
		t.Errorf("step 2: p = %.9g, want %.9g", q.Data[0], want)
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	// Several tensors, one exempt from decay, over five steps of varying
	// gradients and learning rates, against refAdamW element by element.
	cfg := AdamWConfig{Beta1: 0.8, Beta2: 0.95, Eps: 1e-6, WeightDecay: 0.3}
	r := rand.New(rand.NewPCG(7, 8))
	sizes := []int{5, 1, 17}
	var params []*Param
	for i, n := range sizes {
		p := &Param{Name: string(rune('a' + i)), Data: make([]float32, n), Grad: make([]float32, n), NoDecay: i == 1}
		for j := range p.Data {
			p.Data[j] = float32(r.NormFloat64())
		}
		params = append(params, p)
	}
	init := make([][]float32, len(params))
	for i, p := range params {
		init[i] = slices.Clone(p.Data)
	}
	const steps = 5
	lrs := []float64{1e-3, 3e-3, 1e-2, 5e-3, 2e-3}
	grads := make([][][]float64, steps) // step, param, element
	o, err := NewAdamW(params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for s := range steps {
		grads[s] = make([][]float64, len(params))
		for i, p := range params {
			grads[s][i] = make([]float64, len(p.Grad))
			for j := range p.Grad {
				// Gradients of mixed scale, some exactly zero.
				g := float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(5)-2)))
				if r.IntN(7) == 0 {
					g = 0
				}
				p.Grad[j] = g
				grads[s][i][j] = float64(g)
			}
		}
		o.Step(lrs[s])
	}
	for i, p := range params {
		wd := cfg.WeightDecay
		if p.NoDecay {
			wd = 0
		}
		for j := range p.Data {
			gs := make([]float64, steps)
			for s := range steps {
				gs[s] = grads[s][i][j]
			}
			want := refAdamW(float64(init[i][j]), gs, lrs, cfg.Beta1, cfg.Beta2, cfg.Eps, wd)
			if !near(float64(p.Data[j]), want, 1e-6) {
				t.Errorf("%s[%d] = %.9g, want %.9g", p.Name, j, p.Data[j], want)
			}
		}
	}
}

func TestAdamWWeightDecayDecoupled(t *testing.T) {
	// With a zero gradient Adam's term is 0/(0+eps) = 0, so only the
	// decoupled decay acts: p ← p(1 - lr·wd) each step, and never on NoDecay
	// tensors.
	d := &Param{Name: "d", Data: []float32{2, -4, 0.5}, Grad: make([]float32, 3)}
	n := &Param{Name: "n", Data: []float32{2, -4}, Grad: make([]float32, 2), NoDecay: true}
	o, err := NewAdamW([]*Param{d, n}, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	o.Step(0.01)
	for i, want := range []float64{1.998, -3.996, 0.4995} {
		if !near(float64(d.Data[i]), want, 1e-7) {
			t.Errorf("after 1 step d[%d] = %.9g, want %v", i, d.Data[i], want)
		}
	}
	o.Step(0.01)
	o.Step(0.01)
	for i, p0 := range []float64{2, -4, 0.5} {
		if want := p0 * math.Pow(0.999, 3); !near(float64(d.Data[i]), want, 1e-7) {
			t.Errorf("after 3 steps d[%d] = %.9g, want %.9g", i, d.Data[i], want)
		}
	}
	if n.Data[0] != 2 || n.Data[1] != -4 {
		t.Errorf("NoDecay tensor changed: %v", n.Data)
	}
	// The decay does not pass through the moments (as L2 regularisation
	// would): they stay zero.
	for i := range o.m {
		for j := range o.m[i] {
			if o.m[i][j] != 0 || o.v[i][j] != 0 {
				t.Fatalf("moments of %s moved under a zero gradient: m=%v v=%v", o.params[i].Name, o.m[i][j], o.v[i][j])
			}
		}
	}
}

// bigParams makes tensors that span several chunks, with random values and
// gradients from seed.
func bigParams(seed uint64, sizes ...int) []*Param {
	r := rand.New(rand.NewPCG(seed, 99))
	ps := make([]*Param, len(sizes))
	for i, n := range sizes {
		p := &Param{Name: "p" + string(rune('0'+i)), Data: make([]float32, n), Grad: make([]float32, n), NoDecay: i%2 == 1}
		for j := range p.Data {
			p.Data[j] = float32(r.NormFloat64())
			p.Grad[j] = float32(r.NormFloat64())
		}
		ps[i] = p
	}
	return ps
}

func setGrads(ps []*Param, step int) {
	r := rand.New(rand.NewPCG(uint64(step), 1234))
	for _, p := range ps {
		for j := range p.Grad {
			p.Grad[j] = float32(r.NormFloat64() * 0.01)
		}
	}
}

// TestAdamWParallelDeterministic runs the same steps at several GOMAXPROCS
// and checks every bit agrees; under -race it also checks the parallel step
// for data races.
func TestAdamWParallelDeterministic(t *testing.T) {
	sizes := []int{3*chunkSize + 17, 5, chunkSize, 2*chunkSize - 1}
	var ref []*Param
	var refNorms []float64
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		ps := bigParams(1, sizes...)
		o, err := NewAdamW(ps, DefaultAdamW())
		if err != nil {
			t.Fatal(err)
		}
		var norms []float64
		for s := range 3 {
			setGrads(ps, s)
			norms = append(norms, ClipGradNorm(ps, 1.0))
			o.Step(1e-3)
		}
		if ref == nil {
			ref, refNorms = ps, norms
			continue
		}
		if !slices.Equal(norms, refNorms) {
			t.Errorf("GOMAXPROCS %d: norms %v, with 1: %v", procs, norms, refNorms)
		}
		for i := range ps {
			if !slices.Equal(ps[i].Data, ref[i].Data) {
				t.Errorf("GOMAXPROCS %d: %s differs from GOMAXPROCS 1", procs, ps[i].Name)
			}
		}
	}
}

func TestAdamWConfigErrors(t *testing.T) {
	p := []*Param{{Name: "w", Data: []float32{1}, Grad: []float32{1}}}
	for _, c := range []AdamWConfig{
		{Beta1: 1, Beta2: 0.999, Eps: 1e-8},
		{Beta1: -0.1, Beta2: 0.999, Eps: 1e-8},
		{Beta1: 0.9, Beta2: 1, Eps: 1e-8},
		{Beta1: 0.9, Beta2: math.NaN(), Eps: 1e-8},
		{Beta1: 0.9, Beta2: 0.999, Eps: 0},
		{Beta1: 0.9, Beta2: 0.999, Eps: 1e-50},
		{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: -1},
		{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: math.Inf(1)},
	} {
		if _, err := NewAdamW(p, c); err == nil {
			t.Errorf("NewAdamW accepted %+v", c)
		}
	}
	if _, err := NewAdamW(p, DefaultAdamW()); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestAdamWPanics(t *testing.T) {
	cfg := DefaultAdamW()
	mustPanic(t, "grad length mismatch", func() {
		NewAdamW([]*Param{{Name: "w", Data: make([]float32, 2), Grad: make([]float32, 1)}}, cfg)
	})
	mustPanic(t, "duplicate names", func() {
		NewAdamW([]*Param{{Name: "w", Data: []float32{1}, Grad: []float32{1}}, {Name: "w", Data: []float32{1}, Grad: []float32{1}}}, cfg)
	})
	mustPanic(t, "shape mismatch", func() {
		NewAdamW([]*Param{{Name: "w", Shape: []int{2, 2}, Data: make([]float32, 3), Grad: make([]float32, 3)}}, cfg)
	})
	p := &Param{Name: "w", Data: []float32{1}, Grad: []float32{1}}
	o, _ := NewAdamW([]*Param{p}, cfg)
	mustPanic(t, "negative lr", func() { o.Step(-1) })
	mustPanic(t, "NaN lr", func() { o.Step(math.NaN()) })
	p.Grad = make([]float32, 2)
	mustPanic(t, "resized grad", func() { o.Step(1e-3) })
}
