package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"irl/audit"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "from a tuned model (or its outputs) to the reward it was trained on, with its reasons and its reliability",
		UsageText: `irl audit --model TUNED --base BASE --prompts ROWS --out DIR [--encoder DIR] [--samples 4 | --sample=false]
irl audit --pos ROWS --neg ROWS --encoder DIR --out DIR
irl audit ... --gt SCORED_ROWS [--gt-field reward]`,
		Description: `Recovers the reward a tuned model was trained on, and says why and how far to
trust it. Stages:
  demonstrations  both models continue the same prompts (--prompts rows, a
                  --prompt-field column), paired by prompt: --samples sampled
                  continuations each (temperature 1), or with --sample=false
                  one greedy continuation each, the models' modes (which use
                  few words: the word lists see only those); or --pos and
                  --neg, rows of outputs (--prompt-field and --text-field)
                  from models without weights. The prompts are split into
                  training and held-out parts by --seed (--heldout).
  features        hidden states of --encoder (default --base): nine choices of
                  layer and pooling, the one chosen on the training pairs only.
  irl             max-margin IRL, every epoch's head kept (DIR/heads/).
  reliability     held-out pair accuracy (the share of held-out prompts where
                  the tuned model's texts score above the base model's on
                  average; with one text a side, of pairs ordered right) and
                  separation (AUC of all held-out texts) with bootstrap
                  95% intervals; Kendall τ-b between the chosen head and other
                  epochs' and seeds' heads; a label-shuffle control (≈ 0.5).
  reasons         every whole word of the tokenizer (or --probe-words, one a
                  line) scored in neutral templates (--templates, one a line
                  with {} for the word), the most rewarded and most penalised
                  listed (among the words within the demonstrations' range);
                  the held-out texts ranked highest and lowest, read token by
                  token, and the pairs most wrong.
  direction       with --gt, ground-truth scores of the texts (rows with a
                  --text-field column, a --gt-field column and, optionally, a
                  --prompt-field column; irl score --format jsonl on
                  DIR/demonstrations/demonstrations.jsonl writes them): a
                  logistic probe of them on the same features of the training
                  texts, its cosine with the head's weights, its held-out pair
                  accuracy, the ground truth's own held-out figures (what the
                  reward sought scores on the same prompts and pairs), and the
                  probe's and the head's Pearson correlations with the scores.
Writes DIR/report.json, DIR/report.md and DIR/report.html (one file, no
network: the charts inline SVG, each token of the examples coloured by its
reading), with DIR/demonstrations/, DIR/features/, DIR/heads/, DIR/shuffle/,
DIR/words.jsonl and, with --gt, DIR/direction/probe.json. Bad input (models
with different tokenizers, no prompts, too few texts, an unreadable --gt) is
refused before anything is written; a --gt file lacking a generated text is
refused once the texts are generated, before the long stages.

The audit runs in stages (demonstrations, features, irl, reliability, reasons,
direction) and records each finished one in DIR/stages.json with a hash of its
inputs (settings, the models' fingerprints, the input files' bytes). Stopped
part way (Ctrl-C, a kill), the same command resumes after the last finished
stage; a folder holding another audit needs --overwrite, which starts over.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "the tuned model (Hugging Face folder or run folder)"},
			&cli.StringFlag{Name: "base", Usage: "the model it was tuned from (same tokenizer)"},
			&cli.StringFlag{Name: "prompts", Usage: "prompt rows: JSON lines, CSV or Parquet with a --prompt-field column"},
			&cli.StringFlag{Name: "pos", Usage: "instead of models: the tuned model's outputs (rows with prompt and text)"},
			&cli.StringFlag{Name: "neg", Usage: "with --pos: the base model's outputs"},
			&cli.StringFlag{Name: "encoder", Usage: "frozen model whose hidden states are the features", DefaultText: "--base"},
			&cli.StringFlag{Name: "probe-words", Usage: "file of words to score, one a line", DefaultText: "the tokenizer's whole words"},
			&cli.StringFlag{Name: "gt", Usage: "ground-truth scores of the demonstrations' texts (rows): compare the head with a probe of them"},
			&cli.StringFlag{Name: "gt-field", Value: "reward", Usage: "with --gt: name of the score column (irl score writes reward)"},
			&cli.StringFlag{Name: "templates", Usage: "file of templates, one a line, {} for the word", DefaultText: `"The {} is", "It was {}.", "It is {}.", "This is {}."`},
			promptFieldFlag("prompt", "name of the prompt column"),
			textFieldFlag("text", "name of the text column of --pos, --neg and --gt"),
			&cli.BoolFlag{Name: "sample", Value: true, Usage: "sample the continuations (temperature 1); --sample=false decodes one greedy continuation a prompt from each model"},
			&cli.IntFlag{Name: "samples", Usage: "sampled continuations per prompt from each model", DefaultText: "4"},
			&cli.IntFlag{Name: "max-new-tokens", Usage: "most tokens per continuation", DefaultText: "32, or what the models' positions leave after the longest prompt"},
			&cli.Float64Flag{Name: "heldout", Value: 0.3, Usage: "share of the prompts held out"},
			&cli.IntFlag{Name: "epochs", Value: 60, Usage: "IRL epochs"},
			seedFlag("random seed: the split, sampling and training"),
			&cli.StringFlag{Name: "out", Required: true, Usage: "report folder"},
			overwriteFlag, quietFlag,
		}, runtimeFlags()...),
		Action: runAudit,
	}
}

func runAudit(c *cli.Context) error {
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	if c.Int("max-new-tokens") < 0 || c.Int("epochs") <= 0 || c.Int("samples") < 0 {
		return fmt.Errorf("--max-new-tokens and --samples must not be negative (0: the default), and --epochs must be positive")
	}
	if !c.Bool("sample") && c.IsSet("samples") {
		return fmt.Errorf("--samples %d with --sample=false: greedy decoding writes one continuation a prompt; drop one of the two", c.Int("samples"))
	}
	rep, err := audit.Run(audit.Config{Model: c.String("model"), Base: c.String("base"), Prompts: c.String("prompts"),
		Pos: c.String("pos"), Neg: c.String("neg"), PromptField: c.String("prompt-field"), TextField: c.String("text-field"),
		Encoder: c.String("encoder"), ProbeWords: c.String("probe-words"), Templates: c.String("templates"),
		GT: c.String("gt"), GTField: c.String("gt-field"), Seed: c.Uint64("seed"), HeldOut: c.Float64("heldout"), Greedy: !c.Bool("sample"), Samples: c.Int("samples"), MaxNewTokens: c.Int("max-new-tokens"),
		Epochs: c.Int("epochs"), Out: c.String("out"), Overwrite: c.Bool("overwrite"), Session: so, Progress: os.Stderr,
		Quiet: c.Bool("quiet"), Context: c.Context})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report: %s/report.html and report.md (held-out pair accuracy %.3f [%.3f, %.3f]; shuffle control %.3f",
		c.String("out"), rep.HeldOut.PairAccuracy, rep.HeldOut.PairAccuracyLow, rep.HeldOut.PairAccuracyHigh, rep.Shuffle.PairAccuracy)
	if d := rep.Direction; d != nil {
		fmt.Fprintf(os.Stderr, "; cosine with the ground-truth probe %.3f", d.Cosine)
	}
	fmt.Fprintln(os.Stderr, ")")
	return nil
}
