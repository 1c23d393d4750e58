package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Added tokens (the "added_tokens" of tokenizer.json, special ones such as
// <|endoftext|> included) are found in the text before anything else and
// encoded as their single id, with the id given in the file. The text between
// them is encoded on its own. This follows Hugging Face's AddedVocabulary:
//
//  1. tokens with "normalized": false are matched in the raw text;
//  2. each remaining piece is normalized, and tokens with "normalized": true
//     (their content normalized too) are matched in it;
//  3. each remaining piece is pre-tokenized and encoded with BPE.
//
// Matching is leftmost-longest and non-overlapping, with Hugging Face's
// single_word, lstrip and rstrip options.
//
// sugarme v0.3.0 gets this wrong twice: its PreTokenizedString.Normalize keeps
// only the pieces that carry no token, so every added token vanishes from the
// output, and its AddedVocabulary.AddTokens gives an added token that is not
// in the model's vocabulary the id vocab size + n instead of its id in the file.

// addedToken is one entry of "added_tokens".
type addedToken struct {
	id         int
	content    string
	special    bool
	normalized bool // matched after normalization (step 2) rather than before
	singleWord bool // only matched when not touching word characters
	lstrip     bool // swallows the white space on its left
	rstrip     bool // swallows the white space on its right
}

// matcher finds added tokens in text.
type matcher struct {
	tokens []matchPattern
	// byFirstByte[b] lists the patterns that start with byte b, longest first.
	byFirstByte [256][]int32
	// onlyFirstByte is the first byte of every pattern if they all share it
	// (GPT-2: '<'), else -1; then find can skip ahead with IndexByte.
	onlyFirstByte int
}

type matchPattern struct {
	text  string // content, normalized for normalized tokens
	token *addedToken
}

// newMatcher returns a matcher for the patterns, or nil if there are none.
func newMatcher(patterns []matchPattern) *matcher {
	if len(patterns) == 0 {
		return nil
	}
	m := &matcher{tokens: patterns, onlyFirstByte: int(patterns[0].text[0])}
	for i, p := range patterns {
		b := p.text[0]
		m.byFirstByte[b] = append(m.byFirstByte[b], int32(i))
		if int(b) != m.onlyFirstByte {
			m.onlyFirstByte = -1
		}
	}
	for b := range m.byFirstByte {
		list := m.byFirstByte[b]
		sort.SliceStable(list, func(i, j int) bool {
			return len(patterns[list[i]].text) > len(patterns[list[j]].text)
		})
	}
	return m
}

// find returns the leftmost-longest match at or after from: its start and the
// pattern's index, or -1, -1.
func (m *matcher) find(s string, from int) (int, int) {
	for i := from; i < len(s); i++ {
		if m.onlyFirstByte >= 0 {
			k := strings.IndexByte(s[i:], byte(m.onlyFirstByte))
			if k < 0 {
				break
			}
			i += k
		}
		for _, k := range m.byFirstByte[s[i]] {
			if strings.HasPrefix(s[i:], m.tokens[k].text) {
				return i, int(k)
			}
		}
	}
	return -1, -1
}

// split cuts s into pieces: for each added token found, emit(piece, token); for
// the text around them, emit(piece, nil). Empty pieces are not emitted. The
// logic is Hugging Face's AddedVocabulary::find_matches: the search resumes
// after each raw match, even when rstrip extended it or single_word rejected it.
func (m *matcher) split(s string, emit func(string, *addedToken)) {
	done := 0 // s[:done] has been emitted
	if m != nil {
		for from := 0; ; {
			start, k := m.find(s, from)
			if start < 0 {
				break
			}
			tok := m.tokens[k].token
			stop := start + len(m.tokens[k].text)
			from = stop
			if tok.singleWord {
				if (start > 0 && endsWithWordChar(s[:start])) || (stop < len(s) && startsWithWordChar(s[stop:])) {
					continue
				}
			}
			if tok.lstrip {
				start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), done)
			}
			if tok.rstrip {
				stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
			}
			if done < start {
				emit(s[done:start], nil)
			}
			emit(s[start:stop], tok)
			done = stop
		}
	}
	if done < len(s) {
		emit(s[done:], nil)
	}
}

// isWordChar reports whether r is matched by \w in Rust's regex crate, which
// Hugging Face uses for single_word: Alphabetic, M, Nd, Pc or Join_Control.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.Other_Alphabetic,
		unicode.M, unicode.Nd, unicode.Pc, unicode.Join_Control)
}

func endsWithWordChar(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordChar(r)
}
