package main

import (
	"fmt"
	"math"
	"os"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/features"
	"irl/neox"
	"irl/rows"
)

func featuresCommand() *cli.Command {
	return &cli.Command{
		Name:  "features",
		Usage: "extract pooled hidden states h(o) of a frozen model for every input row",
		UsageText: "irl features --model MODEL --input FILE --out OUT.safetensors [--layer L] [--pool last|mean|last:K] [--text-field F] [--prompt-field F]\n" +
			"    [--tokenizer T] [--batch-size N] [--max-length N] [--threads N] [--device cpu|cuda] [--format safetensors|npy] [--skip-bad]",
		Description: `The reward head sees text only through these features. MODEL is a Hugging Face
folder (config.json + weights, and tokenizer.json unless --tokenizer is given or
rows are pre-tokenized) or an .onnx file exported by another tool (inputs
input_ids and attention_mask, output last_hidden_state or hidden_states.N).

Input is JSON lines, CSV with a header, or Parquet (by extension; "-" reads JSON
lines from stdin). Each row has the --text-field, or an input_ids list of token
ids (then no tokenizer is needed). With --prompt-field, the features are of the
prompt followed by the output: the two are tokenized separately and their ids
concatenated, as a policy's prompt and its generated tokens are.

Rows are sorted by length into batches and padded on the right; the output keeps
the input order. The graph stops at --layer (Hugging Face's index: 0 is the
embeddings, -1 the last hidden state after the final layer norm) and pools there:
"last" takes the last real token (the paper's choice), "mean" averages the real
tokens, and "last:K" takes the K-th real token from the end (last:2, the token
before a final period or EOS). Every consumer of a head reads all three.

Rows longer than --max-length (default: the model's max_position_embeddings) are
cut on the left, keeping their last tokens, which hold the output being scored;
the count of cut rows is reported and stored. --truncate error makes such a row
a bad row instead.

Output: a safetensors file with features (F32 [N,D]) and row (I64 [N], each
feature row's index among the input's data rows), and __metadata__ naming the
model, layer, pooling and max length. --format npy writes a folder OUT holding
features.npy, row.npy and metadata.json. Files are written under a temporary
name and renamed; an npy folder that holds files is refused unless --overwrite.
A bad row (malformed, missing field, empty text, too long with
--truncate error, an id outside the vocabulary) stops the run with its line
number; with --skip-bad it is reported and left out, and row says which input
rows the N features belong to.` + shardHelp,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder or .onnx file"},
			inputFlag("rows: JSON lines, CSV or Parquet (\"-\": JSON lines on stdin)", true),
			&cli.StringFlag{Name: "out", Required: true, Usage: "output .safetensors file (or folder with --format npy)"},
			&cli.IntFlag{Name: "layer", Value: -1, Usage: "hidden-state index: 0 embeddings … L after the final layer norm; negative counts from the end"},
			&cli.StringFlag{Name: "pool", Value: "last", Usage: "pooling over real tokens: last, mean, or last:K (the K-th token from the end; last:2 is the one before a final period)"},
			textFieldFlag("text", "name of the text column"),
			promptFieldFlag("", "name of a prompt column to put before the text"),
			tokenizerFlag,
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "rows per forward pass"},
			maxLengthFlag(),
			truncateFlag("left"),
			&cli.StringFlag{Name: "format", Value: "safetensors", Usage: "safetensors or npy"},
			inputFormatFlag, skipBadFlag, quietFlag, overwriteFlag,
		}, append(shardFlags(), runtimeFlags()...)...),
		Action: runFeatures,
	}
}

func runFeatures(c *cli.Context) error {
	format := c.String("format")
	if format != "safetensors" && format != "npy" {
		return fmt.Errorf("unknown --format %q: want safetensors or npy", format)
	}
	pool, err := neox.ParsePooling(c.String("pool"))
	if err != nil {
		return fmt.Errorf("--pool: %w", err)
	}
	trunc, err := rows.ParseTruncation(c.String("truncate"))
	if err != nil {
		return err
	}
	pt, err := openShard(c, "features")
	if err != nil {
		return err
	}
	if err := pt.refuse(format == "npy", "parts are safetensors files: give --format npy to irl merge instead"); err != nil {
		return err
	}
	out := pt.out(c.String("out"))
	if err := featuresCheckFlags(c, format, out); err != nil {
		return err
	}
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	input := c.String("input")
	rs, bad, err := readRows(c, pt, rows.Options{TextField: c.String("text-field"), PromptField: c.String("prompt-field")})
	if err != nil {
		return err
	}
	model, err := neox.Open(c.String("model"))
	if err != nil {
		return err
	}
	pt.model(model)
	if empty, err := pt.empty(out, false); empty || err != nil {
		return err
	}
	po := features.PipelineOptions{
		Model: model, Tokenizer: c.String("tokenizer"), Layer: c.Int("layer"), Pool: pool,
		BatchSize: c.Int("batch-size"), MaxLength: c.Int("max-length"), Truncate: trunc, Session: so,
		Context: c.Context,
	}
	if !c.Bool("quiet") {
		po.Progress = os.Stderr
	}
	p, err := features.NewPipeline(po)
	if err != nil {
		return err
	}
	defer p.Destroy()
	enc, err := p.Encode(input, rs, bad)
	if err != nil {
		return err
	}
	bad.Report(os.Stderr)
	f, st, err := p.Features(input, enc, len(bad.List))
	if err != nil {
		return err
	}
	if n := f.Meta["truncated"]; n != "0" {
		fmt.Fprintf(os.Stderr, "truncated %s rows longer than %d tokens (cut on the %s)\n", n, p.MaxLength(), trunc)
	}
	if format == "npy" {
		err = f.WriteNPY(out)
	} else {
		err = f.Write(out)
	}
	if err == nil {
		err = pt.finish(out, false, "")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d rows × %d features, %d tokens in %.1fs (%.0f tokens/s)\n",
		out, f.N, f.D, st.Tokens, st.Elapsed.Seconds(), float64(st.Tokens)/math.Max(st.Elapsed.Seconds(), 1e-9))
	return nil
}

// featuresCheckFlags refuses values out of range, and a bad destination,
// before the compute.
func featuresCheckFlags(c *cli.Context, format, out string) error {
	if c.Int("batch-size") <= 0 {
		return fmt.Errorf("--batch-size must be positive, got %d", c.Int("batch-size"))
	}
	if c.Int("max-length") < 0 {
		return fmt.Errorf("--max-length %d must not be negative (0: the model's limit)", c.Int("max-length"))
	}
	if format == "npy" {
		return atomicfile.CheckDir(out, c.Bool("overwrite"))
	}
	return atomicfile.CheckFile(out)
}
