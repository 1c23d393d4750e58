package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// gpt2Sections is GPT-2's tokenizer.json split into its top-level sections.
var gpt2Sections = sync.OnceValues(func() (map[string]json.RawMessage, error) {
	data, err := os.ReadFile(gpt2Path)
	if err != nil {
		return nil, err
	}
	var sections map[string]json.RawMessage
	err = json.Unmarshal(data, &sections)
	return sections, err
})

// gpt2Variant writes a copy of GPT-2's tokenizer.json with some top-level
// sections replaced by the given JSON values, and loads it.
func gpt2Variant(tb testing.TB, replace map[string]string) *Tokenizer {
	tb.Helper()
	sections, err := gpt2Sections()
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string]json.RawMessage, len(sections))
	for k, v := range sections {
		out[k] = v
	}
	for k, v := range replace {
		out[k] = json.RawMessage(v)
	}
	return loadJSON(tb, out)
}

// loadJSON writes v as a tokenizer.json in a temporary folder and loads it.
func loadJSON(tb testing.TB, v any) *Tokenizer {
	tb.Helper()
	tok, err := Load(writeJSON(tb, v))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func writeJSON(tb testing.TB, v any) string {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return writeFile(tb, string(data))
}

func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// concat joins id lists.
func concat(parts ...[]int) []int {
	out := []int{}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// withoutCache returns a copy of tok whose BPE model does not cache words.
func withoutCache(tok *Tokenizer) *Tokenizer {
	model := *tok.model
	model.cache = nil
	t2 := *tok
	t2.model = &model
	return &t2
}

// ids64 is Encode's ids as Decode takes them.
func ids64(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}
