package tokenizer

import (
	"encoding/json"
	"slices"
	"testing"
)

// Options of tokenizer.json beyond GPT-2's own settings.

// tinyTokenizer returns a small byte-level BPE tokenizer.json: the 256 byte
// characters (ids 0..255 in byte order), "ab" (256) and "abc" (257), with
// replace applied to its top-level sections.
func tinyTokenizer(replace map[string]any) map[string]any {
	vocab := map[string]int{"ab": 256, "abc": 257}
	for b := range 256 {
		vocab[byteChar[b]] = b
	}
	cfg := map[string]any{
		"version":      "1.0",
		"added_tokens": []any{},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{
			"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "vocab": vocab, "merges": []string{"a b", "ab c"}},
	}
	for k, v := range replace {
		cfg[k] = v
	}
	return cfg
}

func TestTinyTokenizer(t *testing.T) {
	tok := loadJSON(t, tinyTokenizer(nil))
	if got := tok.Encode("abcab xab"); !slices.Equal(got, []int{257, 256, int(' '), 'x', 256}) {
		t.Errorf("Encode = %v", got)
	}
	if tok.VocabSize() != 258 {
		t.Errorf("VocabSize() = %d", tok.VocabSize())
	}
	if _, ok := tok.EOS(); ok {
		t.Error("EOS() found one in a tokenizer without special tokens")
	}
}

func TestMergesAsPairs(t *testing.T) {
	sections, err := gpt2Sections()
	if err != nil {
		t.Fatal(err)
	}
	var model map[string]any
	if err := json.Unmarshal(sections["model"], &model); err != nil {
		t.Fatal(err)
	}
	var pairs [][2]string
	for _, m := range model["merges"].([]any) {
		var a, b string
		for i, c := range m.(string) {
			if c == ' ' {
				a, b = m.(string)[:i], m.(string)[i+1:]
				break
			}
		}
		pairs = append(pairs, [2]string{a, b})
	}
	model["merges"] = pairs
	data, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	tok := gpt2Variant(t, map[string]string{"model": string(data)})
	for _, c := range allReference(t) {
		if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("pair merges: Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
	}
}

func TestAddPrefixSpace(t *testing.T) {
	tok := gpt2Variant(t, map[string]string{
		"pre_tokenizer": `{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}`})
	// Each piece between added tokens gets its own prefix space, as in
	// Hugging Face, unless it already starts with one.
	for text, want := range map[string][]int{
		"Hello world":             {18435, 995},
		" Hello world":            {18435, 995},
		"Hello<|endoftext|>world": {18435, eotID, 995},
		"<|endoftext|> Hello":     {eotID, 18435},
		"\nHello":                 {220, 198, 15496},
		"":                        {},
	} {
		if got := tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestNoRegexSplit(t *testing.T) {
	model := tinyTokenizer(nil)["model"].(map[string]any)
	model["vocab"].(map[string]int)["bĠ"] = 258
	model["merges"] = []string{"b Ġ", "a b", "ab c"}
	for useRegex, want := range map[bool][]int{
		true:  {256, ' ', 'c'}, // words "ab", " c"
		false: {'a', 258, 'c'}, // one word: "b Ġ" (rank 0) merges across the space
	} {
		tok := loadJSON(t, tinyTokenizer(map[string]any{"model": model, "pre_tokenizer": map[string]any{
			"type": "ByteLevel", "add_prefix_space": false, "use_regex": useRegex}}))
		if got := tok.Encode("ab c"); !slices.Equal(got, want) {
			t.Errorf("use_regex %v: Encode = %v, want %v", useRegex, got, want)
		}
	}
}

func TestNormalizers(t *testing.T) {
	nfc := gpt2Variant(t, map[string]string{"normalizer": `{"type": "NFC"}`})
	nfd := gpt2Variant(t, map[string]string{"normalizer": `{"type": "NFD"}`})
	seq := gpt2Variant(t, map[string]string{"normalizer": `{"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "NFC"}]}`})
	tok := loadGPT2(t)
	composed, decomposed := "café", "cafe\u0301"
	if got, want := nfc.Encode(decomposed), tok.Encode(composed); !slices.Equal(got, want) {
		t.Errorf("NFC: Encode(decomposed) = %v, want %v", got, want)
	}
	if got, want := nfd.Encode(composed), tok.Encode(decomposed); !slices.Equal(got, want) {
		t.Errorf("NFD: Encode(composed) = %v, want %v", got, want)
	}
	if got, want := seq.Encode(decomposed), tok.Encode(composed); !slices.Equal(got, want) {
		t.Errorf("Sequence: Encode(decomposed) = %v, want %v", got, want)
	}
}

// TestAddedTokensNormalization: tokens with normalized=false match the raw
// text, tokens with normalized=true match the normalized text (their content
// normalized too).
func TestAddedTokensNormalization(t *testing.T) {
	tok := gpt2Variant(t, map[string]string{
		"normalizer": `{"type": "NFC"}`,
		"added_tokens": `[
			{"id": 50256, "content": "<|endoftext|>", "special": true, "normalized": false},
			{"id": 50257, "content": "e\u0301!", "special": false, "normalized": true},
			{"id": 50258, "content": "o\u0301?", "special": false, "normalized": false}]`})
	gpt := loadGPT2(t)
	for text, want := range map[string][]int{
		"xé!":           concat(gpt.Encode("x"), []int{50257}),
		"xe\u0301!":     concat(gpt.Encode("x"), []int{50257}),
		"xo\u0301?":     concat(gpt.Encode("x"), []int{50258}),
		"xó?":           gpt.Encode("xó?"), // the raw text does not contain "o\u0301?"
		"<|endoftext|>": {eotID},
	} {
		if got := tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}
}

// TestAddedTokenMatching covers leftmost-longest matching and Hugging Face's
// lstrip, rstrip and single_word options.
func TestAddedTokenMatching(t *testing.T) {
	tok := gpt2Variant(t, map[string]string{"added_tokens": `[
		{"id": 50256, "content": "<|endoftext|>", "special": true, "normalized": false},
		{"id": 50257, "content": "  ", "special": false, "normalized": true},
		{"id": 50258, "content": "   ", "special": false, "normalized": true},
		{"id": 50259, "content": "<mask>", "special": true, "normalized": false, "lstrip": true},
		{"id": 50260, "content": "<r>", "special": true, "normalized": false, "rstrip": true},
		{"id": 50261, "content": "ony", "special": false, "normalized": false, "single_word": true},
		{"id": 50262, "content": "ab", "special": false, "normalized": false},
		{"id": 50263, "content": "bcd", "special": false, "normalized": false}]`})
	gpt := loadGPT2(t)
	for text, want := range map[string][]int{
		// Pythia-style runs of spaces: longest first, left to right.
		"x     y": concat(gpt.Encode("x"), []int{50258, 50257}, gpt.Encode("y")),
		"x y":     gpt.Encode("x y"),
		// lstrip swallows the white space before <mask>, not after.
		"Hello \t<mask> there": concat(gpt.Encode("Hello"), []int{50259}, gpt.Encode(" there")),
		// rstrip swallows the white space after <r>.
		"a <r> \n b": concat(gpt.Encode("a "), []int{50260}, gpt.Encode("b")),
		// single_word: "ony" only where it is not inside a word.
		"Anthony ony tony, ony.": concat(gpt.Encode("Anthony "), []int{50261}, gpt.Encode(" tony, "), []int{50261}, gpt.Encode(".")),
		// Leftmost wins over longer: "ab" at 0, then "cd" is plain text.
		"abcd": concat([]int{50262}, gpt.Encode("cd")),
		"xbcd": concat(gpt.Encode("x"), []int{50263}),
	} {
		if got := tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}
}

// TestMatcherSplit checks the splitting itself, on cases from Hugging Face's
// AddedVocabulary tests.
func TestMatcherSplit(t *testing.T) {
	mask := &addedToken{id: 0, content: "<mask>", lstrip: true, rstrip: true, singleWord: true}
	m := newMatcher([]matchPattern{{"<mask>", mask}})
	type piece struct {
		text  string
		token bool
	}
	split := func(s string) []piece {
		var out []piece
		m.split(s, func(p string, tok *addedToken) { out = append(out, piece{p, tok != nil}) })
		return out
	}
	got := split("Hi <mask> there\t<mask>\t<mask>\u2000")
	want := []piece{{"Hi", false}, {" <mask> ", true}, {"there", false}, {"\t<mask>\t", true}, {"<mask>\u2000", true}}
	if !slices.Equal(got, want) {
		t.Errorf("lstrip+rstrip: %+v, want %+v", got, want)
	}

	single := &addedToken{id: 0, content: "<mask>", singleWord: true}
	m = newMatcher([]matchPattern{{"<mask>", single}})
	got = split("<mask>, <mask>- ◌̰<mask>")
	want = []piece{{"<mask>", true}, {", ", false}, {"<mask>", true}, {"- ◌̰<mask>", false}}
	if !slices.Equal(got, want) {
		t.Errorf("single_word after a combining mark: %+v, want %+v", got, want)
	}
	got = split("<mask> My name <mask> A<mask> <mask>ony <mask>")
	want = []piece{{"<mask>", true}, {" My name ", false}, {"<mask>", true}, {" A<mask> <mask>ony ", false}, {"<mask>", true}}
	if !slices.Equal(got, want) {
		t.Errorf("single_word: %+v, want %+v", got, want)
	}

	var none *matcher
	got = nil
	none.split("text", func(p string, tok *addedToken) { got = append(got, piece{p, tok != nil}) })
	if !slices.Equal(got, []piece{{"text", false}}) {
		t.Errorf("nil matcher: %+v", got)
	}
}
