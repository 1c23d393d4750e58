package ppo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/policy"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func tinyPolicy(t *testing.T, seed uint64) *neox.Model {
	t.Helper()
	m, err := neox.Init(neox.Config{VocabSize: 37, HiddenSize: 16, NumLayers: 2, NumHeads: 2, IntermediateSize: 24,
		MaxPositions: 32, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.3}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// headCase is a minibatch with rollout statistics chosen so that clipping
// is active on some tokens and not on others.
func headCase(t *testing.T, m *neox.Model) *policy.TrainBatch {
	rng := rand.New(rand.NewPCG(7, 8))
	b, s := 2, 6
	tb := &policy.TrainBatch{Batch: neox.Batch{B: b, S: s,
		InputIDs:      []int64{4, 8, 15, 16, 23, 9, 30, 7, 1, 2, 0, 0},
		AttentionMask: []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}}, Temperature: 0.8}
	tb.Tokens = []int64{8, 15, 16, 23, 9, 0, 7, 1, 2, 0, 0, 0}
	tb.LossMask = []float32{0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0}
	n := b * s
	tb.OldLogProbs, tb.OldValues, tb.Advantages, tb.Returns = make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := 0; i < n; i++ {
		tb.OldLogProbs[i] = float32(-3.6 + 0.5*rng.NormFloat64())
		tb.OldValues[i] = float32(0.3 * rng.NormFloat64())
		tb.Advantages[i] = float32(rng.NormFloat64())
		tb.Returns[i] = float32(rng.NormFloat64())
	}
	tb.PPOCoefs = [4]float32{0.2, 0.2, 1, 0.005}
	return tb
}

// The PPO head's gradient equals the LogProb head's driven by cotangents
// from ppo.Loss in Go at the same outputs, and its statistics equal
// ppo.Loss's.
func TestPPOHeadMatchesGoLoss(t *testing.T) {
	m := tinyPolicy(t, 3)
	so := onnx.Options{Threads: 1}
	pt, err := policy.NewTrainer(m, neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: -1}, so, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Destroy()
	for i := range m.Params[neox.ValueHeadWeight].Data {
		m.Params[neox.ValueHeadWeight].Data[i] = 0.05 * float32(i%7-3)
	}
	lt, err := policy.NewTrainer(m, neox.TrainOptions{Loss: neox.LogProb, UnfrozenLayers: -1}, so, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lt.Destroy()
	tb := headCase(t, m)
	res, err := pt.Step(tb)
	if err != nil {
		t.Fatal(err)
	}
	f64 := func(x []float32) []float64 {
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = float64(v)
		}
		return y
	}
	mask := make([]bool, len(tb.LossMask))
	for i, w := range tb.LossMask {
		mask[i] = w != 0
	}
	c := LossConfig{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 1, EntCoef: 0.005}
	lp, val, ent := res.Outputs[neox.LogProbsOutput], res.Outputs[neox.ValuesOutput], res.Outputs[neox.EntropyOutput]
	l := Loss(f64(lp), f64(tb.OldLogProbs), f64(val), f64(tb.OldValues), f64(tb.Advantages), f64(tb.Returns), f64(ent), mask, c)
	if l.PolicyClipFrac == 0 || l.PolicyClipFrac == 1 {
		t.Fatalf("clip fraction %v: the case should clip some tokens and not others", l.PolicyClipFrac)
	}
	stats := res.Outputs[neox.PPOStatsOutput]
	want := []float64{l.Policy, l.Value, l.Entropy, l.PolicyClipFrac, l.ValueClipFrac, l.ApproxKL}
	for i, w := range want {
		if math.Abs(float64(stats[i])-w) > 1e-5*(1+math.Abs(w)) {
			t.Errorf("stat %d: graph %v, Go %v", i, stats[i], w)
		}
	}
	if math.Abs(res.Loss-l.Total) > 1e-5*(1+math.Abs(l.Total)) {
		t.Errorf("loss: graph %v, Go %v", res.Loss, l.Total)
	}
	f32 := func(x []float64) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(v)
		}
		return y
	}
	lb := &policy.TrainBatch{Batch: tb.Batch, Tokens: tb.Tokens, Temperature: tb.Temperature,
		DLogProbs: f32(l.DLogProb), DValues: f32(l.DValue), DEntropy: f32(l.DEntropy)}
	if _, err := lt.Step(lb); err != nil {
		t.Fatal(err)
	}
	for _, name := range pt.Graph.Trainable {
		a, b := pt.Grad(name), lt.Grad(name)
		var scale, worst float64
		for i := range a {
			scale = math.Max(scale, math.Abs(float64(b[i])))
			worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
		}
		if worst > 1e-5*scale+1e-9 {
			t.Errorf("%s: PPO head vs Go cotangents differ by %g (scale %g)", name, worst, scale)
		}
	}
}

// The PPO loss's gradient against central differences on the parameters.
func TestPPOGradientFiniteDifferences(t *testing.T) {
	m := tinyPolicy(t, 5)
	pt, err := policy.NewTrainer(m, neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Destroy()
	for i := range m.Params[neox.ValueHeadWeight].Data {
		m.Params[neox.ValueHeadWeight].Data[i] = 0.05 * float32(i%5-2)
	}
	tb := headCase(t, m)
	if _, err := pt.Step(tb); err != nil {
		t.Fatal(err)
	}
	grads := map[string][]float32{}
	for _, n := range pt.Graph.Trainable {
		grads[n] = append([]float32(nil), pt.Grad(n)...)
	}
	loss := func() float64 {
		r, err := pt.Step(tb)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
	const eps = 1e-2
	checked := 0
	for _, name := range pt.Graph.Trainable {
		g, p := grads[name], m.Params[name].Data
		// The largest-gradient coordinate of each parameter.
		bi := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[bi])) {
				bi = i
			}
		}
		if math.Abs(float64(g[bi])) < 1e-3 {
			continue
		}
		old := p[bi]
		p[bi] = old + eps
		lp := loss()
		p[bi] = old - eps
		lm := loss()
		p[bi] = old
		fd := (lp - lm) / (2 * eps)
		checked++
		if d := math.Abs(fd - float64(g[bi])); d > 2e-2*math.Abs(fd)+5e-4 {
			t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", name, bi, g[bi], fd)
		}
	}
	if checked < 10 {
		t.Errorf("only %d parameters had a gradient to check", checked)
	}
}
