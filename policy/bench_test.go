package policy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"irl/neox"
	"irl/onnx"
	"irl/onnx/onnxbench"
)

// forwardFLOPs counts the multiply-adds (×2) of the MatMuls a forward graph
// runs for a batch of b rows of s tokens, attention over the full S×S included,
// as the graph computes it.
func forwardFLOPs(c neox.Config, b, s int, logits bool) float64 {
	d, f := float64(c.HiddenSize), float64(c.IntermediateSize)
	perToken := float64(c.NumLayers) * (2*d*3*d + 2*d*d + 2*2*d*f + 2*2*float64(s)*d)
	if logits {
		perToken += 2 * d * float64(c.VocabSize)
	}
	return perToken * float64(b*s)
}

// benchSetup makes a pythia-70m-shaped model, a batch of random ids, and
// measures ORT's MatMul peak, the yardstick of the same run.
func benchSetup(b *testing.B, bs, seq int) (*neox.Model, *neox.Batch, float64) {
	m, err := neox.Init(neox.Shapes["pythia-70m"], 1)
	if err != nil {
		b.Fatal(err)
	}
	peak, err := onnxbench.MatMulBestPeak(onnx.Options{}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	bt := &neox.Batch{B: bs, S: seq, InputIDs: make([]int64, bs*seq)}
	for i := range bt.InputIDs {
		bt.InputIDs[i] = r.Int64N(int64(m.Config.VocabSize))
	}
	return m, bt, peak
}

// reportThroughput reports b.N runs of tokens tokens and flops MatMul FLOPs
// each, taking elapsed in all, against the MatMul peak.
func reportThroughput(b *testing.B, tokens int, flops float64, elapsed time.Duration, peak float64) {
	sec := elapsed.Seconds()
	rate := flops * float64(b.N) / sec
	b.ReportMetric(float64(tokens*b.N)/sec, "tokens/s")
	b.ReportMetric(rate/1e9, "GFLOP/s")
	b.ReportMetric(peak/1e9, "peak-GFLOP/s")
	b.ReportMetric(rate/peak, "of-peak")
}

// BenchmarkForward measures forward throughput for a pythia-70m-shaped model
// at batch 32 × 128 on CPU, on ONNX Runtime's fused kernels and on standard
// operators, and ORT's MatMul peak in the same run.
//
//	go test -run '^$' -bench Forward -benchtime 5x ./policy/
func BenchmarkForward(b *testing.B) {
	const bs, seq = 32, 128
	m, bt, peak := benchSetup(b, bs, seq)
	cfg := m.Config
	type bench struct {
		name string
		fo   neox.ForwardOptions
	}
	var benches []bench
	for _, path := range paths {
		benches = append(benches,
			bench{"pythia-70m/logits/" + path.name, neox.ForwardOptions{Logits: true, Standard: path.standard}},
			bench{"pythia-70m/last-hidden/" + path.name, neox.ForwardOptions{Hidden: []int{cfg.NumLayers}, Standard: path.standard}})
	}
	for _, tc := range benches {
		b.Run(tc.name, func(b *testing.B) {
			run, err := NewRunner(m, tc.fo, onnx.Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer run.Destroy()
			if _, err := run.Forward(bt); err != nil { // warm up
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := run.Forward(bt); err != nil {
					b.Fatal(err)
				}
			}
			reportThroughput(b, bs*seq, forwardFLOPs(cfg, bs, seq, tc.fo.Logits), time.Since(start), peak)
		})
	}
}

// BenchmarkTrainStep measures a full training step (forward, cross-entropy,
// backward) for a pythia-70m-shaped model at batch 8 × 128 on CPU. Training
// costs about three forwards of MatMul work; the fraction of MatMul peak uses
// that count. The process's peak resident memory is reported too.
//
//	go test -run '^$' -bench TrainStep -benchtime 3x ./policy/
func BenchmarkTrainStep(b *testing.B) {
	const bs, seq = 8, 128
	m, bt, peak := benchSetup(b, bs, seq)
	cfg := m.Config
	tb := &TrainBatch{Batch: *bt}
	tb.NextTokenTargets()
	tr, err := NewTrainer(m, neox.TrainOptions{UnfrozenLayers: -1}, onnx.Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Destroy()
	took := timeLoop(b, func() {
		if _, err := tr.Step(tb); err != nil {
			b.Fatal(err)
		}
	})
	reportThroughput(b, bs*seq, 3*forwardFLOPs(cfg, bs, seq, true), took, peak)
	b.ReportMetric(float64(peakRSSKiB())/1024, "peak-RSS-MiB")
}

// BenchmarkTrainStepHeads measures BenchmarkTrainStep's step with the
// LogProb and PPO heads in place of cross-entropy (sampling temperature 0.7,
// every position in the loss), whose softmax over (N,V) is the heads' share.
//
//	go test -run '^$' -bench TrainStepHeads -benchtime 3x ./policy/
func BenchmarkTrainStepHeads(b *testing.B) {
	const bs, seq = 8, 128
	for _, loss := range []struct {
		name string
		kind neox.LossKind
	}{{"logprob", neox.LogProb}, {"ppo", neox.PPO}} {
		b.Run(loss.name, func(b *testing.B) {
			m, bt, peak := benchSetup(b, bs, seq)
			n := bs * seq
			r := rand.New(rand.NewPCG(3, 4))
			tb := &TrainBatch{Batch: *bt, Tokens: make([]int64, n), Temperature: 0.7, LossMask: make([]float32, n),
				OldLogProbs: make([]float32, n), OldValues: make([]float32, n), Advantages: make([]float32, n),
				Returns: make([]float32, n), PPOCoefs: [4]float32{0.2, 0.2, 0.5, 0.01},
				DLogProbs: make([]float32, n), DEntropy: make([]float32, n), DValues: make([]float32, n)}
			for i := range tb.Tokens {
				tb.Tokens[i] = r.Int64N(int64(m.Config.VocabSize))
				tb.LossMask[i] = 1
				tb.OldLogProbs[i] = float32(-11 + r.NormFloat64())
				tb.Advantages[i] = float32(r.NormFloat64())
				tb.Returns[i] = float32(r.NormFloat64())
				tb.DLogProbs[i], tb.DEntropy[i], tb.DValues[i] = float32(r.NormFloat64()), 0.01, float32(r.NormFloat64())
			}
			tr, err := NewTrainer(m, neox.TrainOptions{Loss: loss.kind, UnfrozenLayers: -1}, onnx.Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Destroy()
			took := timeLoop(b, func() {
				if _, err := tr.Step(tb); err != nil {
					b.Fatal(err)
				}
			})
			reportThroughput(b, n, 3*forwardFLOPs(m.Config, bs, seq, true), took, peak)
		})
	}
}

// peakRSSKiB is the process's peak resident set (VmHWM), or 0 if unknown.
func peakRSSKiB() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var n int
			fmt.Sscan(strings.Fields(line)[1], &n)
			return n
		}
	}
	return 0
}

// timeLoop runs step once to warm up, then b.N times timed, and returns
// the time those took; the timer stops there, so that ns/op leaves out the
// callers' deferred Destroy calls.
func timeLoop(b *testing.B, step func()) time.Duration {
	step()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	return time.Since(start)
}
