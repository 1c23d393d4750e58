package sft

import (
	"fmt"

	"irl/neox"
	"irl/rows"
	"irl/tokenizer"
)

// ExampleOptions say how a row file becomes training examples.
type ExampleOptions struct {
	// Read picks the columns and the file format.
	Read rows.Options
	// Tokenizer is the tokenizer.json that text rows need; pre-tokenized
	// rows (input_ids) need none.
	Tokenizer string
	// MaxLength is the longest example in tokens, EOS included; 0 or more
	// than the model's positions is the model's limit.
	MaxLength int
	Truncate  rows.Truncation
	// AppendEOS ends every text row with EOS, so the model learns to stop.
	// Rows with a prompt column always get it: a completion ends there.
	AppendEOS bool
	// Bad decides what a bad row does: stop the read, or be left out.
	Bad *rows.Bad
}

// ReadExamples reads the rows of path and encodes them for m's config under
// o's rules. It returns the examples and the tokenizer it loaded (nil when
// every row was pre-tokenized). A row that leaves nothing to train on, no
// token after its prompt, is a bad row.
func ReadExamples(path string, c neox.Config, o ExampleOptions) ([]Example, *tokenizer.Tokenizer, error) {
	if o.MaxLength < 0 {
		return nil, nil, fmt.Errorf("sft: max length %d must not be negative (0: the model's limit)", o.MaxLength)
	}
	bad := o.Bad
	if bad == nil {
		bad = &rows.Bad{}
	}
	rs, badRows, err := rows.Read(path, o.Read)
	if err != nil {
		return nil, nil, err
	}
	if err := bad.AddAll(badRows); err != nil {
		return nil, nil, err
	}
	eo := rows.EncodeOptions{
		MaxLength: o.MaxLength, Truncate: o.Truncate, VocabSize: c.VocabSize,
		AppendEOS: o.Read.PromptField != "" || o.AppendEOS, EOS: int64(c.EOSTokenID),
	}
	if eo.MaxLength == 0 || eo.MaxLength > c.MaxPositions {
		eo.MaxLength = c.MaxPositions
	}
	for _, r := range rs {
		if r.IDs == nil {
			if eo.Tokenizer, err = tokenizer.Load(o.Tokenizer); err != nil {
				return nil, nil, fmt.Errorf("sft: %s has text rows, which need a tokenizer: %w", path, err)
			}
			break
		}
	}
	enc, encBad := rows.Encode(path, rs, eo)
	if err := bad.AddAll(encBad); err != nil {
		return nil, nil, err
	}
	var examples []Example
	for _, e := range enc {
		if len(e.IDs) < 2 || e.Prompt >= len(e.IDs) {
			err := fmt.Errorf("%s:%d: %d tokens after a %d-token prompt leave nothing to train on", path, e.Line, len(e.IDs), e.Prompt)
			if err := bad.Add(err); err != nil {
				return nil, nil, err
			}
			continue
		}
		examples = append(examples, Example{IDs: e.IDs, Prompt: e.Prompt})
	}
	if len(examples) == 0 {
		return nil, nil, fmt.Errorf("sft: %s: no examples to train on", path)
	}
	return examples, eo.Tokenizer, nil
}
