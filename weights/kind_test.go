package weights

import (
	"path/filepath"
	"testing"
)

// KindOf is the one rule: an .onnx suffix in any case is a file, the rest
// folders; Beside finds a model's own files for both.
func TestKindOf(t *testing.T) {
	for path, want := range map[string]Kind{"m/model.onnx": KindONNX, "M.ONNX": KindONNX, "m.Onnx": KindONNX,
		"pythia-70m": KindFolder, "run/final": KindFolder, "model.onnx.data": KindFolder, "onnx": KindFolder} {
		if got := KindOf(path); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
	if got := KindOf("a/m.onnx").Beside("a/m.onnx", "config.json"); got != filepath.Join("a", "config.json") {
		t.Errorf("beside an .onnx file: %s", got)
	}
	if got := KindOf("a").Beside("a", "tokenizer.json"); got != filepath.Join("a", "tokenizer.json") {
		t.Errorf("in a folder: %s", got)
	}
}
