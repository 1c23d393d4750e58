package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/rows"
	"irl/toxeval"
)

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "build the experiments' datasets",
		Subcommands: []*cli.Command{{
			Name:      "jigsaw-split",
			Usage:     "rebuild a jigsaw-long-2000-style prompt set from the raw Jigsaw comments, as the paper's official code made it",
			UsageText: "irl data jigsaw-split --input train.csv --out long2000.csv [--from 2500 --to 3500]",
			Description: `Reads the raw Jigsaw toxic comment CSV (Kaggle's train.csv: comment_text and
toxic columns, the others ignored; quoted comments may span lines), then:
  1. splits the comments by class, toxic 1 and toxic 0;
  2. sorts each class by comment length in characters (Unicode code points, as
     Python counts them), a stable sort: equal lengths keep file order;
  3. takes rows [--from, --to) of each sorted class;
  4. cuts each comment at half its words (split on white space as Python's
     str.split does): the first ⌈n/2⌉ words are the prompt, the other ⌊n/2⌋
     the original_output, each joined back with single spaces.
Writes the prompt, original_output and toxic (0/1) columns, the toxic class's
rows first, then the non-toxic class's, each in length order: CSV, Parquet or
JSON lines by --out's extension. With the defaults, 1000 + 1000 rows, the size
of jaredjoss/jigsaw-long-2000 (whose published row order was shuffled).`,
			Flags: []cli.Flag{
				inputFlag("the raw Jigsaw CSV (or JSON lines / Parquet with the same columns)", true),
				&cli.StringFlag{Name: "out", Required: true, Usage: "output file: .csv, .parquet or .jsonl"},
				&cli.IntFlag{Name: "from", Value: toxeval.DefaultFrom, Usage: "first row of each length-sorted class to take"},
				&cli.IntFlag{Name: "to", Value: toxeval.DefaultTo, Usage: "row of each length-sorted class to stop before"},
				inputFormatFlag, skipBadFlag,
			},
			Action: runJigsawSplit,
		}},
	}
}

func runJigsawSplit(c *cli.Context) error {
	from, to := c.Int("from"), c.Int("to")
	if from < 0 || to <= from {
		return fmt.Errorf("--from %d --to %d: want 0 <= from < to", from, to)
	}
	out := c.String("out")
	if err := atomicfile.CheckFile(out); err != nil {
		return err
	}
	switch ext := strings.ToLower(filepath.Ext(out)); ext {
	case ".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json":
	default:
		return fmt.Errorf("--out %s: name it .csv, .parquet or .jsonl (the extension picks the format)", out)
	}
	input := c.String("input")
	comments, badRows, err := toxeval.ReadJigsaw(input, c.String("input-format"))
	if err != nil {
		return err
	}
	bad := &rows.Bad{Skip: c.Bool("skip-bad")}
	if err := bad.AddAll(badRows); err != nil {
		return err
	}
	bad.Report(os.Stderr)
	set, err := toxeval.SplitJigsaw(comments, from, to)
	if err != nil {
		return fmt.Errorf("%s: %w", input, err)
	}
	if err := toxeval.WriteLong2000(out, "", set); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d rows, rows [%d, %d) of each class of %d comments\n", out, len(set), from, to, len(comments))
	return nil
}
