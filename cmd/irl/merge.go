package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/rewardhead"
	"irl/safetensors"
	"irl/shard"
	"irl/toxeval"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "join the parts of a sharded features, score, generate or eval toxicity run into what the unsharded command writes",
		UsageText: "irl merge --out OUT PART… | FOLDER [--format safetensors|npy] [--overwrite]",
		ArgsUsage: "PART… | FOLDER",
		Description: `Each PART is a part a sharded command wrote (shard I of N, given to it or by a Slurm or
Kubernetes array): a file with its PART.shard.json beside it, an eval toxicity
part folder holding shard.json, or a manifest itself; a FOLDER stands for every
part in it. The merge checks that the parts come from one run (the same
command, input file by sha256, model by fingerprint, and settings), that each
shard 0…N−1 is there exactly once and each part's data is as its manifest
hashed it, and that every row is covered once; then it writes OUT in the input's
row order: the file (or, for eval toxicity, the folder with summary.json and
samples.jsonl) that the command writes unsharded, byte for byte. A
missing, repeated or foreign part is an error naming it, and nothing is written.

features parts merge into a safetensors file, or with --format npy into the
folder irl features --format npy writes.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "the merged file (or folder, for eval toxicity and --format npy)"},
			&cli.StringFlag{Name: "format", Value: "safetensors", Usage: "for features: safetensors or npy"},
			overwriteFlag, quietFlag,
		},
		Action: runMerge,
	}
}

func runMerge(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("give the parts to merge (files, manifests or a folder of parts) after the flags")
	}
	ms, err := shard.Find(c.Args().Slice())
	if err != nil {
		return err
	}
	parts, err := shard.Check(ms)
	if err != nil {
		return err
	}
	out, format := c.String("out"), c.String("format")
	first := parts[0]
	if format != "safetensors" && (format != "npy" || first.Command != "features") {
		return fmt.Errorf("--format %q: want safetensors (or npy, for features parts)", format)
	}
	folder := first.Command == "eval toxicity" || format == "npy"
	if folder {
		err = atomicfile.CheckDir(out, c.Bool("overwrite"))
	} else {
		err = atomicfile.CheckFile(out)
	}
	if err != nil {
		return err
	}
	switch first.Command {
	case "features", "score":
		err = mergeTensors(parts, out, format)
	case "generate":
		err = mergeGenerations(parts, out)
	case "eval toxicity":
		err = mergeEval(parts, out)
	default:
		err = fmt.Errorf("%s: parts of %q, which irl merge does not know", first.Path(), first.Command)
	}
	if err != nil {
		return err
	}
	if !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, "merged %d parts of %s (%d rows of %s) into %s\n", len(parts), first.Command, first.Total, first.Input, out)
	}
	return nil
}

// mergeTensors joins features or reward files, summing the counts in
// their metadata.
func mergeTensors(parts []*shard.Manifest, out, format string) error {
	ts, meta, err := shard.MergeTensors(parts, "truncated", "skipped", "rows")
	if err != nil {
		return err
	}
	if format != "npy" {
		return safetensors.WriteFile(out, ts, meta)
	}
	var x []float32
	var rows []int64
	var n, d int
	for _, t := range ts {
		switch t.Name {
		case "features":
			if x, err = t.Float32s(); err != nil {
				return err
			}
			n, d = t.Shape[0], t.Shape[1]
		case "row":
			if rows, err = t.Int64s(); err != nil {
				return err
			}
		}
	}
	f, err := rewardhead.NewFeatures(out, n, d, x, rows, meta)
	if err != nil {
		return err
	}
	return f.WriteNPY(out)
}

// mergeGenerations joins generate's lines, in prompt order and each
// prompt's sequences in order.
func mergeGenerations(parts []*shard.Manifest, out string) error {
	lines, err := shard.MergeLines(parts, func(b []byte) ([]int, int, error) {
		var l struct {
			Row      *int `json:"row"`
			Sequence int  `json:"sequence"`
		}
		if err := json.Unmarshal(b, &l); err != nil || l.Row == nil {
			return nil, 0, fmt.Errorf("not a line of irl generate (row and sequence)")
		}
		return []int{*l.Row, l.Sequence}, *l.Row, nil
	})
	if err != nil {
		return err
	}
	return atomicfile.Write(out, func(w io.Writer) error { return writeLines(w, lines) })
}

func writeLines(w io.Writer, lines []shard.Line) error {
	for _, l := range lines {
		if _, err := w.Write(append(l.Text, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// mergeEval joins eval toxicity's samples, run by run in prompt order,
// and summarises them as the unsharded evaluation does.
func mergeEval(parts []*shard.Manifest, out string) error {
	// The prompts' order: the unit (its index among the selected prompts)
	// of each input row.
	position := map[int]int{}
	var header *toxeval.Run
	for _, m := range parts {
		for k, r := range m.Rows {
			position[r] = m.Units[k]
		}
		if m.Part == "" {
			continue
		}
		run, err := toxeval.ReadPartRun(m.PartPath())
		if err != nil {
			return err
		}
		if header == nil {
			header = run
		} else if err := toxeval.SameRun(header, run); err != nil {
			return fmt.Errorf("%s: %w", m.PartPath(), err)
		}
	}
	lines, err := shard.MergeLines(parts, func(b []byte) ([]int, int, error) {
		var s toxeval.Sample
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, 0, fmt.Errorf("not a line of samples.jsonl: %v", err)
		}
		p, ok := position[s.Row]
		if !ok {
			return nil, 0, fmt.Errorf("row %d is no shard's prompt", s.Row)
		}
		return []int{int(s.Seed), p, s.Sample}, s.Row, nil
	})
	if err != nil {
		return err
	}
	samples := make([]toxeval.Sample, len(lines))
	texts := make([][]byte, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal(l.Text, &samples[i]); err != nil {
			return err
		}
		texts[i] = l.Text
	}
	return toxeval.WriteMerged(out, header, parts[0].Total, samples, texts, func(row int) int { return position[row] })
}
