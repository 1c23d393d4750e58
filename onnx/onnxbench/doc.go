// Package onnxbench measures ONNX Runtime for benchmarks and device checks,
// not for results: the machine's float32 MatMul peak, the yardstick every
// throughput figure is reported against ("tokens/s, and the fraction of
// MatMul FLOP/s in the same run"), and the profiler's per-operator table.
// Only tests, benchmarks and tools import it.
package onnxbench
