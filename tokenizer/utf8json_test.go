package tokenizer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncodeJSONLInvalidUTF8(t *testing.T) {
	tok := loadGPT2(t)
	for _, tc := range []struct {
		name, line, want string
	}{
		{"invalid byte", "{\"text\": \"ab\xffcd\"}", "in.jsonl:2: invalid UTF-8 in field text (byte 0xff at offset 12)"},
		{"truncated sequence", "{\"text\": \"caf\xc3\"}", "invalid UTF-8 in field text (byte 0xc3"},
		{"encoded surrogate", "{\"text\": \"\xed\xa0\x80\"}", "invalid UTF-8 in field text (byte 0xed"},
		{"overlong", "{\"text\": \"\xc0\xaf\"}", "invalid UTF-8 in field text (byte 0xc0"},
		{"lone high surrogate", `{"text": "\ud800"}`, `invalid UTF-8 in field text (lone UTF-16 surrogate \ud800 at offset 10)`},
		{"lone low surrogate", `{"text": "x\uDC00y"}`, `in.jsonl:2: invalid UTF-8 in field text (lone UTF-16 surrogate \udc00`},
		{"high then not low", `{"text": "\ud83d\u0041"}`, `lone UTF-16 surrogate \ud83d`},
		{"two highs", `{"text": "\ud83d\ud83d\ude00"}`, `lone UTF-16 surrogate \ud83d`},
		{"high at the end", `{"text": "a\ud83d"}`, `lone UTF-16 surrogate \ud83d`},
		{"other key case", "{\"TEXT\": \"\xff\"}", "invalid UTF-8 in field TEXT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := tok.EncodeJSONL(&out, strings.NewReader("{\"text\": \"ok\"}\n"+tc.line+"\n{\"text\": \"after\"}\n"), "in.jsonl", 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if out.String() != "{\"ids\":[482]}\n" {
				t.Errorf("output %q: only the line before should be written", out.String())
			}
			var u *UTF8Error
			if !errors.As(err, &u) {
				t.Errorf("error %v is not a *UTF8Error", err)
			}
		})
	}

	// Valid text, escaped or not, and invalid bytes in fields that are not
	// read, are fine.
	in := strings.Join([]string{
		`{"text": "\ud83d\ude00 \u00e9\uFFFD \ufffd"}`,
		"{\"text\": \"😀 é\uFFFD \ufffd\"}",
		"{\"text\": \"a\", \"meta\": \"\xff\", \"more\": [\"\\ud800\"]}",
		`{"text": "\\ud800 is written with a backslash"}`,
	}, "\n")
	var out bytes.Buffer
	if err := tok.EncodeJSONL(&out, strings.NewReader(in), "in.jsonl", 0); err != nil {
		t.Fatal(err)
	}
	want := appendIDsLine(nil, tok.Encode("😀 é\uFFFD \ufffd"))
	want = appendIDsLine(want, tok.Encode("😀 é\uFFFD \ufffd"))
	want = appendIDsLine(want, tok.Encode("a"))
	want = appendIDsLine(want, tok.Encode(`\ud800 is written with a backslash`))
	if out.String() != string(want) {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}
}

func TestCheckUTF8JSON(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		fields []string
		want   string // "" for no error
	}{
		{`{"text": "plain"}`, nil, ""},
		{`{"text": "\ud83d\ude00", "n": 1.5e3, "b": [true, false, null], "o": {}}`, nil, ""},
		{"{\"text\": \"\xff\"}", nil, "invalid UTF-8 in field text (byte 0xff at offset 10)"},
		{"{\"a\": {\"b\": [1, \"ok\", \"\xfe\"]}}", nil, "invalid UTF-8 in field a.b[2] (byte 0xfe"},
		{"[\"ok\", {\"k\": \"\\udfff\"}]", nil, `invalid UTF-8 in field [1].k (lone UTF-16 surrogate \udfff at offset 14)`},
		{"\"\xff\"", nil, "invalid UTF-8 in a JSON string (byte 0xff at offset 1)"},
		{"{\"\xff\": 1}", nil, "invalid UTF-8 in a field name (byte 0xff"},
		{"{\"a\": {\"\\ud800\": 1}}", nil, "invalid UTF-8 in a field name in field a (lone"},
		// Only the named fields.
		{"{\"text\": \"ok\", \"meta\": \"\xff\"}", []string{"text"}, ""},
		{"{\"text\": \"ok\", \"meta\": \"\xff\"}", []string{"text", "meta"}, "invalid UTF-8 in field meta"},
		{"{\"text\": \"\xff\"}", []string{"prompt"}, ""},
		{"{\"Text\": \"\xff\"}", []string{"text"}, "invalid UTF-8 in field Text"},
		{"{\"\\u0074ext\": \"\xff\"}", []string{"text"}, "invalid UTF-8 in field text"},
		{"{\"msg\": {\"text\": \"\xff\", \"x\": \"ok\"}}", []string{"msg.text"}, "invalid UTF-8 in field msg.text"},
		{"{\"msg\": {\"text\": \"ok\", \"x\": \"\xff\"}}", []string{"msg.text"}, ""},
		{"{\"msg\": {\"list\": [\"\xff\"]}}", []string{"msg"}, "invalid UTF-8 in field msg.list[0]"},
		{"{\"turns\": [\"ok\", \"\\ud800\"]}", []string{"turns[1]"}, "invalid UTF-8 in field turns[1]"},
		// Escapes that are not \u, and backslashes before a u.
		{`{"text": "a\"b\\c\/d\n\u0041"}`, nil, ""},
		{`{"text": "\\ud800"}`, nil, ""},
		{`{"text": "\\\ud800"}`, nil, `lone UTF-16 surrogate \ud800`},
		// Syntax that hides the strings is an error, not a panic.
		{"{\"text\": \"\xff", nil, "invalid UTF-8 in field text"}, // found before the string ends
		{"{\"text\": \"ok\", \xff", nil, "invalid JSON at offset 15: expected a field name"},
		{`{"text": "\u12"}`, nil, "invalid JSON"},
		{`{"text": "\ud800`, nil, "lone UTF-16"},
		{"{\"a\" 1, \"\xff\"}", nil, "invalid JSON"},
		{"[1, \xff", nil, "invalid JSON"},
		{"\xff", nil, ""}, // not a string: no strings to check
		{"", nil, ""},
		{strings.Repeat("[", 20000) + `"\ud800"` + strings.Repeat("]", 20000), nil, "nested too deep"},
	} {
		err := CheckUTF8JSON([]byte(tc.raw), tc.fields...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckUTF8JSON(%q, %q) = %v", tc.raw, tc.fields, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckUTF8JSON(%q, %q) = %v, want %q", tc.raw, tc.fields, err, tc.want)
		}
	}

	// The error's fields, for callers that word their own message.
	err := CheckUTF8JSON([]byte("{\"a\": [\"\xff\"]}"))
	var u *UTF8Error
	if !errors.As(err, &u) || u.Field != "a[0]" || u.Offset != 8 || u.Name || u.Reason != "byte 0xff" {
		t.Errorf("error %#v", err)
	}
}
