package neox

import (
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"irl/onnx"
)

// oldHead builds the loss heads as they were before the lean ones: a
// LogSoftmax over (N,V) and p = exp of it, with dlogits formed in full. It
// is the reference TestLeanHeadsMatchOld holds the lean heads to.
func oldHead(b *builder, loss LossKind, hidden, shape onnx.Value) headGrads {
	logits := b.logits(hidden)
	if loss == CrossEntropy {
		return b.oldCrossEntropy(logits)
	}
	g := b.g
	lsm, p, lp, ent := b.oldTokenLogProbs(logits)
	val := b.value(hidden)
	outputs := b.emitPerToken(shape, lp, ent, val)
	var cl, ce, cv onnx.Value
	if loss == PPO {
		cl, ce, cv = b.ppoLoss(lp, ent, val)
		outputs = append(outputs, PPOStatsOutput)
	} else {
		cl = g.Reshape(onnx.Value(LogProbsCotangent), -1, 1)
		ce = g.Reshape(onnx.Value(EntropyCotangent), -1, 1)
		cv = g.Reshape(onnx.Value(ValuesCotangent), -1, 1)
		l := g.ReduceSum(g.Add(g.Add(g.Mul(cl, lp), g.Mul(ce, ent)), g.Mul(cv, val)), false, 0, 1)
		g.Output(g.Reshape(l, 1), LossOutput, onnx.Float, 1)
	}
	h := b.oldPerTokenBackward(lsm, p, ent, hidden, cl, ce, cv)
	h.outputs = append([]string{LossOutput}, outputs...)
	return h
}

// oldCrossEntropy: loss = Σ w·(logsumexp(z) − z[label]) / Σ w and
// dlogits = (softmax(z) − onehot(label)) · w / Σ w.
func (b *builder) oldCrossEntropy(logits onnx.Value) headGrads {
	g := b.g
	labels := g.Reshape(onnx.Value(LabelsInput), -1, 1) // (N,1)
	w := g.Reshape(onnx.Value(LossMaskInput), -1, 1)    // (N,1)
	wsum := g.Op("Max", []onnx.Value{g.ReduceSum(w, false, 0, 1), g.ScalarF32(1e-12)})
	lsm := g.Op("LogSoftmax", []onnx.Value{logits}, onnx.AttrInt("axis", -1)) // (N,V)
	picked := g.Op("GatherElements", []onnx.Value{lsm, labels}, onnx.AttrInt("axis", 1))
	loss := g.Reshape(g.Div(g.ReduceSum(g.Mul(g.Neg(picked), w), false, 0, 1), wsum), 1)
	g.Output(loss, LossOutput, onnx.Float, 1)
	scale := g.Div(w, wsum)
	return headGrads{dz: addAt(g, g.Mul(g.Exp(lsm), scale), labels, g.Neg(scale)), outputs: []string{LossOutput}}
}

// oldTokenLogProbs: with z = logits/T and p = softmax(z), log p[token] and
// −Σ p log p (N,1), and log p and p (N,V).
func (b *builder) oldTokenLogProbs(logits onnx.Value) (lsm, p, lp, ent onnx.Value) {
	g := b.g
	z := g.Div(logits, onnx.Value(TemperatureInput))
	lsm = g.Op("LogSoftmax", []onnx.Value{z}, onnx.AttrInt("axis", -1))
	p = g.Exp(lsm)
	tokens := g.Reshape(onnx.Value(TokensInput), -1, 1)
	lp = g.Op("GatherElements", []onnx.Value{lsm, tokens}, onnx.AttrInt("axis", 1))
	ent = g.Neg(g.ReduceSum(g.Mul(p, lsm), true, 1))
	return lsm, p, lp, ent
}

// oldPerTokenBackward: dz = cₗ(onehot − p) − cₑ·p(log p + H), dlogits = dz/T.
func (b *builder) oldPerTokenBackward(lsm, p, ent, hidden, cl, ce, cv onnx.Value) headGrads {
	g := b.g
	tokens := g.Reshape(onnx.Value(TokensInput), -1, 1)
	dz := addAt(g, g.Neg(g.Mul(p, g.Add(cl, g.Mul(ce, g.Add(lsm, ent))))), tokens, cl)
	b.addGrad(ValueHeadWeight, g.Gemm(cv, hidden, "", true, false))
	b.addGrad(ValueHeadBias, g.ReduceSum(cv, false, 0))
	return headGrads{dz: g.Div(dz, onnx.Value(TemperatureInput)), dhidden: g.MatMul(cv, b.weight(ValueHeadWeight))}
}

var lossNames = map[LossKind]string{CrossEntropy: "cross-entropy", LogProb: "logprob", PPO: "ppo"}

// The lean heads give the old heads' loss, per-token outputs, PPO
// statistics and every gradient within 1e-6 of each tensor's largest
// magnitude (at least 1), on the same graph body.
func TestLeanHeadsMatchOld(t *testing.T) {
	for _, tc := range trainCases {
		for _, loss := range []LossKind{CrossEntropy, LogProb, PPO} {
			t.Run(tc.name+"/"+lossNames[loss], func(t *testing.T) {
				c := tc.config()
				lean, err := BuildTrain(c, TrainOptions{Loss: loss, UnfrozenLayers: -1})
				if err != nil {
					t.Fatal(err)
				}
				old, err := buildTrain(c, TrainOptions{Loss: loss, UnfrozenLayers: -1}, oldHead)
				if err != nil {
					t.Fatal(err)
				}
				feeds := trainFeeds(c, loss, 3)
				got, want := runTrain(t, lean, feeds), runTrain(t, old, feeds)
				if len(got) != len(want) || len(want) != len(old.Outputs) {
					t.Fatalf("outputs %v, want %v", lean.Outputs, old.Outputs)
				}
				for name, w := range want {
					if d, s := maxDiff(got[name], w); d > 1e-6*max(1, s) {
						t.Errorf("%s: max abs difference %.3g, max |old| %.3g", name, d, s)
					}
				}
				if loss == PPO {
					// Both clips active at some positions and not at others,
					// so that both branches of each cotangent are compared.
					st := want[PPOStatsOutput]
					for _, f := range st[3:5] {
						if f <= 0 || f >= 1 {
							t.Errorf("clip fractions %v: want both in (0,1)", st[3:5])
						}
					}
				}
			})
		}
	}
}

// headGraph is the output head alone, as a training graph builds it for
// loss with head: the loss head on an input hidden (N,D), then dW and
// d(hidden) of the output projection.
func headGraph(c Config, loss LossKind, head headFunc, bs, seq int) (*TrainGraph, map[string]trainFeed) {
	g := onnx.NewGraph("head")
	b := newBuilder(g, c, nil)
	n := bs * seq
	tg := &TrainGraph{Graph: g, Loss: loss}
	feeds := map[string]trainFeed{}
	r := rand.New(rand.NewPCG(5, 6))
	for name, f := range trainFeeds(c, loss, 4) {
		if len(f.shape) == 2 && f.shape[0] == 2 && f.shape[1] == 5 && name != ValueHeadWeight {
			// A [B,S] head input: the bench's size.
			f.shape = []int64{int64(bs), int64(seq)}
			if f.i64 != nil {
				f.i64 = make([]int64, n)
				for i := range f.i64 {
					f.i64[i] = r.Int64N(int64(c.VocabSize))
				}
			} else {
				f.f32 = make([]float32, n)
				for i := range f.f32 {
					f.f32[i] = float32(r.NormFloat64())
				}
			}
		}
		feeds[name] = f
	}
	declare := func(name string, dt onnx.DType) {
		f := feeds[name]
		dims := make([]any, len(f.shape))
		for i, d := range f.shape {
			dims[i] = int(d)
		}
		b.weights[name] = g.Input(name, dt, dims...)
		tg.Inputs = append(tg.Inputs, name)
	}
	h := make([]float32, n*c.HiddenSize)
	for i := range h {
		h[i] = float32(r.NormFloat64())
	}
	feeds["hidden"] = trainFeed{f32: h, shape: []int64{int64(n), int64(c.HiddenSize)}}
	declare("hidden", onnx.Float)
	declare(b.outName(), onnx.Float)
	switch loss {
	case CrossEntropy:
		declare(LabelsInput, onnx.Int64)
		declare(LossMaskInput, onnx.Float)
	case LogProb, PPO:
		declare(TokensInput, onnx.Int64)
		declare(TemperatureInput, onnx.Float)
		names := []string{LogProbsCotangent, EntropyCotangent, ValuesCotangent}
		if loss == PPO {
			names = []string{OldLogProbsInput, OldValuesInput, AdvantagesInput, ReturnsInput, LossMaskInput, PPOCoefsInput}
		}
		for _, name := range names {
			declare(name, onnx.Float)
		}
		declare(ValueHeadWeight, onnx.Float)
		declare(ValueHeadBias, onnx.Float)
	}
	hidden := onnx.Value("hidden")
	hg := head(b, loss, hidden, g.ConstI64(int64(bs), int64(seq)))
	tg.Outputs = hg.outputs
	hs := hidden
	if hg.rowScale != "" {
		hs = g.Mul(hidden, hg.rowScale)
	}
	dW := g.Gemm(hg.dz, hs, "", true, false)
	dh := g.MatMul(hg.dz, b.weight(b.outName()))
	if hg.rowScale != "" {
		dh = g.Mul(dh, hg.rowScale)
	}
	g.Output(dW, "dW", onnx.Float, c.VocabSize, c.HiddenSize)
	g.Output(dh, "dhidden", onnx.Float, n, c.HiddenSize)
	tg.Outputs = append(tg.Outputs, "dW", "dhidden")
	return tg, feeds
}

// BenchmarkLossHeads times the output head and its backward alone, lean and
// old heads interleaved in one process so that both see the same machine,
// for pythia-70m's width and vocabulary at 8 × 128 tokens:
//
//	go test -run '^$' -bench LossHeads -benchtime 5x ./neox/
func BenchmarkLossHeads(b *testing.B) {
	if err := onnx.Init(""); err != nil {
		b.Fatal(err)
	}
	c := Shapes["pythia-70m"]
	for _, loss := range []LossKind{CrossEntropy, LogProb, PPO} {
		b.Run(lossNames[loss], func(b *testing.B) {
			type run struct {
				s    *onnx.Session
				ins  []onnx.ORTValue
				best time.Duration
			}
			var runs []*run
			for _, head := range []headFunc{(*builder).lossHead, oldHead} {
				tg, feeds := headGraph(c, loss, head, 8, 128)
				model, err := tg.Graph.Marshal()
				if err != nil {
					b.Fatal(err)
				}
				s, err := onnx.NewSession(model, "", tg.Inputs, tg.Outputs, onnx.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Destroy()
				rn := &run{s: s, best: time.Hour}
				for _, name := range tg.Inputs {
					v, err := feeds[name].tensor()
					if err != nil {
						b.Fatal(err)
					}
					defer v.Destroy()
					rn.ins = append(rn.ins, v)
				}
				runs = append(runs, rn)
			}
			step := func(rn *run) time.Duration {
				start := time.Now()
				outs, err := rn.s.Run(rn.ins...)
				if err != nil {
					b.Fatal(err)
				}
				d := time.Since(start)
				onnx.DestroyAll(outs...)
				return d
			}
			for _, rn := range runs {
				step(rn) // warm up
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, rn := range runs {
					rn.best = min(rn.best, step(rn))
				}
			}
			b.ReportMetric(float64(runs[0].best.Microseconds())/1e3, "lean-best-ms")
			b.ReportMetric(float64(runs[1].best.Microseconds())/1e3, "old-best-ms")
		})
	}
}

// A row's log-prob is the same bit for bit whatever rows share its batch,
// from the inference graph and from the training graph alike: PPO's ratio
// before its first update, new log-probs from training minibatches over old
// ones from a forward over the whole rollout batch, must be exactly 1. The
// vocabulary is odd, so that rows of the (N,V) logits start at every
// alignment (a ReduceSum over V would round by where the row starts).
func TestLogProbsBatchInvariant(t *testing.T) {
	c := Config{VocabSize: 61, HiddenSize: 32, NumLayers: 2, NumHeads: 2, IntermediateSize: 64,
		MaxPositions: 16, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.3}
	m, err := Init(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	const B, S = 7, 9
	r := rand.New(rand.NewPCG(1, 2))
	ids, toks, mask, pos := make([]int64, B*S), make([]int64, B*S), make([]int64, B*S), make([]int64, B*S)
	for i := 0; i < B; i++ {
		pad := i % 4 // left padding
		for j := 0; j < S; j++ {
			ids[i*S+j], toks[i*S+j] = r.Int64N(int64(c.VocabSize)), r.Int64N(int64(c.VocabSize))
			if j >= pad {
				mask[i*S+j], pos[i*S+j] = 1, int64(j-pad)
			}
		}
	}
	params := map[string]trainFeed{}
	for name, p := range m.Params {
		params[name] = trainFeed{f32: p.Data, shape: Dims64(p.Shape)}
	}
	params[ValueHeadWeight] = trainFeed{f32: make([]float32, c.HiddenSize), shape: []int64{1, int64(c.HiddenSize)}}
	params[ValueHeadBias] = trainFeed{f32: make([]float32, 1), shape: []int64{1}}
	params[TemperatureInput] = trainFeed{f32: []float32{0.7}, shape: []int64{1}}
	// feeds is a batch of the given rows.
	feeds := func(rows []int) map[string]trainFeed {
		f := maps.Clone(params)
		sh := []int64{int64(len(rows)), S}
		pick := func(v []int64) trainFeed {
			var out []int64
			for _, i := range rows {
				out = append(out, v[i*S:(i+1)*S]...)
			}
			return trainFeed{i64: out, shape: sh}
		}
		f[InputIDs], f[AttentionMask], f[PositionIDs], f[TokensInput] = pick(ids), pick(mask), pick(pos), pick(toks)
		for _, n := range []string{LogProbsCotangent, EntropyCotangent, ValuesCotangent} {
			f[n] = trainFeed{f32: make([]float32, len(rows)*S), shape: sh}
		}
		return f
	}
	fg, err := BuildForward(m, ForwardOptions{LogProbs: true, Standard: true})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := BuildTrain(c, TrainOptions{Loss: LogProb, UnfrozenLayers: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{1, 2} {
		all := []int{0, 1, 2, 3, 4, 5, 6}
		want := runGraph(t, fg.Graph, fg.Inputs, fg.Outputs, feeds(all), threads)[LogProbsOutput]
		for _, rows := range [][]int{all, {1, 2, 3}, {5}, {4, 6, 2, 1}} {
			for name, got := range map[string][]float32{
				"forward":  runGraph(t, fg.Graph, fg.Inputs, fg.Outputs, feeds(rows), threads)[LogProbsOutput],
				"training": runGraph(t, tg.Graph, tg.Inputs, tg.Outputs, feeds(rows), threads)[LogProbsOutput],
			} {
				for k, i := range rows {
					for j := 0; j < S; j++ {
						if mask[i*S+j] == 1 && got[k*S+j] != want[i*S+j] {
							t.Errorf("threads %d, %s graph on rows %v: row %d position %d has log-prob %v, %v in the whole batch",
								threads, name, rows, i, j, got[k*S+j], want[i*S+j])
						}
					}
				}
			}
		}
	}
}

// runGraph runs a graph on ONNX Runtime's CPU with the given threads and
// returns its float outputs.
func runGraph(t *testing.T, gr *onnx.Graph, inputs, outputs []string, feeds map[string]trainFeed, threads int) map[string][]float32 {
	t.Helper()
	return runTrainThreads(t, &TrainGraph{Graph: gr, Inputs: inputs, Outputs: outputs}, feeds, threads)
}
