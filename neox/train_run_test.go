package neox

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"irl/onnx"
)

// trainCase is a small configuration for running training graphs in tests:
// partial rotary, full rotary with tied embeddings and a sequential
// residual, and none, so that every branch of the rotary and the residual
// backward runs.
type trainCase struct {
	name     string
	parallel bool
	tie      bool
	rotary   float64
}

var trainCases = []trainCase{
	{"parallel-partial-rotary", true, false, 0.5},
	{"sequential-tied-full-rotary", false, true, 1},
	{"no-rotary", true, false, 0},
}

func (tc trainCase) config() Config {
	return Config{VocabSize: 37, HiddenSize: 16, NumLayers: 2, NumHeads: 2, IntermediateSize: 24,
		MaxPositions: 32, RotaryPct: tc.rotary, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: tc.parallel, TieEmbeddings: tc.tie, InitializerRange: 0.3}
}

// trainFeed is one input of a training graph: int64 or float32 data.
type trainFeed struct {
	i64   []int64
	f32   []float32
	shape []int64
}

// tensor is the feed as an ONNX Runtime tensor, to be destroyed.
func (f trainFeed) tensor() (onnx.ORTValue, error) {
	if f.i64 != nil {
		return onnx.TensorI64(f.i64, f.shape...)
	}
	return onnx.TensorF32(f.f32, f.shape...)
}

// trainFeeds makes every input of a training graph for c and loss: random
// parameters (layer norms and biases too, so every backward term matters),
// two rows of five tokens with the second left-padded, and random head
// inputs whose PPO ratios reach both sides of the clip.
func trainFeeds(c Config, loss LossKind, seed uint64) map[string]trainFeed {
	const B, S = 2, 5
	r := rand.New(rand.NewPCG(seed, 7))
	feeds := map[string]trainFeed{}
	for _, s := range TrainParamSpecs(c, loss) {
		d := make([]float32, Numel(s.Shape))
		for i := range d {
			d[i] = float32(0.3 * r.NormFloat64())
		}
		sh := make([]int64, len(s.Shape))
		for i, v := range s.Shape {
			sh[i] = int64(v)
		}
		feeds[s.Name] = trainFeed{f32: d, shape: sh}
	}
	ints := func(n int64) []int64 {
		v := make([]int64, B*S)
		for i := range v {
			v[i] = r.Int64N(n)
		}
		return v
	}
	floats := func(scale, offset float64) []float32 {
		v := make([]float32, B*S)
		for i := range v {
			v[i] = float32(offset + scale*r.NormFloat64())
		}
		return v
	}
	bs := []int64{B, S}
	mask := []int64{1, 1, 1, 1, 1, 0, 0, 1, 1, 1}
	pos := []int64{0, 1, 2, 3, 4, 0, 0, 0, 1, 2}
	lossMask := []float32{1, 1, 1, 1, 0, 0, 0, 1, 1, 0}
	feeds[InputIDs] = trainFeed{i64: ints(int64(c.VocabSize)), shape: bs}
	feeds[AttentionMask] = trainFeed{i64: mask, shape: bs}
	feeds[PositionIDs] = trainFeed{i64: pos, shape: bs}
	switch loss {
	case CrossEntropy:
		feeds[LabelsInput] = trainFeed{i64: ints(int64(c.VocabSize)), shape: bs}
		feeds[LossMaskInput] = trainFeed{f32: lossMask, shape: bs}
	case LogProb, PPO:
		feeds[TokensInput] = trainFeed{i64: ints(int64(c.VocabSize)), shape: bs}
		feeds[TemperatureInput] = trainFeed{f32: []float32{0.7}, shape: []int64{1}}
		if loss == LogProb {
			for _, n := range []string{LogProbsCotangent, EntropyCotangent, ValuesCotangent} {
				feeds[n] = trainFeed{f32: floats(1, 0), shape: bs}
			}
			break
		}
		// log(1/37) ≈ −3.6: old log-probs around it put r on both sides of 1±ε.
		feeds[OldLogProbsInput] = trainFeed{f32: floats(0.5, -3.6), shape: bs}
		feeds[OldValuesInput] = trainFeed{f32: floats(0.5, 0), shape: bs}
		feeds[AdvantagesInput] = trainFeed{f32: floats(1, 0), shape: bs}
		feeds[ReturnsInput] = trainFeed{f32: floats(1, 0), shape: bs}
		feeds[LossMaskInput] = trainFeed{f32: lossMask, shape: bs}
		feeds[PPOCoefsInput] = trainFeed{f32: []float32{0.2, 0.2, 0.5, 0.1}, shape: []int64{4}}
	}
	return feeds
}

// runTrain runs a training graph on ONNX Runtime (CPU, one thread) and
// returns every output.
func runTrain(t *testing.T, tg *TrainGraph, feeds map[string]trainFeed) map[string][]float32 {
	t.Helper()
	return runTrainThreads(t, tg, feeds, 1)
}

// runTrainThreads is runTrain on the given number of threads.
func runTrainThreads(t *testing.T, tg *TrainGraph, feeds map[string]trainFeed, threads int) map[string][]float32 {
	t.Helper()
	if err := onnx.Init(""); err != nil {
		t.Fatal(err)
	}
	model, err := tg.Graph.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := onnx.NewSession(model, "", tg.Inputs, tg.Outputs, onnx.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	ins := make([]onnx.ORTValue, len(tg.Inputs))
	defer func() { onnx.DestroyAll(ins...) }()
	for i, name := range tg.Inputs {
		f, ok := feeds[name]
		if !ok {
			t.Fatalf("no feed for input %s", name)
		}
		v, err := f.tensor()
		if err != nil {
			t.Fatal(err)
		}
		ins[i] = v
	}
	outs, err := s.Run(ins...)
	if err != nil {
		t.Fatal(err)
	}
	defer onnx.DestroyAll(outs...)
	res := map[string][]float32{}
	for i, name := range tg.Outputs {
		d, shape, err := onnx.Float32Data(outs[i])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// A gradient has its parameter's shape, as a Trainer binds it.
		if p, ok := strings.CutPrefix(name, "grad."); ok && !slices.Equal(shape, feeds[p].shape) {
			t.Errorf("%s has shape %v, want %v", name, shape, feeds[p].shape)
		}
		res[name] = append([]float32(nil), d...)
	}
	return res
}

// maxDiff is the largest |got − want| over a tensor, and the largest |want|.
func maxDiff(got, want []float32) (diff, scale float64) {
	for i := range want {
		scale = math.Max(scale, math.Abs(float64(want[i])))
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
	}
	return diff, scale
}
