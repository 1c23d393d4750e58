package rows

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func TestKeepFieldsJSONL(t *testing.T) {
	p := writeInputFile(t, "a.jsonl", `{"prompt": {"text": "Hi", "challenging": true}, "original": "there", "toxic": 1, "n": 1.5e3}`+"\n")
	got, bad, err := Read(p, Options{TextField: "prompt.text", KeepFields: true})
	if err != nil || len(bad) != 0 {
		t.Fatal(err, bad)
	}
	r := got[0]
	if r.Text != "Hi" {
		t.Errorf("nested text %q", r.Text)
	}
	if s, ok := r.Field("original"); !ok || s != "there" {
		t.Errorf("original = %q %v", s, ok)
	}
	if s, _ := r.Field("toxic"); s != "1" {
		t.Errorf("toxic = %q", s)
	}
	if s, _ := r.Field("n"); s != "1.5e3" {
		t.Errorf("numbers keep their text: %q", s)
	}
	if s, _ := r.Field("prompt"); s != `{"challenging":true,"text":"Hi"}` {
		t.Errorf("the object holding the text is kept: %q", s)
	}
	if _, ok := r.Field("missing"); ok {
		t.Error("missing field found")
	}
	// A dotted path through a non-object is a bad row that says why.
	p = writeInputFile(t, "b.jsonl", `{"prompt": "flat"}`+"\n")
	_, bad, _ = Read(p, Options{TextField: "prompt.text"})
	checkBad(t, p, bad, []badAt{{1, `field "prompt" is a string, so it has no field "text"`}})
}

func TestKeepFieldsCSV(t *testing.T) {
	p := writeInputFile(t, "a.csv", "prompt,original_output,toxic\nHello,there,1\n")
	got, _, err := Read(p, Options{TextField: "prompt", KeepFields: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"original_output": "there", "toxic": "1"}; !reflect.DeepEqual(got[0].Fields, want) {
		t.Errorf("fields %v", got[0].Fields)
	}
}

type pqJigsaw struct {
	Prompt   string  `parquet:"prompt"`
	Original *string `parquet:"original_output,optional"`
	Toxic    int64   `parquet:"toxic"`
	Score    float64 `parquet:"score"`
	Flag     bool    `parquet:"flag"`
}

func TestKeepFieldsParquet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j.parquet")
	if err := parquet.WriteFile(p, []pqJigsaw{{"a", strp("b"), 1, 0.5, true}, {"c", nil, 0, 2, false}}); err != nil {
		t.Fatal(err)
	}
	got, _, err := Read(p, Options{TextField: "prompt", KeepFields: true})
	if err != nil {
		t.Fatal(err)
	}
	want0 := map[string]any{"original_output": "b", "toxic": int64(1), "score": 0.5, "flag": true}
	want1 := map[string]any{"original_output": nil, "toxic": int64(0), "score": 2.0, "flag": false}
	if !reflect.DeepEqual(got[0].Fields, want0) || !reflect.DeepEqual(got[1].Fields, want1) {
		t.Errorf("fields %v / %v", got[0].Fields, got[1].Fields)
	}
	if _, ok := got[1].Field("original_output"); ok {
		t.Error("a null field reads as present")
	}
}

// Invalid UTF-8 is a bad row, never silently replaced by U+FFFD; a
// replacement character the writer meant is kept.
func TestInvalidUTF8(t *testing.T) {
	p := writeInputFile(t, "u.jsonl", "{\"text\": \"ok \xff\"}\n"+
		`{"text": "lone \ud800 surrogate"}`+"\n"+
		`{"text": "escaped \ufffd is meant"}`+"\n"+
		"{\"text\": \"literal \xef\xbf\xbd is meant\"}\n"+
		`{"text": "x", "prompt": "bad \udc00"}`+"\n")
	_, bad, err := Read(p, Options{PromptField: "prompt"})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{{1, "invalid UTF-8"}, {2, `invalid UTF-8 in field "text"`}, {3, `field "prompt" is missing`}, {4, `field "prompt" is missing`}, {5, `invalid UTF-8 in field "prompt"`}})
	got, bad, _ := Read(p, Options{})
	checkBad(t, p, bad, []badAt{{1, "invalid UTF-8"}, {2, `invalid UTF-8 in field "text"`}})
	if len(got) != 3 || got[0].Text != "escaped \ufffd is meant" {
		t.Errorf("rows %+v", got)
	}
	c := writeInputFile(t, "u.csv", "text\n\"ok\"\n\"bad \xfe\"\n")
	_, bad, _ = Read(c, Options{})
	checkBad(t, c, bad, []badAt{{3, `invalid UTF-8 in field "text"`}})
	q := filepath.Join(t.TempDir(), "u.parquet")
	parquet.WriteFile(q, []pqJigsaw{{Prompt: "fine"}, {Prompt: "bad \xc3"}})
	_, bad, _ = Read(q, Options{TextField: "prompt"})
	checkBad(t, q, bad, []badAt{{2, `invalid UTF-8 in field "prompt"`}})
}

// An escaped backslash before "ufffd" is text, not an escape: no false alarm.
func TestEscapedBackslashIsText(t *testing.T) {
	p := writeInputFile(t, "e.jsonl", `{"text": "a \\ufffd b \ufffd"}`+"\n")
	got, bad, err := Read(p, Options{})
	if err != nil || len(bad) != 0 || got[0].Text != `a \ufffd b `+"\ufffd" {
		t.Errorf("%+v %v %v", got, bad, err)
	}
}
