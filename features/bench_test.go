package features

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"irl/neox"
	"irl/onnx"
	"irl/onnx/onnxbench"
)

// benchPeak is ORT's MatMul peak, measured once per process: the yardstick
// every features benchmark of the run reports its fraction of.
var benchPeak float64

func peak(b *testing.B) float64 {
	if benchPeak == 0 {
		p, err := onnxbench.MatMulBestPeak(onnx.Options{}, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		benchPeak = p
	}
	return benchPeak
}

// matmulFLOPs counts the MatMul work of extracting seqs as computed:
// length-sorted batches of batchSize rows padded to their longest row, the
// attention over the full S×S included.
func matmulFLOPs(cfg neox.Config, seqs [][]int64, batchSize int) float64 {
	d, f := float64(cfg.HiddenSize), float64(cfg.IntermediateSize)
	flops := 0.0
	order := sortedLengths(seqs)
	for lo := 0; lo < len(order); lo += batchSize {
		hi := min(lo+batchSize, len(order))
		s := float64(order[hi-1])
		rows := float64(hi - lo)
		flops += rows * s * float64(cfg.NumLayers) * (2*d*3*d + 2*d*d + 2*2*d*f + 2*2*s*d)
	}
	return flops
}

// runFeatures extracts last-token features of the final layer for seqs in
// batches of batchSize rows on a fresh extractor, and reports tokens/s and
// the fraction of ORT MatMul peak measured in the same process.
func runFeatures(b *testing.B, m *neox.Model, seqs [][]int64, batchSize int, path Options) {
	o := path
	o.Layer, o.Pool, o.BatchSize = -1, neox.PoolLast, batchSize
	e, err := NewModelExtractor(m, o)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy()
	tokens := 0
	for _, s := range seqs {
		tokens += len(s)
	}
	// One batch to warm up: thread pool, prepacked weights, arenas.
	if _, _, err := Extract(e, seqs[:min(batchSize, len(seqs))], o); err != nil {
		b.Fatal(err)
	}
	p := peak(b)
	b.ResetTimer()
	var el time.Duration
	for i := 0; i < b.N; i++ {
		_, st, err := Extract(e, seqs, o)
		if err != nil {
			b.Fatal(err)
		}
		el += st.Elapsed
	}
	sec := el.Seconds() / float64(b.N)
	flops := matmulFLOPs(m.Config, seqs, batchSize)
	b.ReportMetric(float64(tokens)/sec, "tokens/s")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(p/1e9, "peak-GFLOP/s")
	b.ReportMetric(flops/sec/p, "of-peak")
}

// benchPaths are the two ways to run: the default (ONNX Runtime's fused
// kernels, runs of at most DefaultMaxTokens tokens), and the way before them,
// kept to measure against (standard operators, a batch in one run).
var benchPaths = []struct {
	name string
	o    Options
}{{"fused", Options{}}, {"standard", Options{Standard: true, MaxTokens: -1}}}

// benchFeatures extracts features for n random texts of 64–256 tokens in
// batches of 32, on both paths.
func benchFeatures(b *testing.B, shape string, n int) {
	cfg := neox.Shapes[shape]
	m, err := neox.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	seqs := make([][]int64, n)
	for i := range seqs {
		seqs[i] = make([]int64, 64+r.IntN(193))
		for j := range seqs[i] {
			seqs[i][j] = r.Int64N(int64(cfg.VocabSize))
		}
	}
	for _, path := range benchPaths {
		b.Run(path.name, func(b *testing.B) { runFeatures(b, m, seqs, 32, path.o) })
	}
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

// go test -run '^$' -bench 'Features(70|410)m' -benchtime 1x ./features/
func BenchmarkFeatures70m(b *testing.B)  { benchFeatures(b, "pythia-70m", 2048) }
func BenchmarkFeatures410m(b *testing.B) { benchFeatures(b, "pythia-410m", 128) }

// BenchmarkFeaturesGrid extracts pythia-70m features for texts of exactly S
// tokens in batches of B rows, for S ∈ {64, 256, 1024} and B ∈ {1, 8, 32},
// on both paths: 32,768 tokens per point (at least B texts). Each point
// reports tokens/s and its fraction of the MatMul peak measured once, at
// the start.
//
//	go test -run '^$' -bench FeaturesGrid -benchtime 1x ./features/
//	go test -run '^$' -bench 'FeaturesGrid/fused' -benchtime 1x ./features/
func BenchmarkFeaturesGrid(b *testing.B) {
	cfg := neox.Shapes["pythia-70m"]
	m, err := neox.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, path := range benchPaths {
		b.Run(path.name, func(b *testing.B) {
			for _, s := range []int{64, 256, 1024} {
				for _, bs := range []int{1, 8, 32} {
					n := max(bs, 32768/s)
					seqs := make([][]int64, n)
					for i := range seqs {
						seqs[i] = make([]int64, s)
						for j := range seqs[i] {
							seqs[i][j] = r.Int64N(int64(cfg.VocabSize))
						}
					}
					b.Run(fmt.Sprintf("S=%d/B=%d", s, bs), func(b *testing.B) { runFeatures(b, m, seqs, bs, path.o) })
				}
			}
		})
	}
}
