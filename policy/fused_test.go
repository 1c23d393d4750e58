package policy

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// fusedConfig is a small model the fused kernels take: heads of 32 dims,
// of which rotary 0.25 rotates 8, 1 all and 0 none.
func fusedConfig(parallel, tie bool, rotary float64) neox.Config {
	return neox.Config{VocabSize: 61, HiddenSize: 64, NumLayers: 2, NumHeads: 2, IntermediateSize: 96,
		MaxPositions: 40, RotaryPct: rotary, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: parallel, TieEmbeddings: tie, InitializerRange: 0.3}
}

// fusedModel is a random model of fusedConfig with non-trivial norms and
// biases and a value head.
func fusedModel(t *testing.T, parallel, tie bool, rotary float64) *neox.Model {
	t.Helper()
	m, err := neox.Init(fusedConfig(parallel, tie, rotary), 21)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 22)
	d := m.Config.HiddenSize
	m.Params[neox.ValueHeadWeight] = &neox.Param{Shape: []int{1, d}, Data: make([]float32, d)}
	m.Params[neox.ValueHeadBias] = &neox.Param{Shape: []int{1}, Data: []float32{0.25}}
	for i := range m.Params[neox.ValueHeadWeight].Data {
		m.Params[neox.ValueHeadWeight].Data[i] = float32(i%5)*0.1 - 0.2
	}
	return m
}

// closeOutputs checks that every output of got equals want's within tol
// times max(1, its largest magnitude), at the positions mask keeps (all of
// a pooled output's rows).
func closeOutputs(t *testing.T, what string, got, want map[string]Output, mask []int64, seq int, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: outputs %d, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if !reflect.DeepEqual(g.Shape, w.Shape) {
			t.Fatalf("%s: %s has shape %v, want %v", what, name, g.Shape, w.Shape)
		}
		per := 0 // values per position; 0 for pooled outputs
		if len(w.Shape) >= 2 && w.Shape[1] == seq {
			per = len(w.Data) / len(mask)
		}
		var diff, scale float64
		for i := range w.Data {
			if per > 0 && mask[i/per] == 0 {
				continue
			}
			diff = math.Max(diff, math.Abs(float64(g.Data[i]-w.Data[i])))
			scale = math.Max(scale, math.Abs(float64(w.Data[i])))
		}
		if !(diff <= tol*math.Max(1, scale)) {
			t.Errorf("%s: %s differs by %.3g (max |value| %.3g)", what, name, diff, scale)
		}
		if testing.Verbose() {
			t.Logf("%s: %s differs by %.3g (max |value| %.3g)", what, name, diff, scale)
		}
	}
}

// The fused graph computes what the standard one does, within 1e-5, for
// parallel and sequential blocks, tied and untied embeddings, no rotary,
// partial rotary that the kernel's needs pad, and full rotary; on batches
// padded on the right, on the left, and on both sides; with weights as
// initializers and as inputs. A batch the fused graph cannot take (a gap in
// a row's mask) runs on the standard graph.
func TestFusedMatchesStandard(t *testing.T) {
	batches := []struct {
		name string
		bt   neox.Batch
	}{
		{"right", neox.Batch{B: 3, S: 6, InputIDs: []int64{4, 8, 15, 16, 23, 42, 7, 1, 2, 0, 0, 0, 9, 9, 9, 9, 9, 0},
			AttentionMask: []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0}}},
		{"left", neox.Batch{B: 2, S: 5, InputIDs: []int64{0, 0, 7, 1, 2, 4, 8, 15, 16, 23},
			AttentionMask: []int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}}},
		{"both", neox.Batch{B: 2, S: 5, InputIDs: []int64{0, 3, 7, 1, 0, 4, 8, 15, 16, 23},
			AttentionMask: []int64{0, 1, 1, 1, 0, 1, 1, 1, 1, 1}}},
		{"gap", neox.Batch{B: 1, S: 5, InputIDs: []int64{5, 3, 0, 1, 2}, AttentionMask: []int64{1, 1, 0, 1, 1}}},
	}
	for _, parallel := range []bool{true, false} {
		for _, rotary := range []float64{0.25, 0.5, 1, 0} {
			tie := rotary == 0.5
			m := fusedModel(t, parallel, tie, rotary)
			hidden := []int{0, 1, 2}
			for _, fo := range []neox.ForwardOptions{
				{Hidden: hidden, Logits: true},
				{LogProbs: true, Values: true, ParamInputs: true},
				{Hidden: []int{1}, Pool: neox.PoolMean},
				{Hidden: []int{2}, Pool: "last:2"},
			} {
				name := fmt.Sprintf("parallel=%v/rotary=%v/%+v", parallel, rotary, fo)
				t.Run(name, func(t *testing.T) {
					fused, err := NewRunner(m, fo, onnx.Options{Threads: 1}, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer fused.Destroy()
					sfo := fo
					sfo.Standard = true
					std, err := NewRunner(m, sfo, onnx.Options{Threads: 1}, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer std.Destroy()
					if !fused.Fused() || std.Fused() {
						t.Fatalf("fused %v, standard %v", fused.Fused(), std.Fused())
					}
					for _, tc := range batches {
						tokens := make([]int64, tc.bt.B*tc.bt.S)
						for i := range tokens {
							tokens[i] = int64((7*i + 3) % m.Config.VocabSize)
						}
						b1, b2 := tc.bt, tc.bt
						got, err := fused.ForwardTokens(&b1, tokens, 0.8)
						if err != nil {
							t.Fatal(err)
						}
						want, err := std.ForwardTokens(&b2, tokens, 0.8)
						if err != nil {
							t.Fatal(err)
						}
						closeOutputs(t, tc.name, got, want, tc.bt.AttentionMask, tc.bt.S, 1e-5)
						if fell := fused.std != nil; fell != (tc.name == "gap") {
							t.Errorf("%s: ran on the standard fallback: %v", tc.name, fell)
						}
					}
				})
			}
		}
	}
}

// Greedy generation on the cached decoder (fused kernels, cache written in
// place) gives the standard decoder's tokens, and log-probs within 1e-5,
// for prompts of different lengths, with sequences leaving the batch at EOS.
func TestFusedGenerateMatchesStandard(t *testing.T) {
	for _, parallel := range []bool{true, false} {
		for _, rotary := range []float64{0.25, 1} {
			m := fusedModel(t, parallel, false, rotary)
			prompts := [][]int64{{3, 17, 20, 41, 5}, {9, 9}, {1}, {2, 4, 6, 8, 10, 12, 14}}
			generate := func(standard bool) []Generation {
				g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: standard}, onnx.Options{Threads: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Destroy()
				if g.Fused() == standard {
					t.Fatalf("fused generator: %v", g.Fused())
				}
				out, err := g.Generate(prompts, GenerateOptions{MaxNewTokens: 12, Sampling: SampleOptions{Greedy: true}})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			// A token that one sequence makes midway becomes EOS, so that
			// sequences leave the batch and the cache is compacted.
			m.Config.EOSTokenID = -1
			m.Config.EOSTokenID = int(generate(true)[0].IDs[4])
			outs := [][]Generation{generate(false), generate(true)}
			eos := 0
			for i := range prompts {
				f, s := outs[0][i], outs[1][i]
				if s.EOS {
					eos++
				}
				if !reflect.DeepEqual(f.IDs, s.IDs) || f.EOS != s.EOS {
					t.Errorf("parallel=%v rotary=%v prompt %d: fused %v (EOS %v), standard %v (EOS %v)", parallel, rotary, i, f.IDs, f.EOS, s.IDs, s.EOS)
					continue
				}
				for j := range f.LogProbs {
					if math.Abs(f.LogProbs[j]-s.LogProbs[j]) > 1e-5 {
						t.Errorf("prompt %d token %d: log-prob %v fused, %v standard", i, j, f.LogProbs[j], s.LogProbs[j])
					}
				}
			}
			t.Logf("parallel=%v rotary=%v: %d of %d sequences stopped at EOS", parallel, rotary, eos, len(prompts))
		}
	}
}

// A runner with MaxTokens runs a batch a few rows at a time, in place, and
// gives what one run gives.
func TestRunnerMaxTokens(t *testing.T) {
	m := fusedModel(t, true, false, 0.25)
	bt := neox.Batch{B: 3, S: 6, InputIDs: []int64{4, 8, 15, 16, 23, 42, 7, 1, 2, 0, 0, 0, 9, 9, 9, 9, 9, 0},
		AttentionMask: []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0}}
	tokens := make([]int64, bt.B*bt.S)
	for i := range tokens {
		tokens[i] = int64(i % 5)
	}
	for _, path := range paths {
		for _, fo := range []neox.ForwardOptions{
			{Hidden: []int{1, 2}, Logits: true, Standard: path.standard},
			{LogProbs: true, Values: true, Standard: path.standard},
			{Hidden: []int{2}, Pool: neox.PoolMean, Standard: path.standard},
		} {
			var outs []map[string]Output
			for _, maxTokens := range []int{0, 13, 1} { // all rows, 2 rows, 1 row per run
				r, err := NewRunner(m, fo, onnx.Options{Threads: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				r.MaxTokens = maxTokens
				b := bt
				out, err := r.ForwardTokens(&b, tokens, 1)
				r.Destroy()
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, out)
			}
			for _, out := range outs[1:] {
				closeOutputs(t, fmt.Sprintf("%s %+v", path.name, fo), out, outs[0], bt.AttentionMask, bt.S, 1e-6)
			}
		}
	}
}
