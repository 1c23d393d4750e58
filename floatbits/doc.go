// Package floatbits converts between float32 slices and the little-endian
// bytes that tensor files and ONNX hold, and widens half-precision values.
//
// Checkpoints are large, so on little-endian machines (amd64, arm64) the
// conversions are views that share memory rather than copies: a caller that
// keeps a view must keep the other side alive and unchanged.
package floatbits
