package rows

import (
	"fmt"
	"io"
	"strings"

	"irl/tokenizer"
)

// Truncation says which end of a row longer than the length limit is cut:
// the tokenizer's own rule, so one value serves both.
type Truncation = tokenizer.Truncation

// The truncation rules.
const (
	TruncateLeft  = tokenizer.TruncateLeft  // keep the last tokens (what a scored output ends with)
	TruncateRight = tokenizer.TruncateRight // keep the first tokens
	TruncateError = tokenizer.TruncateError // a long row is a bad row
)

// ParseTruncation checks a --truncate value.
func ParseTruncation(s string) (Truncation, error) {
	switch t := Truncation(strings.ToLower(s)); t {
	case TruncateLeft, TruncateRight, TruncateError:
		return t, nil
	}
	return "", fmt.Errorf("unknown truncation %q: want left, right or error", s)
}

// EncodeOptions are the rules that turn a row into token ids.
type EncodeOptions struct {
	// Tokenizer encodes text rows; nil is allowed when every row has
	// input_ids.
	Tokenizer *tokenizer.Tokenizer
	// JoinPrompt tokenizes prompt + Joiner + text as one string (how a
	// classifier scores a prompt and its continuation). Otherwise the prompt
	// and the text are tokenized separately and their ids concatenated, as a
	// policy's prompt and its generated tokens are.
	JoinPrompt bool
	Joiner     string
	// AppendEOS appends EOS after a text row's tokens (pre-tokenized rows are
	// taken as they are).
	AppendEOS bool
	EOS       int64
	// MaxLength is the longest row in tokens, EOS included; 0 is no limit.
	MaxLength int
	// Truncate says what happens to a longer row; "" is TruncateLeft.
	Truncate Truncation
	// VocabSize, if positive, makes a row with an id outside [0, VocabSize)
	// a bad row.
	VocabSize int
	// Special applies the tokenizer's post-processor to each text row, as a
	// classifier's input needs (RoBERTa's <s> … </s>). Truncation then cuts
	// the text and keeps the special tokens, and a pre-tokenized row longer
	// than MaxLength is a bad row, since cutting it would cut its special
	// tokens. Rows with a prompt need JoinPrompt with it.
	Special bool
}

// Encoded is a row's token ids.
type Encoded struct {
	Index, Line int // the row's, as Row has them
	IDs         []int64
	// Prompt is how many of IDs are the prompt's (0 without a prompt field,
	// or with JoinPrompt), after truncation.
	Prompt int
	// Truncated tells whether the row was cut to MaxLength.
	Truncated bool
}

// Encode turns rows read from file into token ids under one set of rules.
// A row with no tokens, an id outside the vocabulary, or, with
// TruncateError, more than MaxLength tokens is returned in bad instead.
func Encode(file string, rs []Row, o EncodeOptions) (out []Encoded, bad []*RowError) {
	trunc := o.Truncate
	if trunc == "" {
		trunc = TruncateLeft
	}
	// Tokenize every text at once: EncodeBatch spreads the work over the CPUs.
	var texts, prompts []string
	var textRows []int
	for i := range rs {
		if rs[i].IDs != nil {
			continue
		}
		textRows = append(textRows, i)
		t := rs[i].Text
		if o.JoinPrompt && rs[i].Prompt != "" {
			t = rs[i].Prompt + o.Joiner + t
		}
		texts = append(texts, t)
		prompts = append(prompts, rs[i].Prompt)
	}
	ids := make([][]int64, len(rs))
	promptLen := make([]int, len(rs))
	var cut []bool      // with Special: the text rows truncation cut
	var textErr []error // with Special: the text rows that cannot fit
	if len(textRows) > 0 {
		if o.Tokenizer == nil {
			panic("rows: Encode of text rows without a tokenizer")
		}
		if o.Special && !o.JoinPrompt {
			for _, p := range prompts {
				if p != "" {
					panic("rows: Encode with Special needs JoinPrompt for rows with a prompt")
				}
			}
		}
		var enc [][]int
		if o.Special {
			enc, cut, textErr = o.Tokenizer.EncodeBatchTruncated(texts, o.MaxLength, true, trunc)
		} else {
			enc = o.Tokenizer.EncodeBatch(texts)
		}
		var penc [][]int
		if !o.JoinPrompt && !o.Special {
			penc = o.Tokenizer.EncodeBatch(prompts)
		}
		for k, i := range textRows {
			var seq []int64
			if penc != nil {
				for _, id := range penc[k] {
					seq = append(seq, int64(id))
				}
				promptLen[i] = len(seq)
			}
			for _, id := range enc[k] {
				seq = append(seq, int64(id))
			}
			if o.AppendEOS && !o.Special {
				seq = append(seq, o.EOS)
			}
			ids[i] = seq
		}
	}
	special := map[int]int{} // row → its index among the text rows, with Special
	if o.Special {
		for k, i := range textRows {
			special[i] = k
		}
	}
	for i := range rs {
		r := &rs[i]
		fail := func(err error) { bad = append(bad, &RowError{File: file, Line: r.Line, Index: r.Index, Err: err}) }
		seq, p := ids[i], promptLen[i]
		if r.IDs != nil {
			seq = r.IDs
		}
		if k, ok := special[i]; ok {
			if textErr[k] != nil {
				fail(textErr[k])
				continue
			}
			if len(seq) == 0 {
				fail(fmt.Errorf("no tokens (the text is empty, and the tokenizer adds no special tokens)"))
				continue
			}
			if j, id, ok := outOfVocab(seq, o.VocabSize); o.VocabSize > 0 && ok {
				fail(fmt.Errorf("token id %d (token %d) is outside the vocabulary [0,%d)", id, j, o.VocabSize))
				continue
			}
			out = append(out, Encoded{Index: r.Index, Line: r.Line, IDs: seq, Truncated: cut[k]})
			continue
		}
		if o.Special && r.IDs != nil && o.MaxLength > 0 && len(seq) > o.MaxLength {
			fail(fmt.Errorf("%d token ids, more than the limit of %d (pre-tokenized ids are not cut: that would cut their special tokens)", len(seq), o.MaxLength))
			continue
		}
		if len(seq) == 0 {
			fail(fmt.Errorf("no tokens"))
			continue
		}
		if o.VocabSize > 0 {
			if j, id, ok := outOfVocab(seq, o.VocabSize); ok {
				fail(fmt.Errorf("token id %d (token %d) is outside the vocabulary [0,%d)", id, j, o.VocabSize))
				continue
			}
		}
		e := Encoded{Index: r.Index, Line: r.Line, IDs: seq, Prompt: p}
		if o.MaxLength > 0 && len(seq) > o.MaxLength {
			switch trunc {
			case TruncateError:
				fail(fmt.Errorf("%d tokens, longer than max_length %d", len(seq), o.MaxLength))
				continue
			case TruncateLeft:
				cut := len(seq) - o.MaxLength
				e.IDs = seq[cut:]
				e.Prompt = max(p-cut, 0)
			case TruncateRight:
				e.IDs = seq[:o.MaxLength]
				e.Prompt = min(p, o.MaxLength)
			}
			e.Truncated = true
		}
		out = append(out, e)
	}
	return out, bad
}

func outOfVocab(seq []int64, vocab int) (int, int64, bool) {
	for j, id := range seq {
		if id < 0 || id >= int64(vocab) {
			return j, id, true
		}
	}
	return 0, 0, false
}

// Bad is what a command does with bad rows: stop at the first, or, with
// Skip (--skip-bad), leave each out and report them at the end.
type Bad struct {
	Skip bool
	List []error
}

// Add takes a bad row. It returns an error that stops the run, unless Skip
// is set.
func (b *Bad) Add(err error) error {
	if !b.Skip {
		return fmt.Errorf("%w (use skip_bad to skip bad rows)", err)
	}
	b.List = append(b.List, err)
	return nil
}

// AddAll takes a list of bad rows, stopping at the first unless Skip is set.
func (b *Bad) AddAll(errs []*RowError) error {
	for _, e := range errs {
		if err := b.Add(e); err != nil {
			return err
		}
	}
	return nil
}

// Report writes the skipped rows, the first 20 of them, to w.
func (b *Bad) Report(w io.Writer) {
	if len(b.List) == 0 {
		return
	}
	fmt.Fprintf(w, "skipped %d bad rows:\n", len(b.List))
	for i, e := range b.List {
		if i == 20 {
			fmt.Fprintf(w, "  … and %d more\n", len(b.List)-20)
			break
		}
		fmt.Fprintln(w, "  "+e.Error())
	}
}
