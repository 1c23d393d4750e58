// Package safetensors reads and writes the safetensors format used by Hugging
// Face checkpoints and by every tensor file this project exchanges with other
// tools (model inputs, features, rewards).
//
// A file is an 8-byte little-endian header length, a JSON header mapping tensor
// names to {dtype, shape, data_offsets} plus an optional "__metadata__" map of
// strings, and the raw little-endian tensor bytes. Every error names the file
// and, where there is one, the tensor.
package safetensors
