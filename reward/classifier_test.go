package reward

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/rows"
)

func openClassifier(t *testing.T, model string, o Options) *ClassifierSource {
	t.Helper()
	if o.Session == (single) || o.Session.Threads == 0 {
		o.Session = single
	}
	s, err := OpenClassifier(model, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Pre-tokenized rows score −P(toxic) of torch's logits, softmax by hand;
// the folder and the .onnx file agree.
func TestClassifierMatchesReference(t *testing.T) {
	seqs, logits := referenceRows(t)
	want := softmaxToxic(logits)
	var samples []Sample
	for _, q := range seqs {
		samples = append(samples, Sample{IDs: q})
	}
	var got [][]float64
	for _, model := range []string{classifierFixture, filepath.Join(classifierFixture, "model.onnx")} {
		s := openClassifier(t, model, Options{BatchSize: 2, IDsOnly: true})
		r, p, l, err := s.ScoreDetailed(samples)
		if err != nil {
			t.Fatal(err)
		}
		for i := range samples {
			if math.Abs(p[i]-want[i]) > 1e-5 || r[i] != -p[i] {
				t.Errorf("%s row %d: reward %v prob %v, want prob %v", model, i, r[i], p[i], want[i])
			}
			for j := 0; j < 2; j++ {
				if math.Abs(float64(l[i][j]-logits[2*i+j])) > 1e-4 {
					t.Errorf("%s row %d logit %d: %v, want %v", model, i, j, l[i][j], logits[2*i+j])
				}
			}
		}
		got = append(got, p)
		if d := s.Describe(); d["label"] != "toxic" || d["labels"] != "neutral,toxic" || d["kind"] != "classifier" {
			t.Errorf("describe %v", d)
		}
	}
	for i := range got[0] {
		if math.Abs(got[0][i]-got[1][i]) > 1e-5 {
			t.Errorf("row %d: folder P %v, .onnx P %v", i, got[0][i], got[1][i])
		}
	}
	// Score is ScoreDetailed's rewards.
	s := openClassifier(t, classifierFixture, Options{IDsOnly: true})
	r, err := s.Score(samples)
	if err != nil || len(r) != len(samples) {
		t.Fatal(r, err)
	}
}

// Text is prompt + join + response with <s> … </s>: it scores as the ids
// made by hand; an empty text is <s></s>; another label gives 1 − P(toxic).
func TestClassifierText(t *testing.T) {
	tok := byteTokenizer
	s := openClassifier(t, classifierFixture, Options{Tokenizer: tok, Join: " | "})
	hand := func(text string) []int64 {
		ids := []int64{0}
		for i := 0; i < len(text); i++ {
			ids = append(ids, byteID(text[i]))
		}
		return append(ids, 2)
	}
	samples := []Sample{
		{Prompt: "Hi", Response: "there"},
		{Prompt: "", Response: ""},
		{IDs: hand("Hi | there")},
		{IDs: []int64{0, 2}},
	}
	r, err := s.Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	if r[0] != r[2] || r[1] != r[3] {
		t.Errorf("text and hand-made ids differ: %v", r)
	}
	if r[0] >= 0 || r[0] < -1 {
		t.Errorf("reward %v is not −P", r[0])
	}
	neutral := openClassifier(t, classifierFixture, Options{Tokenizer: tok, Join: " | ", Label: "neutral"})
	rn, err := neutral.Score(samples[:1])
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(-rn[0]-(1+r[0])) > 1e-6 {
		t.Errorf("P(neutral) %v, P(toxic) %v: not a softmax", -rn[0], -r[0])
	}
	// The default join is nothing, as in the paper's official code.
	glued := openClassifier(t, classifierFixture, Options{Tokenizer: tok})
	rg, _ := glued.Score([]Sample{{Prompt: "Hi", Response: "there"}, {IDs: hand("Hithere")}})
	if rg[0] != rg[1] {
		t.Errorf("default join: %v", rg)
	}
}

// The limit cuts text on the Truncate side with the specials kept, and
// under "error" refuses it, naming the sample; pre-tokenized ids are never
// cut; ids outside the vocabulary name their sample.
func TestClassifierLimits(t *testing.T) {
	tok := byteTokenizer
	long := strings.Repeat("x", 100) // 102 ids with the specials; the model covers 78
	row := map[string]any{RowField: 7}
	samples := []Sample{{Response: "ok"}, {Response: long, Fields: row}}

	right := openClassifier(t, classifierFixture, Options{Tokenizer: tok})
	r, err := right.Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	cut := append([]int64{0}, make([]int64, 76)...)
	for i := 1; i <= 76; i++ {
		cut[i] = byteID('x')
	}
	rc, _ := right.Score([]Sample{{IDs: append(cut, 2)}})
	if r[1] != rc[0] {
		t.Errorf("right truncation: %v, want %v", r[1], rc[0])
	}

	strict := openClassifier(t, classifierFixture, Options{Tokenizer: tok, Truncate: rows.TruncateError})
	bad := strict.Validate(samples)
	if len(bad) != 1 || bad[0].Index != 1 || bad[0].Row != "7" {
		t.Fatalf("validate: %v", bad)
	}
	_, err = strict.Score(samples)
	if err == nil || !strings.Contains(err.Error(), "sample 1 (row 7)") || !strings.Contains(err.Error(), "100 tokens") {
		t.Errorf("too long under error: %v", err)
	}

	short := openClassifier(t, classifierFixture, Options{Tokenizer: tok, MaxLength: 10})
	if _, err := short.Score([]Sample{{IDs: make([]int64, 11)}}); err == nil || !strings.Contains(err.Error(), "not cut") {
		t.Errorf("long ids: %v", err)
	}
	if _, err := short.Score([]Sample{{IDs: []int64{0}}, {IDs: []int64{0, 600, 2}}}); err == nil || !strings.Contains(err.Error(), "sample 1") || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("id outside the vocabulary: %v", err)
	}
	if _, err := OpenClassifier(classifierFixture, Options{Session: single, MaxLength: 100}); err == nil || !strings.Contains(err.Error(), "78") {
		t.Errorf("max length past the positions: %v", err)
	}
	// No tokenizer, for ids only: ids still score, text cannot.
	none := openClassifier(t, classifierFixture, Options{IDsOnly: true})
	if _, err := none.Score([]Sample{{IDs: []int64{0, 2}}}); err != nil {
		t.Error(err)
	}
	if _, err := none.Score([]Sample{{Response: "x"}}); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("text without a tokenizer: %v", err)
	}
}

// A classifier whose folder has no tokenizer.json, with none given, is
// refused when it is opened, once, naming the file and the way out; not
// at every text it is asked to score.
func TestClassifierWithoutTokenizerRefusedAtOpen(t *testing.T) {
	_, err := OpenClassifier(classifierFixture, Options{Session: single})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(classifierFixture, "tokenizer.json")) || !strings.Contains(err.Error(), "give one, or rows of input_ids") {
		t.Errorf("no tokenizer: %v", err)
	}
	_, err = Parse("classifier:"+classifierFixture, Options{Session: single, Tokenizer: "/no/such/tokenizer.json"})
	if err == nil || !strings.Contains(err.Error(), "/no/such/tokenizer.json") {
		t.Errorf("a missing --tokenizer: %v", err)
	}
	s := openClassifier(t, classifierFixture, Options{Tokenizer: byteTokenizer})
	if bad := s.Validate([]Sample{{Response: "a"}, {Response: "b"}}); len(bad) != 0 {
		t.Errorf("with a tokenizer: %v", bad)
	}
}

func TestClassifierRefuses(t *testing.T) {
	_, err := OpenClassifier(classifierFixture, Options{Session: single, Label: "hateful"})
	if err == nil || !strings.Contains(err.Error(), "neutral") || !strings.Contains(err.Error(), "toxic") {
		t.Errorf("unknown label: %v", err)
	}
	// A config of another model type.
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(classifierFixture, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	json.Unmarshal(data, &cfg)
	cfg["model_type"] = "gpt_neox"
	data, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
	weights, _ := os.ReadFile(filepath.Join(classifierFixture, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644)
	if _, err := Parse("classifier:"+dir, Options{Session: single}); err == nil || !strings.Contains(err.Error(), "gpt_neox") {
		t.Errorf("another model type: %v", err)
	}
}
