package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

const (
	gpt2Dir  = "../testdata/gpt2-bpe"
	gpt2Path = gpt2Dir + "/tokenizer.json"
	eotID    = 50256 // <|endoftext|> in GPT-2
)

// gpt2 loads the GPT-2 tokenizer once for all tests.
var gpt2 = sync.OnceValues(func() (*Tokenizer, error) { return Load(gpt2Path) })

func loadGPT2(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := gpt2()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

type refCase struct {
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Special bool   `json:"special"`
}

// readReference reads a JSON lines file of {"text", "ids"} cases.
func readReference(tb testing.TB, name string) []refCase {
	tb.Helper()
	f, err := os.Open(filepath.Join(gpt2Dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []refCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var c refCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			tb.Fatalf("%s:%d: %v", name, line, err)
		}
		if c.IDs == nil {
			c.IDs = []int{}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) == 0 {
		tb.Fatalf("%s: no cases", name)
	}
	return cases
}

// allReference returns the cases of reference.jsonl (from the fixture) and
// extra_reference.jsonl (made with the same encoder, see gen_extra_reference.js).
func allReference(tb testing.TB) []refCase {
	return append(readReference(tb, "reference.jsonl"), readReference(tb, "extra_reference.jsonl")...)
}

func TestReference(t *testing.T) {
	tok := loadGPT2(t)
	for _, name := range []string{"reference.jsonl", "extra_reference.jsonl"} {
		t.Run(name, func(t *testing.T) {
			cases := readReference(t, name)
			special := 0
			for i, c := range cases {
				got := tok.Encode(c.Text)
				if !slices.Equal(got, c.IDs) {
					t.Errorf("line %d: Encode(%q)\n got  %v\n want %v", i+1, c.Text, got, c.IDs)
				}
				if c.Special {
					special++
				}
			}
			if special == 0 {
				t.Errorf("no special-token lines in %s", name)
			}
			t.Logf("%d lines, %d with special tokens", len(cases), special)
		})
	}
}
