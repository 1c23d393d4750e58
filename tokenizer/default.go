package tokenizer

import (
	"os"

	"irl/weights"
)

// DefaultPath is where a model's tokenizer is looked for when --tokenizer is
// not given: tokenizer.json inside a model folder, or beside an .onnx file.
// Every command resolves --tokenizer through it.
func DefaultPath(model, flag string) string {
	if flag != "" {
		return flag
	}
	return weights.KindOf(model).Beside(model, "tokenizer.json")
}

// LoadFor loads the tokenizer of a model (see DefaultPath). With no
// --tokenizer flag and no tokenizer.json beside the model it returns nil and
// no error, so callers can fall back on pre-tokenized input.
func LoadFor(model, flag string) (*Tokenizer, error) {
	p := DefaultPath(model, flag)
	if flag == "" {
		if _, err := os.Stat(p); err != nil {
			return nil, nil
		}
	}
	return Load(p)
}
