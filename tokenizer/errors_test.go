package tokenizer

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("no/such/tokenizer.json")
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no/such/tokenizer.json") {
		t.Errorf("Load(missing) error = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	// tiny returns the tiny tokenizer as JSON with one section replaced.
	tiny := func(section string, value any) string {
		data, err := json.Marshal(tinyTokenizer(map[string]any{section: value}))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	model := func(change map[string]any) map[string]any {
		m := tinyTokenizer(nil)["model"].(map[string]any)
		for k, v := range change {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }

	for _, tc := range []struct {
		name, content string
		want          []string // substrings of the error, besides the path
	}{
		{"empty file", "", []string{"invalid JSON", "unexpected end"}},
		{"truncated", `{"model": {"type": "BPE",`, []string{"invalid JSON at line 1"}},
		{"syntax error position", "{\n  \"model\": {\n    \"type\": BPE\n  }\n}", []string{"line 3, column 13", "invalid character 'B'"}},
		{"not an object", `[1, 2]`, []string{"expected a JSON object"}},
		{"missing model", `{"pre_tokenizer": {"type": "ByteLevel"}}`, []string{"model: missing"}},
		{"WordPiece model", tiny("model", map[string]any{"type": "WordPiece", "vocab": map[string]int{"a": 0}}),
			[]string{"model.type", `unsupported model type "WordPiece"`}},
		{"Unigram model", tiny("model", map[string]any{"type": "Unigram", "vocab": [][]any{{"a", -1.5}}}),
			[]string{"model.type", `"Unigram"`}},
		{"model without type or merges", tiny("model", map[string]any{"vocab": map[string]int{"a": 0}}), []string{"model.type: missing"}},
		{"vocab of wrong type", tiny("model", model(map[string]any{"vocab": map[string]string{"a": "x"}})),
			[]string{"model.vocab", "expected a number", "string"}},
		{"empty vocab", tiny("model", model(map[string]any{"vocab": map[string]int{}})), []string{"model.vocab: missing or empty"}},
		{"negative id", tiny("model", model(map[string]any{"vocab": map[string]int{"a": -3}})), []string{"model.vocab", `"a" has id -3`}},
		{"duplicate id", tiny("model", model(map[string]any{"vocab": map[string]int{"a": 0, "b": 0}})), []string{"model.vocab", `"a" and "b" both have id 0`}},
		{"merge with three parts", tiny("model", model(map[string]any{"merges": []string{"a b c"}})), []string{"model.merges[0]", "two tokens"}},
		{"merge not a pair", tiny("model", model(map[string]any{"merges": []any{"a b", []string{"a"}}})), []string{"model.merges[1]"}},
		{"merge out of vocab", tiny("model", model(map[string]any{"merges": []string{"a b", "ab x", "xy z"}})), []string{"model.merges[1]", `merged token "abx"`}},
		{"merge token out of vocab", tiny("model", model(map[string]any{"merges": []string{"a Q̃"}})), []string{"model.merges[0]", `"Q̃" is not in model.vocab`}},
		{"dropout", tiny("model", model(map[string]any{"dropout": 0.1})), []string{"model.dropout"}},
		{"subword prefix", tiny("model", model(map[string]any{"continuing_subword_prefix": "##"})), []string{"model.continuing_subword_prefix"}},
		{"byte fallback", tiny("model", model(map[string]any{"byte_fallback": true})), []string{"model.byte_fallback"}},
		{"unk not in vocab", tiny("model", model(map[string]any{"unk_token": "<unk>"})), []string{"model.unk_token", `"<unk>"`}},
		{"missing pre_tokenizer", tiny("pre_tokenizer", nil), []string{"pre_tokenizer: missing"}},
		{"Metaspace pre_tokenizer", tiny("pre_tokenizer", map[string]any{"type": "Metaspace"}),
			[]string{"pre_tokenizer.type", `"Metaspace"`}},
		{"Sequence pre_tokenizer", tiny("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{}}),
			[]string{"pre_tokenizer.type", `"Sequence"`}},
		{"Lowercase normalizer", tiny("normalizer", map[string]any{"type": "Lowercase"}), []string{"normalizer.type", `"Lowercase"`}},
		{"nested normalizer", tiny("normalizer", map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFC"}, map[string]any{"type": "Strip"}}}), []string{"normalizer.normalizers[1].type", `"Strip"`}},
		{"WordPiece decoder", tiny("decoder", map[string]any{"type": "WordPiece"}), []string{"decoder.type", `"WordPiece"`}},
		{"added token without id", tiny("added_tokens", []any{map[string]any{"content": "<x>"}}), []string{"added_tokens[0].id: missing"}},
		{"added token without content", tiny("added_tokens", []any{map[string]any{"id": 300}}), []string{"added_tokens[0].content"}},
		{"added token id of wrong type", tiny("added_tokens", raw(`[{"id": 300, "content": "<a>"}, {"id": "301", "content": "<b>"}]`)),
			[]string{"added_tokens[1].id", "expected a number"}},
		{"duplicate added content", tiny("added_tokens", []any{map[string]any{"id": 300, "content": "<x>"}, map[string]any{"id": 301, "content": "<x>"}}),
			[]string{"added_tokens[1].content", `"<x>"`}},
		{"duplicate added id", tiny("added_tokens", []any{map[string]any{"id": 300, "content": "<x>"}, map[string]any{"id": 300, "content": "<y>"}}),
			[]string{"added_tokens[1].id", "300"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			tok, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded (vocab size %d)", tok.VocabSize())
			}
			for _, want := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
