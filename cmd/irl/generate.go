package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/policy"
	"irl/tokenizer"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "continue prompts with a GPT-NeoX (Pythia) model, greedily or by sampling",
		UsageText: `irl generate --model DIR --prompts FILE.jsonl [options] > out.jsonl
irl generate --model DIR --prompt-ids 1,2,3 --greedy --max-new-tokens 16`,
		Description: `Generates up to --max-new-tokens tokens after each prompt, with a key/value
cache: the prompts of a batch are left-padded and run once, then every step
runs one new token per sequence. A sequence stops after it produces the
model's EOS token (eos_token_id in config.json; the EOS token is part of the
output) or after --max-new-tokens tokens.

Prompts come from --prompt-ids (one prompt, comma-separated token ids) or from
--prompts, a JSON lines file ("-" for standard input) with one object per line,
either
  {"input_ids": [510, 3158, 8516]}
or, when the model folder has a tokenizer.json,
  {"prompt": "The quick brown fox"}
Blank lines are skipped; other fields are ignored.

Writes one JSON line per generated sequence to standard output (or --out), in
prompt order, the --num-return-sequences copies of a prompt together:
  {"ids": [...new token ids...], "logprobs": [...], "text": "..."}
logprobs[i] is the natural-log probability of ids[i] under the distribution it
was drawn from (after temperature, top-k and top-p; with --greedy, under the
model's plain softmax), as PPO needs. "text", the decoded new tokens, is there
only when the model folder has a tokenizer.json.

Decoding is greedy with --greedy, otherwise sampling with --temperature,
--top-k and --top-p. Sampling is reproducible: each sequence draws from its
own random stream, derived from --seed and the sequence's index, so results
do not depend on --batch-size. A prompt may have at most
max_position_embeddings - --max-new-tokens tokens.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder (config.json, weights, optional tokenizer.json)"},
			&cli.StringFlag{Name: "prompts", Usage: `JSON lines file of prompts, {"prompt": TEXT} or {"input_ids": [...]} ("-": standard input)`},
			&cli.StringFlag{Name: "prompt-ids", Usage: "a single prompt as comma-separated token ids, e.g. 1,2,3"},
			&cli.BoolFlag{Name: "greedy", Usage: "take the most likely token at each step instead of sampling"},
			&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "sampling temperature (> 0)"},
			&cli.IntFlag{Name: "top-k", Usage: "sample from the k most likely tokens only (0: all)"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "nucleus sampling: sample from the fewest most likely tokens whose probabilities reach p (0 or 1: off)"},
			&cli.IntFlag{Name: "max-new-tokens", Value: 32, Usage: "most tokens to generate per sequence"},
			&cli.Uint64Flag{Name: "seed", Usage: "random seed for sampling"},
			&cli.IntFlag{Name: "num-return-sequences", Value: 1, Usage: "sequences to generate per prompt"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "sequences decoded together"},
			&cli.BoolFlag{Name: "ignore-eos", Usage: "do not stop at the EOS token"},
			&cli.StringFlag{Name: "out", Usage: "write the JSON lines to this file instead of standard output"},
		}, runtimeFlags()...),
		Action: func(c *cli.Context) error {
			if (c.String("prompts") == "") == (c.String("prompt-ids") == "") {
				return errors.New("give exactly one of --prompts FILE.jsonl and --prompt-ids 1,2,3")
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
			dir := c.String("model")
			var tok *tokenizer.Tokenizer
			if tp := filepath.Join(dir, "tokenizer.json"); isFile(tp) {
				var err error
				if tok, err = tokenizer.Load(tp); err != nil {
					return err
				}
			}
			var prompts [][]int
			var where func(i int) string // names prompt i in errors
			if s := c.String("prompt-ids"); s != "" {
				ids, err := parseIDList(s)
				if err != nil {
					return fmt.Errorf("--prompt-ids: %w", err)
				}
				prompts = [][]int{ids}
				where = func(int) string { return "--prompt-ids" }
			} else {
				var lines []int
				var err error
				if prompts, lines, err = readPromptsFile(c, c.String("prompts"), tok); err != nil {
					return err
				}
				if len(prompts) == 0 {
					return fmt.Errorf("%s: no prompts", c.String("prompts"))
				}
				name := c.String("prompts")
				if name == "-" {
					name = "stdin"
				}
				where = func(i int) string { return fmt.Sprintf("%s:%d", name, lines[i]) }
			}
			so, err := sessionOptions(c)
			if err != nil {
				return err
			}
			m, err := policy.Load(dir)
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

			var w io.Writer = c.App.Writer
			if w == nil {
				w = os.Stdout
			}
			var f *os.File
			if path := c.String("out"); path != "" {
				if f, err = os.Create(path); err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriter(w)
			err = gen.GenerateEach(prompts, o, func(g policy.Generation) error {
				line := generationLine{IDs: g.IDs, LogProbs: g.LogProbs}
				if tok != nil {
					// JSON needs valid UTF-8; ids may end inside a character.
					s := strings.ToValidUTF8(tok.Decode(g.IDs), "\uFFFD")
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
			var pe *policy.PromptError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s: prompt %d %s", where(pe.Index), pe.Index, pe.Msg)
			}
			if err != nil {
				return err
			}
			if f != nil {
				return f.Close()
			}
			return nil
		},
	}
}

// generationLine is one output line of irl generate.
type generationLine struct {
	IDs      []int     `json:"ids"`
	LogProbs []float64 `json:"logprobs"`
	Text     *string   `json:"text,omitempty"`
}

// parseIDList reads comma-separated token ids.
func parseIDList(s string) ([]int, error) {
	var ids []int
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		id, err := strconv.Atoi(f)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("item %d, %q, is not a token id (a non-negative integer)", i+1, f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func readPromptsFile(c *cli.Context, path string, tok *tokenizer.Tokenizer) ([][]int, []int, error) {
	if path == "-" {
		var in io.Reader = c.App.Reader
		if in == nil {
			in = os.Stdin
		}
		return readPrompts(in, "stdin", tok)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readPrompts(f, path, tok)
}

// readPrompts reads JSON lines of {"prompt": TEXT} (needs tok) or
// {"input_ids": [...]}, returning the prompts and their line numbers; errors
// name the file and line.
func readPrompts(r io.Reader, name string, tok *tokenizer.Tokenizer) (prompts [][]int, lines []int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Prompt   *string `json:"prompt"`
			InputIDs *[]int  `json:"input_ids"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %v (want {\"prompt\": TEXT} or {\"input_ids\": [...]})", name, line, err)
		}
		switch {
		case rec.Prompt != nil && rec.InputIDs != nil:
			return nil, nil, fmt.Errorf("%s:%d: has both \"prompt\" and \"input_ids\": give one", name, line)
		case rec.InputIDs != nil:
			for j, id := range *rec.InputIDs {
				if id < 0 {
					return nil, nil, fmt.Errorf("%s:%d: input_ids[%d] = %d is negative", name, line, j, id)
				}
			}
			prompts, lines = append(prompts, *rec.InputIDs), append(lines, line)
		case rec.Prompt != nil:
			if tok == nil {
				return nil, nil, fmt.Errorf("%s:%d: a text \"prompt\" needs tokenizer.json in the model folder; give \"input_ids\" instead", name, line)
			}
			prompts, lines = append(prompts, tok.Encode(*rec.Prompt)), append(lines, line)
		default:
			return nil, nil, fmt.Errorf("%s:%d: no \"prompt\" or \"input_ids\"", name, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return prompts, lines, nil
}

// isFile tells whether path names a regular file.
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
