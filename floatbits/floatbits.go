package floatbits

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// LittleEndian tells whether the machine's memory order is little-endian, the
// order of safetensors and ONNX raw data.
var LittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Bytes returns x's values as little-endian bytes: a view of x's memory on a
// little-endian machine, a copy otherwise.
func Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	if LittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
	}
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// Int64Bytes is Bytes for int64 values.
func Int64Bytes(x []int64) []byte {
	if len(x) == 0 {
		return nil
	}
	if LittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 8*len(x))
	}
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

// View returns little-endian float32 bytes as []float32 sharing b's memory,
// when the machine is little-endian and b is 4-byte aligned; otherwise it
// returns a converted copy. len(b) must be a multiple of 4.
func View(b []byte) []float32 {
	if len(b) == 0 {
		return []float32{}
	}
	if LittleEndian && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
	}
	out := make([]float32, len(b)/4)
	Decode(out, b)
	return out
}

// Decode fills dst from little-endian float32 bytes, 4·len(dst) of them.
func Decode(dst []float32, src []byte) {
	if LittleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// HalfToFloat32 widens an IEEE 754 binary16 value exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp, man := uint32(h>>10)&0x1f, uint32(h&0x3ff)
	switch {
	case exp == 0x1f: // infinity, NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
	}
	f := float32(man) * 0x1p-24 // zero or subnormal, exact in float32
	if sign != 0 {
		f = -f
	}
	return f
}

// BF16ToFloat32 widens a bfloat16 value exactly: its bits are float32's top
// half.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToHalf rounds to the nearest IEEE binary16 value (ties to even).
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	frac := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		frac |= 0x800000
		shift := uint32(14 - exp)
		h := frac >> shift
		rem := frac & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}
