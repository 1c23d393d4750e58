package neox

import (
	"testing"

	"irl/onnx"
)

// fusedConfig is a small model the fused kernels take: heads of 32 dims,
// of which rotary 0.25 rotates 8.
func fusedConfig() Config {
	return Config{VocabSize: 61, HiddenSize: 64, NumLayers: 2, NumHeads: 2, IntermediateSize: 96,
		MaxPositions: 40, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.3}
}

// The fused graph replaces the attention's standard nodes with one kernel
// per layer.
func TestFusedGraphUsesKernels(t *testing.T) {
	m, err := Init(fusedConfig(), 21)
	if err != nil {
		t.Fatal(err)
	}
	fg, err := BuildForward(m, ForwardOptions{Hidden: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := BuildForward(m, ForwardOptions{Hidden: []int{2}, Standard: true})
	if err != nil {
		t.Fatal(err)
	}
	count := func(g *onnx.Graph, op string) int {
		n := 0
		for _, node := range g.Model().Graph.Node {
			if node.OpType == op {
				n++
			}
		}
		return n
	}
	if n := count(fg.Graph, "GroupQueryAttention"); n != 2 || !fg.Graph.UsesDomain(onnx.MSDomain) {
		t.Errorf("fused graph: %d GroupQueryAttention nodes, want 2", n)
	}
	if n := count(fg.Graph, "SkipLayerNormalization"); n != 2 {
		t.Errorf("fused graph: %d SkipLayerNormalization nodes, want 2", n)
	}
	if sg.Graph.UsesDomain(onnx.MSDomain) || count(sg.Graph, "GroupQueryAttention") != 0 {
		t.Error("the standard graph uses contrib operators")
	}
	if fg.Graph.NumNodes() >= sg.Graph.NumNodes() {
		t.Errorf("fused graph has %d nodes, standard %d", fg.Graph.NumNodes(), sg.Graph.NumNodes())
	}
	// Shapes the kernels cannot take are built standard.
	cfg := fusedConfig()
	cfg.HiddenSize, cfg.NumHeads, cfg.RotaryPct = 12, 3, 0.5 // heads of 4 dims
	small, err := Init(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := BuildForward(small, ForwardOptions{Hidden: []int{1}}); g.Fused {
		t.Error("heads of 4 dims: fused graph")
	}
}
