package onnx

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"irl/floatbits"
	"irl/onnx/onnxpb"
)

// Opset is the ONNX operator set every graph is built against. 17 has
// LayerNormalization; ONNX Runtime 1.24 supports it fully on CPU and CUDA.
const Opset = 17

// irVersion is the ONNX IR version that goes with Opset 17.
const irVersion = 8

// DType is an ONNX tensor element type.
type DType int32

// The element types used by this project's graphs.
const (
	Float   DType = DType(onnxpb.TensorProto_FLOAT)
	Float16 DType = DType(onnxpb.TensorProto_FLOAT16)
	Int64   DType = DType(onnxpb.TensorProto_INT64)
	Int32   DType = DType(onnxpb.TensorProto_INT32)
	Bool    DType = DType(onnxpb.TensorProto_BOOL)
)

// Value names a tensor in a Graph.
type Value string

// Attr is a node attribute; make one with AttrInt, AttrFloat, AttrInts, AttrString.
type Attr = *onnxpb.AttributeProto

// AttrInt is an integer attribute.
func AttrInt(name string, v int64) Attr {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

// AttrFloat is a float attribute.
func AttrFloat(name string, v float32) Attr {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

// AttrInts is an integer-list attribute.
func AttrInts(name string, v ...int64) Attr {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

// AttrTensorF32 is a 1-D float tensor attribute, such as ConstantOfShape's value.
func AttrTensorF32(name string, v []float32) Attr {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_TENSOR,
		T: &onnxpb.TensorProto{Dims: []int64{int64(len(v))}, DataType: int32(Float), FloatData: v}}
}

// AttrString is a string attribute.
func AttrString(name, v string) Attr {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}

// Graph accumulates nodes, initializers, inputs and outputs.
type Graph struct {
	name    string
	nodes   []*onnxpb.NodeProto
	inits   []*onnxpb.TensorProto
	inputs  []*onnxpb.ValueInfoProto
	outputs []*onnxpb.ValueInfoProto
	names   map[string]bool
	consts  map[string]Value
	// domains holds the opset version of each non-default operator domain
	// the graph uses (see OpIn).
	domains map[string]int64
	counter int
	// Scope prefixes generated value names, to make graphs readable in tools
	// such as Netron (e.g. "layer3/attn").
	Scope string
}

// NewGraph starts an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{name: name, names: map[string]bool{}, consts: map[string]Value{}}
}

func (g *Graph) fresh(op string) string {
	for {
		g.counter++
		n := fmt.Sprintf("%s_%d", op, g.counter)
		if g.Scope != "" {
			n = g.Scope + "/" + n
		}
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

func (g *Graph) claim(name string) {
	if g.names[name] {
		panic(fmt.Sprintf("onnx: value name %q used twice in graph %q", name, g.name))
	}
	g.names[name] = true
}

func valueInfo(name string, dt DType, dims []any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		default:
			panic(fmt.Sprintf("onnx: dimension %v of %q must be int or string", d, name))
		}
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape}}}}
}

// Input declares a graph input. Each dim is an int (fixed) or a string
// (symbolic, e.g. "batch").
func (g *Graph) Input(name string, dt DType, dims ...any) Value {
	g.claim(name)
	g.inputs = append(g.inputs, valueInfo(name, dt, dims))
	return Value(name)
}

// Output declares v as a graph output called name, adding an Identity node
// when the names differ. Dims may be nil to leave the shape unstated.
func (g *Graph) Output(v Value, name string, dt DType, dims ...any) {
	if string(v) != name {
		g.claim(name)
		g.nodes = append(g.nodes, &onnxpb.NodeProto{OpType: "Identity", Input: []string{string(v)}, Output: []string{name}, Name: name})
	}
	g.outputs = append(g.outputs, valueInfo(name, dt, dims))
}

// Initializer adds a float32 constant tensor stored with the model, such as a
// weight matrix. On little-endian machines the graph refers to data without
// copying it (model weights are large), so data must not change until the
// graph is serialised or its session created.
func (g *Graph) Initializer(name string, shape []int, data []float32) Value {
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("onnx: initializer %q: shape %v holds %d values, got %d", name, shape, n, len(data)))
	}
	g.claim(name)
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, Dims: dims64(shape), DataType: int32(Float), RawData: floatbits.Bytes(data)})
	return Value(name)
}

// ConstI64 is a 1-D int64 constant, shared between uses of the same values.
func (g *Graph) ConstI64(vals ...int64) Value {
	key := fmt.Sprint("i64", vals)
	if v, ok := g.consts[key]; ok {
		return v
	}
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, Dims: []int64{int64(len(vals))}, DataType: int32(Int64), Int64Data: vals})
	g.consts[key] = Value(name)
	return Value(name)
}

// ScalarI64 is a 0-D int64 constant.
func (g *Graph) ScalarI64(v int64) Value {
	key := fmt.Sprint("si64", v)
	if c, ok := g.consts[key]; ok {
		return c
	}
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, DataType: int32(Int64), Int64Data: []int64{v}})
	g.consts[key] = Value(name)
	return Value(name)
}

// ScalarF32 is a 0-D float32 constant.
func (g *Graph) ScalarF32(v float32) Value {
	key := fmt.Sprint("sf32", math.Float32bits(v))
	if c, ok := g.consts[key]; ok {
		return c
	}
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, DataType: int32(Float), FloatData: []float32{v}})
	g.consts[key] = Value(name)
	return Value(name)
}

// ConstF32 is a float32 constant of the given shape, not shared.
func (g *Graph) ConstF32(shape []int, data []float32) Value {
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("onnx: constant of shape %v holds %d values, got %d", shape, n, len(data)))
	}
	// fresh has claimed the name already, which Initializer would refuse.
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, Dims: dims64(shape), DataType: int32(Float), RawData: floatbits.Bytes(data)})
	return Value(name)
}

// Op adds a node with one output and returns it.
func (g *Graph) Op(op string, inputs []Value, attrs ...Attr) Value {
	return g.OpN(op, 1, inputs, attrs...)[0]
}

// OpN adds a node with n outputs. An empty Value in inputs is an omitted
// optional input.
func (g *Graph) OpN(op string, n int, inputs []Value, attrs ...Attr) []Value {
	node := &onnxpb.NodeProto{OpType: op, Attribute: attrs}
	for _, in := range inputs {
		node.Input = append(node.Input, string(in))
	}
	outs := make([]Value, n)
	for i := range outs {
		outs[i] = Value(g.fresh(op))
		node.Output = append(node.Output, string(outs[i]))
	}
	node.Name = node.Output[0]
	g.nodes = append(g.nodes, node)
	return outs
}

// Model wraps the graph in a ModelProto with the pinned opset.
func (g *Graph) Model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    irVersion,
		OpsetImport:  g.opsetImports(),
		ProducerName: "irl",
		Graph: &onnxpb.GraphProto{
			Name: g.name, Node: g.nodes, Initializer: g.inits, Input: g.inputs, Output: g.outputs,
		},
	}
}

// Marshal serialises the graph as an ONNX model.
func (g *Graph) Marshal() ([]byte, error) {
	b, err := proto.Marshal(g.Model())
	if err != nil {
		return nil, fmt.Errorf("onnx: serialising graph %q: %w", g.name, err)
	}
	return b, nil
}

// NumNodes is the number of nodes added so far.
func (g *Graph) NumNodes() int { return len(g.nodes) }

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, s := range shape {
		d[i] = int64(s)
	}
	return d
}

// Typed helpers. Shapes in comments use B batch, S sequence, D model width.

// Add is a + b with broadcasting.
func (g *Graph) Add(a, b Value) Value { return g.Op("Add", []Value{a, b}) }

// Sub is a - b with broadcasting.
func (g *Graph) Sub(a, b Value) Value { return g.Op("Sub", []Value{a, b}) }

// Mul is a * b with broadcasting.
func (g *Graph) Mul(a, b Value) Value { return g.Op("Mul", []Value{a, b}) }

// Div is a / b with broadcasting.
func (g *Graph) Div(a, b Value) Value { return g.Op("Div", []Value{a, b}) }

// Neg is -a.
func (g *Graph) Neg(a Value) Value { return g.Op("Neg", []Value{a}) }

// Exp is e^a.
func (g *Graph) Exp(a Value) Value { return g.Op("Exp", []Value{a}) }

// Log is ln a.
func (g *Graph) Log(a Value) Value { return g.Op("Log", []Value{a}) }

// Sqrt is √a.
func (g *Graph) Sqrt(a Value) Value { return g.Op("Sqrt", []Value{a}) }

// Erf is the error function.
func (g *Graph) Erf(a Value) Value { return g.Op("Erf", []Value{a}) }

// Cos is cos a.
func (g *Graph) Cos(a Value) Value { return g.Op("Cos", []Value{a}) }

// Sin is sin a.
func (g *Graph) Sin(a Value) Value { return g.Op("Sin", []Value{a}) }

// MatMul is numpy-style matmul with batch broadcasting.
func (g *Graph) MatMul(a, b Value) Value { return g.Op("MatMul", []Value{a, b}) }

// Gemm is op(a)·op(b) + c for 2-D a and b, where op transposes when asked;
// c may be "" for none. MLAS reads transposed operands in place, so this is
// the cheap way to compute x·Wᵀ and dyᵀ·x.
func (g *Graph) Gemm(a, b, c Value, transA, transB bool) Value {
	in := []Value{a, b}
	if c != "" {
		in = append(in, c)
	}
	flag := func(v bool) int64 {
		if v {
			return 1
		}
		return 0
	}
	return g.Op("Gemm", in, AttrInt("transA", flag(transA)), AttrInt("transB", flag(transB)))
}

// Transpose permutes axes.
func (g *Graph) Transpose(x Value, perm ...int64) Value {
	return g.Op("Transpose", []Value{x}, AttrInts("perm", perm...))
}

// Reshape reshapes x; 0 copies a dimension of x, -1 is inferred.
func (g *Graph) Reshape(x Value, shape ...int64) Value {
	return g.Op("Reshape", []Value{x, g.ConstI64(shape...)})
}

// ReshapeTo reshapes x to a shape computed in the graph.
func (g *Graph) ReshapeTo(x, shape Value) Value { return g.Op("Reshape", []Value{x, shape}) }

// Unsqueeze inserts size-1 axes.
func (g *Graph) Unsqueeze(x Value, axes ...int64) Value {
	return g.Op("Unsqueeze", []Value{x, g.ConstI64(axes...)})
}

// Squeeze removes size-1 axes.
func (g *Graph) Squeeze(x Value, axes ...int64) Value {
	return g.Op("Squeeze", []Value{x, g.ConstI64(axes...)})
}

// Concat joins values along axis.
func (g *Graph) Concat(axis int64, xs ...Value) Value {
	return g.Op("Concat", xs, AttrInt("axis", axis))
}

// Split cuts x along axis into pieces of the given sizes.
func (g *Graph) Split(x Value, axis int64, sizes ...int64) []Value {
	return g.OpN("Split", len(sizes), []Value{x, g.ConstI64(sizes...)}, AttrInt("axis", axis))
}

// Slice takes x[starts:ends] along axes (steps of 1).
func (g *Graph) Slice(x Value, starts, ends, axes []int64) Value {
	return g.Op("Slice", []Value{x, g.ConstI64(starts...), g.ConstI64(ends...), g.ConstI64(axes...)})
}

// Gather takes entries of data along axis at indices.
func (g *Graph) Gather(data, indices Value, axis int64) Value {
	return g.Op("Gather", []Value{data, indices}, AttrInt("axis", axis))
}

// Softmax is softmax along axis.
func (g *Graph) Softmax(x Value, axis int64) Value {
	return g.Op("Softmax", []Value{x}, AttrInt("axis", axis))
}

// LayerNorm normalises over the last axis and applies weight and bias.
func (g *Graph) LayerNorm(x, weight, bias Value, eps float32) Value {
	return g.Op("LayerNormalization", []Value{x, weight, bias}, AttrInt("axis", -1), AttrFloat("epsilon", eps))
}

// Cast converts x to dt.
func (g *Graph) Cast(x Value, dt DType) Value {
	return g.Op("Cast", []Value{x}, AttrInt("to", int64(dt)))
}

// Shape is the shape of x as a 1-D int64 tensor.
func (g *Graph) Shape(x Value) Value { return g.Op("Shape", []Value{x}) }

// Where picks a where cond is true, else b.
func (g *Graph) Where(cond, a, b Value) Value { return g.Op("Where", []Value{cond, a, b}) }

// ReduceSum sums over axes, keeping them when keep is true.
func (g *Graph) ReduceSum(x Value, keep bool, axes ...int64) Value {
	k := int64(0)
	if keep {
		k = 1
	}
	return g.Op("ReduceSum", []Value{x, g.ConstI64(axes...)}, AttrInt("keepdims", k))
}

// ReduceMean averages over axes (opset 17 takes axes as an attribute).
func (g *Graph) ReduceMean(x Value, keep bool, axes ...int64) Value {
	k := int64(0)
	if keep {
		k = 1
	}
	return g.Op("ReduceMean", []Value{x}, AttrInts("axes", axes...), AttrInt("keepdims", k))
}

// ReduceMax takes the maximum over axes.
func (g *Graph) ReduceMax(x Value, keep bool, axes ...int64) Value {
	k := int64(0)
	if keep {
		k = 1
	}
	return g.Op("ReduceMax", []Value{x}, AttrInts("axes", axes...), AttrInt("keepdims", k))
}

// GELU is the exact (erf) GELU, x·½(1+erf(x/√2)), as Pythia's "gelu". It is
// written in the node order of PyTorch's export (Div, Erf, Add, Mul, Mul),
// which ONNX Runtime fuses into one Gelu kernel (BiasGelu with a preceding
// bias Add).
func (g *Graph) GELU(x Value) Value {
	e := g.Erf(g.Div(x, g.ScalarF32(float32(math.Sqrt2))))
	return g.Mul(g.Mul(x, g.Add(e, g.ScalarF32(1))), g.ScalarF32(0.5))
}
