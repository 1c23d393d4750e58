package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestVocabSizeTokenIDEOS(t *testing.T) {
	tok := loadGPT2(t)
	if got := tok.VocabSize(); got != 50257 {
		t.Errorf("VocabSize() = %d, want 50257", got)
	}
	for s, want := range map[string]int{"<|endoftext|>": eotID, "Ġthe": 262, "the": 1169, "!": 0, "Ċ": 198} {
		if got, ok := tok.TokenID(s); !ok || got != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	if id, ok := tok.TokenID(" the"); ok {
		t.Errorf(`TokenID(" the") = %d, true; the vocabulary spells it "Ġthe"`, id)
	}
	if id, ok := tok.EOS(); !ok || id != eotID {
		t.Errorf("EOS() = %d, %v; want %d", id, ok, eotID)
	}
}

func TestEOSFallbacks(t *testing.T) {
	one := gpt2Variant(t, map[string]string{"added_tokens": `[{"id": 50257, "content": "<stop>", "special": true}]`})
	// GPT-2's vocabulary itself has <|endoftext|>, which wins.
	if id, ok := one.EOS(); !ok || id != eotID {
		t.Errorf("EOS() = %d, %v; want %d", id, ok, eotID)
	}
	tiny := loadJSON(t, tinyTokenizer(map[string]any{"added_tokens": []map[string]any{
		{"id": 10, "content": "<stop>", "special": true}}}))
	if id, ok := tiny.EOS(); !ok || id != 10 {
		t.Errorf("only special token: EOS() = %d, %v; want 10", id, ok)
	}
	tiny = loadJSON(t, tinyTokenizer(map[string]any{"added_tokens": []map[string]any{
		{"id": 10, "content": "<a>", "special": true}, {"id": 11, "content": "</s>", "special": true}}}))
	if id, ok := tiny.EOS(); !ok || id != 11 {
		t.Errorf("</s>: EOS() = %d, %v; want 11", id, ok)
	}
	tiny = loadJSON(t, tinyTokenizer(map[string]any{"added_tokens": []map[string]any{
		{"id": 10, "content": "<a>", "special": true}, {"id": 11, "content": "<b>", "special": true}}}))
	if id, ok := tiny.EOS(); ok {
		t.Errorf("two unnamed special tokens: EOS() = %d, true; want none", id)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tok := loadGPT2(t)
	for _, c := range allReference(t) {
		if got := tok.Decode(ids64(c.IDs)); got != c.Text {
			t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, c.Text)
		}
		if got := tok.Decode(ids64(tok.Encode(c.Text))); got != c.Text {
			t.Errorf("Decode(Encode(%q)) = %q", c.Text, got)
		}
	}
	// Bytes that are not UTF-8 survive, and decoding a split emoji in two
	// parts gives its bytes in two parts.
	for _, s := range []string{"\xff\xfe abc \xc3", "x\x00y\x7f", "emoji 🙂🙃 and 👍🏽"} {
		ids := ids64(tok.Encode(s))
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
		for k := range ids {
			if got := tok.Decode(ids[:k]) + tok.Decode(ids[k:]); got != s {
				t.Errorf("split at %d: %q", k, got)
			}
		}
	}
	if got := tok.Decode([]int64{8582}); utf8.ValidString(got) {
		t.Errorf("Decode([8582]) = %q: expected a partial UTF-8 sequence", got)
	}
}

func TestDecodeSkipsUnknownIDs(t *testing.T) {
	tok := loadGPT2(t)
	if got := tok.Decode([]int64{-1, 40, 50257, 1 << 40, 0}); got != "I!" {
		t.Errorf("Decode = %q, want %q", got, "I!")
	}
	if got := tok.Decode(nil); got != "" {
		t.Errorf("Decode(nil) = %q", got)
	}
}

func TestEncodeEmpty(t *testing.T) {
	tok := loadGPT2(t)
	if got := tok.Encode(""); got == nil || len(got) != 0 {
		t.Errorf(`Encode("") = %#v, want an empty slice`, got)
	}
}

func TestEncodeBatchKeepsOrder(t *testing.T) {
	tok := loadGPT2(t)
	var texts []string
	for range 3 {
		for _, c := range allReference(t) {
			texts = append(texts, c.Text)
		}
	}
	got := tok.EncodeBatch(texts)
	if len(got) != len(texts) {
		t.Fatalf("%d results for %d texts", len(got), len(texts))
	}
	for i, s := range texts {
		if want := tok.Encode(s); !slices.Equal(got[i], want) {
			t.Fatalf("EncodeBatch[%d] (%q) = %v, want %v", i, s, got[i], want)
		}
	}
	if got := tok.EncodeBatch(nil); len(got) != 0 {
		t.Errorf("EncodeBatch(nil) = %v", got)
	}
	if got := tok.EncodeBatch([]string{"a"}); len(got) != 1 || !slices.Equal(got[0], []int{64}) {
		t.Errorf(`EncodeBatch(["a"]) = %v`, got)
	}
}

// TestConcurrentEncode is meant for -race: goroutines share one tokenizer and
// its word cache, starting cold.
func TestConcurrentEncode(t *testing.T) {
	tok, err := Load(gpt2Path)
	if err != nil {
		t.Fatal(err)
	}
	cases := allReference(t)
	workers := max(4, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range 3 {
				for i := range cases {
					c := cases[(i*7+w+r)%len(cases)]
					if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
						errs <- c.Text
						return
					}
					_ = tok.Decode(ids64(c.IDs))
				}
			}
		})
	}
	wg.Go(func() {
		var texts []string
		for _, c := range cases {
			texts = append(texts, c.Text)
		}
		for i, ids := range tok.EncodeBatch(texts) {
			if !slices.Equal(ids, cases[i].IDs) {
				errs <- cases[i].Text
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for text := range errs {
		t.Errorf("concurrent Encode(%q) differs from the reference", text)
	}
}

func TestCacheIsTransparent(t *testing.T) {
	tok := loadGPT2(t)
	plain := withoutCache(tok)
	for _, c := range allReference(t) {
		if got := plain.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("without cache: Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
	}
	// Results do not share memory with the cache.
	first := tok.Encode(" cacheable cacheable")
	first[0], first[1] = -1, -1
	if got := tok.Encode(" cacheable cacheable"); got[0] == -1 || got[1] == -1 {
		t.Errorf("cached ids were modified through a result: %v", got)
	}
	// A shard that fills up is emptied and keeps working.
	c := newWordCache()
	for i := range cacheShards * cacheWordsPerShard * 2 {
		w := strings.Repeat("x", i%7+2) + string(rune('a'+i%26)) + strings.Repeat("y", i/26%50)
		c.put(w, []int{i})
		if ids, ok := c.get(w); !ok || ids[0] != i {
			t.Fatalf("get(%q) after put = %v, %v", w, ids, ok)
		}
	}
	for i := range c.shards {
		if n := len(c.shards[i].words); n > cacheWordsPerShard {
			t.Fatalf("shard %d holds %d words", i, n)
		}
	}
}

// TestByteAlphabetMatchesGPT2 checks the byte alphabet taken from sugarme
// against GPT-2's bytes_to_unicode, written out again here.
func TestByteAlphabetMatchesGPT2(t *testing.T) {
	var want [256]rune
	n := 0
	for b := range 256 {
		if ('!' <= b && b <= '~') || ('¡' <= b && b <= '¬') || ('®' <= b && b <= 'ÿ') {
			want[b] = rune(b)
		} else {
			want[b] = rune(256 + n)
			n++
		}
	}
	tok := loadGPT2(t)
	for b := range 256 {
		if got := byteChar[b]; got != string(want[b]) {
			t.Errorf("byteChar[%#x] = %q, want %q", b, got, string(want[b]))
		}
		if got := charByte[want[b]]; got != int16(b) {
			t.Errorf("charByte[%q] = %d, want %d", want[b], got, b)
		}
		if _, ok := tok.TokenID(string(want[b])); !ok {
			t.Errorf("byte %#x (%q) is not in GPT-2's vocabulary", b, string(want[b]))
		}
	}
	if got := byteLevelString(" a\n\xff"); got != "ĠaĊÿ" {
		t.Errorf("byteLevelString = %q", got)
	}
}

// TestModelInterface checks bpeModel as a sugarme tokenizer.Model.
func TestModelInterface(t *testing.T) {
	m := loadGPT2(t).model
	toks, err := m.Tokenize("Ġ2000")
	if err != nil || len(toks) != 1 || toks[0].Id != 4751 || toks[0].Value != "Ġ2000" || !slices.Equal(toks[0].Offsets, []int{0, 6}) {
		t.Errorf(`Tokenize("Ġ2000") = %+v, %v`, toks, err)
	}
	// " 20000" is " 200" + "00" (gpt-3-encoder: [939 405]).
	toks, err = m.Tokenize("Ġ20000")
	if err != nil || len(toks) != 2 || toks[0].Id != 939 || toks[0].Value != "Ġ200" || !slices.Equal(toks[0].Offsets, []int{0, 5}) ||
		toks[1].Id != 405 || toks[1].Value != "00" || !slices.Equal(toks[1].Offsets, []int{5, 7}) {
		t.Errorf(`Tokenize("Ġ20000") = %+v, %v`, toks, err)
	}
	if toks, err := m.Tokenize(""); err != nil || len(toks) != 0 {
		t.Errorf(`Tokenize("") = %+v, %v`, toks, err)
	}
	if id, ok := m.TokenToId("Ġthe"); !ok || id != 262 {
		t.Errorf("TokenToId = %d, %v", id, ok)
	}
	if tok, ok := m.IdToToken(262); !ok || tok != "Ġthe" {
		t.Errorf("IdToToken(262) = %q, %v", tok, ok)
	}
	for _, id := range []int{-1, 50257} {
		if tok, ok := m.IdToToken(id); ok {
			t.Errorf("IdToToken(%d) = %q, true", id, tok)
		}
	}
	if m.GetVocabSize() != 50257 || len(m.GetVocab()) != 50257 {
		t.Errorf("GetVocabSize() = %d, len(GetVocab()) = %d", m.GetVocabSize(), len(m.GetVocab()))
	}

	dir := t.TempDir()
	if err := m.Save(dir, "gpt2"); err != nil {
		t.Fatal(err)
	}
	merges, err := os.ReadFile(filepath.Join(dir, "gpt2-merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(merges), "\n"), "\n")
	if len(lines) != 50001 || lines[0] != "#version: 0.2" || lines[1] != "Ġ t" || lines[50000] != "Ġg azed" {
		t.Errorf("merges.txt: %d lines, %q %q ... %q", len(lines), lines[0], lines[1], lines[len(lines)-1])
	}
	data, err := os.ReadFile(filepath.Join(dir, "gpt2-vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil || len(vocab) != 50257 || vocab["Ġthe"] != 262 {
		t.Errorf("vocab.json: %d tokens, %v", len(vocab), err)
	}
}

// FuzzEncodeDecode checks invariants on any input: Decode inverts Encode,
// every id is in the vocabulary, and the cache changes nothing.
func FuzzEncodeDecode(f *testing.F) {
	for _, c := range allReference(f) {
		f.Add(c.Text)
	}
	f.Add("\xff\xfe\xfd")
	tok := loadGPT2(f)
	plain := withoutCache(tok)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if got := tok.Decode(ids64(ids)); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) has id %d", s, id)
			}
		}
		if again := plain.Encode(s); !slices.Equal(again, ids) {
			t.Fatalf("Encode(%q): %v with cache, %v without", s, ids, again)
		}
	})
}
