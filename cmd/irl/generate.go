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
		}, append(shardFlags(), runtimeFlags()...)...),
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	pt, err := openShard(c, "generate")
	if err != nil {
		return err
	}
	out := pt.out(c.String("out"))
	if err := generateCheckFlags(c, out); err != nil {
		return err
	}
	if err := pt.refuse(out == "", "a part needs --out FILE (its manifest goes beside it)"); err != nil {
		return err
	}
	dir := c.String("model")
	tok, err := tokenizer.LoadFor(dir, c.String("tokenizer"))
	if err != nil {
		return err
	}
	file, rs, prompts, err := generatePrompts(c, tok)
	if err != nil {
		return err
	}
	var index []int
	if pt != nil {
		// Every row is a prompt (a bad one stops the run), so the shard's
		// rows are its prompts' indices.
		rs, _ = pt.rows(rs, nil)
		index = pt.m.Units
		prompts = pick(prompts, index)
	}
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	src, err := neox.Open(dir)
	if err != nil {
		return err
	}
	m, err := src.Load()
	if err != nil {
		return err
	}
	pt.model(src)
	if empty, err := pt.empty(out, false); empty || err != nil {
		return err
	}
	o := policy.GenerateOptions{
		PromptIndex:  index,
		MaxNewTokens: c.Int("max-new-tokens"),
		Sampling: policy.SampleOptions{
			Greedy: c.Bool("greedy"), Temperature: c.Float64("temperature"),
			TopK: c.Int("top-k"), TopP: c.Float64("top-p"),
		},
		Seed:               c.Uint64("seed"),
		NumReturnSequences: c.Int("num-return-sequences"),
		BatchSize:          c.Int("batch-size"),
		IgnoreEOS:          c.Bool("ignore-eos"),
		Context:            c.Context,
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
		return gen.GenerateRows(file, rs, prompts, tok, o, func(line policy.RowGeneration) error {
			bar.Add(1)
			b, err := json.Marshal(line)
			if err != nil {
				return err
			}
			bw.Write(b)
			bw.WriteByte('\n')
			return bw.Flush()
		})
	}
	if out != "" {
		err = atomicfile.Write(out, emit)
		if err == nil {
			err = pt.finish(out, false, "")
		}
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
	return err
}

// generateCheckFlags refuses values out of range, and --out where it
// cannot be written, before any work.
func generateCheckFlags(c *cli.Context, out string) error {
	if (c.String("input") == "") == (c.String("prompt-ids") == "") {
		return errors.New("give exactly one of --input ROWS and --prompt-ids 1,2,3")
	}
	for _, f := range []string{"max-new-tokens", "num-return-sequences", "batch-size"} {
		if c.Int(f) <= 0 {
			return fmt.Errorf("--%s must be positive, got %d", f, c.Int(f))
		}
	}
	if out != "" {
		if err := atomicfile.CheckFile(out); err != nil {
			return err
		}
	}
	if c.Bool("greedy") && c.IsSet("temperature") {
		return errors.New("--greedy takes the most likely token: --temperature does not apply")
	}
	return nil
}

// generatePrompts are the prompts to continue: --prompt-ids, or --input's
// rows (rs, nil for --prompt-ids) encoded, with the name that errors give
// them.
func generatePrompts(c *cli.Context, tok *tokenizer.Tokenizer) (file string, rs []rows.Row, prompts [][]int64, err error) {
	if s := c.String("prompt-ids"); s != "" {
		ids, err := parseIDList(s)
		if err != nil {
			return "", nil, nil, fmt.Errorf("--prompt-ids: %w", err)
		}
		return "--prompt-ids", nil, [][]int64{ids}, nil
	}
	input := c.String("input")
	file = input
	if file == "-" {
		file = "stdin"
	}
	rs, bad, err := rows.Read(input, rows.Options{TextField: c.String("prompt-field"), KeepFields: true, Format: c.String("input-format")})
	if err != nil {
		return "", nil, nil, err
	}
	if len(bad) > 0 {
		return "", nil, nil, fmt.Errorf("%s:%d: prompt %d: %v", file, bad[0].Line, bad[0].Index, bad[0].Err)
	}
	prompts, err = policy.PromptRows(file, rs, tok)
	return file, rs, prompts, err
}

// pick is xs at the given indices.
func pick[T any](xs []T, idx []int) []T {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = xs[i]
	}
	return out
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
