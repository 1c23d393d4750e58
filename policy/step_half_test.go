package policy

import (
	"fmt"
	"math"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"irl/neox"
	"irl/onnx"
)

// runStepGraph runs sg for steps tokens per row (row r's token at step j is
// (3r+5j) mod V, written to slot j, the mask growing a slot a step) in a
// plain session, each step's present caches the next's past, and
// returns each step's logits. A session that cannot open is returned as
// the error, unwrapped, so that a missing kernel can name itself.
func runStepGraph(sg *neox.StepGraph, c neox.Config, steps int) ([][]float32, error) {
	data, err := sg.Graph.Marshal()
	if err != nil {
		return nil, fmt.Errorf("serialising: %w", err)
	}
	s, err := onnx.NewSession(data, "", sg.Inputs, sg.Outputs, onnx.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	defer s.Destroy()
	B, C := int64(sg.Batch), int64(sg.Capacity)
	cacheShape := ort.NewShape(B, int64(c.NumHeads), C, int64(c.HeadDim()))
	n := cacheShape.FlattenedSize()
	// Two sets of caches, past and present, swapped after each step: the
	// session is given its half-precision outputs (onnxruntime_go sizes
	// the half tensors it makes itself wrongly).
	var sets [2][]onnx.ORTValue
	for k := range sets {
		for range 2 * c.NumLayers {
			var t onnx.ORTValue
			switch sg.DType {
			case onnx.Float16:
				t, err = ort.NewCustomDataTensor(cacheShape, make([]byte, 2*n), ort.TensorElementDataTypeFloat16)
			case onnx.BFloat16:
				t, err = ort.NewCustomDataTensor(cacheShape, make([]byte, 2*n), ort.TensorElementDataTypeBFloat16)
			default:
				t, err = ort.NewTensor(cacheShape, make([]float32, n))
			}
			if err != nil {
				return nil, err
			}
			sets[k] = append(sets[k], t)
		}
	}
	defer func() { onnx.DestroyAll(append(sets[0], sets[1]...)...) }()
	mask := make([]int64, B*C)
	var logits [][]float32
	for j := range steps {
		ids, pos, index := make([]int64, B), make([]int64, B), make([]int64, B)
		for r := range ids {
			ids[r], pos[r], index[r] = int64(3*r+5*j)%int64(c.VocabSize), int64(j), int64(j)
			mask[int64(r)*C+int64(j)] = 1
		}
		var ins []onnx.ORTValue
		for _, x := range [][]int64{ids, pos, index} {
			t, err := ort.NewTensor(ort.NewShape(B, 1), x)
			if err != nil {
				return nil, err
			}
			ins = append(ins, t)
		}
		mt, err := ort.NewTensor(ort.NewShape(B, C), append([]int64(nil), mask...))
		if err != nil {
			return nil, err
		}
		ins = append(ins, mt)
		outs := append(make([]onnx.ORTValue, 4), sets[1]...)
		err = s.RunInto(append(ins, sets[0]...), outs)
		onnx.DestroyAll(ins...)
		if err != nil {
			return nil, err
		}
		logits = append(logits, append([]float32(nil), outs[0].(*ort.Tensor[float32]).GetData()...))
		onnx.DestroyAll(outs[:4]...)
		sets[0], sets[1] = sets[1], sets[0]
	}
	return logits, nil
}

// The step graph builds and serialises in float16 and bfloat16 (weights
// rounded once into half initializers; layer norms, softmax and the logits'
// statistics in float32) and, where ONNX Runtime's CPU provider has the
// kernels, gives float32's logits within 1e-2 relative. Where it lacks one,
// the subtest skips with ONNX Runtime's error.
func TestStepHalfPrecision(t *testing.T) {
	m := fusedModel(t, true, false, 0.25)
	c := m.Config
	const steps = 4
	build := func(dt onnx.DType) *neox.StepGraph {
		sg, err := neox.BuildStep(m, neox.StepOptions{Batch: 2, Capacity: 6, DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		return sg
	}
	f32 := build(onnx.Float)
	want, err := runStepGraph(f32, c, steps)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dt   onnx.DType
	}{{"float16", onnx.Float16}, {"bfloat16", onnx.BFloat16}} {
		t.Run(tc.name, func(t *testing.T) {
			sg := build(tc.dt)
			if _, err := sg.Graph.Marshal(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s step graph: %d nodes (float32: %d)", tc.name, sg.Graph.NumNodes(), f32.Graph.NumNodes())
			got, err := runStepGraph(sg, c, steps)
			if err != nil {
				if strings.Contains(err.Error(), "NOT_IMPLEMENTED") || strings.Contains(err.Error(), "Could not find an implementation") {
					t.Skipf("ONNX Runtime's CPU provider cannot run the %s graph: %v", tc.name, err)
				}
				t.Fatal(err)
			}
			for j := range want {
				diff, scale := maxAbsDiff(got[j], want[j])
				if diff > 1e-2*math.Max(1, scale) {
					t.Errorf("step %d: %s logits differ from float32's by %.3g (max |logit| %.3g)", j, tc.name, diff, scale)
				}
				t.Logf("step %d: max |%s − float32| %.3g (max |logit| %.3g)", j, tc.name, diff, scale)
			}
		})
	}
}
