package weights

import (
	"path/filepath"
	"strings"
)

// Kind is what a model path holds: a Hugging Face folder (config.json and
// weight files) or an exported ONNX graph (an .onnx file, its external
// data beside it as FILE.data, and maybe a config.json and a tokenizer.json
// in its folder).
type Kind int

const (
	// KindFolder is a Hugging Face model folder.
	KindFolder Kind = iota
	// KindONNX is an .onnx file.
	KindONNX
)

// KindOf is the one rule that tells the two apart: a path ending in .onnx,
// in any case, is an ONNX file; anything else is a folder. Every package
// asks it (or a handle that asked it once, neox.Source) rather than
// looking at the suffix itself.
func KindOf(path string) Kind {
	if strings.HasSuffix(strings.ToLower(path), ".onnx") {
		return KindONNX
	}
	return KindFolder
}

func (k Kind) String() string {
	if k == KindONNX {
		return "onnx"
	}
	return "folder"
}

// Beside is where a file of the model's own (config.json, tokenizer.json)
// lies: inside a Hugging Face folder, beside an .onnx file.
func (k Kind) Beside(model, name string) string {
	if k == KindONNX {
		return filepath.Join(filepath.Dir(model), name)
	}
	return filepath.Join(model, name)
}
