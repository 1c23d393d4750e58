// Package onnxpb holds the Go types of the ONNX protobuf schema, generated
// from onnx.proto beside this file (go generate, with protoc). Package onnx
// builds graphs out of them and marshals them for ONNX Runtime; nothing else
// uses them directly.
package onnxpb
