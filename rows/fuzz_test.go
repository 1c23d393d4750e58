package rows

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"irl/tokenizer"
)

// FuzzRead feeds any bytes to the JSONL, CSV and Parquet readers, then
// encodes what they read. A bad file or row must give an error or a bad
// row, never a panic, a hang or an allocation its size does not justify;
// every row read must be valid UTF-8 with a line or index that says where
// it came from.
func FuzzRead(f *testing.F) {
	for _, p := range []string{"jigsaw-train.csv", "jigsaw-long-2000.csv", "jigsaw-long-2000.parquet", "rtp-prompts.jsonl"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "toxicity", p))
		if err != nil {
			f.Fatal(err)
		}
		format := map[string]uint8{".jsonl": 0, ".csv": 1, ".parquet": 2}[filepath.Ext(p)]
		f.Add(b, format, "comment_text", "")
		f.Add(b, format, "prompt.text", "continuation.text")
	}
	for _, c := range []struct {
		data string
		fmt  uint8
	}{
		{`{"text": "a"}` + "\n" + `{"input_ids": [1, 2, 99999999999999999999]}` + "\n", 0},
		{`{"input_ids": [1e300, -1]}`, 0},
		{"{\"text\": \"bad \xff byte\"}\n{\"text\": \"\\ud800\"}\n", 0},
		{`{"text": {"nested": {"deeper": "x"}}}`, 0},
		{strings.Repeat(`{"text": "`, 1000), 0},
		{"text,input_ids\n\"unbalanced,\n1,2\n", 1},
		{"input_ids\n\"1,2,3\"\n\"1,,x\"\n", 1},
		{"text\n" + strings.Repeat("a", 1<<16) + "\n", 1},
		{"PAR1\x00\x00\x00\x00PAR1", 2},
		{"PAR1" + strings.Repeat("\xff", 64) + "\xff\xff\xff\x7fPAR1", 2},
	} {
		f.Add([]byte(c.data), c.fmt, "text", "")
	}
	tok, err := tokenizer.Load(filepath.Join("..", "testdata", "gpt2-bpe", "tokenizer.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, format uint8, textField, promptField string) {
		ext := []string{".jsonl", ".csv", ".parquet"}[int(format)%3]
		path := filepath.Join(t.TempDir(), "in"+ext)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// What a file makes the reader allocate stays in proportion to
		// its size: a 12-byte Parquet file once took 2 GB.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rs, bad, err := Read(path, Options{TextField: textField, PromptField: promptField, KeepFields: true})
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64<<20+1024*len(data)); got > limit {
			t.Fatalf("reading %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
		if err != nil {
			return
		}
		if len(rs)+len(bad) > len(data)+1 {
			t.Fatalf("%d rows and %d bad rows from %d bytes", len(rs), len(bad), len(data))
		}
		for _, r := range rs {
			if !utf8.ValidString(r.Text) || !utf8.ValidString(r.Prompt) {
				t.Fatalf("row %d: invalid UTF-8 passed through: %q %q", r.Index, r.Text, r.Prompt)
			}
		}
		for _, b := range bad {
			if b.Error() == "" {
				t.Fatal("a bad row without a message")
			}
		}
		Encode(path, rs, EncodeOptions{Tokenizer: tok, VocabSize: 100, MaxLength: 8, Truncate: TruncateError})
	})
}
