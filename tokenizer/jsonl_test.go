package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestEncodeJSONL(t *testing.T) {
	tok := loadGPT2(t)
	input, err := os.ReadFile(gpt2Dir + "/reference.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	cases := allReference(t)
	var in bytes.Buffer
	for i, c := range cases {
		line, _ := json.Marshal(map[string]any{"text": c.Text, "other": i})
		in.Write(line)
		switch i % 5 {
		case 1:
			in.WriteString("\r\n")
		case 2:
			in.WriteString("\n  \n") // a blank line is skipped
		default:
			in.WriteString("\n")
		}
	}
	in.WriteString(`{"text": "no newline at the end"}`)
	cases = append(cases, refCase{Text: "no newline at the end", IDs: tok.Encode("no newline at the end")})

	for _, batch := range []int{0, 1, 7, 10000} {
		var out bytes.Buffer
		if err := tok.EncodeJSONL(&out, bytes.NewReader(in.Bytes()), "in.jsonl", batch); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(&out)
		n := 0
		for ; sc.Scan(); n++ {
			var rec struct{ IDs []int }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("batch %d: output line %d: %v", batch, n+1, err)
			}
			if n < len(cases) && !slices.Equal(rec.IDs, cases[n].IDs) && !(len(rec.IDs) == 0 && len(cases[n].IDs) == 0) {
				t.Errorf("batch %d: line %d (%q): %v, want %v", batch, n+1, cases[n].Text, rec.IDs, cases[n].IDs)
			}
		}
		if n != len(cases) {
			t.Errorf("batch %d: %d output lines for %d inputs", batch, n, len(cases))
		}
	}

	// The fixture file itself reads as input: its "ids" field is ignored.
	var out bytes.Buffer
	if err := tok.EncodeJSONL(&out, bytes.NewReader(input), "reference.jsonl", 0); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "{\"ids\":[464,6193,318,15497,13]}\n") || !strings.Contains(out.String(), "\n{\"ids\":[]}\n") {
		t.Errorf("output starts %q", out.String()[:80])
	}
}

func TestEncodeJSONLLongLine(t *testing.T) {
	tok := loadGPT2(t)
	text := strings.Repeat("long line ", 200_000) + "end" // 2 MB
	line, _ := json.Marshal(map[string]string{"text": text})
	var out bytes.Buffer
	if err := tok.EncodeJSONL(&out, bytes.NewReader(line), "big.jsonl", 0); err != nil {
		t.Fatal(err)
	}
	var rec struct{ IDs []int }
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || len(rec.IDs) != 400_001 {
		t.Errorf("%d ids, %v", len(rec.IDs), err)
	}
}

func TestEncodeJSONLErrors(t *testing.T) {
	tok := loadGPT2(t)
	for _, tc := range []struct {
		input, want, wantOut string
	}{
		{"{\"text\": \"a\"}\nnot json\n", "in.jsonl: line 2: invalid JSON", "{\"ids\":[64]}\n"},
		{"{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n", `in.jsonl: line 3: "text" field missing or null`, "{\"ids\":[64]}\n"},
		{"{\"text\": null}\n", `in.jsonl: line 1: "text" field missing or null`, ""},
		{"{\"text\": 5}\n", `in.jsonl: line 1: "text" is a JSON number, not a string`, ""},
		{"[\"text\"]\n", "in.jsonl: line 1: expected a JSON object, found array", ""},
		{"{\"text\": \"a\"", "in.jsonl: line 1: invalid JSON", ""},
	} {
		var out bytes.Buffer
		err := tok.EncodeJSONL(&out, strings.NewReader(tc.input), "in.jsonl", 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("input %q: error %v, want %q", tc.input, err, tc.want)
		}
		if out.String() != tc.wantOut {
			t.Errorf("input %q: output %q, want %q", tc.input, out.String(), tc.wantOut)
		}
	}
}
