package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Load reads a Hugging Face tokenizer.json. It accepts a BPE model with a
// ByteLevel pre-tokenizer (GPT-2, Pythia / GPT-NeoX, RoBERTa and the like),
// merges written as "a b" strings or ["a", "b"] pairs, an optional
// NFC/NFD/NFKC/NFKD normalizer, added tokens with their ids, flags and
// options, and a post_processor (RobertaProcessing, BertProcessing,
// TemplateProcessing, ByteLevel, or a Sequence of them), which only
// EncodeSpecial, EncodePairSpecial and EncodeTruncated apply. Anything it
// cannot encode exactly is rejected with an error that names the file and the
// field. The truncation and padding sections are not read.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a tokenizer.json held in memory; name (a file name) is what its
// errors call it. Whatever data holds, Parse returns a tokenizer or an error:
// it does not panic, and what it allocates is bounded by a small multiple of
// len(data) (see idLimit).
func Parse(name string, data []byte) (*Tokenizer, error) {
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", name, err)
	}
	return t, nil
}

// tokenizerJSON is the part of tokenizer.json that Load reads; each section is
// decoded on its own so that errors can name it.
type tokenizerJSON struct {
	AddedTokens   json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
}

type addedTokenJSON struct {
	ID         *int64  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int64  `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

type byteLevelJSON struct {
	Type           string `json:"type"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
}

// maxID bounds token ids so that they fit the int32 symbols of bpeModel.
const maxID = math.MaxInt32 - 1

// idLimit returns the bound that ids must stay below in a file whose
// model.vocab and added_tokens hold entries tokens between them.
//
// The loader allocates tables indexed by id (id -> token, id -> decoded
// bytes), so their size is set by the largest id, not by the number of tokens:
// a file of a few bytes naming id 2147483000 would otherwise ask for tens of
// gigabytes and the runtime would kill the process. Tying the bound to the
// entries keeps every allocation within a small multiple of the file's size.
// Real tokenizers number their tokens densely from 0 (GPT-2, Pythia, RoBERTa,
// Llama's reserved special tokens), so twice the entries leaves them a wide
// margin; the extra 1024 leaves room for small files whose few added tokens
// sit past a padded vocabulary. A fixed cap such as 1<<24 would still let a
// tiny file ask for hundreds of megabytes.
func idLimit(entries int) int {
	return min(max(2*entries, entries+1024), maxID+1)
}

// idProblem says what is wrong with a token's id, or "" if nothing is. The
// file has entries tokens in model.vocab and added_tokens, and limit is
// idLimit(entries).
func idProblem(id int64, limit, entries int) string {
	switch {
	case id < 0:
		return "which is negative"
	case id >= int64(limit):
		return fmt.Sprintf("beyond the %d ids that a file of %d tokens (model.vocab and added_tokens) may use: "+
			"ids must be below max(2 × tokens, tokens + 1024)", limit, entries)
	}
	return ""
}

// maxNesting bounds nested Sequence normalizers and post-processors. Each
// level decodes its part of the file again, so deep nesting would cost time
// in proportion to depth × size; real files nest one level.
const maxNesting = 16

func parse(data []byte) (*Tokenizer, error) {
	var file tokenizerJSON
	if err := decode(data, "", &file); err != nil {
		return nil, err
	}
	t := &Tokenizer{eos: -1}

	// The added tokens count towards the id limit, which the vocabulary
	// needs; their list is read first, the entries themselves later.
	var added []json.RawMessage
	if !isNull(file.AddedTokens) {
		if err := decode(file.AddedTokens, "added_tokens", &added); err != nil {
			return nil, err
		}
	}
	var err error
	var limit int
	if t.model, limit, err = parseModel(file.Model, len(added)); err != nil {
		return nil, err
	}
	if t.normalize, err = parseNormalizer(file.Normalizer, "normalizer", 0); err != nil {
		return nil, err
	}
	if err := t.parsePreTokenizer(file.PreTokenizer); err != nil {
		return nil, err
	}
	if err := parseDecoder(file.Decoder); err != nil {
		return nil, err
	}
	if err := t.parseAddedTokens(added, limit); err != nil {
		return nil, err
	}

	size := len(t.model.idToToken)
	for _, at := range t.added {
		size = max(size, at.id+1)
	}
	t.decoded = make([]decodedID, size)
	for tok, id := range t.model.vocab {
		t.decoded[id] = decodedID{decodeByteLevelToken(tok), true}
	}
	for _, at := range t.added {
		t.decoded[at.id] = decodedID{at.content, true}
	}
	// After the ids are known: the post-processor's ids must be among them.
	if t.post, err = t.parsePostProcessor(file.PostProcessor); err != nil {
		return nil, err
	}
	t.model.cache = newWordCache()
	t.eos = t.findEOS()
	return t, nil
}

// parseModel reads the model section. numAdded, the length of added_tokens,
// counts towards the id limit, which parseModel returns for the added tokens.
func parseModel(raw json.RawMessage, numAdded int) (*bpeModel, int, error) {
	if isNull(raw) {
		return nil, 0, errors.New("model: missing")
	}
	var head struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := decode(raw, "model", &head); err != nil {
		return nil, 0, err
	}
	switch {
	case head.Type == "BPE":
	case head.Type == "" && !isNull(head.Merges):
		// Old files may omit the type; a model with merges is BPE.
	case head.Type == "":
		return nil, 0, errors.New(`model.type: missing (only "BPE" is supported)`)
	default:
		return nil, 0, fmt.Errorf(`model.type: unsupported model type %q (only "BPE" is supported)`, head.Type)
	}

	var cfg modelJSON
	if err := decode(raw, "model", &cfg); err != nil {
		return nil, 0, err
	}
	switch {
	case cfg.Dropout != nil && *cfg.Dropout != 0:
		return nil, 0, fmt.Errorf("model.dropout: BPE dropout (%v) is not supported", *cfg.Dropout)
	case cfg.ContinuingSubwordPrefix != nil && *cfg.ContinuingSubwordPrefix != "":
		return nil, 0, fmt.Errorf("model.continuing_subword_prefix: %q is not supported", *cfg.ContinuingSubwordPrefix)
	case cfg.EndOfWordSuffix != nil && *cfg.EndOfWordSuffix != "":
		return nil, 0, fmt.Errorf("model.end_of_word_suffix: %q is not supported", *cfg.EndOfWordSuffix)
	case cfg.FuseUnk && cfg.UnkToken != nil:
		return nil, 0, errors.New("model.fuse_unk: true is not supported")
	case cfg.ByteFallback:
		return nil, 0, errors.New("model.byte_fallback: true is not supported")
	case cfg.IgnoreMerges:
		return nil, 0, errors.New("model.ignore_merges: true is not supported")
	case len(cfg.Vocab) == 0:
		return nil, 0, errors.New("model.vocab: missing or empty")
	}

	limit := idLimit(len(cfg.Vocab) + numAdded)
	m := &bpeModel{vocab: make(map[string]int, len(cfg.Vocab)), unkID: -1}
	size := 0
	for tok, id := range cfg.Vocab {
		if problem := idProblem(id, limit, len(cfg.Vocab)+numAdded); problem != "" {
			return nil, 0, fmt.Errorf("model.vocab: token %q has id %d, %s", tok, id, problem)
		}
		m.vocab[tok] = int(id)
		size = max(size, int(id)+1)
	}
	m.idToToken = make([]string, size)
	taken := make([]bool, size)
	for tok, id := range m.vocab {
		if taken[id] {
			prev := m.idToToken[id]
			return nil, 0, fmt.Errorf("model.vocab: tokens %q and %q both have id %d", min(prev, tok), max(prev, tok), id)
		}
		taken[id] = true
		m.idToToken[id] = tok
	}

	m.merges = make(map[uint64]merge, len(cfg.Merges))
	for i, raw := range cfg.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("model.merges[%d]: %w", i, err)
		}
		idA, okA := m.vocab[a]
		idB, okB := m.vocab[b]
		idAB, okAB := m.vocab[a+b]
		switch {
		case !okA:
			return nil, 0, fmt.Errorf("model.merges[%d]: token %q is not in model.vocab", i, a)
		case !okB:
			return nil, 0, fmt.Errorf("model.merges[%d]: token %q is not in model.vocab", i, b)
		case !okAB:
			return nil, 0, fmt.Errorf("model.merges[%d]: merged token %q is not in model.vocab", i, a+b)
		}
		// A repeated pair takes its last rank, as in Hugging Face.
		m.merges[pairKey(int32(idA), int32(idB))] = merge{rank: int32(i), newID: int32(idAB)}
	}
	for b := range 256 {
		m.byteID[b] = -1
		if id, ok := m.vocab[byteChar[b]]; ok {
			m.byteID[b] = int32(id)
		}
	}
	if cfg.UnkToken != nil {
		id, ok := m.vocab[*cfg.UnkToken]
		if !ok {
			return nil, 0, fmt.Errorf("model.unk_token: %q is not in model.vocab", *cfg.UnkToken)
		}
		m.unkID = int32(id)
	}
	return m, limit, nil
}

// parseMerge reads a merge written as "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", "", err
		}
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("%q is not two tokens separated by one space", s)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf(`%s is neither "a b" nor ["a", "b"]`, raw)
	}
	return pair[0], pair[1], nil
}

func (t *Tokenizer) parsePreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New(`pre_tokenizer: missing (only "ByteLevel" is supported)`)
	}
	var cfg byteLevelJSON
	if err := decode(raw, "pre_tokenizer", &cfg); err != nil {
		return err
	}
	if cfg.Type != "ByteLevel" {
		return fmt.Errorf(`pre_tokenizer.type: unsupported pre-tokenizer %q (only "ByteLevel" is supported)`, cfg.Type)
	}
	// Hugging Face's defaults when the fields are absent.
	t.addPrefixSpace = cfg.AddPrefixSpace == nil || *cfg.AddPrefixSpace
	t.useRegex = cfg.UseRegex == nil || *cfg.UseRegex
	return nil
}

func parseDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var cfg byteLevelJSON
	if err := decode(raw, "decoder", &cfg); err != nil {
		return err
	}
	if cfg.Type != "ByteLevel" {
		return fmt.Errorf(`decoder.type: unsupported decoder %q (only "ByteLevel" is supported)`, cfg.Type)
	}
	return nil
}

// parseAddedTokens reads the entries of added_tokens; their ids must be below
// limit (see idLimit).
func (t *Tokenizer) parseAddedTokens(list []json.RawMessage, limit int) error {
	t.addedByContent = make(map[string]*addedToken, len(list))
	byID := make(map[int]*addedToken, len(list))
	entries := len(t.model.vocab) + len(list)
	var rawPatterns, normPatterns []matchPattern
	for i, item := range list {
		field := fmt.Sprintf("added_tokens[%d]", i)
		var cfg addedTokenJSON
		if err := decode(item, field, &cfg); err != nil {
			return err
		}
		switch {
		case cfg.ID == nil:
			return fmt.Errorf("%s.id: missing", field)
		case cfg.Content == nil || *cfg.Content == "":
			return fmt.Errorf("%s.content: missing or empty", field)
		}
		if problem := idProblem(*cfg.ID, limit, entries); problem != "" {
			return fmt.Errorf("%s.id: token %q has id %d, %s", field, *cfg.Content, *cfg.ID, problem)
		}
		at := &addedToken{
			id:         int(*cfg.ID),
			content:    *cfg.Content,
			special:    cfg.Special,
			normalized: !cfg.Special, // Hugging Face's default
			singleWord: cfg.SingleWord,
			lstrip:     cfg.LStrip,
			rstrip:     cfg.RStrip,
		}
		if cfg.Normalized != nil {
			at.normalized = *cfg.Normalized
		}
		if prev, ok := t.addedByContent[at.content]; ok {
			return fmt.Errorf("%s.content: %q is already added_tokens with id %d", field, at.content, prev.id)
		}
		if prev, ok := byID[at.id]; ok {
			return fmt.Errorf("%s.id: %d is already the id of added token %q", field, at.id, prev.content)
		}
		t.addedByContent[at.content] = at
		byID[at.id] = at
		t.added = append(t.added, at)

		if !at.normalized {
			rawPatterns = append(rawPatterns, matchPattern{at.content, at})
			continue
		}
		pattern := at.content
		if t.normalize != nil {
			pattern = t.normalize(pattern)
		}
		if pattern != "" {
			normPatterns = append(normPatterns, matchPattern{pattern, at})
		}
	}
	t.rawMatcher = newMatcher(rawPatterns)
	t.normMatcher = newMatcher(normPatterns)
	return nil
}

// decode unmarshals data into v. Its errors name the field they are in (field
// is "" for the whole file) and, for syntax errors, the line and column.
func decode(data []byte, field string, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		line, col := position(data, syntax.Offset)
		err = fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, syntax)
	case errors.As(err, &typ):
		where := strings.Trim(field+"."+typ.Field, ".")
		if where == "" {
			return fmt.Errorf("expected a JSON object, found %s", typ.Value)
		}
		return fmt.Errorf("%s: expected %s, found JSON %s", where, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	if field == "" {
		return err
	}
	return fmt.Errorf("%s: %w", field, err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "ptr":
		return "a value"
	}
	return "a number"
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 {
		col = 1
	}
	return line, col
}
