package features

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/rows"
	"irl/weights"
)

// A grid of feature choices from one pass equals each choice extracted on
// its own, on the fused and the standard graphs, with its own metadata.
func TestGridMatchesEachChoice(t *testing.T) {
	// Three layers, and one, where layers -1 and 1 are one hidden state
	// the grid holds twice.
	for _, n := range []int{3, 1} {
		gridCase(t, n)
	}
}

func gridCase(t *testing.T, numLayers int) {
	cfg := neox.Config{VocabSize: 97, HiddenSize: 64, NumLayers: numLayers, NumHeads: 4, IntermediateSize: 128,
		MaxPositions: 64, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.2}
	m, err := neox.Init(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	src, err := neox.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	enc := make([]rows.Encoded, 29)
	for i := range enc {
		enc[i] = rows.Encoded{Index: i, IDs: make([]int64, 1+r.IntN(40))}
		for j := range enc[i].IDs {
			enc[i].IDs[j] = r.Int64N(int64(cfg.VocabSize))
		}
	}
	layers := []int{-1, 1, 0}
	pools := []neox.Pooling{neox.PoolLast, "last:2", neox.PoolMean}
	session := onnx.Options{Threads: 1}
	grid, err := NewPipeline(PipelineOptions{Model: src, Layers: layers, Pools: pools, BatchSize: 8, Session: session})
	if err != nil {
		t.Fatal(err)
	}
	defer grid.Destroy()
	got, _, err := grid.Grid("rows", enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(layers)*len(pools) {
		t.Fatalf("%d choices, want %d", len(got), len(layers)*len(pools))
	}
	for i, l := range layers {
		for j, p := range pools {
			one, err := NewPipeline(PipelineOptions{Model: src, Layer: l, Pool: p, BatchSize: 8, Session: session})
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := one.Features("rows", enc, 0)
			one.Destroy()
			if err != nil {
				t.Fatal(err)
			}
			g := got[i*len(pools)+j]
			what := fmt.Sprintf("%d layers: layer %d, pool %s", numLayers, l, p)
			if g.N != want.N || g.D != want.D {
				t.Fatalf("%s: %d×%d, want %d×%d", what, g.N, g.D, want.N, want.D)
			}
			closeRel(t, what, g.X, want.X, 1e-6)
			for _, k := range []string{"layer", "pool", "model_fingerprint"} {
				if g.Meta[k] != want.Meta[k] {
					t.Errorf("%s: meta %s = %q, want %q", what, k, g.Meta[k], want.Meta[k])
				}
			}
		}
	}
	// The standard graph gives the same grid, in runs of at most 50
	// tokens (a batch split across runs).
	std, err := Open(src, Options{Layers: layers, Pools: pools, Standard: true, MaxTokens: 50, Session: session})
	if err != nil {
		t.Fatal(err)
	}
	defer std.Destroy()
	seqs := make([][]int64, len(enc))
	for i, e := range enc {
		seqs[i] = e.IDs
	}
	x, _, err := Extract(std, seqs, Options{BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	k, d := len(got), cfg.HiddenSize
	for c, f := range got {
		col := make([]float32, 0, len(enc)*d)
		for r := range enc {
			col = append(col, x[(r*k+c)*d:(r*k+c+1)*d]...)
		}
		closeRel(t, fmt.Sprintf("%d layers: standard graph, choice %d", numLayers, c), col, f.X, 1e-5)
	}
	// Pool and Pools together are a programming error the graph refuses.
	if _, err := neox.BuildForward(m, neox.ForwardOptions{Hidden: []int{1}, Pool: neox.PoolLast, Pools: pools}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Pool and Pools together: %v, want a refusal", err)
	}
	// A grid from an .onnx file is refused, naming it.
	if _, err := Open(&neox.Source{Path: filepath.Join(dir, "model.onnx"), Kind: weights.KindONNX}, Options{Layers: layers, Pools: pools}); err == nil || !strings.Contains(err.Error(), "model.onnx") {
		t.Errorf("a grid from an .onnx file: %v, want a refusal naming it", err)
	}
	if _, err := Open(src, Options{Layers: layers, Pools: []neox.Pooling{neox.PoolMean, neox.PoolMean}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a pooling twice: %v, want a refusal", err)
	}
}
