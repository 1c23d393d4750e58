package tokenizer

import (
	"testing"
)

// Every listed word is one token, with or without a leading space; other
// text still round-trips byte by byte; EOS is found.
func TestBuildWordBPE(t *testing.T) {
	words := []string{"The", "cat", "is", "kind", "nasty", "kinder", "a", "as", "at", "."}
	b, err := BuildWordBPE(words)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse("built", b)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range words {
		if ids := tok.Encode(" " + w); len(ids) != 1 {
			t.Errorf("%q encodes to %d tokens: %v", " "+w, len(ids), ids)
		}
	}
	for _, w := range []string{"The", "kind", "as"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("%q encodes to %d tokens: %v", w, len(ids), ids)
		}
	}
	text := "The cat is kind. The cat is nasty. Ünïcode, zebra!"
	if got := tok.Decode(ids64(tok.Encode(text))); got != text {
		t.Errorf("round trip %q", got)
	}
	if ids := tok.Encode("The cat is kinder."); len(ids) != 5 {
		t.Errorf("sentence: %v", ids)
	}
	if eos, ok := tok.EOS(); !ok || eos != tok.VocabSize()-1 {
		t.Errorf("EOS %d %v of %d", eos, ok, tok.VocabSize())
	}
	if _, err := BuildWordBPE([]string{"two words"}); err == nil {
		t.Error("a word with a space accepted")
	}
}
