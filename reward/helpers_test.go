package reward

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"irl/onnx"
	"irl/safetensors"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		// A skipped model test proves nothing: fail loudly.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

var single = onnx.Options{Threads: 1}

// classifierFixture is a two-layer RobertaForSequenceClassification
// (labels neutral, toxic; vocabulary 600; 78 tokens) with its torch export
// and torch's logits for a padded batch.
const classifierFixture = "../testdata/tiny-roberta-classifier"

// referenceRows returns the fixture's reference rows without padding and
// torch's logits for them.
func referenceRows(t *testing.T) ([][]int64, []float32) {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(classifierFixture, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *safetensors.Tensor {
		x, err := f.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	it := get("input_ids")
	ids, _ := it.Int64s()
	mask, _ := get("attention_mask").Int64s()
	logits, _ := get("logits").Float32s()
	b, s := it.Shape[0], it.Shape[1]
	out := make([][]int64, b)
	for i := range out {
		for j := 0; j < s; j++ {
			if mask[i*s+j] == 1 {
				out[i] = append(out[i], ids[i*s+j])
			}
		}
	}
	return out, logits
}

// softmaxToxic is P(toxic) = softmax(logits)[1] by hand, per row of two.
func softmaxToxic(logits []float32) []float64 {
	out := make([]float64, len(logits)/2)
	for i := range out {
		a, b := float64(logits[2*i]), float64(logits[2*i+1])
		out[i] = math.Exp(b) / (math.Exp(a) + math.Exp(b))
	}
	return out
}

// byteTokenizer writes a RoBERTa-style tokenizer.json small enough for the
// fixture's vocabulary of 600: <s> <pad> </s> <unk> (0–3), then one token
// per byte (4 + its position in GPT-2's byte alphabet order), no merges, and
// RobertaProcessing. So "ab" is [0, 4+'a', 4+'b', 2] for printable ASCII.
func byteTokenizer(t *testing.T, dir string) string {
	t.Helper()
	vocab := map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	for b, r := range byteAlphabet() {
		vocab[string(r)] = 4 + b
	}
	added := []map[string]any{}
	for i, c := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		added = append(added, map[string]any{"id": i, "content": c, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added, "normalizer": nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0}, "trim_offsets": true, "add_prefix_space": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "vocab": vocab, "merges": []any{}},
	}
	data, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// byteAlphabet is GPT-2's bytes_to_unicode, indexed by byte: printable
// bytes stand for themselves, the others for 256, 257, … in byte order.
func byteAlphabet() []rune {
	out := make([]rune, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			out[b] = rune(b)
		} else {
			out[b] = rune(256 + n)
			n++
		}
	}
	return out
}

// byteID is the byteTokenizer id of byte b.
func byteID(b byte) int64 { return 4 + int64(b) }
