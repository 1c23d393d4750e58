package rows

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"irl/tokenizer"
)

func gpt2(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load("../testdata/gpt2-bpe/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ids64(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

func TestEncodeRules(t *testing.T) {
	tok := gpt2(t)
	rs := []Row{
		{Index: 0, Line: 1, Text: " is kind.", Prompt: "The cat"},
		{Index: 1, Line: 2, IDs: []int64{5, 6, 7}, Prompt: "ignored"},
	}
	p, x := tok.Encode("The cat"), tok.Encode(" is kind.")
	sep := append(ids64(p), ids64(x)...)

	out, bad := Encode("f", rs, EncodeOptions{Tokenizer: tok})
	if len(bad) != 0 || !reflect.DeepEqual(out[0].IDs, sep) || out[0].Prompt != len(p) {
		t.Fatalf("separate: %+v %v", out[0], bad)
	}
	if !reflect.DeepEqual(out[1].IDs, []int64{5, 6, 7}) || out[1].Prompt != 0 {
		t.Errorf("pre-tokenized rows are taken as they are: %+v", out[1])
	}

	out, _ = Encode("f", rs, EncodeOptions{Tokenizer: tok, JoinPrompt: true, Joiner: "|"})
	if want := ids64(tok.Encode("The cat| is kind.")); !reflect.DeepEqual(out[0].IDs, want) || out[0].Prompt != 0 {
		t.Errorf("joined: %v, want %v", out[0].IDs, want)
	}

	out, _ = Encode("f", rs, EncodeOptions{Tokenizer: tok, AppendEOS: true, EOS: 50256})
	if got := out[0].IDs; got[len(got)-1] != 50256 || len(got) != len(sep)+1 {
		t.Errorf("EOS: %v", got)
	}
	if len(out[1].IDs) != 3 {
		t.Error("EOS appended to a pre-tokenized row")
	}

	n := len(sep)
	out, _ = Encode("f", rs[:1], EncodeOptions{Tokenizer: tok, MaxLength: n - 1, Truncate: TruncateLeft})
	if !reflect.DeepEqual(out[0].IDs, sep[1:]) || out[0].Prompt != len(p)-1 || !out[0].Truncated {
		t.Errorf("left: %+v", out[0])
	}
	out, _ = Encode("f", rs[:1], EncodeOptions{Tokenizer: tok, MaxLength: 1, Truncate: TruncateRight})
	if !reflect.DeepEqual(out[0].IDs, sep[:1]) || out[0].Prompt != 1 {
		t.Errorf("right: %+v", out[0])
	}
	_, bad = Encode("f.jsonl", rs[:1], EncodeOptions{Tokenizer: tok, MaxLength: 2, Truncate: TruncateError})
	if len(bad) != 1 || !strings.HasPrefix(bad[0].Error(), "f.jsonl:1: ") || !strings.Contains(bad[0].Error(), "longer than max_length 2") {
		t.Errorf("error: %v", bad)
	}
	_, bad = Encode("f.jsonl", rs, EncodeOptions{Tokenizer: tok, VocabSize: 6})
	if len(bad) != 2 || !strings.Contains(bad[1].Error(), "f.jsonl:2: token id 6 (token 1) is outside the vocabulary [0,6)") {
		t.Errorf("vocab: %v", bad)
	}
	if _, err := ParseTruncation("middle"); err == nil {
		t.Error("unknown truncation accepted")
	}
}

func TestBad(t *testing.T) {
	e := &RowError{File: "f", Line: 3, Err: errors.New("boom")}
	var stop Bad
	if err := stop.Add(e); err == nil || !errors.Is(err, e) || !strings.Contains(err.Error(), "skip_bad") {
		t.Errorf("stop: %v", err)
	}
	skip := Bad{Skip: true}
	if err := skip.AddAll([]*RowError{e, e}); err != nil || len(skip.List) != 2 {
		t.Errorf("skip: %v %d", err, len(skip.List))
	}
	var sb strings.Builder
	skip.Report(&sb)
	if !strings.Contains(sb.String(), "skipped 2 bad rows:\n  f:3: boom") {
		t.Errorf("report %q", sb.String())
	}
}

// With Special, a text row is prompt + joiner + text through the
// tokenizer's post-processor, cut on the truncation side with its special
// tokens kept, exactly as EncodeTruncated does; a pre-tokenized row longer
// than the limit is a bad row rather than cut.
func TestEncodeSpecial(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("..", "testdata", "roberta-bpe", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	rs := []Row{
		{Index: 0, Line: 1, Prompt: "The weather", Text: " is lovely today, with sun all afternoon"},
		{Index: 1, Line: 2, Text: "short"},
		{Index: 2, Line: 3, IDs: []int64{0, 5, 6, 7, 8, 9, 10, 11, 2}},
		{Index: 3, Line: 4, IDs: []int64{0, 5, 2}},
	}
	for _, side := range []Truncation{TruncateLeft, TruncateRight} {
		enc, bad := Encode("in.jsonl", rs, EncodeOptions{Tokenizer: tok, JoinPrompt: true, Joiner: ":", Special: true, MaxLength: 6, Truncate: side})
		if len(bad) != 1 || bad[0].Index != 2 || !strings.Contains(bad[0].Error(), "in.jsonl:3") {
			t.Fatalf("%s: bad rows %v, want only row 2 (9 pre-tokenized ids over 6)", side, bad)
		}
		if len(enc) != 3 {
			t.Fatalf("%s: %d rows encoded, want 3", side, len(enc))
		}
		for _, e := range enc[:2] {
			text := rs[e.Index].Text
			if rs[e.Index].Prompt != "" {
				text = rs[e.Index].Prompt + ":" + text
			}
			want, cut, err := tok.EncodeTruncated(text, 6, true, side)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(e.IDs) != fmt.Sprint(want) || e.Truncated != cut || e.Prompt != 0 {
				t.Errorf("%s: row %d: %v (cut %v), want %v (cut %v)", side, e.Index, e.IDs, e.Truncated, want, cut)
			}
		}
		if enc[0].IDs[0] != 0 || enc[0].IDs[len(enc[0].IDs)-1] != 2 || !enc[0].Truncated {
			t.Errorf("%s: the long row lost its <s> … </s> or was not cut: %v", side, enc[0].IDs)
		}
		if fmt.Sprint(enc[2].IDs) != "[0 5 2]" {
			t.Errorf("%s: a short pre-tokenized row changed: %v", side, enc[2].IDs)
		}
	}
	_, bad := Encode("in.jsonl", rs[:1], EncodeOptions{Tokenizer: tok, JoinPrompt: true, Special: true, MaxLength: 6, Truncate: TruncateError})
	if len(bad) != 1 {
		t.Errorf("TruncateError: %v, want the long row bad", bad)
	}
}
