package onnxbench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"irl/onnx"
)

// MatMulPeak measures ONNX Runtime's float32 MatMul throughput on this
// machine, in FLOP/s, for an (n,n)×(n,n) product: the yardstick that
// benchmarks report their fraction of. It runs for at least minTime.
func MatMulPeak(n int, o onnx.Options, minTime time.Duration) (float64, error) {
	g := onnx.NewGraph("matmul_peak")
	a := g.Input("a", onnx.Float, n, n)
	b := g.Initializer("b", []int{n, n}, randomF32(n*n, 1))
	g.Output(g.MatMul(a, b), "c", onnx.Float, n, n)
	model, err := g.Marshal()
	if err != nil {
		return 0, err
	}
	s, err := onnx.NewSession(model, "", []string{"a"}, []string{"c"}, o)
	if err != nil {
		return 0, err
	}
	defer s.Destroy()
	in, err := onnx.TensorF32(randomF32(n*n, 2), int64(n), int64(n))
	if err != nil {
		return 0, err
	}
	defer in.Destroy()
	out, err := onnx.NewEmptyF32(int64(n), int64(n))
	if err != nil {
		return 0, err
	}
	defer out.Destroy()
	run := func() error { return s.RunInto([]onnx.ORTValue{in}, []onnx.ORTValue{out}) }
	for i := 0; i < 3; i++ { // warm up: thread pool, prepacking
		if err := run(); err != nil {
			return 0, fmt.Errorf("onnxbench: MatMul peak: %w", err)
		}
	}
	start := time.Now()
	iters := 0
	for time.Since(start) < minTime || iters < 5 {
		if err := run(); err != nil {
			return 0, err
		}
		iters++
	}
	return 2 * float64(n) * float64(n) * float64(n) * float64(iters) / time.Since(start).Seconds(), nil
}

func randomF32(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// PeakSizes are the square sizes MatMulBestPeak tries.
var PeakSizes = []int{256, 512, 1024, 2048}

// MatMulBestPeak is the highest MatMulPeak over PeakSizes, each measured for
// perSize: the honest denominator for "fraction of peak", since the best size
// depends on the machine's caches.
func MatMulBestPeak(o onnx.Options, perSize time.Duration) (float64, error) {
	best := 0.0
	for _, n := range PeakSizes {
		f, err := MatMulPeak(n, o, perSize)
		if err != nil {
			return 0, err
		}
		best = max(best, f)
	}
	return best, nil
}
