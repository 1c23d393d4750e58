package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"path/filepath"
	"sort"
	"sync"

	sugar "github.com/sugarme/tokenizer"

	"irl/atomicfile"
)

// bpeModel is a byte-level BPE model: a vocabulary and ranked merges. It
// implements sugarme's tokenizer.Model, and replaces sugarme's model/bpe, whose
// Word.MergeAll orders merges of equal rank by a timestamp that is never set
// instead of by position, so equal-rank merges are not applied leftmost first
// (" 2000" became " 20" + "00" instead of the single token " 2000").
//
// Encoding a word (see merge): start from one symbol per byte-level character,
// then repeatedly merge the adjacent pair with the lowest merge rank, the
// leftmost one among equal ranks, until no adjacent pair has a merge. This is
// what GPT-2's encoder.py and Hugging Face's BPE compute.
type bpeModel struct {
	vocab     map[string]int // byte-level token -> id
	idToToken []string       // id -> byte-level token; "" for ids not in vocab
	merges    map[uint64]merge
	byteID    [256]int32 // id of each byte's character, -1 if not in vocab
	unkID     int32      // id of unk_token, -1 if none
	cache     *wordCache // nil disables caching
}

// merge is what a pair of adjacent symbols turns into, and its priority.
type merge struct {
	rank  int32 // index in the merges list; lower merges first
	newID int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol is one element of a word during merging, in a doubly linked list
// over the word's initial symbols. A merged-away symbol has id -1.
type symbol struct {
	id         int32
	prev, next int32 // index of the neighbour, -1 at the ends
}

// mergeWord applies the merges to a word given as its initial symbol ids and
// returns the symbols; the final ones are reached from index 0 through next
// (the first symbol is never merged away). Symbol i covers the initial symbols
// i up to its next.
//
// Candidate merges wait in a min-heap keyed by (rank, position). Positions are
// indices of initial symbols, which keep their left-to-right order, so the
// smallest key is the lowest-ranked pair and, among equal ranks, the leftmost
// one. A heap entry goes stale when one of its symbols changes; that is seen
// when it is popped, because the rank of the pair now at its position differs
// (a rank names exactly one pair).
func (m *bpeModel) mergeWord(ids []int32) []symbol {
	n := len(ids)
	syms := make([]symbol, n)
	for i, id := range ids {
		syms[i] = symbol{id: id, prev: int32(i - 1), next: int32(i + 1)}
	}
	if n == 0 {
		return syms
	}
	syms[n-1].next = -1

	h := make(mergeHeap, 0, 2*n)
	for i := 0; i+1 < n; i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h.push(mg.rank, int32(i))
		}
	}
	for len(h) > 0 {
		rank, pos := h.pop()
		left := &syms[pos]
		if left.id < 0 || left.next < 0 {
			continue
		}
		right := &syms[left.next]
		mg, ok := m.merges[pairKey(left.id, right.id)]
		if !ok || mg.rank != rank {
			continue // stale entry
		}
		left.id = mg.newID
		right.id = -1
		left.next = right.next
		if left.next >= 0 {
			syms[left.next].prev = pos
		}
		if left.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[left.prev].id, left.id)]; ok {
				h.push(mg.rank, left.prev)
			}
		}
		if left.next >= 0 {
			if mg, ok := m.merges[pairKey(left.id, syms[left.next].id)]; ok {
				h.push(mg.rank, pos)
			}
		}
	}
	return syms
}

// mergeHeap is a binary min-heap of (rank, position) packed into uint64 keys,
// so that comparing keys compares rank first, then position.
type mergeHeap []uint64

func (h *mergeHeap) push(rank, pos int32) {
	*h = append(*h, uint64(uint32(rank))<<32|uint64(uint32(pos)))
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if a[parent] <= a[i] {
			break
		}
		a[parent], a[i] = a[i], a[parent]
		i = parent
	}
}

func (h *mergeHeap) pop() (rank, pos int32) {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(a) && a[l] < a[small] {
			small = l
		}
		if r < len(a) && a[r] < a[small] {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	*h = a
	return int32(top >> 32), int32(uint32(top))
}

// appendWord appends the ids of one pre-tokenized word, given as raw bytes.
func (m *bpeModel) appendWord(dst []int, word string) []int {
	if len(word) == 1 {
		if id := m.byteID[word[0]]; id >= 0 {
			return append(dst, int(id))
		}
	}
	if m.cache != nil {
		if ids, ok := m.cache.get(word); ok {
			return append(dst, ids...)
		}
	}
	ids := make([]int32, 0, len(word))
	for i := 0; i < len(word); i++ {
		if id := m.byteID[word[i]]; id >= 0 {
			ids = append(ids, id)
		} else if m.unkID >= 0 {
			ids = append(ids, m.unkID)
		}
		// Otherwise the byte is dropped, as Hugging Face drops characters that
		// are neither in the vocabulary nor covered by an unk_token. A complete
		// byte-level vocabulary (GPT-2's, Pythia's) has all 256.
	}
	syms := m.mergeWord(ids)
	start := len(dst)
	if len(syms) > 0 {
		for i := int32(0); i >= 0; i = syms[i].next {
			dst = append(dst, int(syms[i].id))
		}
	}
	if m.cache != nil {
		m.cache.put(word, dst[start:])
	}
	return dst
}

// sugarme tokenizer.Model implementation. These methods let the model stand in
// for sugarme's BPE in a sugarme tokenizer.Tokenizer pipeline; Tokenizer.Encode
// itself calls appendWord, which skips the conversion to byte-level strings.

var _ sugar.Model = (*bpeModel)(nil)

// Tokenize encodes one pre-tokenized word written in byte-level characters
// (as sugarme's ByteLevel pre-tokenizer hands it over, e.g. "Ġ2000"). Offsets
// are byte offsets in sequence.
func (m *bpeModel) Tokenize(sequence string) ([]sugar.Token, error) {
	ids := make([]int32, 0, len(sequence))
	starts := make([]int, 0, len(sequence))
	for i, r := range sequence {
		id, ok := m.vocab[string(r)]
		switch {
		case ok:
			ids = append(ids, int32(id))
		case m.unkID >= 0:
			ids = append(ids, m.unkID)
		default:
			continue
		}
		starts = append(starts, i)
	}
	syms := m.mergeWord(ids)
	var toks []sugar.Token
	if len(syms) == 0 {
		return toks, nil
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		end := len(sequence)
		if next := syms[i].next; next >= 0 {
			end = starts[next]
		}
		id := int(syms[i].id)
		tok, _ := m.IdToToken(id)
		toks = append(toks, sugar.Token{Id: id, Value: tok, Offsets: []int{starts[i], end}})
	}
	return toks, nil
}

// TokenToId returns the id of a byte-level token.
func (m *bpeModel) TokenToId(token string) (int, bool) {
	id, ok := m.vocab[token]
	return id, ok
}

// IdToToken returns the byte-level token of an id.
func (m *bpeModel) IdToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.idToToken) {
		return "", false
	}
	tok := m.idToToken[id]
	if got, ok := m.vocab[tok]; !ok || got != id {
		return "", false // a hole in the ids
	}
	return tok, true
}

// GetVocab returns a copy of the vocabulary.
func (m *bpeModel) GetVocab() map[string]int {
	v := make(map[string]int, len(m.vocab))
	for tok, id := range m.vocab {
		v[tok] = id
	}
	return v
}

// GetVocabSize returns the number of tokens in the vocabulary (added tokens
// not included).
func (m *bpeModel) GetVocabSize() int { return len(m.vocab) }

// Save writes the model as dir/[prefix-]vocab.json and dir/[prefix-]merges.txt,
// the files of GPT-2's original release.
func (m *bpeModel) Save(dir string, prefixOpt ...string) error {
	prefix := ""
	if len(prefixOpt) > 0 && prefixOpt[0] != "" {
		prefix = prefixOpt[0] + "-"
	}
	vocab, err := json.Marshal(m.vocab)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, prefix+"vocab.json"), vocab); err != nil {
		return err
	}
	type rankedPair struct {
		rank int32
		a, b string
	}
	pairs := make([]rankedPair, 0, len(m.merges))
	for k, mg := range m.merges {
		pairs = append(pairs, rankedPair{mg.rank, m.idToToken[int32(k>>32)], m.idToToken[int32(uint32(k))]})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].rank < pairs[j].rank })
	return atomicfile.Write(filepath.Join(dir, prefix+"merges.txt"), func(f io.Writer) error {
		w := bufio.NewWriter(f)
		fmt.Fprintln(w, "#version: 0.2")
		for _, p := range pairs {
			fmt.Fprintf(w, "%s %s\n", p.a, p.b)
		}
		return w.Flush()
	})
}

// wordCache maps words (raw bytes) to their ids. It is split into shards, each
// behind its own mutex, so that goroutines encoding in parallel rarely wait on
// each other. A full shard is emptied and refilled, which bounds memory.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards        = 64
	cacheWordsPerShard = 1024
	cacheMaxWordLen    = 256 // longer words are rare; don't keep them
)

type cacheShard struct {
	mu    sync.Mutex
	words map[string][]int
	_     [40]byte // keep shards on separate cache lines
}

func newWordCache() *wordCache {
	return &wordCache{seed: maphash.MakeSeed()}
}

func (c *wordCache) shard(word string) *cacheShard {
	return &c.shards[maphash.String(c.seed, word)%cacheShards]
}

func (c *wordCache) get(word string) ([]int, bool) {
	s := c.shard(word)
	s.mu.Lock()
	ids, ok := s.words[word]
	s.mu.Unlock()
	return ids, ok
}

// put stores a copy of ids under a copy of word (word is usually a substring of
// a caller's text, which the cache must not keep alive).
func (c *wordCache) put(word string, ids []int) {
	if len(word) > cacheMaxWordLen {
		return
	}
	word = string([]byte(word))
	ids = append([]int(nil), ids...)
	s := c.shard(word)
	s.mu.Lock()
	if s.words == nil || len(s.words) >= cacheWordsPerShard {
		s.words = make(map[string][]int, cacheWordsPerShard)
	}
	s.words[word] = ids
	s.mu.Unlock()
}
