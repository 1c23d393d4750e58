package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// GPT-2's ByteLevel pre-tokenizer splits text into words with the pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matched leftmost-first, as a backtracking engine (Oniguruma in Hugging Face,
// JavaScript in gpt-3-encoder) does. Go's regexp has no lookahead, and
// sugarme v0.3.0 drops the two whitespace alternatives; its pieces then differ
// on whitespace runs ("a\n\nb" gives "\n\n" instead of "\n", "\n"). The pattern
// is small enough to match by hand: wordLen does, alternative by alternative.
//
// Every character is a letter (\p{L}), a number (\p{N}), white space (\s,
// Unicode White_Space, as Go's unicode.IsSpace), or other; every character is
// matched by some alternative, so the words cover the text without gaps.
// Bytes that are not valid UTF-8 count as "other" and are kept as they are.

const (
	classOther  uint8 = iota // [^\s\p{L}\p{N}]
	classLetter              // \p{L}
	classNumber              // \p{N}
	classSpace               // \s
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = runeClass(r)
	}
}

func runeClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// classAt returns the class and the byte length of the character at s[i].
func classAt(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	// An invalid byte decodes as U+FFFD, size 1, which is classOther.
	r, size := utf8.DecodeRuneInString(s[i:])
	return runeClass(r), size
}

// runEnd returns the end of the run of characters of class cls that starts at s[i].
func runEnd(s string, i int, cls uint8) int {
	for i < len(s) {
		c, size := classAt(s, i)
		if c != cls {
			break
		}
		i += size
	}
	return i
}

// contractionLen returns the length of the contraction ('s 't 're 've 'm 'll
// 'd) at the start of s, or 0. The apostrophe is s[0].
func contractionLen(s string) int {
	if len(s) >= 2 {
		switch s[1] {
		case 's', 't', 'm', 'd':
			return 2
		}
	}
	if len(s) >= 3 {
		switch s[1:3] {
		case "re", "ve", "ll":
			return 3
		}
	}
	return 0
}

// wordLen returns the byte length of the word that starts at s[i] (i < len(s)).
func wordLen(s string, i int) int {
	// 's|'t|'re|'ve|'m|'ll|'d
	if s[i] == '\'' {
		if n := contractionLen(s[i:]); n > 0 {
			return n
		}
	}

	// ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: an optional space (U+0020 only),
	// then a run of one class other than white space.
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		j = i + 1
	}
	if cls, _ := classAt(s, j); cls != classSpace {
		return runEnd(s, j, cls) - i
	}

	// s[i] is white space (and, if it is a space, so is the next character).
	// `\s+(?!\S)`: the longest run of white space that is not followed by a
	// non-space: the whole run at the end of the text, else the run without
	// its last character, which is left to start the next word (" b" in
	// "a  \n\n  b"). A single white space before a non-space fails this
	// alternative and is matched by `\s+` on its own.
	end, last := i, i
	for end < len(s) {
		c, size := classAt(s, end)
		if c != classSpace {
			break
		}
		last = end
		end += size
	}
	if end < len(s) && last > i {
		return last - i
	}
	return end - i
}

// splitWords appends the GPT-2 pre-tokenizer words of s to dst.
func splitWords(dst []string, s string) []string {
	for i := 0; i < len(s); {
		n := wordLen(s, i)
		dst = append(dst, s[i:i+n])
		i += n
	}
	return dst
}
