package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"irl/floatbits"
	"irl/onnx/onnxpb"
)

// BFloat16 is the bfloat16 element type (float32's top 16 bits), which
// graphs run in half precision may use instead of Float16: the same range
// as float32, fewer mantissa bits.
const BFloat16 DType = DType(onnxpb.TensorProto_BFLOAT16)

// Float32ToBF16 rounds f to the nearest bfloat16 value (ties to even),
// keeping NaNs NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // a quiet NaN of the same sign
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// halfBytes is data rounded to dt (Float16 or BFloat16), little-endian.
func halfBytes(data []float32, dt DType) []byte {
	out := make([]byte, 2*len(data))
	for i, f := range data {
		var h uint16
		if dt == BFloat16 {
			h = Float32ToBF16(f)
		} else {
			h = floatbits.Float32ToHalf(f)
		}
		binary.LittleEndian.PutUint16(out[2*i:], h)
	}
	return out
}

// InitializerAs is Initializer with the values stored as dt: Float (data
// referred to, as Initializer does), or Float16 or BFloat16 (rounded once,
// here, into a copy), so that a graph run in half precision reads its
// weights in that type without a Cast at every run.
func (g *Graph) InitializerAs(name string, shape []int, data []float32, dt DType) Value {
	switch dt {
	case Float:
		return g.Initializer(name, shape, data)
	case Float16, BFloat16:
	default:
		panic(fmt.Sprintf("onnx: initializer %q: element type %d is not a float type", name, dt))
	}
	if n := numel(shape); n != len(data) {
		panic(fmt.Sprintf("onnx: initializer %q: shape %v holds %d values, got %d", name, shape, n, len(data)))
	}
	g.claim(name)
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, Dims: dims64(shape), DataType: int32(dt), RawData: halfBytes(data, dt)})
	return Value(name)
}

// ScalarAs is a 0-D constant of element type dt (Float, Float16 or
// BFloat16), shared between uses of the same value and type.
func (g *Graph) ScalarAs(v float32, dt DType) Value {
	if dt == Float {
		return g.ScalarF32(v)
	}
	key := fmt.Sprint("s", dt, math.Float32bits(v))
	if c, ok := g.consts[key]; ok {
		return c
	}
	name := g.fresh("const")
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: name, DataType: int32(dt), RawData: halfBytes([]float32{v}, dt)})
	g.consts[key] = Value(name)
	return Value(name)
}
