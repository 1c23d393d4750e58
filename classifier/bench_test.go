package classifier

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"irl/batching"
	"irl/onnx"
	"irl/onnx/onnxbench"
	"irl/weights"
)

// randomModel makes a classifier of configuration c with weights drawn as
// transformers initialises them: normal with standard deviation 0.02,
// LayerNorm weights 1 and biases 0.
func randomModel(c Config, seed uint64) *Model {
	r := rand.New(rand.NewPCG(seed, 0))
	m := &Model{Config: c, Params: map[string]*weights.Tensor{}}
	for _, s := range c.ParamSpecs() {
		t := &weights.Tensor{Shape: s.Shape, Data: make([]float32, numel64(s.Shape))}
		switch {
		case strings.HasSuffix(s.Name, "LayerNorm.weight"):
			for i := range t.Data {
				t.Data[i] = 1
			}
		case strings.HasSuffix(s.Name, ".bias"):
		default:
			for i := range t.Data {
				t.Data[i] = float32(0.02 * r.NormFloat64())
			}
		}
		m.Params[s.Name] = t
	}
	return m
}

// robertaBase is roberta-base's configuration with a two-label head.
var robertaBase = Config{
	ModelType: "roberta", VocabSize: 50265, HiddenSize: 768, NumLayers: 12, NumHeads: 12,
	IntermediateSize: 3072, MaxPositions: 514, TypeVocabSize: 1, PadTokenID: 1,
	LayerNormEps: 1e-5, HiddenAct: "gelu", Labels: []string{"neutral", "toxic"},
}

// scoreFLOPs counts the multiply-adds (×2) of the MatMuls that the graph runs
// when Score puts rows of these lengths into batches of bs, padding included:
// every layer but the last on all tokens, the last layer's keys and values on
// all tokens but its queries, attention output and feed-forward on the first
// token of each row only, and the head.
func scoreFLOPs(c Config, lengths []int, bs int) float64 {
	d, f, l := float64(c.HiddenSize), float64(c.IntermediateSize), float64(c.NumLabels())
	perToken := 2 * (4*d*d + 2*d*f) // q, k, v, output; the two feed-forward projections
	var total float64
	batching.Sorted(lengths, bs, func(rows []int, s int) error {
		n, seq := float64(len(rows)), float64(s)
		attn := 2 * 2 * seq * d // q·kᵀ and probs·v, per query
		total += float64(c.NumLayers-1) * n * seq * (perToken + attn)
		total += n*seq*2*(2*d*d) + n*(2*(2*d*d+2*d*f)+attn) // last layer
		total += n * 2 * (d*d + d*l)                        // head
		return nil
	})
	return total
}

// BenchmarkScoreRobertaBase scores 64 rows of 64–256 tokens with a
// roberta-base-shaped classifier (random weights, nothing downloaded) on CPU,
// and measures ONNX Runtime's MatMul peak in the same run. It reports real
// tokens per second and the MatMul work the graph does as a fraction of that
// peak.
//
//	go test -run '^$' -bench ScoreRobertaBase -benchtime 1x ./classifier/
func BenchmarkScoreRobertaBase(b *testing.B) {
	const rows, bs = 64, 16
	m := randomModel(robertaBase, 1)
	peak, err := onnxbench.MatMulBestPeak(onnx.Options{}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	seqs := make([][]int64, rows)
	lengths := make([]int, rows)
	tokens := 0
	for i := range seqs {
		n := 64 + r.IntN(256-64+1)
		q := make([]int64, n)
		for j := range q {
			q[j] = 3 + r.Int64N(int64(robertaBase.VocabSize-3))
		}
		q[0], q[n-1] = 0, 2 // <s> … </s>
		seqs[i], lengths[i], tokens = q, n, tokens+n
	}
	c, err := New(m, onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Destroy()
	// Warm up the thread pool and weight prepacking on a few rows.
	if _, err := c.Score(seqs[:4], 4, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Score(seqs, bs, nil); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds()
	rate := scoreFLOPs(robertaBase, lengths, bs) * float64(b.N) / sec
	b.ReportMetric(float64(tokens*b.N)/sec, "tokens/s")
	b.ReportMetric(rate/1e9, "GFLOP/s")
	b.ReportMetric(peak/1e9, "peak-GFLOP/s")
	b.ReportMetric(rate/peak, "of-peak")
}
