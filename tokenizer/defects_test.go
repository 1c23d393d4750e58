package tokenizer

import (
	"slices"
	"testing"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// One test per defect of sugarme/tokenizer v0.3.0 on GPT-2's tokenizer.json
// (see the package comment). Each asserts the correct result, which the
// unfixed library does not give; what the library gives is in the comments
// (measured with pretrained.FromFile + EncodeSingle(text, false)).

// Defect 1: BPE merges of equal rank must be applied leftmost first.
func TestDefect1EqualRankMergesLeftmostFirst(t *testing.T) {
	tok := loadGPT2(t)

	// " 2000" is one token in GPT-2 (reference.jsonl: "In 2000," -> 818, 4751,
	// 11). sugarme gives [1160 405] = " 20" + "00".
	if got := tok.Encode(" 2000"); !slices.Equal(got, []int{4751}) {
		t.Errorf(`Encode(" 2000") = %v, want [4751]`, got)
	}
	if got := tok.Encode("In 2000, 1999"); !slices.Equal(got, []int{818, 4751, 11, 7358}) {
		t.Errorf(`Encode("In 2000, 1999") = %v, want [818 4751 11 7358]`, got)
	}

	// The rule itself on a toy model: with the single merge "a a", "aaa" is
	// "aa" + "a" (leftmost first), never "a" + "aa".
	m := &bpeModel{
		vocab:  map[string]int{"a": 0, "aa": 1},
		merges: map[uint64]merge{pairKey(0, 0): {rank: 0, newID: 1}},
	}
	for word, want := range map[string][]int{
		"aa":    {1},
		"aaa":   {1, 0},
		"aaaaa": {1, 1, 0},
	} {
		ids := make([]int32, len(word)) // all "a" = 0
		syms := m.mergeWord(ids)
		var got []int
		for i := int32(0); i >= 0; i = syms[i].next {
			got = append(got, int(syms[i].id))
		}
		if !slices.Equal(got, want) {
			t.Errorf("merge %q = %v, want %v", word, got, want)
		}
	}

	// Our model fixes it inside sugarme's own pipeline too: plugged in as its
	// tokenizer.Model, behind sugarme's ByteLevel pre-tokenizer.
	pipeline := sugar.NewTokenizer(tok.model)
	bl := pretokenizer.NewByteLevel()
	bl.SetAddPrefixSpace(false)
	pipeline.WithPreTokenizer(bl)
	en, err := pipeline.EncodeSingle(" 2000", false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(en.Ids, []int{4751}) || !slices.Equal(en.Tokens, []string{"Ġ2000"}) {
		t.Errorf("sugarme pipeline with our model: ids %v tokens %q, want [4751] [Ġ2000]", en.Ids, en.Tokens)
	}
}

// Defect 2: added and special tokens must be kept in the output.
func TestDefect2AddedTokensKept(t *testing.T) {
	tok := loadGPT2(t)
	for text, want := range map[string][]int{
		// sugarme gives []
		"<|endoftext|>": {eotID},
		// sugarme gives [40290 37333 844]
		"prefix<|endoftext|>suffix":    {40290, eotID, 37333, 844},
		"a<|endoftext|><|endoftext|>b": {64, eotID, eotID, 65},
		"<|endoftext|> leading space":  {eotID, 3756, 2272},
	} {
		if got := tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}

	// A non-special added token is kept as well.
	tok = gpt2Variant(t, map[string]string{"added_tokens": `[
		{"id": 50256, "content": "<|endoftext|>", "special": true, "normalized": false},
		{"id": 50257, "content": "<sep>", "special": false, "normalized": true}]`})
	want := concat(tok.Encode("a"), []int{50257}, tok.Encode(" b"), []int{eotID})
	if got := tok.Encode("a<sep> b<|endoftext|>"); !slices.Equal(got, want) {
		t.Errorf("Encode with <sep> = %v, want %v", got, want)
	}
}

// Defect 3: the ByteLevel split must follow GPT-2's pattern on whitespace runs,
// `\s+(?!\S)` included.
func TestDefect3WhitespaceRuns(t *testing.T) {
	// Words as Python's `regex` module splits with the full GPT-2 pattern.
	for text, want := range map[string][]string{
		"a\n\nb":             {"a", "\n", "\n", "b"},
		"a  \n\n  b":         {"a", "  \n\n ", " b"},
		"x \n y":             {"x", " \n", " y"},
		"Hello   world":      {"Hello", "  ", " world"},
		"trailing   ":        {"trailing", "   "},
		"   leading":         {"  ", " leading"},
		"a\t\tb":             {"a", "\t", "\t", "b"},
		"tabs\t and":         {"tabs", "\t", " and"},
		"  ":                 {"  "},
		"\n":                 {"\n"},
		"a\u00a0\u00a0b":     {"a", "\u00a0", "\u00a0", "b"},
		"it's 2 o'clock!!":   {"it", "'s", " 2", " o", "'", "clock", "!!"},
		"we'll 've'd 'S":     {"we", "'ll", " '", "ve", "'d", " '", "S"},
		"x\xff\xfe y":        {"x", "\xff\xfe", " y"},
		"3.14 + ½ = ٣٤":      {"3", ".", "14", " +", " ½", " =", " ٣٤"},
		"end with newline\n": {"end", " with", " newline", "\n"},
	} {
		if got := splitWords(nil, text); !slices.Equal(got, want) {
			t.Errorf("splitWords(%q) = %q, want %q", text, got, want)
		}
	}

	tok := loadGPT2(t)
	for text, want := range map[string][]int{
		// reference.jsonl; sugarme gives [64 628 65] ("\n\n" as one word)
		"a\n\nb": {64, 198, 198, 65},
		// reference.jsonl; sugarme gives [1370 530 198 1370 734 628 1370 1440 706 257 9178]
		"line one\nline two\n\nline four after a blank": {1370, 530, 198, 1370, 734, 198, 198, 1370, 1440, 706, 257, 9178},
		// extra_reference.jsonl (gpt-3-encoder)
		"a  \n\n  b": {64, 220, 220, 628, 220, 275},
		"\n\nstart":  {198, 198, 9688},
	} {
		if got := tok.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}
}

// Defect 4: added-token ids must be the ids in the file.
func TestDefect4AddedTokenIDsFromFile(t *testing.T) {
	// Two tokens that are not in the vocabulary, listed out of id order and
	// with a gap. sugarme numbers them vocab size + n: 50257 and 50258.
	tok := gpt2Variant(t, map[string]string{"added_tokens": `[
		{"id": 50256, "content": "<|endoftext|>", "special": true, "normalized": false},
		{"id": 50300, "content": "<|user|>", "special": true, "normalized": false},
		{"id": 50257, "content": "<|assistant|>", "special": true, "normalized": false}]`})

	for content, want := range map[string]int{"<|endoftext|>": 50256, "<|user|>": 50300, "<|assistant|>": 50257} {
		if got, ok := tok.TokenID(content); !ok || got != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", content, got, ok, want)
		}
	}
	want := concat([]int{50300}, tok.Encode("Hi"), []int{50257}, tok.Encode("Hello"), []int{50256})
	if got := tok.Encode("<|user|>Hi<|assistant|>Hello<|endoftext|>"); !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if got := tok.VocabSize(); got != 50301 {
		t.Errorf("VocabSize() = %d, want 50301 (largest id + 1)", got)
	}
	if got := tok.Decode([]int64{50300, 13, 50257}); got != "<|user|>.<|assistant|>" {
		t.Errorf("Decode = %q", got)
	}
	// Several special tokens and no <|endoftext|>-like name among them but the
	// first: EOS is still <|endoftext|>.
	if id, ok := tok.EOS(); !ok || id != 50256 {
		t.Errorf("EOS() = %d, %v", id, ok)
	}
}

// Defect 5 (found while testing Decode): sugarme's ByteLevel decoder turns
// characters outside the byte alphabet into NUL bytes.
func TestDefect5DecoderKeepsNonByteLevelText(t *testing.T) {
	var d sugar.Decoder = byteLevelDecoder{}
	// sugarme's pretokenizer.ByteLevel gives " hello<pad>\x00here\n".
	if got := d.Decode([]string{"Ġhello", "<pad> here", "Ċ"}); got != " hello<pad> here\n" {
		t.Errorf("Decode = %q", got)
	}
	if got := d.DecodeChain([]string{"Ġhi", "a b"}); !slices.Equal(got, []string{" hi", "a b"}) {
		t.Errorf("DecodeChain = %q", got)
	}

	tok := gpt2Variant(t, map[string]string{"added_tokens": `[
		{"id": 50256, "content": "<|endoftext|>", "special": true, "normalized": false},
		{"id": 50257, "content": "<pad> here", "special": true, "normalized": false}]`})
	if got := tok.Decode([]int64{50257, 50256}); got != "<pad> here<|endoftext|>" {
		t.Errorf("Decode = %q", got)
	}
}
