package onnx

import (
	"fmt"
	"math"

	"irl/onnx/onnxpb"
)

// Double is ONNX's float64 element type, for the few reductions (such as a
// global gradient norm) that must match float64 arithmetic done in Go.
const Double DType = DType(onnxpb.TensorProto_DOUBLE)

// ScalarF64 is a 0-D float64 constant.
func (g *Graph) ScalarF64(v float64) Value {
	key := fmt.Sprint("sf64", math.Float64bits(v))
	if c, ok := g.consts[key]; ok {
		return c
	}
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, DataType: int32(Double), DoubleData: []float64{v}})
	g.consts[key] = Value(name)
	return Value(name)
}

// Rename gives v, an output of the last node added, the name name and returns
// it. A graph output named that way is the node's own output: Output then
// adds no Identity node, which ONNX Runtime would keep (and run, copying the
// tensor) whenever other nodes also read the value. It panics when v is not
// an output of the last node or name is taken.
func (g *Graph) Rename(v Value, name string) Value {
	if len(g.nodes) > 0 {
		last := g.nodes[len(g.nodes)-1]
		for i, out := range last.Output {
			if out == string(v) {
				g.claim(name)
				last.Output[i] = name
				if last.Name == out {
					last.Name = name
				}
				return Value(name)
			}
		}
	}
	panic(fmt.Sprintf("onnx: Rename: %q is not an output of the last node of graph %q", v, g.name))
}
