package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The post_processor of tokenizer.json says which ids Hugging Face's
// encode(text, add_special_tokens=True) puts around the encoded text: <s> and
// </s> for RoBERTa, [CLS] and [SEP] for BERT, a template for newer models.
// Encode never applies it; EncodeSpecial, EncodePairSpecial and
// EncodeTruncated do.
//
// Hugging Face runs a post-processor on a list of encodings, one per input
// sequence at first, and each processor turns the list into a new one (a
// Sequence of processors feeds each one's output to the next); the result is
// their concatenation. What a processor makes of the list depends only on how
// many sequences there are, never on their tokens, so the loader runs the
// processors once for one sequence and once for two, on placeholders, and
// keeps the two resulting templates: lists of ids in which seqA and seqB stand
// for the ids of the sequences. Encoding then only fills them in.

// Placeholders in a template; token ids are never negative.
const (
	seqA = -1 // the ids of the first (or only) sequence
	seqB = -2 // the ids of the second sequence
)

// postProcessor is a tokenizer.json post_processor, resolved into templates.
type postProcessor struct {
	single, pair []int
}

// maxTemplate bounds the ids and placeholders of a template. Real
// post-processors add a handful of ids, but a crafted Sequence can multiply:
// a template that repeats A k times after P processors that each wrap A in
// two ids asks for k × 2P, quadratic in the file's size. Each step is
// checked before the next one copies anything.
const maxTemplate = 4096

func checkTemplateSize(ps parts, field string) error {
	n := 0
	for _, p := range ps {
		n += len(p)
	}
	if n > maxTemplate {
		return fmt.Errorf("%s: makes more than %d ids and sequences", field, maxTemplate)
	}
	return nil
}

// parts are the encodings a processor works on, each a list of ids and
// placeholders; processor is one post-processor of tokenizer.json, and
// returns what it makes of them or an error that names its field.
type (
	parts     [][]int
	processor func(parts) (parts, error)
)

// parsePostProcessor reads the post_processor section; null gives nil.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) (*postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	proc, err := t.parseProcessor(raw, "post_processor", 0)
	if err != nil {
		return nil, err
	}
	single, err := proc(parts{{seqA}})
	if err == nil {
		err = checkTemplateSize(single, "post_processor")
	}
	if err != nil {
		return nil, err
	}
	pair, err := proc(parts{{seqA}, {seqB}})
	if err == nil {
		err = checkTemplateSize(pair, "post_processor")
	}
	if err != nil {
		return nil, err
	}
	return &postProcessor{single: join(single...), pair: join(pair...)}, nil
}

// postProcessorJSON holds the fields of every supported post-processor type.
type postProcessorJSON struct {
	Type          string            `json:"type"`
	Sep           json.RawMessage   `json:"sep"`            // Roberta, Bert
	Cls           json.RawMessage   `json:"cls"`            // Roberta, Bert
	Single        json.RawMessage   `json:"single"`         // Template
	Pair          json.RawMessage   `json:"pair"`           // Template
	SpecialTokens json.RawMessage   `json:"special_tokens"` // Template
	Processors    []json.RawMessage `json:"processors"`     // Sequence
}

// parseProcessor reads one post-processor (field names it in errors; depth
// counts the Sequences around it).
func (t *Tokenizer) parseProcessor(raw json.RawMessage, field string, depth int) (processor, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("%s: Sequences nested more than %d deep", field, maxNesting)
	}
	var cfg postProcessorJSON
	if err := decode(raw, field, &cfg); err != nil {
		return nil, err
	}
	switch cfg.Type {
	case "ByteLevel":
		// It trims offsets, which Encode does not return; it adds no ids.
		return func(ps parts) (parts, error) { return ps, nil }, nil

	case "RobertaProcessing", "BertProcessing":
		cls, err := t.parseNamedID(cfg.Cls, field+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := t.parseNamedID(cfg.Sep, field+".sep")
		if err != nil {
			return nil, err
		}
		// The first sequence becomes cls A sep. Every later one gets a sep
		// after it, and with RoBERTa a second one before it too, which makes
		// RoBERTa's pair cls A sep sep B sep and BERT's cls A sep B sep.
		roberta := cfg.Type == "RobertaProcessing"
		return func(ps parts) (parts, error) {
			out := make(parts, len(ps))
			for i, p := range ps {
				switch {
				case i == 0:
					out[i] = join([]int{cls}, p, []int{sep})
				case roberta:
					out[i] = join([]int{sep}, p, []int{sep})
				default:
					out[i] = join(p, []int{sep})
				}
			}
			return out, nil
		}, nil

	case "TemplateProcessing":
		return t.parseTemplate(cfg, field)

	case "Sequence":
		if cfg.Processors == nil {
			return nil, fmt.Errorf("%s.processors: missing", field)
		}
		seq := make([]processor, len(cfg.Processors))
		for i, sub := range cfg.Processors {
			p, err := t.parseProcessor(sub, fmt.Sprintf("%s.processors[%d]", field, i), depth+1)
			if err != nil {
				return nil, err
			}
			seq[i] = p
		}
		return func(ps parts) (parts, error) {
			for i, p := range seq {
				var err error
				if ps, err = p(ps); err != nil {
					return nil, err
				}
				if err := checkTemplateSize(ps, fmt.Sprintf("%s.processors[%d]", field, i)); err != nil {
					return nil, err
				}
			}
			return ps, nil
		}, nil

	case "":
		return nil, fmt.Errorf("%s.type: missing", field)
	}
	return nil, fmt.Errorf("%s.type: unsupported post-processor %q "+
		"(supported: RobertaProcessing, BertProcessing, TemplateProcessing, ByteLevel, Sequence)", field, cfg.Type)
}

// parseNamedID reads Roberta's and Bert's ["token", id] pairs. Only the id
// is used, as in Hugging Face; it must be a token of this tokenizer.
func (t *Tokenizer) parseNamedID(raw json.RawMessage, field string) (int, error) {
	if isNull(raw) {
		return 0, fmt.Errorf("%s: missing", field)
	}
	var pair []json.RawMessage
	var name string
	var id int64
	if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 ||
		json.Unmarshal(pair[0], &name) != nil || json.Unmarshal(pair[1], &id) != nil {
		return 0, fmt.Errorf(`%s: %s is not ["token", id]`, field, abbreviate(raw))
	}
	if err := t.checkSpecialID(id, field, name); err != nil {
		return 0, err
	}
	return int(id), nil
}

// checkSpecialID rejects ids that are not tokens of the tokenizer: the model
// has no embedding for them, so a file naming one is broken.
func (t *Tokenizer) checkSpecialID(id int64, field, name string) error {
	if id < 0 || id >= int64(len(t.decoded)) || !t.decoded[id].ok {
		return fmt.Errorf("%s: id %d of %q is not a token of model.vocab or added_tokens", field, id, name)
	}
	return nil
}

// templatePieceJSON is one element of a template: {"SpecialToken": {"id":
// "<s>", "type_id": 0}} or {"Sequence": {"id": "A", "type_id": 0}}. Type ids
// are not used: Encode returns no type ids.
type templatePieceJSON struct {
	SpecialToken *struct {
		ID *string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID *string `json:"id"`
	} `json:"Sequence"`
}

type specialTokenJSON struct {
	IDs []int64 `json:"ids"`
}

// parseTemplate reads a TemplateProcessing. As in Hugging Face, it applies its
// single template to one encoding and its pair template to two, making one
// encoding of each piece: a sequence's, or a special token's ids.
func (t *Tokenizer) parseTemplate(cfg postProcessorJSON, field string) (processor, error) {
	var specials map[string]specialTokenJSON
	if !isNull(cfg.SpecialTokens) {
		if err := decode(cfg.SpecialTokens, field+".special_tokens", &specials); err != nil {
			return nil, err
		}
	}
	for key, sp := range specials {
		for _, id := range sp.IDs {
			if err := t.checkSpecialID(id, fmt.Sprintf("%s.special_tokens[%q].ids", field, key), key); err != nil {
				return nil, err
			}
		}
	}

	// A piece is seqA or seqB, or a special token's ids (seq 0).
	type piece struct {
		seq int
		ids []int
	}
	parseTemplate := func(raw json.RawMessage, name string) ([]piece, error) {
		where := field + "." + name
		if isNull(raw) {
			return nil, fmt.Errorf("%s: missing", where)
		}
		var list []json.RawMessage
		if err := decode(raw, where, &list); err != nil {
			return nil, err
		}
		pieces := make([]piece, len(list))
		for i, item := range list {
			at := fmt.Sprintf("%s[%d]", where, i)
			var p templatePieceJSON
			if err := decode(item, at, &p); err != nil {
				return nil, err
			}
			switch {
			case (p.SpecialToken == nil) == (p.Sequence == nil):
				return nil, fmt.Errorf(`%s: %s is neither {"SpecialToken": ...} nor {"Sequence": ...}`, at, abbreviate(item))
			case p.Sequence != nil && p.Sequence.ID == nil:
				return nil, fmt.Errorf("%s.Sequence.id: missing", at)
			case p.Sequence != nil && *p.Sequence.ID == "A":
				pieces[i].seq = seqA
			case p.Sequence != nil && *p.Sequence.ID == "B":
				pieces[i].seq = seqB
			case p.Sequence != nil:
				return nil, fmt.Errorf(`%s.Sequence.id: %q is neither "A" nor "B"`, at, *p.Sequence.ID)
			case p.SpecialToken.ID == nil:
				return nil, fmt.Errorf("%s.SpecialToken.id: missing", at)
			default:
				sp, ok := specials[*p.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%s.SpecialToken.id: %q is not in %s.special_tokens", at, *p.SpecialToken.ID, field)
				}
				pieces[i].ids = make([]int, len(sp.IDs))
				for k, id := range sp.IDs {
					pieces[i].ids[k] = int(id)
				}
			}
		}
		return pieces, nil
	}
	single, err := parseTemplate(cfg.Single, "single")
	if err != nil {
		return nil, err
	}
	pair, err := parseTemplate(cfg.Pair, "pair")
	if err != nil {
		return nil, err
	}
	// Hugging Face's own checks: a pair template uses both sequences (else
	// it refuses the template), and a single one has only A (else encoding
	// one sequence fails on the missing B).
	uses := func(pieces []piece, seq int) bool {
		for _, p := range pieces {
			if p.seq == seq {
				return true
			}
		}
		return false
	}
	if !uses(pair, seqA) || !uses(pair, seqB) {
		return nil, fmt.Errorf("%s.pair: uses only one of the sequences A and B", field)
	}
	if uses(single, seqB) {
		return nil, fmt.Errorf("%s.single: uses sequence B, which a single sequence does not have", field)
	}

	return func(ps parts) (parts, error) {
		var tpl []piece
		switch len(ps) {
		case 1:
			tpl = single
		case 2:
			tpl = pair
		default:
			// Hugging Face fails here too (an unimplemented case): an
			// earlier processor of a Sequence has split the sequences.
			return nil, fmt.Errorf("%s: TemplateProcessing given %d encodings by the processors before it; it takes 1 or 2", field, len(ps))
		}
		out := make(parts, len(tpl))
		for i, p := range tpl {
			switch p.seq {
			case seqA:
				out[i] = ps[0]
			case seqB:
				out[i] = ps[1]
			default:
				out[i] = p.ids
			}
		}
		return out, nil
	}, nil
}

// join concatenates id lists into a new one.
func join(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// abbreviate returns raw JSON for an error message, cut if long.
func abbreviate(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// fill returns the template with its placeholders replaced by a and b.
func fill(tpl, a, b []int) []int {
	n := 0
	for _, v := range tpl {
		switch v {
		case seqA:
			n += len(a)
		case seqB:
			n += len(b)
		default:
			n++
		}
	}
	out := make([]int, 0, n)
	for _, v := range tpl {
		switch v {
		case seqA:
			out = append(out, a...)
		case seqB:
			out = append(out, b...)
		default:
			out = append(out, v)
		}
	}
	return out
}

// EncodeSpecial encodes text and applies the post-processor, as Hugging
// Face's encode(text, add_special_tokens=True): RoBERTa's <s> … </s>, BERT's
// [CLS] … [SEP], or what a template says. Without a post-processor (GPT-2,
// Pythia) it equals Encode.
func (t *Tokenizer) EncodeSpecial(text string) []int {
	ids := t.Encode(text)
	if t.post == nil {
		return ids
	}
	return fill(t.post.single, ids, nil)
}

// EncodePairSpecial encodes two texts as one input (a premise and a
// hypothesis, a question and a passage) and applies the post-processor, as
// Hugging Face's encode(a, b, add_special_tokens=True): RoBERTa's
// <s> A </s></s> B </s>, BERT's [CLS] A [SEP] B [SEP]. Without a
// post-processor it is Encode(a) followed by Encode(b).
func (t *Tokenizer) EncodePairSpecial(a, b string) []int {
	idsA, idsB := t.Encode(a), t.Encode(b)
	if t.post == nil {
		return fill([]int{seqA, seqB}, idsA, idsB)
	}
	return fill(t.post.pair, idsA, idsB)
}

// NumSpecial is how many ids the post-processor adds to a single sequence:
// 2 for RoBERTa and BERT, 0 without a post-processor.
func (t *Tokenizer) NumSpecial() int {
	n, _ := t.singleTemplateCounts()
	return n
}

// singleTemplateCounts returns how many ids the single template adds and how
// many times it repeats the sequence (once in every known file).
func (t *Tokenizer) singleTemplateCounts() (special, copies int) {
	if t.post == nil {
		return 0, 1
	}
	for _, v := range t.post.single {
		if v == seqA {
			copies++
		} else {
			special++
		}
	}
	return special, copies
}

// Truncation says what EncodeTruncated does with a text that is too long.
type Truncation string

const (
	// TruncateRight keeps the text's first tokens (Hugging Face's default
	// truncation side, "right").
	TruncateRight Truncation = "right"
	// TruncateLeft keeps the text's last tokens ("left"): the end of a
	// conversation, the answer after a long prompt.
	TruncateLeft Truncation = "left"
	// TruncateError cuts nothing: a text that is too long is an error.
	TruncateError Truncation = "error"
)

// EncodeTruncated encodes text with the post-processor's special tokens
// (special=true, as EncodeSpecial) or without (as Encode), cutting the text's
// own tokens on the given side so that the result has at most maxLen ids; the
// special tokens are always kept. It returns the ids and whether it cut. It
// returns an error, and no ids, when side is TruncateError and the text is
// too long, when maxLen cannot even hold the special tokens, and for an
// unknown side.
func (t *Tokenizer) EncodeTruncated(text string, maxLen int, special bool, side Truncation) ([]int, bool, error) {
	switch side {
	case TruncateRight, TruncateLeft, TruncateError:
	default:
		return nil, false, fmt.Errorf("truncation side %q: want %q, %q or %q", side, TruncateRight, TruncateLeft, TruncateError)
	}
	tpl, numSpecial, copies := []int{seqA}, 0, 1
	if special && t.post != nil {
		tpl = t.post.single
		numSpecial, copies = t.singleTemplateCounts()
	}
	switch {
	case maxLen < 0:
		return nil, false, fmt.Errorf("max length %d is negative", maxLen)
	case maxLen < numSpecial:
		return nil, false, fmt.Errorf("max length %d cannot hold the %d special tokens", maxLen, numSpecial)
	}
	ids := t.Encode(text)
	keep := len(ids)
	if copies > 0 {
		keep = min(keep, (maxLen-numSpecial)/copies)
	}
	cut := keep < len(ids)
	if cut {
		switch side {
		case TruncateError:
			if numSpecial == 0 {
				return nil, false, fmt.Errorf("text is %d tokens, more than max length %d", len(ids), maxLen)
			}
			return nil, false, fmt.Errorf("text is %d tokens, more than the %d that max length %d leaves beside %d special tokens",
				len(ids), keep, maxLen, numSpecial)
		case TruncateRight:
			ids = ids[:keep]
		case TruncateLeft:
			ids = ids[len(ids)-keep:]
		}
	}
	return fill(tpl, ids, nil), cut, nil
}
