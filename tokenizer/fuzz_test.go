package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// Fuzz targets. Their seeds run with every `go test`; to fuzz:
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 60s ./tokenizer/
//
// Inputs the fuzzer found are kept under testdata/fuzz/<target>/.

// minimalTokenizer is about the smallest file that loads.
const minimalTokenizer = `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}}`

// fuzzTexts are encoded with every tokenizer FuzzParse manages to load.
var fuzzTexts = []string{"", "ab", "a b ab  abab\n", "<s>ab</s>", "\xff\xfe a\u0301 😀", "[CLS] x"}

// FuzzParse feeds arbitrary bytes to Parse. It must return a tokenizer or an
// error naming the file, never panic or hang, and allocate in proportion to
// the input; a tokenizer that loads must encode and decode without panicking
// and give ids it knows.
func FuzzParse(f *testing.F) {
	for _, path := range []string{gpt2Path, robertaPath} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimalTokenizer))
	// The minimal file with one section replaced.
	with := func(section, value string) []byte {
		var file map[string]json.RawMessage
		if err := json.Unmarshal([]byte(minimalTokenizer), &file); err != nil {
			f.Fatal(err)
		}
		file[section] = json.RawMessage(value)
		data, err := json.Marshal(file)
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	model := func(vocab, merges string) []byte {
		return with("model", `{"type": "BPE", "vocab": `+vocab+`, "merges": `+merges+`}`)
	}
	specials := `[{"id": 3, "content": "<s>", "special": true}, {"id": 4, "content": "</s>", "special": true}]`
	for _, seed := range [][]byte{
		model(`{"a": 0, "b": 2147483646, "ab": 2}`, `["a b"]`),
		model(`{"a": 0, "b": -1, "ab": 2}`, `["a b"]`),
		model(`{"a": 0, "b": 1, "ab": 1}`, `["a b"]`),
		model(`{"a": 0, "b": 1, "ab": 2}`, `["x y", "a b"]`),
		model(`{"a": 0, "b": 1, "ab": 2}`, `[["a", "b"], ["ab", "a"]]`),
		with("added_tokens", `[{"id": 2147483000, "content": "<big>", "special": true}]`),
		with("added_tokens", `[{"id": -7, "content": "<neg>"}]`),
		with("added_tokens", specials),
		with("post_processor", `{"type": "Whatever"}`),
		with("post_processor", `{"type": "RobertaProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0]}`),
		with("post_processor", `{"type": "BertProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0]}`),
		with("post_processor", `{"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing",
			"single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
			"pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
			"special_tokens": {"<s>": {"id": "<s>", "ids": [0, 2], "tokens": ["a", "ab"]}}}]}`),
		with("normalizer", `{"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Sequence", "normalizers": [{"type": "NFD"}]}]}`),
		[]byte(`{"model": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Parse("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "load tokenizer fuzz.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Tables indexed by id are bounded by the file's size: every token
		// takes a few bytes of JSON.
		if n := tok.VocabSize(); n > 2*len(data)+1024 {
			t.Fatalf("vocabulary of %d ids from %d bytes", n, len(data))
		}
		known := func(ids []int, what string, s string) {
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("%s(%q) gives id %d, outside [0, %d)", what, s, id, tok.VocabSize())
				}
			}
		}
		for _, s := range fuzzTexts {
			ids := tok.Encode(s)
			known(ids, "Encode", s)
			_ = tok.Decode(ids64(ids))
			spec := tok.EncodeSpecial(s)
			known(spec, "EncodeSpecial", s)
			_ = tok.Decode(ids64(spec))
			known(tok.EncodePairSpecial(s, "ab"), "EncodePairSpecial", s)
			for _, side := range []Truncation{TruncateRight, TruncateLeft, TruncateError} {
				got, _, err := tok.EncodeTruncated(s, 3, true, side)
				if err == nil && len(got) > 3 {
					t.Fatalf("EncodeTruncated(%q, 3, %s) = %v", s, side, got)
				}
				known(got, "EncodeTruncated", s)
			}
		}
		_ = tok.Decode([]int64{-1, 0, 1, 2, 3, int64(tok.VocabSize()), 1 << 40})
		tok.EOS()
		tok.NumSpecial()
	})
}

// FuzzEncode encodes arbitrary text with GPT-2 and RoBERTa. Byte-level BPE is
// lossless, so GPT-2's Decode gives the text back exactly (for invalid UTF-8
// too); RoBERTa's EncodeSpecial is <s> + Encode + </s>, and its truncation
// keeps both while cutting the text's ids on the side asked for.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello world", " 2000", "a\n\nb", "it's  \t x", "<s>a</s><mask> <mask>",
		"<|endoftext|>x", "\xff\xfe", "😀 é ٣٤", strings.Repeat("ab", 40)} {
		f.Add(s, uint8(len(s)))
	}
	gpt := loadGPT2(f)
	rob := loadRoberta(f)
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		ids := gpt.Encode(s)
		if got := gpt.Decode(ids64(ids)); got != s {
			t.Fatalf("GPT-2: Decode(Encode(%q)) = %q", s, got)
		}
		if got := gpt.EncodeSpecial(s); !slices.Equal(got, ids) {
			t.Fatalf("GPT-2: EncodeSpecial(%q) = %v, Encode = %v", s, got, ids)
		}

		r := rob.Encode(s)
		if got, want := rob.EncodeSpecial(s), concat([]int{0}, r, []int{2}); !slices.Equal(got, want) {
			t.Fatalf("RoBERTa: EncodeSpecial(%q) = %v, want %v", s, got, want)
		}
		if got, want := rob.EncodePairSpecial(s, "x"), concat([]int{0}, r, []int{2, 2}, rob.Encode("x"), []int{2}); !slices.Equal(got, want) {
			t.Fatalf("RoBERTa: EncodePairSpecial(%q) = %v, want %v", s, got, want)
		}
		if utf8.ValidString(s) && !strings.Contains(s, "<mask>") {
			// <mask> swallows the space before it (lstrip), so only then is
			// RoBERTa's Encode lossy.
			if got := rob.Decode(ids64(r)); got != s {
				t.Fatalf("RoBERTa: Decode(Encode(%q)) = %q", s, got)
			}
		}

		maxLen := int(n % 16)
		keep := max(maxLen-2, 0)
		for _, side := range []Truncation{TruncateRight, TruncateLeft, TruncateError} {
			got, cut, err := rob.EncodeTruncated(s, maxLen, true, side)
			switch {
			case maxLen < 2:
				if err == nil {
					t.Fatalf("EncodeTruncated(%q, %d, %s) = %v, no error", s, maxLen, side, got)
				}
				continue
			case side == TruncateError && len(r) > keep:
				if err == nil {
					t.Fatalf("EncodeTruncated(%q, %d, error) = %v, no error", s, maxLen, got)
				}
				continue
			case err != nil:
				t.Fatalf("EncodeTruncated(%q, %d, %s): %v", s, maxLen, side, err)
			}
			mid := r
			if len(r) > keep {
				if side == TruncateRight {
					mid = r[:keep]
				} else {
					mid = r[len(r)-keep:]
				}
			}
			if want := concat([]int{0}, mid, []int{2}); !slices.Equal(got, want) || cut != (len(r) > keep) {
				t.Fatalf("EncodeTruncated(%q, %d, %s) = %v, %v; want %v, %v", s, maxLen, side, got, cut, want, len(r) > keep)
			}
		}
	})
}

// FuzzCheckUTF8JSON checks CheckUTF8JSON against independent oracles: the
// bytes written raw inside a JSON string are accepted exactly when they are
// UTF-8, and UTF-16 code units written as \u escapes exactly when
// unicode/utf16 decodes them without replacing a lone surrogate. On any
// input it must not panic.
func FuzzCheckUTF8JSON(f *testing.F) {
	for _, s := range []string{"", "plain", "é😀", "\xff", "\xed\xa0\x80", "\xd8\x00", "\xd8\x3d\xde\x00", "\xdc\x00\xd8\x00",
		`{"text": "\ud800"}`, `["\\ud800", {"a": "\ud83d\ude00"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckUTF8JSON(data)
		_ = CheckUTF8JSON(data, "text", "a.b")

		// Raw bytes: only '"', '\\' and control characters need escaping.
		var raw strings.Builder
		raw.WriteString(`{"text": "`)
		for _, c := range data {
			switch {
			case c == '"' || c == '\\':
				raw.WriteByte('\\')
				raw.WriteByte(c)
			case c < 0x20:
				fmt.Fprintf(&raw, `\u%04x`, c)
			default:
				raw.WriteByte(c)
			}
		}
		raw.WriteString(`"}`)
		err := CheckUTF8JSON([]byte(raw.String()), "text")
		if valid := utf8.Valid(data); (err == nil) != valid {
			t.Fatalf("raw %q: UTF-8 %v, CheckUTF8JSON = %v", raw.String(), valid, err)
		}
		if err == nil {
			var rec struct{ Text string }
			if json.Unmarshal([]byte(raw.String()), &rec) != nil || rec.Text != string(data) {
				t.Fatalf("raw %q: decodes to %q", raw.String(), rec.Text)
			}
		}

		// UTF-16 code units, two bytes each, as escapes.
		units := make([]uint16, len(data)/2)
		var esc strings.Builder
		esc.WriteString(`["`)
		for i := range units {
			units[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
			fmt.Fprintf(&esc, `\u%04X`, units[i])
		}
		esc.WriteString(`"]`)
		replaced := strings.Count(string(utf16.Decode(units)), "\uFFFD")
		valid := replaced == countUnit(units, 0xFFFD)
		err = CheckUTF8JSON([]byte(esc.String()))
		if (err == nil) != valid {
			t.Fatalf("escaped %s: well-formed UTF-16 %v, CheckUTF8JSON = %v", esc.String(), valid, err)
		}
	})
}

func countUnit(units []uint16, u uint16) int {
	n := 0
	for _, v := range units {
		if v == u {
			n++
		}
	}
	return n
}
