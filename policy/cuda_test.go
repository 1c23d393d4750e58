package policy

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"irl/neox"
	"irl/onnx"
	"irl/optim"
)

// The CUDA tests: each path on a GPU against the same path on CPU. Without
// a CUDA provider they skip, saying why; tools/gpu-check.sh sets
// IRL_REQUIRE_CUDA=1, which makes that a failure instead.

// cudaOptions are the session options of the CUDA tests, or a skip (a
// failure under IRL_REQUIRE_CUDA) naming why no CUDA session opens.
func cudaOptions(t testing.TB) onnx.Options {
	t.Helper()
	o := onnx.Options{Device: onnx.CUDA}
	a, err := onnx.NewDeviceAllocator(o)
	if err != nil {
		if os.Getenv("IRL_REQUIRE_CUDA") != "" {
			t.Fatalf("IRL_REQUIRE_CUDA is set and no CUDA session opens: %v", err)
		}
		t.Skip("no CUDA provider: " + err.Error())
	}
	a.Destroy()
	return o
}

// closeTo fails when got and want differ by more than tol relative to the
// largest |want| (at least 1): the GPU sums in another order.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, CPU %d", what, len(got), len(want))
	}
	diff, scale := maxAbsDiff(got, want)
	if diff > tol*math.Max(1, scale) {
		t.Errorf("%s: CUDA differs from CPU by %.3g (max |value| %.3g)", what, diff, scale)
	}
	t.Logf("%s: max |CUDA − CPU| %.3g (max |value| %.3g)", what, diff, scale)
}

// cudaTol bounds the relative differences of the parity tests, float32 on
// both devices (TF32 is off by default): differences of summation order
// only. On an H200 the largest was 4e-4 with TF32 on.
const cudaTol = 1e-4

// The forward on CUDA (standard graph, weights bound from a resident store)
// gives the CPU's logits, hidden states, log-probs and values.
func TestCUDAForwardParity(t *testing.T) {
	co := cudaOptions(t)
	m, ref := loadFixture(t, "tiny-neox-parallel")
	c := m.Config
	m.Params[neox.ValueHeadWeight] = &neox.Param{Shape: []int{1, c.HiddenSize}, Data: make([]float32, c.HiddenSize)}
	m.Params[neox.ValueHeadBias] = &neox.Param{Shape: []int{1}, Data: []float32{0.5}}
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	tokens := make([]int64, len(ids))
	for i := range tokens {
		tokens[i] = int64(i*3) % int64(c.VocabSize)
	}
	for _, fo := range []neox.ForwardOptions{{Hidden: []int{c.NumLayers}, Logits: true}, {LogProbs: true, Values: true, ParamInputs: true}} {
		fo.Standard = true
		var outs [2]map[string]Output
		for k, so := range []onnx.Options{{Threads: 1}, co} {
			r, err := NewRunner(m, fo, so, nil)
			if err != nil {
				t.Fatal(err)
			}
			bt := &neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask}
			if fo.LogProbs {
				outs[k], err = r.ForwardTokens(bt, tokens, 1)
			} else {
				outs[k], err = r.Forward(bt)
			}
			r.Destroy()
			if err != nil {
				t.Fatal(err)
			}
		}
		for name, want := range outs[0] {
			closeTo(t, name, outs[1][name].Data, want.Data, cudaTol)
		}
	}
}

// Training on CUDA: the gradients in device memory, the loss, and one step
// of the AdamW graph on the device give what the CPU path (gradients in Go
// memory, the Go AdamW) gives.
func TestCUDATrainParity(t *testing.T) {
	co := cudaOptions(t)
	type side struct {
		m     *neox.Model
		store *ParamStore
		tr    *Trainer
		opt   *Optimizer
	}
	_, ref := loadFixture(t, "tiny-neox-sequential")
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	var sides [2]side
	for k, so := range []onnx.Options{{Threads: 1}, co} {
		m, _ := loadFixture(t, "tiny-neox-sequential")
		store, err := NewParamStore(m, so)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Destroy()
		tr, err := NewTrainer(m, neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: -1}, so, store)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Destroy()
		opt, err := NewOptimizer(tr, optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		defer opt.Destroy()
		sides[k] = side{m, store, tr, opt}
	}
	if !sides[1].store.Resident() {
		t.Fatal("the CUDA store is not resident")
	}
	var res [2]StepResult
	for k, sd := range sides {
		var err error
		if res[k], err = sd.tr.Step(ppoBatch(ref, ids, mask, sd.m.Config.VocabSize)); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(res[1].Loss-res[0].Loss) > cudaTol*math.Max(1, math.Abs(res[0].Loss)) {
		t.Errorf("loss %v on CUDA, %v on CPU", res[1].Loss, res[0].Loss)
	}
	for name, want := range res[0].Outputs {
		closeTo(t, name, res[1].Outputs[name], want, cudaTol)
	}
	for _, name := range sides[0].tr.Graph.Trainable {
		got := make([]float32, len(sides[0].tr.Grad(name)))
		if err := sides[1].tr.GradTensor(name).CopyToHost(got); err != nil {
			t.Fatal(err)
		}
		closeTo(t, "gradient of "+name, got, sides[0].tr.Grad(name), cudaTol)
	}
	// The optimiser's step is compared on the same gradients: where a
	// gradient is near 0, AdamW's first step (about lr·sign(g)) would
	// otherwise turn a rounding difference into a difference of 2·lr.
	for _, name := range sides[0].tr.Graph.Trainable {
		if err := sides[1].tr.GradTensor(name).CopyFromHost(sides[0].tr.Grad(name)); err != nil {
			t.Fatal(err)
		}
	}
	var norms [2]float64
	for k, sd := range sides {
		var err error
		if norms[k], err = sd.opt.Step(1e-3, 1); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(norms[1]-norms[0]) > 1e-5*norms[0] {
		t.Errorf("gradient norm %v on CUDA, %v on CPU", norms[1], norms[0])
	}
	if err := sides[1].store.CopyToModel(); err != nil {
		t.Fatal(err)
	}
	for _, name := range sides[0].tr.Graph.Trainable {
		closeTo(t, "after one AdamW step: "+name, sides[1].m.Params[name].Data, sides[0].m.Params[name].Data, 1e-6)
	}
}

// Greedy generation on CUDA (the standard decoder, its cache and logits on
// the device) gives the CPU's tokens and log-probabilities.
func TestCUDAGreedyParity(t *testing.T) {
	co := cudaOptions(t)
	m, _ := loadFixture(t, "tiny-neox-parallel")
	prompts := [][]int64{{3, 17, 200, 41}, {9, 9}, {5}}
	o := GenerateOptions{MaxNewTokens: 8, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	var gens [2][]Generation
	for k, so := range []onnx.Options{{Threads: 1}, co} {
		g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: true}, so, nil)
		if err != nil {
			t.Fatal(err)
		}
		if gens[k], err = g.Generate(prompts, o); err != nil {
			t.Fatal(err)
		}
		g.Destroy()
	}
	for i := range gens[0] {
		a, b := gens[0][i], gens[1][i]
		if len(a.IDs) != len(b.IDs) {
			t.Fatalf("sequence %d: %d tokens on CUDA, %d on CPU", i, len(b.IDs), len(a.IDs))
		}
		for j := range a.IDs {
			if a.IDs[j] != b.IDs[j] {
				t.Errorf("sequence %d: CUDA %v, CPU %v", i, b.IDs, a.IDs)
				break
			}
			if math.Abs(a.LogProbs[j]-b.LogProbs[j]) > cudaTol*math.Max(1, math.Abs(a.LogProbs[j])) {
				t.Errorf("sequence %d, token %d: log-prob %v on CUDA, %v on CPU", i, j, b.LogProbs[j], a.LogProbs[j])
			}
		}
	}
}

// The device benchmarks: the bound paths at the shapes tools/gpu-check.sh
// runs PyTorch at, on the device IRL_BENCH_DEVICE names (cpu by default,
// where they measure the same code on CPU). pythia-70m shape, fp32, random
// weights.

// benchDevice is the device of the device benchmarks. IRL_BENCH_TF32=1
// lets CUDA MatMuls round through TF32; IRL_BENCH_PROFILE=prefix turns on
// ONNX Runtime's profiler for every session, writing prefix*.json.
func benchDevice(b *testing.B) onnx.Options {
	var o onnx.Options
	switch d := os.Getenv("IRL_BENCH_DEVICE"); d {
	case "", "cpu":
	case "cuda":
		o = cudaOptions(b)
	default:
		b.Fatalf("IRL_BENCH_DEVICE=%q: want cpu or cuda", d)
	}
	o.TF32 = os.Getenv("IRL_BENCH_TF32") == "1"
	o.Profile = os.Getenv("IRL_BENCH_PROFILE")
	return o
}

func bench70m(b *testing.B, bs, seq int) (*neox.Model, *neox.Batch) {
	m, err := neox.Init(neox.Shapes["pythia-70m"], 1)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	bt := &neox.Batch{B: bs, S: seq, InputIDs: make([]int64, bs*seq)}
	for i := range bt.InputIDs {
		bt.InputIDs[i] = r.Int64N(int64(m.Config.VocabSize))
	}
	return m, bt
}

// BenchmarkDeviceFeatures70m: the features path, the last hidden state
// pooled at each row's last token in the graph, only [B, D] coming back;
// batch 32 × 128.
func BenchmarkDeviceFeatures70m(b *testing.B) {
	so := benchDevice(b)
	const bs, seq = 32, 128
	m, bt := bench70m(b, bs, seq)
	r, err := NewRunner(m, neox.ForwardOptions{Hidden: []int{m.Config.NumLayers}, Pool: neox.PoolLast}, so, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Destroy()
	if _, err := r.Forward(bt); err != nil { // warm up
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := r.Forward(bt); err != nil {
			b.Fatal(err)
		}
	}
	// Stopped here so that ns/op leaves out the deferred Destroy calls.
	b.StopTimer()
	b.ReportMetric(float64(bs*seq*b.N)/time.Since(start).Seconds(), "tokens/s")
}

// BenchmarkDeviceGenerate70m: greedy generation, batch 32, 32-token
// prompts, 32 new tokens, prefill included: on CUDA the standard decoder
// with its cache and logits on the device; on CPU the cached decoder.
func BenchmarkDeviceGenerate70m(b *testing.B) {
	so := benchDevice(b)
	const bs, plen, newTokens = 32, 32, 32
	m, bt := bench70m(b, bs, plen)
	prompts := make([][]int64, bs)
	for i := range prompts {
		prompts[i] = bt.InputIDs[i*plen : (i+1)*plen]
	}
	g, err := NewGenerator(m, so)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Destroy()
	o := GenerateOptions{MaxNewTokens: newTokens, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	timeGenerate(b, func() ([]Generation, error) { return g.Generate(prompts, o) }, nil)
}

// BenchmarkDeviceTrainStep70m: one SFT training step, next-token
// cross-entropy over batch 16 × 128, every layer trained, then clipping at
// 1 and AdamW: on CUDA the weights, gradients and moments stay on the
// device (the AdamW graph); on CPU the Go AdamW over Go memory, or with
// IRL_BENCH_RESIDENT=1 the CUDA path on CPU (a resident store and the AdamW
// graph), to compare the two.
func BenchmarkDeviceTrainStep70m(b *testing.B) {
	so := benchDevice(b)
	const bs, seq = 16, 128
	m, bt := bench70m(b, bs, seq)
	newStore := NewParamStore
	if os.Getenv("IRL_BENCH_RESIDENT") == "1" {
		newStore = NewResidentParamStore
	}
	store, err := newStore(m, so)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Destroy()
	tb := &TrainBatch{Batch: *bt}
	tb.NextTokenTargets()
	tr, err := NewTrainer(m, neox.TrainOptions{Loss: neox.CrossEntropy, UnfrozenLayers: -1}, so, store)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Destroy()
	opt, err := NewOptimizer(tr, optim.DefaultAdamW())
	if err != nil {
		b.Fatal(err)
	}
	defer opt.Destroy()
	step := func() {
		if _, err := tr.Step(tb); err != nil {
			b.Fatal(err)
		}
		if _, err := opt.Step(1e-5, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bs*seq*b.N)/timeLoop(b, step).Seconds(), "tokens/s")
}

// BenchmarkDeviceStepGenerate70m: BenchmarkDeviceGenerate70m's generation
// through the static-shape step graph (StepGenerator, capacity 64), with
// ONNX Runtime's CUDA graph capture and replay on CUDA unless
// IRL_BENCH_CUDA_GRAPH=0.
func BenchmarkDeviceStepGenerate70m(b *testing.B) {
	so := benchDevice(b)
	so.CUDAGraph = so.Device == onnx.CUDA && os.Getenv("IRL_BENCH_CUDA_GRAPH") != "0"
	const bs, plen, newTokens = 32, 32, 32
	m, bt := bench70m(b, bs, plen)
	prompts := make([][]int64, bs)
	for i := range prompts {
		prompts[i] = bt.InputIDs[i*plen : (i+1)*plen]
	}
	g, err := NewStepGenerator(m, bs, plen+newTokens, so)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Destroy()
	o := GenerateOptions{MaxNewTokens: newTokens, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	timeGenerate(b, func() ([]Generation, error) { return g.Generate(prompts, o) }, nil)
}
