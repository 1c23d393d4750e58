package main

import (
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"irl/tokenizer"
)

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "encode JSON lines of text into token ids with a Hugging Face tokenizer.json",
		UsageText: "irl tokenize --tokenizer tokenizer.json [--input FILE] > ids.jsonl",
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

Lines are encoded 1024 at a time, in parallel on all CPUs, and written after
each batch, so inputs of any size stream through in bounded memory. A line
that is not valid JSON or has no string "text" stops the command with an
error giving the file (or "stdin") and line number; the lines before it have
been written.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Required: true, Usage: "path of the tokenizer.json"},
			inputFlag("JSON lines file to read (default: standard input)", false),
		},
		Action: func(c *cli.Context) error {
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
			return tok.EncodeJSONL(out, in, name, tokenizer.DefaultJSONLBatch)
		},
	}
}
