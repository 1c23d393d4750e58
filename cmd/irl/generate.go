package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/neox"
	"irl/policy"
	"irl/progress"
	"irl/rows"
	"irl/tokenizer"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "continue prompts with a GPT-NeoX (Pythia) model, greedily or by sampling",
		UsageText: `irl generate --model DIR --input ROWS [options] > out.jsonl
irl generate --model DIR --prompt-ids 1,2,3 --greedy --max-new-tokens 16`,
		Description: `Generates up to --max-new-tokens tokens after each prompt, with a key/value
cache: the prompts of a batch are left-padded and run once, then every step
runs one new token per sequence. A sequence stops after it produces the
model's EOS token (eos_token_id in config.json) or after --max-new-tokens
tokens.

Prompts come from --prompt-ids (one prompt, comma-separated token ids) or from
--input (alias --prompts): JSON lines, CSV or Parquet rows, as every command
reads them, each with a --prompt-field column (default "prompt") holding text
or an input_ids list of token ids:
  {"prompt": "The quick brown fox", "id": 7}
  {"input_ids": [510, 3158, 8516]}
Text prompts need a tokenizer: tokenizer.json in the model folder, or
--tokenizer.

Writes one JSON line per generated sequence to standard output (or --out), in
prompt order, the --num-return-sequences copies of a prompt together:
  {"row": 0, "sequence": 0, "prompt": "...", "fields": {"id": 7},
   "ids": [...new token ids...], "logprobs": [...], "text": "..."}
row is the prompt's index among the input's data rows, and fields its other
columns, so outputs join back to their prompts. ids end with EOS when the
sequence stopped there; text, the decoded new tokens without the EOS, is
there when a tokenizer is. logprobs[i] is the natural-log probability of ids[i]
under the distribution it was drawn from (after temperature, top-k and top-p;
with --greedy, under the model's plain softmax).

Decoding is greedy with --greedy, otherwise sampling with --temperature,
--top-k and --top-p. Sampling is reproducible: each sequence draws from its
own random stream, derived from --seed and the sequence's index, so results
do not depend on --batch-size. A prompt may have at most
max_position_embeddings - --max-new-tokens tokens.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder (config.json, weights, optional tokenizer.json)"},
			inputFlag(`prompt rows: JSON lines, CSV or Parquet with a --prompt-field column or input_ids ("-": JSON lines on standard input)`, false, "prompts"),
			promptFieldFlag("prompt", "name of the prompt column"), inputFormatFlag,
			tokenizerFlag,
			&cli.StringFlag{Name: "prompt-ids", Usage: "a single prompt as comma-separated token ids, e.g. 1,2,3"},
			&cli.BoolFlag{Name: "greedy", Usage: "take the most likely token at each step instead of sampling"},
			&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "sampling temperature (> 0)"},
			&cli.IntFlag{Name: "top-k", Usage: "sample from the k most likely tokens only", DefaultText: "0, all"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "nucleus sampling: sample from the fewest most likely tokens whose probabilities reach p (0 or 1: off)"},
			&cli.IntFlag{Name: "max-new-tokens", Value: 32, Usage: "most tokens to generate per sequence"},
			seedFlag("random seed for sampling"),
			&cli.IntFlag{Name: "num-return-sequences", Value: 1, Usage: "sequences to generate per prompt"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "sequences decoded together"},
			&cli.BoolFlag{Name: "ignore-eos", Usage: "do not stop at the EOS token"},
			&cli.StringFlag{Name: "out", Usage: "write the JSON lines to this file instead of standard output"},
			quietFlag,
		}, runtimeFlags()...),
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	input := c.String("input")
	if (input == "") == (c.String("prompt-ids") == "") {
		return errors.New("give exactly one of --input/--prompts FILE.jsonl and --prompt-ids 1,2,3")
	}
	if c.Int("max-new-tokens") <= 0 {
		return fmt.Errorf("--max-new-tokens must be positive, got %d", c.Int("max-new-tokens"))
	}
	if c.Int("num-return-sequences") <= 0 {
		return fmt.Errorf("--num-return-sequences must be positive, got %d", c.Int("num-return-sequences"))
	}
	if c.Int("batch-size") <= 0 {
		return fmt.Errorf("--batch-size must be positive, got %d", c.Int("batch-size"))
	}
	if path := c.String("out"); path != "" {
		if err := atomicfile.CheckFile(path); err != nil {
			return err
		}
	}
	if c.Bool("greedy") && c.IsSet("temperature") {
		return errors.New("--greedy takes the most likely token: --temperature does not apply")
	}
	dir := c.String("model")
	tok, err := tokenizer.LoadFor(dir, c.String("tokenizer"))
	if err != nil {
		return err
	}
	var prompts [][]int64
	var src []rows.Row // the prompt rows, echoed in the output
	var where func(i int) string
	if s := c.String("prompt-ids"); s != "" {
		ids, err := parseIDList(s)
		if err != nil {
			return fmt.Errorf("--prompt-ids: %w", err)
		}
		prompts = [][]int64{ids}
		src = []rows.Row{{}}
		where = func(int) string { return "--prompt-ids" }
	} else {
		name := input
		if name == "-" {
			name = "stdin"
		}
		rs, bad, err := rows.Read(input, rows.Options{TextField: c.String("prompt-field"), KeepFields: true, Format: c.String("input-format")})
		if err != nil {
			return err
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s:%d: prompt %d: %v", name, bad[0].Line, bad[0].Index, bad[0].Err)
		}
		if len(rs) == 0 {
			return fmt.Errorf("%s: no prompts", name)
		}
		for _, r := range rs {
			if r.IDs == nil && tok == nil {
				return fmt.Errorf("%s:%d: a text prompt needs a tokenizer: tokenizer.json in the model folder, or --tokenizer; or give \"input_ids\"", name, r.Line)
			}
		}
		enc, encBad := rows.Encode(name, rs, rows.EncodeOptions{Tokenizer: tok})
		if len(encBad) > 0 {
			return fmt.Errorf("%s:%d: prompt %d: %v", name, encBad[0].Line, encBad[0].Index, encBad[0].Err)
		}
		for _, e := range enc {
			prompts = append(prompts, e.IDs)
		}
		src = rs
		where = func(i int) string { return fmt.Sprintf("%s:%d", name, rs[i].Line) }
	}
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	m, err := neox.Load(dir)
	if err != nil {
		return err
	}
	o := policy.GenerateOptions{
		MaxNewTokens: c.Int("max-new-tokens"),
		Sampling: policy.SampleOptions{
			Greedy: c.Bool("greedy"), Temperature: c.Float64("temperature"),
			TopK: c.Int("top-k"), TopP: c.Float64("top-p"),
		},
		Seed:               c.Uint64("seed"),
		NumReturnSequences: c.Int("num-return-sequences"),
		BatchSize:          c.Int("batch-size"),
		IgnoreEOS:          c.Bool("ignore-eos"),
	}
	gen, err := policy.NewGenerator(m, so)
	if err != nil {
		return err
	}
	defer gen.Destroy()

	var bar *progress.Bar
	if !c.Bool("quiet") {
		bar = progress.New(os.Stderr, len(prompts)*o.NumReturnSequences, "generate", "seqs")
	}
	// A file given with --out appears whole or not at all; stdout streams.
	emit := func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		return gen.GenerateEach(prompts, o, func(g policy.Generation) error {
			bar.Add(1)
			r := src[g.Prompt]
			line := generationLine{IDs: g.IDs, LogProbs: g.LogProbs, Sequence: g.Sequence, Fields: r.Fields}
			if c.String("prompt-ids") == "" {
				line.Row = &r.Index
				if r.IDs == nil {
					line.Prompt = &r.Text
				}
			}
			if tok != nil {
				ids := g.IDs
				if g.EOS {
					ids = ids[:len(ids)-1] // the stop token is in ids, not in the text
				}
				// JSON needs valid UTF-8; ids may end inside a character.
				s := strings.ToValidUTF8(tok.Decode(ids), "\uFFFD")
				line.Text = &s
			}
			b, err := json.Marshal(line)
			if err != nil {
				return err
			}
			bw.Write(b)
			bw.WriteByte('\n')
			return bw.Flush()
		})
	}
	if path := c.String("out"); path != "" {
		err = atomicfile.Write(path, emit)
	} else {
		w := c.App.Writer
		if w == nil {
			w = os.Stdout
		}
		err = emit(w)
	}
	if err == nil {
		bar.Finish()
	}
	var pe *policy.PromptError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: prompt %d %s", where(pe.Index), pe.Index, pe.Msg)
	}
	return err
}

// generationLine is one output line of irl generate.
type generationLine struct {
	// Row is the prompt's index among the file's data rows, and Sequence
	// which of its --num-return-sequences this is; Prompt and Fields echo
	// the prompt row, so outputs join back to their prompts.
	Row      *int           `json:"row,omitempty"`
	Sequence int            `json:"sequence"`
	Prompt   *string        `json:"prompt,omitempty"`
	Fields   map[string]any `json:"fields,omitempty"`
	IDs      []int64        `json:"ids"`
	LogProbs []float64      `json:"logprobs"`
	Text     *string        `json:"text,omitempty"`
}

// parseIDList reads comma-separated token ids.
func parseIDList(s string) ([]int64, error) {
	var ids []int64
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("item %d, %q, is not a token id (a non-negative integer)", i+1, f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
