package floatbits

import (
	"math"
	"testing"
)

func TestHalfConversions(t *testing.T) {
	// Hand-checked IEEE half encodings.
	cases := map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: float32(math.Ldexp(1, -24)), 0x3555: 0.33325195}
	for h, want := range cases {
		if got := HalfToFloat32(h); got != want {
			t.Errorf("half %#04x = %v, want %v", h, got, want)
		}
		if back := Float32ToHalf(want); back != h {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", want, back, h)
		}
	}
	if Float32ToHalf(1.0/3) != 0x3555 {
		t.Errorf("1/3 rounds to %#04x", Float32ToHalf(1.0/3))
	}
}

// Every half value against the format's definition, and back.
func TestHalfExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, man := int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch e {
		case 0:
			want = sign * man * math.Pow(2, -24)
		case 31:
			want = sign * math.Inf(1)
			if man != 0 {
				want = math.NaN()
			}
		default:
			want = sign * (1 + man/1024) * math.Pow(2, float64(e-15))
		}
		got := HalfToFloat32(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("half %#04x = %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("half %#04x = %v, want %v", h, got, want)
		}
		if back := Float32ToHalf(got); back != h {
			t.Fatalf("Float32ToHalf(%v) = %#04x, want %#04x", got, back, h)
		}
	}
}

func TestBF16(t *testing.T) {
	if BF16ToFloat32(0x3f80) != 1 || BF16ToFloat32(0xc040) != -3 {
		t.Error("bf16 widening")
	}
}

func TestViews(t *testing.T) {
	x := []float32{1, -2.5, float32(math.Inf(1)), 3e-40}
	b := Bytes(x)
	if len(b) != 16 {
		t.Fatalf("%d bytes", len(b))
	}
	y := View(b)
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			t.Errorf("view [%d] = %v, want %v", i, y[i], x[i])
		}
	}
	z := make([]float32, 4)
	Decode(z, b)
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(z[i]) {
			t.Errorf("decode [%d] = %v, want %v", i, z[i], x[i])
		}
	}
	// A misaligned buffer still reads right, as a copy.
	mis := append([]byte{0}, b...)[1:]
	w := View(mis)
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(w[i]) {
			t.Errorf("misaligned view [%d] = %v, want %v", i, w[i], x[i])
		}
	}
	if LittleEndian {
		x[0] = 7
		if y[0] != 7 {
			t.Error("Bytes/View copy on a little-endian machine: want shared memory")
		}
	}
	if len(Int64Bytes([]int64{1, 2})) != 16 {
		t.Error("Int64Bytes length")
	}
}
