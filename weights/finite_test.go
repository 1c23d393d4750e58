package weights

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestCheckFinite(t *testing.T) {
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc0dead), math.Float32frombits(0xff800001)}
	good := []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1, -2.5}
	for _, n := range []int{1, 2, 7, 8, 9, 1023, 1024, 1025, 5000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = good[i%len(good)]
		}
		if err := CheckFinite("w", x); err != nil {
			t.Fatalf("n=%d: finite data refused: %v", n, err)
		}
		// Every position, through every alignment the block loop sees.
		for at := 0; at < n; at++ {
			for _, b := range bad {
				y := append([]float32(nil), x...)
				y[at] = b
				err := CheckFinite("file.safetensors: tensor \"w\"", y)
				if err == nil {
					t.Fatalf("n=%d: %v at %d accepted", n, b, at)
				}
				if want := "element " + strconv.Itoa(at) + " is"; !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "file.safetensors: tensor \"w\": ") {
					t.Fatalf("n=%d, bad at %d: %v", n, at, err)
				}
			}
			if n > 1100 && at > 20 {
				at += 97 // enough positions for the long cases
			}
		}
		// The first of several bad values is reported; unaligned starts too.
		if n >= 9 {
			y := append([]float32(nil), x...)
			y[n-1], y[3] = float32(math.NaN()), float32(math.Inf(1))
			if err := CheckFinite("w", y[1:]); err == nil || !strings.Contains(err.Error(), "element 2 is +Inf") {
				t.Errorf("n=%d: %v", n, err)
			}
		}
	}
	if err := CheckFinite("w", nil); err != nil {
		t.Error(err)
	}
}

// checkFiniteNaive is the obvious check, for comparison.
func checkFiniteNaive(data []float32) int {
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// checkFiniteBits tests each element's exponent bits.
func checkFiniteBits(data []float32) int {
	for i, v := range data {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return i
		}
	}
	return -1
}

// BenchmarkCheckFinite410m times the load-time check on as many float32
// values as pythia-410m has parameters (405,334,016), all finite, so the
// whole slice is read. The naive and per-element variants are there to
// show what the blocked check saves.
func BenchmarkCheckFinite410m(b *testing.B) {
	const n = 405_334_016
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%1000) * 1e-3
	}
	run := func(name string, f func([]float32) bool) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				if !f(x) {
					b.Fatal("finite data refused")
				}
			}
		})
	}
	run("CheckFinite", func(x []float32) bool { return CheckFinite("w", x) == nil })
	run("bits", func(x []float32) bool { return checkFiniteBits(x) < 0 })
	run("math.IsNaN", func(x []float32) bool { return checkFiniteNaive(x) < 0 })
}

// CheckOutput names the first bad entry by its index in each dimension.
func TestCheckOutput(t *testing.T) {
	data := make([]float32, 2*3*4)
	if err := CheckOutput("logits", []int{2, 3, 4}, data); err != nil {
		t.Fatal(err)
	}
	data[1*12+2*4+3] = float32(math.Inf(-1))
	data[1*12+2*4+1] = float32(math.NaN())
	err := CheckOutput("logits", []int{2, 3, 4}, data)
	if err == nil || !strings.HasPrefix(err.Error(), "logits[1 2 1] is NaN") {
		t.Errorf("got %v, want logits[1 2 1] is NaN", err)
	}
}
