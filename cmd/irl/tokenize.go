package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"irl/rows"
	"irl/tokenizer"
)

// tokenizeHelp is the help text of tokenize.
const tokenizeHelp = `Reads JSON lines, one object per line with a string field "text" (other
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
number, {"line": N, "ids": [...]}, so outputs still join back to inputs.

Other inputs, as every command reads rows: --text-field names another column
(a dotted path reaches into JSON: prompt.text), and CSV or Parquet files
(--input-format, or the extension) are read whole, then encoded and written
the same way; there a bad row is found before anything is written, and the
line of a CSV row counts the header as line 1.`

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:        "tokenize",
		Usage:       "encode JSON lines of text into token ids with a Hugging Face tokenizer.json",
		UsageText:   "irl tokenize --tokenizer tokenizer.json [--input FILE] [--input-format jsonl|csv|parquet] [--text-field F] [--add-special-tokens] [--max-length N [--truncate right|left|error]] [--skip-bad] > ids.jsonl",
		Description: tokenizeHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Required: true, Usage: "path of the tokenizer.json"},
			inputFlag("rows to read: JSON lines, CSV or Parquet (default: JSON lines on standard input)", false),
			inputFormatFlag,
			textFieldFlag("text", "the column holding the text"),
			&cli.BoolFlag{Name: "add-special-tokens", Usage: "apply the tokenizer's post-processor (<s> … </s> for RoBERTa)"},
			&cli.IntFlag{Name: "max-length", Usage: "longest output in ids, special tokens included (0: no limit)"},
			truncateFlag("right"),
			skipBadFlag,
		},
		Action: runTokenize,
	}
}

func runTokenize(c *cli.Context) error {
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
	var out io.Writer = c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	path := c.String("input")
	if path == "" {
		path = "-"
	}
	format, err := rows.PickFormat(path, c.String("input-format"))
	if err != nil {
		return err
	}
	if format != "jsonl" || c.String("text-field") != "text" {
		return tokenizeRows(tok, o, path, format, c.String("text-field"), c.Bool("skip-bad"), out)
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
}

// tokenizeRows is tokenize over rows as every command reads them: another
// text column, CSV or Parquet. The output lines are those of the JSON lines
// path.
func tokenizeRows(tok *tokenizer.Tokenizer, o tokenizer.JSONLOptions, path, format, field string, skipBad bool, out io.Writer) error {
	rs, badRows, err := rows.Read(path, rows.Options{TextField: field, Format: format})
	if err != nil {
		return err
	}
	bad := &rows.Bad{Skip: skipBad}
	hint := func(err error) error {
		if skipBad {
			return err
		}
		return fmt.Errorf("%w (use --skip-bad to skip bad rows)", err)
	}
	if err := bad.AddAll(badRows); err != nil {
		return hint(err)
	}
	kept := rs[:0:0]
	for _, r := range rs {
		if r.IDs != nil {
			if err := bad.Add(&rows.RowError{File: path, Line: r.Line, Index: r.Index, Err: fmt.Errorf("holds input_ids, not a %q text", field)}); err != nil {
				return hint(err)
			}
			continue
		}
		kept = append(kept, r)
	}
	texts := make([]string, len(kept))
	for i, r := range kept {
		texts[i] = r.Text
	}
	ids, _, errs := tok.EncodeBatchTruncated(texts, o.MaxLength, o.Special, o.Truncate)
	for i, err := range errs {
		if err != nil {
			if err := bad.Add(&rows.RowError{File: path, Line: kept[i].Line, Index: kept[i].Index, Err: err}); err != nil {
				return hint(err)
			}
		}
	}
	bw := bufio.NewWriter(out)
	for i, r := range kept {
		if errs[i] != nil {
			continue
		}
		// The keys in the JSON lines path's order: line first.
		if skipBad {
			fmt.Fprintf(bw, `{"line":%d,`, r.Line)
		} else {
			bw.WriteByte('{')
		}
		b, _ := json.Marshal(ids[i])
		fmt.Fprintf(bw, `"ids":%s}`+"\n", b)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	bad.Report(os.Stderr)
	return nil
}
