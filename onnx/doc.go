// Package onnx builds ONNX graphs from Go and runs them with ONNX Runtime.
//
// A Graph collects nodes through typed helpers (MatMul, LayerNorm, Softmax, …)
// that each return the name of the value they produce, so model code reads as
// a sequence of tensor operations. Helpers for ONNX Runtime's contrib
// operators (contrib.go: GroupQueryAttention, SkipLayerNorm, RotaryEmbedding,
// …) add their domain to the graph's opset imports. Model serialises the
// graph with a pinned opset; NewSession hands the bytes to ONNX Runtime on
// CPU or CUDA.
//
// Ownership follows onnxruntime_go: whatever is created with New… must be
// destroyed with Destroy, and tests check that memory stays flat over many
// sessions.
package onnx
