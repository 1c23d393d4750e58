package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/features"
	"irl/policy"
	"irl/safetensors"
	"irl/tokenizer"
)

func featuresCommand() *cli.Command {
	return &cli.Command{
		Name:  "features",
		Usage: "extract pooled hidden states h(o) of a frozen model for every input row",
		UsageText: "irl features --model MODEL --input FILE --out OUT.safetensors [--layer L] [--pool last|mean] [--text-field F] [--prefix-field F]\n" +
			"    [--tokenizer T] [--batch-size N] [--max-length N] [--threads N] [--device cpu|cuda] [--format safetensors|npy] [--skip-bad]",
		Description: `The reward head sees text only through these features. MODEL is a Hugging Face
folder (config.json + weights, and tokenizer.json unless --tokenizer is given or
rows are pre-tokenized) or an .onnx file exported by another tool (inputs
input_ids and attention_mask, output last_hidden_state or hidden_states.N).

Input is JSON lines, CSV with a header, or Parquet (by extension; "-" reads JSON
lines from stdin). Each row has the --text-field, or an input_ids list of token
ids (then no tokenizer is needed). With --prefix-field, the features are of the
prompt followed by the output: the two are tokenized separately and their ids
concatenated, as a policy's prompt and its generated tokens are.

Rows are sorted by length into batches and padded on the right; the output keeps
the input order. The graph stops at --layer (Hugging Face's index: 0 is the
embeddings, -1 the last hidden state after the final layer norm) and pools there:
"last" takes the last real token (the paper's choice), "mean" averages the real
tokens.

Rows longer than --max-length (default: the model's max_position_embeddings) are
cut on the left, keeping their last tokens, which hold the output being scored;
the count of cut rows is reported and stored. --truncate error makes such a row
a bad row instead.

Output: a safetensors file with features (F32 [N,D]) and row (I64 [N], each
feature row's index among the input's data rows), and __metadata__ naming the
model, layer, pooling and max length. --format npy writes a folder OUT holding
features.npy, row.npy and metadata.json. Files are written under a temporary
name and renamed. A bad row (malformed, missing field, empty text, too long with
--truncate error, an id outside the vocabulary) stops the run with its line
number; with --skip-bad it is reported and left out, and row says which input
rows the N features belong to.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder or .onnx file"},
			&cli.StringFlag{Name: "input", Required: true, Usage: "JSON lines, CSV or Parquet file (\"-\": JSON lines on stdin)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output .safetensors file (or folder with --format npy)"},
			&cli.IntFlag{Name: "layer", Value: -1, Usage: "hidden-state index: 0 embeddings … L after the final layer norm; negative counts from the end"},
			&cli.StringFlag{Name: "pool", Value: "last", Usage: "pooling over real tokens: last or mean"},
			&cli.StringFlag{Name: "text-field", Value: "text", Usage: "name of the text column"},
			&cli.StringFlag{Name: "prefix-field", Usage: "name of a prompt column to put before the text"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json (default: MODEL/tokenizer.json)"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "rows per forward pass"},
			&cli.IntFlag{Name: "max-length", Usage: "longest row in tokens (default: the model's max_position_embeddings)"},
			&cli.StringFlag{Name: "truncate", Value: "left", Usage: "for rows over --max-length: left (keep the last tokens), right (keep the first), or error"},
			&cli.StringFlag{Name: "format", Value: "safetensors", Usage: "safetensors or npy"},
			&cli.BoolFlag{Name: "skip-bad", Usage: "skip and report bad rows instead of stopping"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
		}, runtimeFlags()...),
		Action: runFeatures,
	}
}

func runFeatures(c *cli.Context) error {
	format := c.String("format")
	if format != "safetensors" && format != "npy" {
		return fmt.Errorf("unknown --format %q: want safetensors or npy", format)
	}
	pool := policy.Pooling(c.String("pool"))
	if pool != policy.PoolLast && pool != policy.PoolMean {
		return fmt.Errorf("unknown --pool %q: want last or mean", pool)
	}
	trunc := c.String("truncate")
	if trunc != "left" && trunc != "right" && trunc != "error" {
		return fmt.Errorf("unknown --truncate %q: want left, right or error", trunc)
	}
	if c.Int("batch-size") <= 0 {
		return fmt.Errorf("--batch-size must be positive, got %d", c.Int("batch-size"))
	}
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	modelPath, input := c.String("model"), c.String("input")
	isONNX := strings.HasSuffix(strings.ToLower(modelPath), ".onnx")

	rows, bad, err := features.ReadRows(input, features.ReadOptions{TextField: c.String("text-field"), PrefixField: c.String("prefix-field")})
	if err != nil {
		return err
	}
	skip := c.Bool("skip-bad")
	var skipped []string
	reject := func(e error) error {
		if !skip {
			return fmt.Errorf("%w (use --skip-bad to skip bad rows)", e)
		}
		skipped = append(skipped, e.Error())
		return nil
	}
	for _, b := range bad {
		if err := reject(b); err != nil {
			return err
		}
	}

	// Model limits: known for folders, from the config; an .onnx file may have
	// a config.json beside it.
	var cfg *policy.Config
	cfgPath := filepath.Join(modelPath, "config.json")
	if isONNX {
		cfgPath = filepath.Join(filepath.Dir(modelPath), "config.json")
	}
	if cc, err := policy.LoadConfig(cfgPath); err == nil {
		cfg = &cc
	} else if !isONNX {
		return err
	}
	maxLen := c.Int("max-length")
	if maxLen <= 0 && cfg != nil {
		maxLen = cfg.MaxPositions
	}
	if cfg != nil && maxLen > cfg.MaxPositions {
		return fmt.Errorf("--max-length %d exceeds the model's max_position_embeddings %d", maxLen, cfg.MaxPositions)
	}

	var tok *tokenizer.Tokenizer
	needTok := false
	for _, r := range rows {
		if r.IDs == nil {
			needTok = true
			break
		}
	}
	if needTok {
		tp := c.String("tokenizer")
		if tp == "" {
			if isONNX {
				return fmt.Errorf("%s has text rows: give the tokenizer with --tokenizer", input)
			}
			tp = filepath.Join(modelPath, "tokenizer.json")
		}
		if tok, err = tokenizer.Load(tp); err != nil {
			return fmt.Errorf("%s has text rows, which need a tokenizer: %w", input, err)
		}
	}
	var texts, prefixes []string
	var textRows []int
	for i, r := range rows {
		if r.IDs == nil {
			texts = append(texts, r.Text)
			prefixes = append(prefixes, r.Prefix)
			textRows = append(textRows, i)
		}
	}
	var textIDs, prefixIDs [][]int
	if tok != nil {
		textIDs = tok.EncodeBatch(texts)
		if c.String("prefix-field") != "" {
			prefixIDs = tok.EncodeBatch(prefixes)
		}
	}
	ids := make([][]int64, len(rows))
	for k, i := range textRows {
		var seq []int64
		if prefixIDs != nil {
			for _, id := range prefixIDs[k] {
				seq = append(seq, int64(id))
			}
		}
		for _, id := range textIDs[k] {
			seq = append(seq, int64(id))
		}
		ids[i] = seq
	}
	for i, r := range rows {
		if r.IDs != nil {
			ids[i] = r.IDs
		}
	}

	var seqs [][]int64
	var index []int64
	truncated := 0
	for i, r := range rows {
		seq := ids[i]
		where := fmt.Sprintf("%s:%d", input, r.Line)
		if len(seq) == 0 {
			if err := reject(fmt.Errorf("%s: no tokens", where)); err != nil {
				return err
			}
			continue
		}
		if cfg != nil {
			if id, ok := outOfVocab(seq, cfg.VocabSize); ok {
				if err := reject(fmt.Errorf("%s: token id %d is outside the vocabulary [0,%d)", where, id, cfg.VocabSize)); err != nil {
					return err
				}
				continue
			}
		}
		if maxLen > 0 && len(seq) > maxLen {
			switch trunc {
			case "error":
				if err := reject(fmt.Errorf("%s: %d tokens, longer than --max-length %d", where, len(seq), maxLen)); err != nil {
					return err
				}
				continue
			case "left":
				seq = seq[len(seq)-maxLen:]
			case "right":
				seq = seq[:maxLen]
			}
			truncated++
		}
		seqs = append(seqs, seq)
		index = append(index, int64(r.Index))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "skipped %d bad rows:\n", len(skipped))
		for i, s := range skipped {
			if i == 20 {
				fmt.Fprintf(os.Stderr, "  … and %d more\n", len(skipped)-20)
				break
			}
			fmt.Fprintln(os.Stderr, "  "+s)
		}
	}
	if len(seqs) == 0 {
		return fmt.Errorf("%s: no usable rows", input)
	}

	opts := features.Options{Layer: c.Int("layer"), Pool: pool, BatchSize: c.Int("batch-size"), Session: so}
	if !c.Bool("quiet") {
		opts.Progress = os.Stderr
	}
	e, err := features.Open(modelPath, opts)
	if err != nil {
		return err
	}
	defer e.Destroy()
	feats, st, err := features.Extract(e, seqs, opts)
	if err != nil {
		return err
	}
	dim := len(feats) / len(seqs)
	meta := map[string]string{
		"model":      filepath.Clean(modelPath),
		"layer":      fmt.Sprint(e.Layer()),
		"pool":       string(pool),
		"max_length": fmt.Sprint(maxLen),
		"truncate":   trunc,
		"truncated":  fmt.Sprint(truncated),
		"skipped":    fmt.Sprint(len(skipped)),
		"input":      input,
	}
	if e.Layer() < 0 {
		meta["layer"] = "last_hidden_state"
	}
	if truncated > 0 {
		fmt.Fprintf(os.Stderr, "truncated %d rows longer than %d tokens (cut on the %s)\n", truncated, maxLen, trunc)
	}
	out := c.String("out")
	if format == "npy" {
		err = writeNPYFolder(out, feats, len(seqs), dim, index, meta)
	} else {
		err = safetensors.WriteFile(out, []safetensors.Tensor{
			safetensors.FromFloat32("features", []int{len(seqs), dim}, feats),
			safetensors.FromInt64("row", []int{len(seqs)}, index),
		}, meta)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d rows × %d features, %d tokens in %.1fs (%.0f tokens/s)\n",
		out, len(seqs), dim, st.Tokens, st.Elapsed.Seconds(), float64(st.Tokens)/math.Max(st.Elapsed.Seconds(), 1e-9))
	return nil
}

func outOfVocab(seq []int64, vocab int) (int64, bool) {
	for _, id := range seq {
		if id < 0 || id >= int64(vocab) {
			return id, true
		}
	}
	return 0, false
}

// writeNPYFolder writes features.npy, row.npy and metadata.json into dir.
func writeNPYFolder(dir string, feats []float32, n, d int, rows []int64, meta map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "features.npy"), func(f io.Writer) error {
		return writeNPY(f, "<f4", []int{n, d}, func(w io.Writer) error { return binary.Write(w, binary.LittleEndian, feats) })
	}); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "row.npy"), func(f io.Writer) error {
		return writeNPY(f, "<i8", []int{n}, func(w io.Writer) error { return binary.Write(w, binary.LittleEndian, rows) })
	}); err != nil {
		return err
	}
	mj, _ := json.MarshalIndent(meta, "", "  ")
	return atomicfile.Write(filepath.Join(dir, "metadata.json"), func(f io.Writer) error {
		_, err := f.Write(append(mj, '\n'))
		return err
	})
}

// writeNPY writes a version 1.0 .npy header and the data.
func writeNPY(w io.Writer, descr string, shape []int, data func(io.Writer) error) error {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = fmt.Sprint(s)
	}
	st := strings.Join(dims, ", ")
	if len(shape) == 1 {
		st += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, st)
	// Pad with spaces so magic + lengths + header + newline is a multiple of 64.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if _, err := w.Write([]byte("\x93NUMPY\x01\x00")); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, uint16(len(header))); err != nil {
		return err
	}
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	return data(w)
}
