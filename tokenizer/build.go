package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// BuildWordBPE writes a byte-level BPE tokenizer.json, in GPT-2's format,
// whose vocabulary holds the 256 byte symbols and every given word whole,
// with and without a leading space, plus <|endoftext|> as its EOS. A model
// trained from scratch on a small corpus of these words then sees each word
// as one token, which makes it small and fast to train; any other text
// still encodes, byte by byte.
//
// Each word is built by merges that extend its prefix one character at a
// time. Merges of the spaced forms (which start with the space symbol Ġ)
// rank before those of the bare forms, and shorter prefixes before longer
// ones, so a listed word after a space always ends as one token: it is
// merged whole before any bare form's merge could apply inside it. A bare
// form (a word at the start of a text) is one token too unless a pair
// inside it begins another bare word ("nasty" holds "as").
func BuildWordBPE(words []string) ([]byte, error) {
	vocab := map[string]int{}
	var order []string
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(order)
			order = append(order, tok)
		}
	}
	for b := 0; b < 256; b++ {
		add(byteChar[b])
	}
	type merge struct {
		a, b string
		n    int  // characters in the merged token
		bare bool // of a form without the leading space
	}
	seen := map[string]bool{}
	var merges []merge
	forms := map[string]bool{}
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n") {
			return nil, fmt.Errorf("tokenizer: word %q is empty or holds a space", w)
		}
		forms[byteLevelString(w)] = true
		forms[byteLevelString(" "+w)] = true
	}
	var sorted []string
	for f := range forms {
		sorted = append(sorted, f)
	}
	sort.Strings(sorted)
	for _, f := range sorted {
		runes := []rune(f)
		prefix := string(runes[0])
		for i := 1; i < len(runes); i++ {
			next := prefix + string(runes[i])
			if key := prefix + " " + string(runes[i]); !seen[key] {
				seen[key] = true
				merges = append(merges, merge{prefix, string(runes[i]), i + 1, !strings.HasPrefix(f, byteChar[' '])})
			}
			prefix = next
		}
	}
	sort.SliceStable(merges, func(i, j int) bool {
		if merges[i].bare != merges[j].bare {
			return !merges[i].bare
		}
		return merges[i].n < merges[j].n
	})
	var ms []string
	for _, m := range merges {
		ms = append(ms, m.a+" "+m.b)
		add(m.a + m.b)
	}
	eos := len(order)
	v := make(map[string]int, len(vocab)+1)
	for k, id := range vocab {
		v[k] = id
	}
	v["<|endoftext|>"] = eos
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "normalizer": nil,
		"added_tokens": []map[string]any{{"id": eos, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": true, "special": true}},
		"pre_tokenizer":  bl,
		"post_processor": bl,
		"decoder":        bl,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "vocab": v, "merges": ms},
	}
	return json.MarshalIndent(doc, "", " ")
}
