package weights

import (
	"fmt"
	"math"
	"unsafe"
)

// CheckFinite returns an error naming name and the first element of data
// that is NaN or ±Inf, or nil when every element is finite. A checkpoint
// with such a weight loads, runs and prints NaN everywhere, so loaders check
// every parameter with this.
//
// It reads two float32s at a time as one uint64 and tests their exponents
// without a branch per element: an exponent of all ones (NaN, ±Inf) is the
// only one that carries out of its field when the exponent's lowest bit is
// added. Only a block that holds a bad value is searched element by element.
func CheckFinite(name string, data []float32) error {
	const block = 1024 // elements; a multiple of 8
	for lo := 0; lo < len(data); lo += block {
		hi := min(lo+block, len(data))
		if !blockFinite(data[lo:hi]) {
			for i := lo; i < hi; i++ {
				if b := math.Float32bits(data[i]); b&0x7f800000 == 0x7f800000 {
					return fmt.Errorf("%s: element %d is %v; weights must be finite", name, i, data[i])
				}
			}
		}
	}
	return nil
}

// blockFinite reports whether every element of x is finite.
func blockFinite(x []float32) bool {
	const (
		exp   = 0x7f800000_7f800000 // both exponents
		carry = 0x00800000_00800000 // the lowest exponent bit of both
		out   = 0x80000000_80000000 // where a full exponent carries to
	)
	var acc uint64
	// uint64 loads want 8-byte alignment (a tensor inside a safetensors
	// file may start at any multiple of 4).
	for len(x) > 0 && uintptr(unsafe.Pointer(&x[0]))%8 != 0 {
		acc |= uint64(math.Float32bits(x[0])&0x7f800000 + 0x00800000)
		x = x[1:]
	}
	n := len(x) &^ 7
	if n > 0 {
		// Pairs of float32 as uint64: little- or big-endian, each half is
		// one whole float32, which is all the test needs. The low half's
		// carry lands in the high half's mantissa, which the mask cleared.
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&x[0])), n/2)
		var a0, a1, a2, a3 uint64
		for i := 0; i+4 <= len(w); i += 4 {
			a0 |= w[i]&exp + carry
			a1 |= w[i+1]&exp + carry
			a2 |= w[i+2]&exp + carry
			a3 |= w[i+3]&exp + carry
		}
		acc = a0 | a1 | a2 | a3
	}
	for _, v := range x[n:] {
		acc |= uint64(math.Float32bits(v)&0x7f800000 + 0x00800000)
	}
	return acc&out == 0
}

// CheckOutput refuses a result that is not finite before it is written,
// naming the first bad entry by its index along each dimension of shape
// ([row, position, …] for model outputs), so a broken model fails at the
// command that ran it rather than at a later one that reads its output.
func CheckOutput(name string, shape []int, data []float32) error {
	if CheckFinite(name, data) == nil {
		return nil
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			idx := make([]int, len(shape))
			rest := i
			for d := len(shape) - 1; d >= 0; d-- {
				idx[d] = rest % shape[d]
				rest /= shape[d]
			}
			return fmt.Errorf("%s%v is %v: the outputs are not finite (check the model's weights and config)", name, idx, v)
		}
	}
	return nil
}
