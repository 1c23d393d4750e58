package features

import (
	"math/rand/v2"
	"testing"
	"time"

	"irl/onnx"
	"irl/policy"
)

// benchFeatures extracts last-token features of the final layer for n random
// texts of 64–256 tokens and reports tokens/s and the fraction of ORT MatMul
// peak measured in the same run.
func benchFeatures(b *testing.B, shape string, n int) {
	cfg := policy.Shapes[shape]
	m, err := policy.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	peak, err := onnx.MatMulBestPeak(onnx.Options{}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	seqs := make([][]int64, n)
	var flops float64
	d, f := float64(cfg.HiddenSize), float64(cfg.IntermediateSize)
	tokens := 0
	for i := range seqs {
		seqs[i] = make([]int64, 64+r.IntN(193))
		for j := range seqs[i] {
			seqs[i][j] = r.Int64N(int64(cfg.VocabSize))
		}
		tokens += len(seqs[i])
	}
	o := Options{Layer: -1, Pool: policy.PoolLast, BatchSize: 32}
	e, err := NewModelExtractor(m, o)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy()
	b.ResetTimer()
	var el time.Duration
	for i := 0; i < b.N; i++ {
		_, st, err := Extract(e, seqs, o)
		if err != nil {
			b.Fatal(err)
		}
		el += st.Elapsed
		// MatMul work as computed: bucketed batches padded to their longest row.
		flops = 0
		order := sortedLengths(seqs)
		for lo := 0; lo < len(order); lo += o.BatchSize {
			hi := min(lo+o.BatchSize, len(order))
			s := float64(order[hi-1])
			rows := float64(hi - lo)
			flops += rows * s * float64(cfg.NumLayers) * (2*d*3*d + 2*d*d + 2*2*d*f + 2*2*s*d)
		}
	}
	sec := el.Seconds() / float64(b.N)
	b.ReportMetric(float64(tokens)/sec, "tokens/s")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(peak/1e9, "peak-GFLOP/s")
	b.ReportMetric(flops/sec/peak, "of-peak")
}

func sortedLengths(seqs [][]int64) []int {
	l := make([]int, len(seqs))
	for i, s := range seqs {
		l[i] = len(s)
	}
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l
}

// go test -run '^$' -bench Features -benchtime 1x ./features/
func BenchmarkFeatures70m(b *testing.B)  { benchFeatures(b, "pythia-70m", 2048) }
func BenchmarkFeatures410m(b *testing.B) { benchFeatures(b, "pythia-410m", 128) }
