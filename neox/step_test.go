package neox

import (
	"testing"

	"irl/onnx"
)

// The step graph of pythia-70m's shape builds in each element type with no
// node that reads a shape at run time, and has fewer nodes than the
// standard decode graph.
func TestStepGraphStatic(t *testing.T) {
	c := Shapes["pythia-70m"]
	m, err := Init(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := BuildDecode(m, DecodeOptions{Standard: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []onnx.DType{onnx.Float, onnx.Float16, onnx.BFloat16} {
		sg, err := BuildStep(m, StepOptions{Batch: 4, Capacity: 64, DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, n := range sg.Graph.Model().Graph.Node {
			ops[n.OpType]++
		}
		for _, op := range []string{"Shape", "Range", "NonZero", "Size", "ConstantOfShape"} {
			if ops[op] > 0 {
				t.Errorf("element type %d: %d %s nodes in the static step graph", dt, ops[op], op)
			}
		}
		if _, err := sg.Graph.Marshal(); err != nil {
			t.Fatal(err)
		}
		t.Logf("element type %d: step graph %d nodes, standard decode graph %d (%d layers)", dt, sg.Graph.NumNodes(), dg.Graph.NumNodes(), c.NumLayers)
	}
	if _, err := BuildStep(m, StepOptions{Batch: 0, Capacity: 8}); err == nil {
		t.Error("a step graph of no rows: no error")
	}
	if _, err := BuildStep(m, StepOptions{Batch: 1, Capacity: 8, DType: onnx.Int64}); err == nil {
		t.Error("an int64 step graph: no error")
	}
}
