package tokenizer

import (
	"strings"
	"unicode/utf8"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// Byte-level BPE does not work on bytes directly: every byte is first replaced
// by a printable character (GPT-2's bytes_to_unicode: the bytes '!'..'~',
// '¡'..'¬' and '®'..'ÿ' stand for themselves, the other 68 map to U+0100..U+0143
// in byte order, so a space becomes 'Ġ' and '\n' becomes 'Ċ'), and the vocabulary
// and merges are written in those characters.
//
// sugarme's pretokenizer.BytesChar holds exactly that table (checked against
// an independent implementation in TestByteAlphabetMatchesGPT2), so we use it;
// only its lookups are turned into arrays here.

// byteChar[b] is the character that stands for byte b.
var byteChar [256]string

// charByte[r] is the byte that character r stands for, or -1 if r is not in the
// byte alphabet. The alphabet's largest character is U+0143.
var charByte [0x144]int16

func init() {
	for i := range charByte {
		charByte[i] = -1
	}
	for b, c := range pretokenizer.BytesChar {
		byteChar[b] = c
		r, _ := utf8.DecodeRuneInString(c)
		charByte[r] = int16(b)
	}
}

// byteLevelString returns s with each byte replaced by its byte-level character,
// the form in which the vocabulary spells tokens.
func byteLevelString(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteChar[s[i]])
	}
	return sb.String()
}

// byteLevelDecoder turns byte-level tokens back into the bytes they stand for.
// It implements sugarme's tokenizer.Decoder.
//
// It replaces sugarme's pretokenizer.ByteLevel decoder, which turns every
// character outside the byte alphabet into a NUL byte (it reads a missing map
// entry as 0). Like Hugging Face's ByteLevel decoder, a token that contains any
// such character (an added token such as "<pad> here" or Pythia's runs of
// spaces) is kept as its own UTF-8 text instead.
type byteLevelDecoder struct{}

var _ sugar.Decoder = byteLevelDecoder{}

// Decode decodes the tokens and joins them.
func (d byteLevelDecoder) Decode(tokens []string) string {
	return strings.Join(d.DecodeChain(tokens), "")
}

// DecodeChain decodes each token on its own.
func (byteLevelDecoder) DecodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		out[i] = decodeByteLevelToken(tok)
	}
	return out
}

func decodeByteLevelToken(tok string) string {
	buf := make([]byte, 0, len(tok))
	for _, r := range tok {
		if r >= rune(len(charByte)) || charByte[r] < 0 {
			return tok // not a byte-level token: keep its text
		}
		buf = append(buf, byte(charByte[r]))
	}
	return string(buf)
}
