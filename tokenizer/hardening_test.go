package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Crafted files: each must give an error that names the file and the
// culprit, without allocating for what the file claims.

func TestHugeIDs(t *testing.T) {
	vocabWith := func(tok string, id int64) map[string]any {
		m := tinyTokenizer(nil)["model"].(map[string]any)
		vocab := map[string]int64{}
		for k, v := range m["vocab"].(map[string]int) {
			vocab[k] = int64(v)
		}
		vocab[tok] = id
		m["vocab"] = vocab
		return tinyTokenizer(map[string]any{"model": m})
	}
	// The tiny tokenizer has 258 tokens in model.vocab, so with one more
	// the limit is 259 + 1024 = 1283.
	for _, tc := range []struct {
		name string
		file map[string]any
		want []string
	}{
		{"vocab id near 2^31", vocabWith("<big>", 1<<31-2), []string{"model.vocab", `token "<big>"`, "id 2147483646", "beyond the 1283 ids"}},
		{"vocab id 2^40", vocabWith("<big>", 1<<40), []string{"model.vocab", `"<big>"`, "1099511627776"}},
		{"vocab id at the limit", vocabWith("<big>", 1283), []string{`"<big>"`, "1283"}},
		{"negative vocab id", vocabWith("<neg>", -1), []string{"model.vocab", `"<neg>"`, "id -1", "negative"}},
		{"added id near 2^31", tinyTokenizer(map[string]any{"added_tokens": []map[string]any{
			{"id": 1<<31 - 2, "content": "<huge>", "special": true}}}),
			[]string{"added_tokens[0].id", `token "<huge>"`, "id 2147483646"}},
		{"negative added id", tinyTokenizer(map[string]any{"added_tokens": []map[string]any{
			{"id": 300, "content": "<a>"}, {"id": -5, "content": "<neg>"}}}),
			[]string{"added_tokens[1].id", `"<neg>"`, "id -5", "negative"}},
		{"added id beyond int64", tinyTokenizer(map[string]any{"added_tokens": json.RawMessage(
			`[{"id": 99999999999999999999, "content": "<x>"}]`)}), []string{"added_tokens[0].id", "expected a number"}},
		{"fractional id", tinyTokenizer(map[string]any{"added_tokens": json.RawMessage(
			`[{"id": 300.5, "content": "<x>"}]`)}), []string{"added_tokens[0].id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeJSON(t, tc.file)
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

	// Just below the limit is fine: ids may leave gaps.
	tok := loadJSON(t, vocabWith("<big>", 1282))
	if tok.VocabSize() != 1283 {
		t.Errorf("VocabSize() = %d, want 1283", tok.VocabSize())
	}
	tok = loadJSON(t, tinyTokenizer(map[string]any{"added_tokens": []map[string]any{{"id": 1282, "content": "<a>"}}}))
	if id, ok := tok.TokenID("<a>"); !ok || id != 1282 {
		t.Errorf("TokenID = %d, %v", id, ok)
	}
}

func TestParse(t *testing.T) {
	data, err := json.Marshal(specialTiny(map[string]any{
		"type": "RobertaProcessing", "sep": []any{"[SEP]", 259}, "cls": []any{"[CLS]", 258}}))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse("tiny.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(tok.EncodeSpecial("abc")); got != "[258 257 259]" {
		t.Errorf(`EncodeSpecial("abc") = %s`, got)
	}
	_, err = Parse("from-memory", []byte(`{"model": {"type": "BPE", "vocab": {"a": 5000000}}}`))
	if err == nil || !strings.HasPrefix(err.Error(), "load tokenizer from-memory: model.vocab") || !strings.Contains(err.Error(), `"a" has id 5000000`) {
		t.Errorf("Parse error = %v", err)
	}
	for _, data := range []string{"", "null", "{}", "[]", `"x"`, "1e999", `{"model": null}`, "\xff"} {
		if _, err := Parse("x.json", []byte(data)); err == nil || !strings.Contains(err.Error(), "x.json") {
			t.Errorf("Parse(%q) error = %v", data, err)
		}
	}
}

// Nesting: encoding/json refuses JSON deeper than 10000 levels, and Sequences
// of normalizers and post-processors stop at maxNesting.
func TestDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	if _, err := Parse("deep.json", []byte(`{"version": `+deep+`}`)); err == nil || !strings.Contains(err.Error(), "deep.json") {
		t.Errorf("20000 nested arrays: error %v", err)
	}

	nest := func(leaf any, key string, levels int) any {
		v := leaf
		for range levels {
			v = map[string]any{"type": "Sequence", key: []any{v}}
		}
		return v
	}
	path := writeJSON(t, tinyTokenizer(map[string]any{"normalizer": nest(map[string]any{"type": "NFC"}, "normalizers", 40)}))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "nested more than 16 deep") || !strings.Contains(err.Error(), "normalizer.normalizers[0]") {
		t.Errorf("40 nested normalizers: error %v", err)
	}
	path = writeJSON(t, specialTiny(nest(map[string]any{"type": "ByteLevel"}, "processors", 40)))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "nested more than 16 deep") || !strings.Contains(err.Error(), "post_processor.processors[0]") {
		t.Errorf("40 nested post-processors: error %v", err)
	}
	// Real files nest one level; a few are fine.
	loadJSON(t, tinyTokenizer(map[string]any{"normalizer": nest(map[string]any{"type": "NFC"}, "normalizers", 5)}))
	loadJSON(t, specialTiny(nest(map[string]any{"type": "ByteLevel"}, "processors", 5)))
}

// Merges and other references to tokens that do not exist are errors, never
// panics; so are merges that would loop or repeat.
func TestCraftedModels(t *testing.T) {
	model := func(change map[string]any) map[string]any {
		m := tinyTokenizer(nil)["model"].(map[string]any)
		for k, v := range change {
			m[k] = v
		}
		return tinyTokenizer(map[string]any{"model": m})
	}
	for _, tc := range []struct {
		name string
		file map[string]any
		want string
	}{
		{"merge of unknown tokens", model(map[string]any{"merges": []string{"x y"}}), `model.merges[0]: merged token "xy"`},
		{"merge of unknown left", model(map[string]any{"merges": []string{"zz a"}}), `model.merges[0]: token "zz"`},
		{"merge of empty tokens", model(map[string]any{"merges": []string{" "}}), `model.merges[0]: token ""`},
		{"merges not a list", model(map[string]any{"merges": "a b"}), "model.merges"},
		{"vocab not an object", model(map[string]any{"vocab": []string{"a"}}), "model.vocab"},
		{"unk token unknown", model(map[string]any{"unk_token": "<unk>"}), "model.unk_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeJSON(t, tc.file)
			if _, err := Load(path); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}

	// An empty unk_token merged with a token gives that token back: merging
	// still ends, as every merge removes a symbol. Here "x" is not in the
	// vocabulary, so it becomes unk "" (258), and "" + "a" gives "a" again:
	// "xxab" is "" "" "a" "b", then "" "a" "b", "a" "b" and "ab".
	m := tinyTokenizer(nil)["model"].(map[string]any)
	delete(m["vocab"].(map[string]int), "x")
	m["vocab"].(map[string]int)[""] = 258
	m["unk_token"] = ""
	m["merges"] = []string{" a", "a b", "ab c"}
	tok := loadJSON(t, tinyTokenizer(map[string]any{"model": m}))
	if got := tok.Encode("xxab"); fmt.Sprint(got) != "[256]" {
		t.Errorf("Encode = %v", got)
	}
}

// A Sequence of post-processors can multiply: P processors that each wrap
// the sequence in two ids, then a template that repeats it k times, would
// ask for k × 2P ids. The loader stops at maxTemplate.
func TestPostProcessorBlowUp(t *testing.T) {
	build := func(p, k int) map[string]any {
		var procs []any
		for range p {
			procs = append(procs, map[string]any{"type": "RobertaProcessing", "sep": []any{"[SEP]", 259}, "cls": []any{"[CLS]", 258}})
		}
		var single []any
		for range k {
			single = append(single, sequence("A", 0))
		}
		procs = append(procs, map[string]any{"type": "TemplateProcessing", "single": single,
			"pair": []any{sequence("A", 0), sequence("B", 0)}, "special_tokens": map[string]any{}})
		return specialTiny(map[string]any{"type": "Sequence", "processors": procs})
	}
	path := writeJSON(t, build(2000, 2000)) // 8 million ids unchecked
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "post_processor.processors[2000]: makes more than 4096 ids") {
		t.Errorf("error %v", err)
	}
	// Within the bound it works: 3 copies of [CLS] [CLS] A [SEP] [SEP].
	tok := loadJSON(t, build(2, 3))
	if got := fmt.Sprint(tok.EncodeSpecial("c")); got != "[258 258 99 259 259 258 258 99 259 259 258 258 99 259 259]" {
		t.Errorf("EncodeSpecial = %s", got)
	}
	if n := tok.NumSpecial(); n != 12 {
		t.Errorf("NumSpecial() = %d", n)
	}
}
