package tokenizer

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Tokenizer encodes and decodes text. It is safe for concurrent use.
type Tokenizer struct {
	model          *bpeModel
	normalize      normalizer // nil: none
	addPrefixSpace bool       // ByteLevel add_prefix_space
	useRegex       bool       // ByteLevel use_regex: split into words first

	added          []*addedToken // in file order
	addedByContent map[string]*addedToken
	rawMatcher     *matcher // added tokens with normalized=false; nil if none
	normMatcher    *matcher // added tokens with normalized=true; nil if none

	decoded []decodedID    // indexed by id
	eos     int            // -1 if none
	post    *postProcessor // nil: none (EncodeSpecial adds nothing)
}

type decodedID struct {
	text string // the bytes the id stands for
	ok   bool   // the id exists
}

// Encode returns the token ids of text. Added tokens (special or not) found in
// the text are encoded as their own ids; the text between them is normalized,
// split into words and encoded with BPE.
func (t *Tokenizer) Encode(text string) []int {
	ids := make([]int, 0, len(text)/4+1)
	t.rawMatcher.split(text, func(piece string, tok *addedToken) {
		if tok != nil {
			ids = append(ids, tok.id)
			return
		}
		if t.normalize != nil {
			piece = t.normalize(piece)
		}
		t.normMatcher.split(piece, func(piece string, tok *addedToken) {
			if tok != nil {
				ids = append(ids, tok.id)
				return
			}
			ids = t.appendPiece(ids, piece)
		})
	})
	return ids
}

// appendPiece encodes text that contains no added token (non-empty).
func (t *Tokenizer) appendPiece(ids []int, piece string) []int {
	if t.addPrefixSpace && piece[0] != ' ' {
		piece = " " + piece
	}
	if !t.useRegex {
		return t.model.appendWord(ids, piece)
	}
	for i := 0; i < len(piece); {
		n := wordLen(piece, i)
		ids = t.model.appendWord(ids, piece[i:i+n])
		i += n
	}
	return ids
}

// EncodeBatch encodes texts in parallel on GOMAXPROCS goroutines. The result
// for texts[i] is at index i.
func (t *Tokenizer) EncodeBatch(texts []string) [][]int {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	if workers <= 1 {
		for i, text := range texts {
			out[i] = t.Encode(text)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				out[i] = t.Encode(texts[i])
			}
		})
	}
	wg.Wait()
	return out
}

// Decode returns the text of ids: the bytes of each byte-level token, and the
// content of each added or special token. Unknown ids are skipped, as Hugging
// Face does. The result is the exact bytes, so decoding Encode(s)'s ids gives
// s; it is not valid UTF-8 where ids split a character (strings.ToValidUTF8
// fixes that for display), and the decodings of consecutive slices of ids
// concatenate to the decoding of the whole. The ids are int64, as the
// models take and give them, so that what a model generates decodes as it
// is.
func (t *Tokenizer) Decode(ids []int64) string {
	var sb strings.Builder
	for _, id := range ids {
		if id >= 0 && id < int64(len(t.decoded)) && t.decoded[id].ok {
			sb.WriteString(t.decoded[id].text)
		}
	}
	return sb.String()
}

// VocabSize returns the largest id of the vocabulary and the added tokens,
// plus one: the size of an embedding matrix that covers every id.
func (t *Tokenizer) VocabSize() int { return len(t.decoded) }

// TokenID returns the id of a token: an added token's content, or a
// vocabulary token written in byte-level characters ("Ġhello" for " hello").
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if at, ok := t.addedByContent[tok]; ok {
		return at.id, true
	}
	return t.model.TokenToId(tok)
}

// EOS returns the id of the end-of-sequence token: "<|endoftext|>" (GPT-2,
// Pythia) if the tokenizer has it, else the first of "</s>", "<eos>",
// "<|end_of_text|>", "<|eot_id|>", "<|im_end|>" that it has, else its only
// special added token if it has exactly one.
func (t *Tokenizer) EOS() (int, bool) {
	return t.eos, t.eos >= 0
}

var eosNames = []string{"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"}

func (t *Tokenizer) findEOS() int {
	for _, name := range eosNames {
		if id, ok := t.TokenID(name); ok {
			return id
		}
	}
	eos := -1
	for _, at := range t.added {
		if at.special {
			if eos >= 0 {
				return -1 // several: don't guess
			}
			eos = at.id
		}
	}
	return eos
}
