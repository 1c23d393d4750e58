package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"irl/rows"
	"irl/tokenizer"
)

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "encode JSON lines of text into token ids with a Hugging Face tokenizer.json",
		UsageText: "irl tokenize --tokenizer tokenizer.json [--input FILE] [--add-special-tokens] [--max-length N [--truncate right|left|error]] [--skip-bad] > ids.jsonl",
		Description: `Reads JSON lines, one object per line with a string field "text" (other
fields are ignored; blank lines are skipped), from --input FILE or standard
input, and writes one line {"ids": [...]} per input line to standard output,
in the same order:

  echo '{"text": "Hello world<|endoftext|>"}' | irl tokenize --tokenizer tokenizer.json
  {"ids":[15496,995,50256]}

The tokenizer is a Hugging Face tokenizer.json for a byte-level BPE model
(GPT-2, Pythia / GPT-NeoX). The ids are those of Hugging Face's
encode(text, add_special_tokens=False): added and special tokens written in
the text, such as <|endoftext|>, become their single ids, and no BOS/EOS is
added. Other kinds of tokenizer are rejected with an error.

--add-special-tokens applies the tokenizer's post-processor, as Hugging Face's
encode(text, add_special_tokens=True): RoBERTa's <s> … </s>, BERT's
[CLS] … [SEP]; a tokenizer without one (GPT-2, Pythia) adds nothing. These are
the ids a classifier takes, the input_ids of pre-tokenized rows for
irl score --reward classifier:MODEL.

--max-length N cuts each text to N ids, the special tokens included and kept:
the text's own tokens are cut on the --truncate side (right, Hugging Face's
default, keeps the first; left keeps the last), and --truncate error stops the
command at a longer line instead.

Lines are encoded 1024 at a time, in parallel on all CPUs, and written after
each batch, so inputs of any size stream through in bounded memory. A line
that is not valid JSON, has no string "text" or holds invalid UTF-8 stops the
command with an error giving the file (or "stdin") and line number; the lines
before it have been written. With --skip-bad such lines are left out and
listed on stderr at the end, and every output line carries its input line
number, {"line": N, "ids": [...]}, so outputs still join back to inputs.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Required: true, Usage: "path of the tokenizer.json"},
			inputFlag("JSON lines file to read (default: standard input)", false),
			&cli.BoolFlag{Name: "add-special-tokens", Usage: "apply the tokenizer's post-processor (<s> … </s> for RoBERTa)"},
			&cli.IntFlag{Name: "max-length", Usage: "longest output in ids, special tokens included (0: no limit)"},
			truncateFlag("right"),
			skipBadFlag,
		},
		Action: func(c *cli.Context) error {
			o := tokenizer.JSONLOptions{
				BatchSize: tokenizer.DefaultJSONLBatch, Special: c.Bool("add-special-tokens"),
				MaxLength: c.Int("max-length"), Truncate: tokenizer.Truncation(c.String("truncate")),
			}
			if o.MaxLength < 0 {
				return fmt.Errorf("--max-length must not be negative, got %d", o.MaxLength)
			}
			if _, err := rows.ParseTruncation(c.String("truncate")); err != nil {
				return err
			}
			tok, err := tokenizer.Load(c.String("tokenizer"))
			if err != nil {
				return err
			}
			var in io.Reader = c.App.Reader
			if in == nil {
				in = os.Stdin
			}
			name := "stdin"
			if path := c.String("input"); path != "" {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, path
			}
			var out io.Writer = c.App.Writer
			if out == nil {
				out = os.Stdout
			}
			bad := &rows.Bad{Skip: true}
			if c.Bool("skip-bad") {
				o.Bad = func(line int, err error) { bad.Add(fmt.Errorf("%s:%d: %w", name, line, err)) }
			}
			err = tok.EncodeJSONLOptions(out, in, name, o)
			if err != nil && !c.Bool("skip-bad") {
				err = fmt.Errorf("%w (use --skip-bad to skip bad lines)", err)
			}
			bad.Report(os.Stderr)
			return err
		},
	}
}
