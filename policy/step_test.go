package policy

import (
	"math"
	"reflect"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// stepPrompts are prompts of different lengths, for the step generator's
// tests: left padding of 0…6 tokens in a batch.
var stepPrompts = [][]int64{{3, 17, 20, 41, 5}, {9, 9}, {1}, {2, 4, 6, 8, 10, 12, 14}}

// compareGenerations fails unless got has want's tokens and EOS and its
// log-probs within tol, and returns the largest log-prob difference.
func compareGenerations(t *testing.T, what string, got, want []Generation, tol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d sequences, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		g, w := got[i], want[i]
		if g.Prompt != w.Prompt || g.Sequence != w.Sequence || g.EOS != w.EOS || !reflect.DeepEqual(g.IDs, w.IDs) {
			t.Errorf("%s: sequence %d: step graph prompt %d copy %d %v (EOS %v), generator prompt %d copy %d %v (EOS %v)",
				what, i, g.Prompt, g.Sequence, g.IDs, g.EOS, w.Prompt, w.Sequence, w.IDs, w.EOS)
			continue
		}
		for j := range w.LogProbs {
			d := math.Abs(g.LogProbs[j] - w.LogProbs[j])
			worst = math.Max(worst, d)
			if d > tol {
				t.Errorf("%s: sequence %d token %d: log-prob %v step graph, %v generator", what, i, j, g.LogProbs[j], w.LogProbs[j])
			}
		}
	}
	return worst
}

// The static step graph's generator gives today's Generator's sequences,
// on the standard decoder and on the fused one, greedy and sampled
// (temperature, top-k, top-p): the same tokens, log-probs within 1e-5, with sequences stopping at EOS midway (they
// stay in the step graph's batch, masked) and a last batch shorter than
// the graph's B (empty rows, masked).
func TestStepGenerateMatchesGenerator(t *testing.T) {
	for _, parallel := range []bool{true, false} {
		for _, rotary := range []float64{0.25, 1} {
			m := fusedModel(t, parallel, false, rotary)
			step, err := NewStepGenerator(m, 3, 20, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer step.Destroy()
			for _, sampling := range []SampleOptions{{Greedy: true}, {Temperature: 0.8, TopK: 10, TopP: 0.9}, {Temperature: 1}} {
				o := GenerateOptions{MaxNewTokens: 12, Sampling: sampling, Seed: 7, NumReturnSequences: 2, BatchSize: 3}
				for _, path := range paths {
					g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: path.standard}, onnx.Options{Threads: 1}, nil)
					if err != nil {
						t.Fatal(err)
					}
					// A token that a sequence makes midway becomes EOS, so
					// that sequences stop before others.
					g.cfg.EOSTokenID, step.cfg.EOSTokenID = -1, -1
					first, err := g.Generate(stepPrompts, o)
					if err != nil {
						t.Fatal(err)
					}
					eos := int(first[0].IDs[4])
					g.cfg.EOSTokenID, step.cfg.EOSTokenID = eos, eos
					want, err := g.Generate(stepPrompts, o)
					g.Destroy()
					if err != nil {
						t.Fatal(err)
					}
					got, err := step.Generate(stepPrompts, o)
					if err != nil {
						t.Fatal(err)
					}
					stopped := 0
					for _, w := range want {
						if w.EOS {
							stopped++
						}
					}
					what := path.name
					// float32 roundoff only: the prompt runs a token per step here, in
					// one prefill there, and attention spans all C slots (1e-5, as
					// TestFusedGenerateMatchesStandard allows fused against standard).
					worst := compareGenerations(t, what, got, want, 1e-5)
					t.Logf("parallel=%v rotary=%v %+v vs %s: %d of %d sequences at EOS, max |Δ log-prob| %.3g",
						parallel, rotary, sampling, what, stopped, len(want), worst)
				}
			}
		}
	}
}

// The step decoder refuses what its fixed shapes cannot take.
func TestStepDecoderErrors(t *testing.T) {
	m := fusedModel(t, true, false, 0.25)
	step, err := NewStepGenerator(m, 2, 8, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer step.Destroy()
	if _, err := step.Generate([][]int64{{1, 2, 3, 4, 5}}, GenerateOptions{MaxNewTokens: 5, Sampling: SampleOptions{Greedy: true}}); err == nil {
		t.Error("a prompt and new tokens past the capacity: no error")
	}
	d := step.Decoder()
	if err := d.Step([]int64{1}, []int64{0}, []int64{0}, make([]int64, 8)); err == nil {
		t.Error("one row for two: no error")
	}
	if err := d.Step([]int64{1, 1}, []int64{0, 0}, []int64{0, 8}, make([]int64, 16)); err == nil {
		t.Error("slot 8 of 8: no error")
	}
	if _, err := NewStepDecoder(m, neox.StepOptions{Batch: 2, Capacity: 8, DType: onnx.Float16}, onnx.Options{}); err == nil {
		t.Error("float16 step decoder: no error")
	}
}

// The step graph under CUDA with enable_cuda_graph (captured once, then
// replayed) gives the tokens of the plain CPU step graph. Skipped without a
// CUDA provider, failed under IRL_REQUIRE_CUDA. Never run: written where no
// GPU was.
func TestCUDAGraphStepParity(t *testing.T) {
	co := cudaOptions(t)
	co.CUDAGraph = true
	m := fusedModel(t, true, false, 0.25)
	var outs [2][]Generation
	for k, so := range []onnx.Options{{Threads: 1}, co} {
		g, err := NewStepGenerator(m, 3, 20, so)
		if err != nil {
			t.Fatal(err)
		}
		// Twice: the first batch's steps capture, the second's replay.
		for range 2 {
			outs[k], err = g.Generate(stepPrompts, GenerateOptions{MaxNewTokens: 12, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true})
			if err != nil {
				g.Destroy()
				t.Fatal(err)
			}
		}
		g.Destroy()
	}
	compareGenerations(t, "CUDA graph", outs[1], outs[0], 1e-3)
}

// BenchmarkStepGenerate is BenchmarkGenerate's greedy batch on the static
// step graph (prefill a token per step), beside today's generator.
//
//	go test -run '^$' -bench StepGenerate -benchtime 1x ./policy/
func BenchmarkStepGenerate(b *testing.B) {
	cfg := neox.Shapes["pythia-70m"]
	m, err := neox.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const bs, plen, newTokens = 32, 32, 32
	prompts := benchPrompts(cfg.VocabSize, bs, plen)
	o := GenerateOptions{MaxNewTokens: newTokens, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	run := func(b *testing.B, gen func() ([]Generation, error)) { timeGenerate(b, gen, nil) }
	b.Run("step", func(b *testing.B) {
		g, err := NewStepGenerator(m, bs, plen+newTokens, onnx.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Destroy()
		b.Logf("step graph: %d nodes", g.Decoder().NumNodes())
		run(b, func() ([]Generation, error) { return g.Generate(prompts, o) })
	})
	for _, path := range paths {
		b.Run(path.name, func(b *testing.B) {
			g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: path.standard}, onnx.Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Destroy()
			run(b, func() ([]Generation, error) { return g.Generate(prompts, o) })
		})
	}
}
