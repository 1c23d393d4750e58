package reward

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"irl/onnx"
	"irl/safetensors"
)

func TestMain(m *testing.M) {
	if os.Getenv(cmdHelperEnv) != "" {
		runCmdHelper()
	}
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

// byteTokenizer is testdata/roberta-bytes/tokenizer.json: <s> <pad> </s>
// <unk> (0–3), then byte b as id 4 + b, no merges, RobertaProcessing. So
// "ab" is [0, 4+'a', 4+'b', 2] for printable ASCII.
const byteTokenizer = "../testdata/roberta-bytes/tokenizer.json"

// byteID is the byteTokenizer id of byte b.
func byteID(b byte) int64 { return 4 + int64(b) }
