package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	robertaDir  = "../testdata/roberta-bpe"
	robertaPath = robertaDir + "/tokenizer.json"
)

var roberta = sync.OnceValues(func() (*Tokenizer, error) { return Load(robertaPath) })

func loadRoberta(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := roberta()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// readJSONL reads {"text", "ids"} lines from path.
func readJSONL(tb testing.TB, path string) []refCase {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []refCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var c refCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			tb.Fatalf("%s:%d: %v", path, line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) == 0 {
		tb.Fatalf("%s: no cases", path)
	}
	return cases
}

// TestRobertaReference: reference.jsonl holds <s> + ids + </s> from an
// independent GPT-2 encoder (ids shifted by 4, see the fixture).
func TestRobertaReference(t *testing.T) {
	tok := loadRoberta(t)
	if n := tok.NumSpecial(); n != 2 {
		t.Errorf("NumSpecial() = %d, want 2", n)
	}
	cases := readJSONL(t, robertaDir+"/reference.jsonl")
	for i, c := range cases {
		if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("line %d: EncodeSpecial(%q)\n got  %v\n want %v", i+1, c.Text, got, c.IDs)
			continue
		}
		if len(c.IDs) < 2 || c.IDs[0] != 0 || c.IDs[len(c.IDs)-1] != 2 {
			t.Fatalf("line %d: reference ids %v do not start with <s> and end with </s>", i+1, c.IDs)
		}
		middle := c.IDs[1 : len(c.IDs)-1]
		if got := tok.Encode(c.Text); !slices.Equal(got, middle) && !(len(got) == 0 && len(middle) == 0) {
			t.Errorf("line %d: Encode(%q)\n got  %v\n want %v", i+1, c.Text, got, middle)
		}
		// With room for everything, EncodeTruncated changes nothing.
		got, cut, err := tok.EncodeTruncated(c.Text, len(c.IDs), true, TruncateError)
		if err != nil || cut || !slices.Equal(got, c.IDs) {
			t.Errorf("line %d: EncodeTruncated(max %d) = %v, %v, %v", i+1, len(c.IDs), got, cut, err)
		}
	}
	t.Logf("%d lines", len(cases))

	// RoBERTa's pair: <s> A </s></s> B </s>.
	a, b := "The weather is pleasant.", "a"
	want := concat([]int{0}, tok.Encode(a), []int{2, 2}, tok.Encode(b), []int{2})
	if got := tok.EncodePairSpecial(a, b); !slices.Equal(got, want) {
		t.Errorf("EncodePairSpecial = %v, want %v", got, want)
	}
	if got := tok.EncodePairSpecial(a, b); !slices.Equal(got, []int{0, 468, 6197, 322, 15501, 17, 2, 2, 68, 2}) {
		t.Errorf("EncodePairSpecial = %v", got)
	}
	// Special tokens written in the text are matched as added tokens, and
	// the post-processor's are added around them, as in Hugging Face.
	if got := tok.EncodeSpecial("<s>a</s>"); !slices.Equal(got, []int{0, 0, 68, 2, 2}) {
		t.Errorf(`EncodeSpecial("<s>a</s>") = %v`, got)
	}
}

// Without a post-processor, or with a ByteLevel one, nothing is added.
func TestNoPostProcessor(t *testing.T) {
	text := "Hello world<|endoftext|>"
	for name, tok := range map[string]*Tokenizer{
		"GPT-2 (ByteLevel)": loadGPT2(t),
		"null":              loadJSON(t, tinyTokenizer(map[string]any{"post_processor": nil})),
		"absent":            loadJSON(t, tinyTokenizer(nil)),
	} {
		if n := tok.NumSpecial(); n != 0 {
			t.Errorf("%s: NumSpecial() = %d", name, n)
		}
		if got, want := tok.EncodeSpecial(text), tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("%s: EncodeSpecial = %v, want Encode's %v", name, got, want)
		}
		if got, want := tok.EncodePairSpecial(text, "x"), concat(tok.Encode(text), tok.Encode("x")); !slices.Equal(got, want) {
			t.Errorf("%s: EncodePairSpecial = %v, want %v", name, got, want)
		}
	}
}

// specialTiny is the tiny tokenizer (bytes 0..255, "ab" 256, "abc" 257) with
// [CLS] 258, [SEP] 259 and <x> 260 as special added tokens and the given
// post_processor. There Encode("abc ab") is [257 32 256] ("abc", " ", "ab"),
// Encode("ab") [256] and Encode("c") [99].
func specialTiny(post any) map[string]any {
	return tinyTokenizer(map[string]any{
		"added_tokens": []map[string]any{
			{"id": 258, "content": "[CLS]", "special": true, "normalized": false},
			{"id": 259, "content": "[SEP]", "special": true, "normalized": false},
			{"id": 260, "content": "<x>", "special": true, "normalized": false},
		},
		"post_processor": post,
	})
}

func TestBertProcessing(t *testing.T) {
	tok := loadJSON(t, specialTiny(map[string]any{
		"type": "BertProcessing", "sep": []any{"[SEP]", 259}, "cls": []any{"[CLS]", 258}}))
	if got := tok.Encode("abc ab"); !slices.Equal(got, []int{257, 32, 256}) {
		t.Fatalf("Encode = %v: the tiny tokenizer changed", got)
	}
	if got := tok.EncodeSpecial("abc ab"); !slices.Equal(got, []int{258, 257, 32, 256, 259}) {
		t.Errorf("EncodeSpecial = %v", got)
	}
	if got := tok.EncodeSpecial(""); !slices.Equal(got, []int{258, 259}) {
		t.Errorf(`EncodeSpecial("") = %v`, got)
	}
	// BERT's pair: [CLS] A [SEP] B [SEP].
	if got := tok.EncodePairSpecial("abc ab", "c"); !slices.Equal(got, []int{258, 257, 32, 256, 259, 99, 259}) {
		t.Errorf("EncodePairSpecial = %v", got)
	}
	if n := tok.NumSpecial(); n != 2 {
		t.Errorf("NumSpecial() = %d", n)
	}

	// RobertaProcessing on the same tokenizer differs only in the pair.
	tok = loadJSON(t, specialTiny(map[string]any{
		"type": "RobertaProcessing", "sep": []any{"[SEP]", 259}, "cls": []any{"[CLS]", 258},
		"trim_offsets": true, "add_prefix_space": false}))
	if got := tok.EncodeSpecial("abc ab"); !slices.Equal(got, []int{258, 257, 32, 256, 259}) {
		t.Errorf("Roberta: EncodeSpecial = %v", got)
	}
	if got := tok.EncodePairSpecial("abc ab", "c"); !slices.Equal(got, []int{258, 257, 32, 256, 259, 259, 99, 259}) {
		t.Errorf("Roberta: EncodePairSpecial = %v", got)
	}
}

// Template pieces as tokenizer.json writes them.
func special(id string) map[string]any {
	return map[string]any{"SpecialToken": map[string]any{"id": id, "type_id": 0}}
}

func sequence(id string, typeID int) map[string]any {
	return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typeID}}
}

func specialToken(id string, ids ...int) map[string]any {
	tokens := make([]string, len(ids))
	for i := range tokens {
		tokens[i] = id
	}
	return map[string]any{"id": id, "ids": ids, "tokens": tokens}
}

func TestTemplateProcessing(t *testing.T) {
	specials := map[string]any{
		"[CLS]": specialToken("[CLS]", 258),
		"[SEP]": specialToken("[SEP]", 259),
		"<sep2>": map[string]any{"id": "<sep2>", "ids": []int{259, 260, 259},
			"tokens": []string{"[SEP]", "<x>", "[SEP]"}}, // a special token of several ids
		"<none>": specialToken("<none>"), // of no ids
	}
	template := map[string]any{
		"type":           "TemplateProcessing",
		"single":         []any{special("[CLS]"), sequence("A", 0), special("<none>"), special("[SEP]")},
		"pair":           []any{special("[CLS]"), sequence("A", 0), special("<sep2>"), sequence("B", 1), special("[SEP]")},
		"special_tokens": specials,
	}
	tok := loadJSON(t, specialTiny(template))
	for _, tc := range []struct {
		got, want []int
	}{
		{tok.EncodeSpecial("abc ab"), []int{258, 257, 32, 256, 259}},
		{tok.EncodeSpecial(""), []int{258, 259}},
		{tok.EncodePairSpecial("ab", "c"), []int{258, 256, 259, 260, 259, 99, 259}},
		{tok.Encode("abc ab"), []int{257, 32, 256}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	if n := tok.NumSpecial(); n != 2 {
		t.Errorf("NumSpecial() = %d", n)
	}

	// Llama 3's shape: a Sequence of ByteLevel and a template that only
	// prepends <|begin_of_text|> (here [CLS]), with B before A in the pair
	// to show that the order is the template's.
	llama := map[string]any{"type": "Sequence", "processors": []any{
		map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{special("[CLS]"), sequence("A", 0)},
			"pair":           []any{special("[CLS]"), sequence("B", 1), special("[CLS]"), sequence("A", 0)},
			"special_tokens": specials,
		},
	}}
	tok = loadJSON(t, specialTiny(llama))
	if got := tok.EncodeSpecial("ab"); !slices.Equal(got, []int{258, 256}) {
		t.Errorf("Sequence: EncodeSpecial = %v", got)
	}
	if got := tok.EncodePairSpecial("ab", "c"); !slices.Equal(got, []int{258, 99, 258, 256}) {
		t.Errorf("Sequence: EncodePairSpecial = %v", got)
	}
	if n := tok.NumSpecial(); n != 1 {
		t.Errorf("Sequence: NumSpecial() = %d", n)
	}

	// Processors in a Sequence each work on the encodings the one before
	// made, as in Hugging Face: the first template makes one sequence into
	// two encodings (A, <x>), which the second takes as a pair; BERT then
	// wraps the first encoding in [CLS] [SEP] and closes each later one with
	// [SEP].
	chained := map[string]any{"type": "Sequence", "processors": []any{
		map[string]any{"type": "TemplateProcessing",
			"single":         []any{sequence("A", 0), special("<x>")},
			"pair":           []any{sequence("A", 0), sequence("B", 1)},
			"special_tokens": map[string]any{"<x>": specialToken("<x>", 260)}},
		map[string]any{"type": "TemplateProcessing",
			"single":         []any{sequence("A", 0)},
			"pair":           []any{sequence("B", 0), sequence("A", 1)},
			"special_tokens": map[string]any{}},
		map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 259}, "cls": []any{"[CLS]", 258}},
	}}
	tok = loadJSON(t, specialTiny(chained))
	// single: (A) -> (A, <x>) -> (<x>, A) -> ([CLS] <x> [SEP], A [SEP])
	if got := tok.EncodeSpecial("ab"); !slices.Equal(got, []int{258, 260, 259, 256, 259}) {
		t.Errorf("chained: EncodeSpecial = %v", got)
	}
	// pair: (A, B) -> (A, B) -> (B, A) -> ([CLS] B [SEP], A [SEP])
	if got := tok.EncodePairSpecial("ab", "c"); !slices.Equal(got, []int{258, 99, 259, 256, 259}) {
		t.Errorf("chained: EncodePairSpecial = %v", got)
	}
	if n := tok.NumSpecial(); n != 4 {
		t.Errorf("chained: NumSpecial() = %d", n)
	}

	// A template may repeat a sequence; truncation then cuts each copy.
	twice := loadJSON(t, specialTiny(map[string]any{"type": "TemplateProcessing",
		"single":         []any{sequence("A", 0), special("[SEP]"), sequence("A", 0)},
		"pair":           []any{sequence("A", 0), sequence("B", 0)},
		"special_tokens": specials}))
	if got := twice.EncodeSpecial("ab c"); !slices.Equal(got, []int{256, 32, 99, 259, 256, 32, 99}) {
		t.Errorf("repeated A: EncodeSpecial = %v", got)
	}
	if got, cut, err := twice.EncodeTruncated("ab c", 5, true, TruncateRight); err != nil || !cut || !slices.Equal(got, []int{256, 32, 259, 256, 32}) {
		t.Errorf("repeated A: EncodeTruncated = %v, %v, %v", got, cut, err)
	}
}

func TestEncodeTruncated(t *testing.T) {
	tok := loadRoberta(t)
	const text = "The weather is pleasant." // 468 6197 322 15501 17
	for _, tc := range []struct {
		maxLen  int
		special bool
		side    Truncation
		want    []int
		cut     bool
	}{
		{7, true, TruncateRight, []int{0, 468, 6197, 322, 15501, 17, 2}, false},
		{100, true, TruncateLeft, []int{0, 468, 6197, 322, 15501, 17, 2}, false},
		{7, true, TruncateError, []int{0, 468, 6197, 322, 15501, 17, 2}, false},
		{5, true, TruncateRight, []int{0, 468, 6197, 322, 2}, true},
		{5, true, TruncateLeft, []int{0, 322, 15501, 17, 2}, true},
		{3, true, TruncateLeft, []int{0, 17, 2}, true},
		{2, true, TruncateRight, []int{0, 2}, true},
		{2, true, TruncateLeft, []int{0, 2}, true},
		{3, false, TruncateRight, []int{468, 6197, 322}, true},
		{3, false, TruncateLeft, []int{322, 15501, 17}, true},
		{5, false, TruncateError, []int{468, 6197, 322, 15501, 17}, false},
		{0, false, TruncateLeft, []int{}, true},
	} {
		got, cut, err := tok.EncodeTruncated(text, tc.maxLen, tc.special, tc.side)
		if err != nil || cut != tc.cut || !slices.Equal(got, tc.want) {
			t.Errorf("EncodeTruncated(max %d, special %v, %s) = %v, %v, %v; want %v, %v",
				tc.maxLen, tc.special, tc.side, got, cut, err, tc.want, tc.cut)
		}
	}

	for _, tc := range []struct {
		maxLen  int
		special bool
		side    Truncation
		want    string
	}{
		{6, true, TruncateError, "text is 5 tokens, more than the 4 that max length 6 leaves beside 2 special tokens"},
		{4, false, TruncateError, "text is 5 tokens, more than max length 4"},
		{1, true, TruncateRight, "max length 1 cannot hold the 2 special tokens"},
		{1, true, TruncateLeft, "max length 1 cannot hold the 2 special tokens"},
		{0, true, TruncateError, "max length 0 cannot hold the 2 special tokens"},
		{-1, false, TruncateRight, "max length -1 is negative"},
		{10, true, "middle", `truncation side "middle"`},
	} {
		got, cut, err := tok.EncodeTruncated(text, tc.maxLen, tc.special, tc.side)
		if err == nil || !strings.Contains(err.Error(), tc.want) || got != nil || cut {
			t.Errorf("EncodeTruncated(max %d, special %v, %s) = %v, %v, %v; want error %q",
				tc.maxLen, tc.special, tc.side, got, cut, err, tc.want)
		}
	}
	// An empty text needs no cut even when only the specials fit.
	if got, cut, err := tok.EncodeTruncated("", 2, true, TruncateError); err != nil || cut || !slices.Equal(got, []int{0, 2}) {
		t.Errorf(`EncodeTruncated("", 2) = %v, %v, %v`, got, cut, err)
	}
	// Without a post-processor, special=true changes nothing.
	gpt := loadGPT2(t)
	if got, cut, err := gpt.EncodeTruncated("In 2000, 1999", 2, true, TruncateLeft); err != nil || !cut || !slices.Equal(got, []int{11, 7358}) {
		t.Errorf("GPT-2 EncodeTruncated = %v, %v, %v", got, cut, err)
	}
}

func TestPostProcessorErrors(t *testing.T) {
	specials := map[string]any{"[CLS]": specialToken("[CLS]", 258), "[SEP]": specialToken("[SEP]", 259)}
	tpl := func(change map[string]any) map[string]any {
		m := map[string]any{"type": "TemplateProcessing",
			"single":         []any{special("[CLS]"), sequence("A", 0), special("[SEP]")},
			"pair":           []any{special("[CLS]"), sequence("A", 0), special("[SEP]"), sequence("B", 1), special("[SEP]")},
			"special_tokens": specials}
		for k, v := range change {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		post any
		want []string
	}{
		{"unknown type", map[string]any{"type": "Whatever"}, []string{"post_processor.type", `unsupported post-processor "Whatever"`}},
		{"missing type", map[string]any{"sep": []any{"[SEP]", 259}}, []string{"post_processor.type: missing"}},
		{"not an object", []int{1}, []string{"post_processor", "expected an object"}},
		{"unknown type in a Sequence", map[string]any{"type": "Sequence", "processors": []any{
			map[string]any{"type": "ByteLevel"}, map[string]any{"type": "Nope"}}},
			[]string{"post_processor.processors[1].type", `"Nope"`}},
		{"Sequence without processors", map[string]any{"type": "Sequence"}, []string{"post_processor.processors: missing"}},
		{"Roberta without sep", map[string]any{"type": "RobertaProcessing", "cls": []any{"[CLS]", 258}},
			[]string{"post_processor.sep: missing"}},
		{"Bert sep not a pair", map[string]any{"type": "BertProcessing", "cls": []any{"[CLS]", 258}, "sep": []any{259}},
			[]string{"post_processor.sep", `is not ["token", id]`}},
		{"Bert sep id unknown", map[string]any{"type": "BertProcessing", "cls": []any{"[CLS]", 258}, "sep": []any{"[SEP]", 5000}},
			[]string{"post_processor.sep", "id 5000", `"[SEP]"`, "not a token"}},
		{"Roberta cls id negative", map[string]any{"type": "RobertaProcessing", "cls": []any{"<s>", -1}, "sep": []any{"[SEP]", 259}},
			[]string{"post_processor.cls", "id -1"}},
		{"template special id unknown", tpl(map[string]any{"special_tokens": map[string]any{
			"[CLS]": specialToken("[CLS]", 258), "[SEP]": specialToken("[SEP]", 1<<40)}}),
			[]string{`post_processor.special_tokens["[SEP]"].ids`, "1099511627776"}},
		{"template special token missing", tpl(map[string]any{"special_tokens": map[string]any{"[CLS]": specialToken("[CLS]", 258)}}),
			[]string{"post_processor.single[2].SpecialToken.id", `"[SEP]" is not in post_processor.special_tokens`}},
		{"template without pair", tpl(map[string]any{"pair": nil}), []string{"post_processor.pair: missing"}},
		{"pair without B", tpl(map[string]any{"pair": []any{sequence("A", 0), special("[SEP]")}}),
			[]string{"post_processor.pair", "only one of the sequences"}},
		{"single with B", tpl(map[string]any{"single": []any{sequence("A", 0), sequence("B", 0)}}),
			[]string{"post_processor.single", "sequence B"}},
		{"sequence C", tpl(map[string]any{"single": []any{sequence("C", 0)}}),
			[]string{"post_processor.single[0].Sequence.id", `"C"`}},
		{"piece of both kinds", tpl(map[string]any{"single": []any{map[string]any{
			"Sequence": map[string]any{"id": "A"}, "SpecialToken": map[string]any{"id": "[CLS]"}}}}),
			[]string{"post_processor.single[0]", "neither"}},
		{"template as a string", tpl(map[string]any{"single": "[CLS] $A [SEP]"}), []string{"post_processor.single", "expected an array"}},
		{"template after a split", map[string]any{"type": "Sequence", "processors": []any{
			tpl(map[string]any{"single": []any{special("[CLS]"), sequence("A", 0), special("[SEP]")}}),
			tpl(nil)}},
			[]string{"post_processor.processors[1]", "given 3 encodings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeJSON(t, specialTiny(tc.post))
			tok, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded (NumSpecial %d)", tok.NumSpecial())
			}
			for _, want := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
