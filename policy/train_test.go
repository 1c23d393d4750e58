package policy

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// Loss and every parameter's gradient equal transformers' for row 0 of each
// fixture, within 1e-3 of the reference tensor's largest magnitude.
func TestGradientParity(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		t.Run(name, func(t *testing.T) {
			m, ref := loadFixture(t, name)
			ids := ref.i64(t, "input_ids")[:ref.s]
			tr, err := NewTrainer(m, neox.TrainOptions{UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Destroy()
			tb := &TrainBatch{Batch: neox.Batch{B: 1, S: ref.s, InputIDs: ids}}
			tb.NextTokenTargets()
			res, err := tr.Step(tb)
			if err != nil {
				t.Fatal(err)
			}
			wantLoss := float64(ref.f32(t, "loss")[0])
			if math.Abs(res.Loss-wantLoss) > 1e-5*math.Abs(wantLoss) {
				t.Errorf("loss %v, want %v", res.Loss, wantLoss)
			}
			if len(tr.Graph.Trainable) != len(m.Config.ParamSpecs()) {
				t.Errorf("%d trainable parameters, want all %d", len(tr.Graph.Trainable), len(m.Config.ParamSpecs()))
			}
			for _, p := range tr.Graph.Trainable {
				refName := "grad." + p
				if p == "embed_out.weight" {
					refName = "grad.lm_head.weight"
				}
				want := ref.f32(t, refName)
				got := tr.Grad(p)
				var scale, worst float64
				for i := range want {
					scale = math.Max(scale, math.Abs(float64(want[i])))
					worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
				}
				if worst > 1e-3*scale {
					t.Errorf("%s: max abs error %.3g, max |ref| %.3g", p, worst, scale)
				}
			}
		})
	}
}

func tinyConfig(parallel, tie bool, rotary float64) neox.Config {
	return neox.Config{VocabSize: 37, HiddenSize: 16, NumLayers: 2, NumHeads: 2, IntermediateSize: 24,
		MaxPositions: 32, RotaryPct: rotary, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: parallel, TieEmbeddings: tie, InitializerRange: 0.3}
}

// randomize gives layer norms and biases non-trivial values so that every
// backward term matters.
func randomize(m *neox.Model, seed uint64) {
	r := newRand(seed)
	// In ParamSpecs' order: a map's order would give each process another model.
	for _, s := range m.Config.ParamSpecs() {
		p := m.Params[s.Name]
		for i := range p.Data {
			p.Data[i] += float32(0.2 * r.NormFloat64())
		}
	}
}

// fdCheck compares the analytic gradient of loss() with central differences
// at the largest-gradient coordinates of each trainable parameter.
func fdCheck(t *testing.T, m *neox.Model, tr *Trainer, loss func() float64) {
	t.Helper()
	const eps = 1e-2
	for _, name := range tr.Graph.Trainable {
		g := append([]float32(nil), tr.Grad(name)...)
		p := m.Params[name].Data
		// The three largest-magnitude coordinates.
		best := []int{}
		for k := 0; k < 3 && k < len(g); k++ {
			bi := -1
			for i := range g {
				taken := false
				for _, b := range best {
					taken = taken || b == i
				}
				if !taken && (bi < 0 || math.Abs(float64(g[i])) > math.Abs(float64(g[bi]))) {
					bi = i
				}
			}
			best = append(best, bi)
		}
		for _, i := range best {
			old := p[i]
			p[i] = old + eps
			lp := loss()
			p[i] = old - eps
			lm := loss()
			p[i] = old
			fd := (lp - lm) / (2 * eps)
			if d := math.Abs(fd - float64(g[i])); d > 1e-2*math.Abs(fd)+2e-4 {
				t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", name, i, g[i], fd)
			}
		}
	}
}

func TestCrossEntropyFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name     string
		parallel bool
		tie      bool
		rotary   float64
	}{{"parallel", true, false, 0.5}, {"sequential-tied-full-rotary", false, true, 1}, {"no-rotary", true, false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := neox.Init(tinyConfig(tc.parallel, tc.tie, tc.rotary), 5)
			if err != nil {
				t.Fatal(err)
			}
			randomize(m, 6)
			tr, err := NewTrainer(m, neox.TrainOptions{UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Destroy()
			// Two rows, the second left-padded: masked positions must not count.
			tb := &TrainBatch{Batch: neox.Batch{B: 2, S: 7,
				InputIDs:      []int64{3, 9, 14, 1, 30, 22, 8, 0, 0, 5, 17, 2, 36, 11},
				AttentionMask: []int64{1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1}}}
			tb.NextTokenTargets()
			if _, err := tr.Step(tb); err != nil {
				t.Fatal(err)
			}
			grads := map[string][]float32{}
			for _, n := range tr.Graph.Trainable {
				grads[n] = append([]float32(nil), tr.Grad(n)...)
			}
			loss := func() float64 {
				r, err := tr.Step(tb)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			// fdCheck reads tr.Grad, which loss() overwrites: restore first.
			fdCheck(t, m, &Trainer{Graph: tr.Graph, grads: grads}, loss)
		})
	}
}

// The LogProb head: loss = Σ c·(logprob, entropy, value) with random
// cotangents, so its gradient is that of any loss of the three.
func TestLogProbHeadFiniteDifferences(t *testing.T) {
	m, err := neox.Init(tinyConfig(true, false, 0.5), 8)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 9)
	tr, err := NewTrainer(m, neox.TrainOptions{Loss: neox.LogProb, UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Destroy()
	for i := range m.Params[neox.ValueHeadWeight].Data {
		m.Params[neox.ValueHeadWeight].Data[i] = float32(0.1 * float64(i%5-2))
	}
	r := newRand(10)
	tb := &TrainBatch{Batch: neox.Batch{B: 2, S: 5, InputIDs: []int64{4, 8, 15, 16, 23, 0, 42 % 37, 7, 1, 2},
		AttentionMask: []int64{1, 1, 1, 1, 1, 0, 1, 1, 1, 1}}, Temperature: 0.7}
	tb.Tokens = []int64{8, 15, 16, 23, 5, 0, 7, 1, 2, 3}
	for _, d := range []*[]float32{&tb.DLogProbs, &tb.DEntropy, &tb.DValues} {
		*d = make([]float32, 10)
		for i := range *d {
			// Padded positions carry no loss, as in PPO: their queries see
			// only masked keys, whose -1e9 bias drowns any perturbation in
			// float32.
			if tb.AttentionMask[i] == 1 {
				(*d)[i] = float32(r.NormFloat64())
			}
		}
	}
	res, err := tr.Step(tb)
	if err != nil {
		t.Fatal(err)
	}
	// The outputs themselves, checked by hand at one position with the
	// inference graph's logits.
	run, err := NewRunner(m, neox.ForwardOptions{Logits: true, Hidden: []int{2}}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Destroy()
	fw, err := run.Forward(&neox.Batch{B: 2, S: 5, InputIDs: tb.InputIDs, AttentionMask: tb.AttentionMask})
	if err != nil {
		t.Fatal(err)
	}
	pos := 7 // row 1, position 2
	z := make([]float64, 37)
	mx := math.Inf(-1)
	for v := range z {
		z[v] = float64(fw[neox.LogitsOutput].Data[pos*37+v]) / 0.7
		mx = math.Max(mx, z[v])
	}
	var sum float64
	for _, x := range z {
		sum += math.Exp(x - mx)
	}
	lse := mx + math.Log(sum)
	var ent float64
	for _, x := range z {
		ent -= math.Exp(x-lse) * (x - lse)
	}
	var val float64 = float64(m.Params[neox.ValueHeadBias].Data[0])
	for k := 0; k < 16; k++ {
		val += float64(fw[neox.HiddenOutput(2)].Data[pos*16+k] * m.Params[neox.ValueHeadWeight].Data[k])
	}
	for _, c := range []struct {
		name string
		want float64
	}{{neox.LogProbsOutput, z[tb.Tokens[pos]] - lse}, {neox.EntropyOutput, ent}, {neox.ValuesOutput, val}} {
		if got := float64(res.Outputs[c.name][pos]); math.Abs(got-c.want) > 1e-4*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	grads := map[string][]float32{}
	for _, n := range tr.Graph.Trainable {
		grads[n] = append([]float32(nil), tr.Grad(n)...)
	}
	fdCheck(t, m, &Trainer{Graph: tr.Graph, grads: grads}, func() float64 {
		r, err := tr.Step(tb)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	})
}

// Freezing: only the top layers and the head get gradients, equal to the
// full graph's.
func TestUnfrozenLayers(t *testing.T) {
	m, err := neox.Init(tinyConfig(true, false, 0.5), 11)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 12)
	tb := &TrainBatch{Batch: neox.Batch{B: 1, S: 6, InputIDs: []int64{1, 2, 3, 4, 5, 6}}}
	tb.NextTokenTargets()
	full, err := NewTrainer(m, neox.TrainOptions{UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Destroy()
	top, err := NewTrainer(m, neox.TrainOptions{UnfrozenLayers: 1}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer top.Destroy()
	if top.Graph.Graph.NumNodes() >= full.Graph.Graph.NumNodes() {
		t.Errorf("frozen graph has %d nodes, full %d", top.Graph.Graph.NumNodes(), full.Graph.Graph.NumNodes())
	}
	rf, _ := full.Step(tb)
	rt, err := top.Step(tb)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rf.Loss-rt.Loss) > 1e-6 {
		t.Errorf("loss %v vs %v", rf.Loss, rt.Loss)
	}
	for _, n := range top.Graph.Trainable {
		if strings.Contains(n, "layers.0.") || strings.Contains(n, "embed_in") {
			t.Errorf("frozen parameter %s has a gradient", n)
		}
		a, b := full.Grad(n), top.Grad(n)
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-6 {
				t.Fatalf("%s[%d]: %v vs %v", n, i, a[i], b[i])
			}
		}
	}
	if len(top.Graph.Trainable) != 12+3 {
		t.Errorf("%d trainable parameters, want 15 (one layer, final norm, output head)", len(top.Graph.Trainable))
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }
