package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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
		{"{\"text\": \"a\"}\nnot json\n", "in.jsonl:2: invalid JSON", "{\"ids\":[64]}\n"},
		{"{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n", `in.jsonl:3: "text" field missing or null`, "{\"ids\":[64]}\n"},
		{"{\"text\": null}\n", `in.jsonl:1: "text" field missing or null`, ""},
		{"{\"text\": 5}\n", `in.jsonl:1: "text" is a JSON number, not a string`, ""},
		{"[\"text\"]\n", "in.jsonl:1: expected a JSON object, found array", ""},
		{"{\"text\": \"a\"", "in.jsonl:1: invalid JSON", ""},
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

// With Bad set, each bad line is handed over and left out, in batches of any
// size, and every written line carries its input line, with the ids that
// EncodeJSONL gives the good lines alone.
func TestEncodeJSONLOptionsBad(t *testing.T) {
	tok := loadGPT2(t)
	input := "{\"text\": \"a b\"}\nnot json\n\n{\"text\": \"c\xffd\"}\n{\"text\": \"hello there\"}\n{\"txt\": 1}\n{\"text\": \"end\"}\n"
	var plain bytes.Buffer
	if err := tok.EncodeJSONL(&plain, strings.NewReader("{\"text\": \"a b\"}\n{\"text\": \"hello there\"}\n{\"text\": \"end\"}\n"), "good", 0); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(plain.String()), "\n")
	for i, line := range []int{1, 5, 7} {
		want[i] = fmt.Sprintf(`{"line":%d,`, line) + strings.TrimPrefix(want[i], "{")
	}
	for _, batch := range []int{1, 2, 100} {
		var out bytes.Buffer
		var bad []int
		err := tok.EncodeJSONLOptions(&out, strings.NewReader(input), "in.jsonl", JSONLOptions{BatchSize: batch, Bad: func(line int, err error) { bad = append(bad, line) }})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSpace(out.String()), "\n"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("batch %d: wrote\n%s\nwant\n%s", batch, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if fmt.Sprint(bad) != "[2 4 6]" {
			t.Errorf("batch %d: bad lines %v, want [2 4 6]", batch, bad)
		}
	}
}
