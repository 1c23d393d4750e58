// Package onnxpb holds the Go types of the ONNX protobuf schema, generated from
// onnx.proto beside this file.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
