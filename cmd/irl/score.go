package main

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/reward"
	"irl/rewardhead"
	"irl/rows"
	"irl/safetensors"
)

func scoreCommand() *cli.Command {
	trunc := truncateFlag("right")
	trunc.DefaultText = "right; for head: left, as irl features"
	flags := append(rewardFlags("reward"),
		inputFlag("rows: JSON lines, CSV or Parquet (\"-\": JSON lines on stdin)", true),
		&cli.StringFlag{Name: "out", Required: true, Usage: "output file: .safetensors, or .jsonl / .csv for the rows with their scores"},
		&cli.StringFlag{Name: "format", Usage: "safetensors, jsonl or csv", DefaultText: "from --out's extension; safetensors when it tells nothing"},
		textFieldFlag("text", "the response column"),
		promptFieldFlag("", "a prompt column, scored before the response"),
		tokenizerFlag,
		maxLengthFlag(),
		trunc,
		&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "rows per forward pass (head:, classifier:)"},
		seedFlag("seed of the lexicon's noise (each row's draw is keyed by its index)"),
		inputFormatFlag, skipBadFlag, quietFlag,
	)
	flags = append(flags, shardFlags()...)
	return &cli.Command{
		Name:      "score",
		Usage:     "score every row with a reward (lexicon, reward head, classifier or program) into a ground-truth reward file",
		UsageText: "irl score --reward SPEC --input ROWS --out reward.safetensors|rows.jsonl|rows.csv [--format F] [--text-field F] [--prompt-field F] [--reward-relative original] [--reward-transform none|official-rf2] [reward, tokenizer and runtime flags]",
		Description: `Rewards (--reward):
  lexicon:TOXIC.txt,NONTOXIC.txt   the paper's Algorithm 2 on the response, with
                                   --reward-noise (0: none) drawn from --seed and the row's index
  head:HEAD.json                   a recovered head on the features of prompt + response,
                                   computed as irl features computes them on --reward-model
                                   (default: the model the head's metadata names)
  classifier:MODEL                 −P(--reward-label) of prompt + --join + response, tokenized
                                   with MODEL's tokenizer (or --tokenizer) with its special tokens
  cmd:PROGRAM ARGS…                a child process (the command is split on spaces, no quoting):
                                   one JSON line {"prompt", "response", …the row's other fields,
                                   "row"} per row on its stdin, one {"reward": x} line per row
                                   on its stdout, in order, flushed as it goes

Rows are JSON lines, CSV or Parquet: the response in --text-field, the prompt in
--prompt-field (none by default). Rows with input_ids are taken as the model's
ids exactly (special tokens included), and need no tokenizer; irl tokenize
--add-special-tokens makes them for a classifier.

--reward-relative original scores prompt + the row's --original-field column
with the same reward and writes R(response) − R(original). --reward-transform
official-rf2 reproduces the paper's official IRL-RLHF code: min-max to [−1, 1]
over the whole file (one scoring call), then 1.5x below 0 and −0.5x above;
with --reward-relative, as the official reward_fn, rf2(R(response)) −
rf2(R(original)), each side transformed over its own batch (a head's texts get
its tokenizer's EOS appended). It is NOT monotonic (the best row gets −0.5) and exists only to compare with the
paper.

Texts longer than --max-length (default: the model's limit; a head's own
max_length) are cut on the --truncate side, special tokens kept; --truncate
error makes such a row a bad row. A bad row stops the run with its file and
line; --skip-bad leaves it out and reports it.

Output: reward (F32 [N]) and row (I64 [N], each reward's index among the input's
data rows), plus for a classifier prob (F32 [N], P(label)) and logits (F32
[N, labels]), with metadata naming the spec, the model and the label: the
ground-truth files irl reward eval --gt-pos/--gt-neg reads, row-aligned with
irl features of the same rows. With --format jsonl or csv (or an --out ending in
.jsonl or .csv), the output is instead the scored input rows, in order, for a
person to read: row, the prompt and text columns (input_ids for pre-tokenized
rows), the row's other columns, then reward and, for a classifier, prob and
logit_LABEL for each label. An input column with one of those names is an
error rather than silently replaced.` + shardHelp + `
A sharded score writes safetensors parts; --reward-transform official-rf2
cannot shard.`,
		Flags:  append(flags, runtimeFlags()...),
		Action: runScore,
	}
}

func runScore(c *cli.Context) error {
	pt, err := openShard(c, "score")
	if err != nil {
		return err
	}
	out := pt.out(c.String("out"))
	if err := atomicfile.CheckFile(out); err != nil {
		return err
	}
	format, err := scoreFormat(out, c.String("format"))
	if err != nil {
		return err
	}
	if err := pt.refuse(format != "safetensors", "parts are safetensors reward files (--out ending in .safetensors)"); err != nil {
		return err
	}
	if err := pt.refuse(c.String("reward-transform") != "none", "--reward-transform "+c.String("reward-transform")+" scales by the whole file's minimum and maximum, which no shard sees"); err != nil {
		return err
	}
	spec := c.String("reward")
	kind, err := reward.SpecKind(spec)
	if err != nil {
		return err
	}
	ro, err := scoreOptions(c, kind)
	if err != nil {
		return err
	}
	input := c.String("input")
	rs, bad, err := readRows(c, pt, rows.Options{TextField: c.String("text-field"), PromptField: c.String("prompt-field"), KeepFields: true})
	if err != nil {
		return err
	}
	if empty, err := pt.empty(out, false); empty || err != nil {
		return err
	}
	// Rows that all carry input_ids need no tokenizer; otherwise a missing
	// one is one error now, not one per row.
	ro.IDsOnly = len(rs) > 0
	for _, r := range rs {
		ro.IDsOnly = ro.IDsOnly && r.IDs != nil
	}
	src, closeSrc, err := openReward(c, spec, ro)
	if err != nil {
		return err
	}
	defer closeSrc(false)

	scored, err := reward.ScoreRows(src, input, rs, bad)
	bad.Report(os.Stderr)
	if err != nil {
		return err
	}
	if err := writeScores(c, out, format, src, scored, len(bad.List)); err != nil {
		return err
	}
	if err := pt.reward(src); err != nil {
		return err
	}
	if err := pt.finish(out, false, ""); err != nil {
		return err
	}
	closeSrc(true)
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, r := range scored.Rewards {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d rewards, mean %.4g, min %.4g, max %.4g\n", out, len(scored.Rewards), sum/float64(len(scored.Rewards)), lo, hi)
	return nil
}

// scoreOptions are the reward's options from score's flags.
func scoreOptions(c *cli.Context, kind string) (reward.Options, error) {
	ro, err := rewardOptions(c)
	if err != nil {
		return ro, err
	}
	ro.Tokenizer, ro.MaxLength, ro.BatchSize = c.String("tokenizer"), c.Int("max-length"), c.Int("batch-size")
	if ro.BatchSize <= 0 {
		return ro, fmt.Errorf("--batch-size must be positive, got %d", ro.BatchSize)
	}
	if ro.MaxLength < 0 {
		return ro, fmt.Errorf("--max-length must not be negative, got %d", ro.MaxLength)
	}
	// Unset, each reward cuts on its own default side: a head as the
	// features it was trained on were cut.
	if c.IsSet("truncate") {
		if ro.Truncate, err = rows.ParseTruncation(c.String("truncate")); err != nil {
			return ro, err
		}
	}
	if !c.Bool("quiet") {
		ro.Progress = os.Stderr
	}
	// Only the model rewards need ONNX Runtime.
	if kind == "head" || kind == "classifier" {
		if ro.Session, err = sessionOptions(c); err != nil {
			return ro, err
		}
	}
	return ro, nil
}

// writeScores writes scored rows as --format says: the reward file (with a
// classifier's prob and logits, and metadata naming the spec, the input and
// the source), or the rows with their scores for a person.
func writeScores(c *cli.Context, out, format string, src reward.Source, scored *reward.Scored, skipped int) error {
	rs, rewards, probs, logits := scored.Rows, scored.Rewards, scored.Probs, scored.Logits
	if format != "safetensors" {
		return writeScoredRows(out, format, c.String("prompt-field"), c.String("text-field"), rs, rewards, probs, logits, reward.Labels(src))
	}
	index := make([]int64, len(rs))
	for i, r := range rs {
		index[i] = int64(r.Index)
	}
	meta := map[string]string{
		"reward": c.String("reward"), "input": c.String("input"), "text_field": c.String("text-field"),
		"rows": fmt.Sprint(len(rs)), "skipped": fmt.Sprint(skipped),
	}
	if p := c.String("prompt-field"); p != "" {
		meta["prompt_field"] = p
	}
	for k, v := range reward.Describe(src) {
		meta[k] = v
	}
	var extra []safetensors.Tensor
	if probs != nil {
		labels := reward.Labels(src)
		p32 := make([]float32, len(probs))
		for i, p := range probs {
			p32[i] = float32(p)
		}
		flat := make([]float32, 0, len(logits)*len(labels))
		for _, l := range logits {
			flat = append(flat, l...)
		}
		extra = append(extra, safetensors.FromFloat32("prob", []int{len(p32)}, p32),
			safetensors.FromFloat32("logits", []int{len(logits), len(labels)}, flat))
		meta["labels"] = strings.Join(labels, ",")
	}
	return rewardhead.WriteRewards(out, rewards, index, meta, extra...)
}

// scoreFormat is score's output format: the flag, else --out's extension.
func scoreFormat(out, format string) (string, error) {
	switch format {
	case "safetensors":
		return format, nil
	case "":
		if strings.EqualFold(filepath.Ext(out), ".safetensors") {
			return "safetensors", nil
		}
		if f, err := rows.WriteFormat(out, ""); err == nil {
			return f, nil
		}
		return "safetensors", nil
	}
	f, err := rows.WriteFormat(out, format)
	if err != nil {
		return "", fmt.Errorf("--format %q: want safetensors, jsonl or csv", format)
	}
	return f, nil
}

// writeScoredRows writes the scored rows beside their scores.
func writeScoredRows(out, format, promptField, textField string, rs []rows.Row, rewards, probs []float64, logits [][]float32, labels []string) error {
	added := []string{"reward"}
	if probs != nil {
		added = append(added, "prob")
		for _, l := range labels {
			added = append(added, "logit_"+l)
		}
	}
	others := map[string]bool{}
	hasIDs := false
	for _, r := range rs {
		for k := range r.Fields {
			others[k] = true
		}
		hasIDs = hasIDs || r.IDs != nil
	}
	cols := []string{reward.RowField}
	if promptField != "" {
		cols = append(cols, promptField)
	}
	if hasIDs {
		cols = append(cols, "input_ids")
	} else {
		cols = append(cols, textField)
	}
	for _, k := range slices.Sorted(maps.Keys(others)) {
		if !slices.Contains(cols, k) {
			cols = append(cols, k)
		}
	}
	for _, a := range added {
		if slices.Contains(cols, a) {
			return fmt.Errorf("the input has a column %q, which the output's score column would replace: rename it", a)
		}
	}
	t := rows.Table{Columns: append(cols, added...), Records: make([]map[string]any, len(rs))}
	for i, r := range rs {
		rec := map[string]any{}
		for k, v := range r.Fields {
			rec[k] = v
		}
		rec[reward.RowField] = r.Index
		if promptField != "" {
			rec[promptField] = r.Prompt
		}
		if hasIDs {
			rec["input_ids"] = r.IDs
		} else {
			rec[textField] = r.Text
		}
		rec["reward"] = rewards[i]
		if probs != nil {
			rec["prob"] = probs[i]
			for j, l := range labels {
				rec["logit_"+l] = logits[i][j]
			}
		}
		t.Records[i] = rec
	}
	return rows.WriteTable(out, format, t)
}
