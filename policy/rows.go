package policy

import (
	"errors"
	"fmt"
	"strings"

	"irl/rows"
	"irl/tokenizer"
)

// RowGeneration is one generated sequence of a prompt row, as `irl
// generate` writes it: Row is the prompt's index among its file's data rows
// (nil for a prompt not from a file) and Sequence which of its sequences
// this is; Prompt (a text prompt) and Fields echo the row, so outputs join
// back to their prompts. IDs end with EOS when the sequence stopped there;
// Text, the decoded new tokens without the EOS, is there when a tokenizer
// is.
type RowGeneration struct {
	Row      *int           `json:"row,omitempty"`
	Sequence int            `json:"sequence"`
	Prompt   *string        `json:"prompt,omitempty"`
	Fields   map[string]any `json:"fields,omitempty"`
	IDs      []int64        `json:"ids"`
	LogProbs []float64      `json:"logprobs"`
	Text     *string        `json:"text,omitempty"`
}

// PromptRows turns prompt rows of file into token ids by the rule every
// command uses: a row's input_ids as they are, its text through tok. A row
// that cannot be encoded, or a text row without a tokenizer, is an error
// naming the file and line.
func PromptRows(file string, rs []rows.Row, tok *tokenizer.Tokenizer) ([][]int64, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no prompts", file)
	}
	for _, r := range rs {
		if r.IDs == nil && tok == nil {
			return nil, fmt.Errorf("%s:%d: a text prompt needs a tokenizer (tokenizer.json in the model folder, or one given), or give \"input_ids\"", file, r.Line)
		}
	}
	enc, bad := rows.Encode(file, rs, rows.EncodeOptions{Tokenizer: tok})
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s:%d: prompt %d: %v", file, bad[0].Line, bad[0].Index, bad[0].Err)
	}
	ids := make([][]int64, len(enc))
	for i, e := range enc {
		ids[i] = e.IDs
	}
	return ids, nil
}

// GenerateRows continues the prompts (ids[i] the ids of rs[i]; rs nil for
// prompts not from a file) and gives emit each sequence as a RowGeneration,
// in prompt order, with its text when tok is not nil. A prompt the
// generator refuses is an error naming where (file:line) it came from.
func (g *Generator) GenerateRows(file string, rs []rows.Row, ids [][]int64, tok *tokenizer.Tokenizer, o GenerateOptions, emit func(RowGeneration) error) error {
	err := g.GenerateEach(ids, o, func(gen Generation) error {
		line := RowGeneration{IDs: gen.IDs, LogProbs: gen.LogProbs, Sequence: gen.Sequence}
		if rs != nil {
			r := rs[gen.Prompt]
			line.Row, line.Fields = &r.Index, r.Fields
			if r.IDs == nil {
				line.Prompt = &r.Text
			}
		}
		if tok != nil {
			ids := gen.IDs
			if gen.EOS {
				ids = ids[:len(ids)-1] // the stop token is in ids, not in the text
			}
			// JSON needs valid UTF-8; ids may end inside a character.
			s := strings.ToValidUTF8(tok.Decode(ids), "\uFFFD")
			line.Text = &s
		}
		return emit(line)
	})
	var pe *PromptError
	if errors.As(err, &pe) {
		where := file
		if rs != nil {
			where = fmt.Sprintf("%s:%d", file, rs[pe.Index].Line)
		}
		return fmt.Errorf("%s: prompt %d %s", where, pe.Index, pe.Msg)
	}
	return err
}
