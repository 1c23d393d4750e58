package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"irl/neox"
	"irl/optim"
	"irl/rows"
	"irl/sft"
)

// sftHelp is the help text of sft.
const sftHelp = `--input is JSON lines, CSV or Parquet (as for "irl features"): rows with --text-field
(default "text"), or pre-tokenized input_ids. With --prompt-field, each row is a
prompt and a completion (--text-field): the prompt's tokens are context only and
the loss covers the completion, to which the EOS token is appended. A bad row
(malformed, invalid UTF-8, an id outside the vocabulary, nothing to train on)
stops the command with its file:line; --skip-bad leaves such rows out and
lists them.

A share --eval-fraction of the rows is held out (chosen with --seed) and its loss
reported after every epoch. Checkpoints go to OUT/checkpoint-NNNNNN/ in Hugging
Face format (config.json + model.safetensors, loadable by transformers) with the
optimiser state (optimizer.safetensors) and trainer_state.json; OUT/last-checkpoint
names the newest. A finished run's model is also in OUT/final/ (config.json,
model.safetensors, tokenizer.json), and every --model flag takes the run
folder OUT (or OUT/last-checkpoint) for it. OUT/metrics.jsonl gets a line per step (loss, lr, grad_norm,
tokens_per_s) and per evaluation (eval_loss). --resume continues from the newest
checkpoint with the same data and seed and gives the losses an uninterrupted run
would. Ctrl-C stops the run after the step in progress, with a checkpoint there
to --resume from; a second Ctrl-C stops at once.`

func sftCommand() *cli.Command {
	return &cli.Command{
		Name:        "sft",
		Usage:       "fine-tune a model on text with next-token cross-entropy (supervised fine-tuning)",
		UsageText:   "irl sft --model DIR --input FILE --out DIR [--text-field F] [--prompt-field F] [--epochs N] [--batch-size N] [--lr X] [--seed S] [--resume]",
		Description: sftHelp,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder to start from"},
			inputFlag("training rows: JSON lines, CSV or Parquet", true, "data"), inputFormatFlag,
			&cli.StringFlag{Name: "out", Required: true, Usage: "run folder: checkpoints and metrics"},
			textFieldFlag("text", "column with the text (the completion when --prompt-field is set)"),
			promptFieldFlag("", "column with a prompt that is context only, not trained on"),
			tokenizerFlag,
			&cli.IntFlag{Name: "epochs", Value: 1, Usage: "passes over the training split"},
			&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "rows per step"},
			&cli.Float64Flag{Name: "lr", Value: 1e-5, Usage: "peak learning rate"},
			&cli.StringFlag{Name: "schedule", Value: "cosine", Usage: "learning-rate schedule after warmup: constant or cosine"},
			&cli.Float64Flag{Name: "min-lr", Usage: "the cosine schedule's final learning rate"},
			&cli.IntFlag{Name: "warmup", Usage: "linear warmup steps"},
			&cli.Float64Flag{Name: "weight-decay", Value: 0.01, Usage: "AdamW's decoupled weight decay (not applied to biases and layer norms)"},
			&cli.Float64Flag{Name: "beta1", Value: 0.9, Usage: "AdamW β1"},
			&cli.Float64Flag{Name: "beta2", Value: 0.999, Usage: "AdamW β2"},
			&cli.Float64Flag{Name: "max-grad-norm", Value: 1, Usage: "clip the global gradient norm (0: off)"},
			seedFlag("seed of the eval split and the batch order"),
			&cli.Float64Flag{Name: "eval-fraction", Value: 0.1, Usage: "share of rows held out for the eval loss"},
			maxLengthFlag(),
			truncateFlag("right"),
			&cli.BoolFlag{Name: "append-eos", Usage: "append the EOS token to text rows too (prompt/completion rows always get it)"},
			&cli.IntFlag{Name: "save-every", Usage: "checkpoint every N steps", DefaultText: "0, after each epoch"},
			&cli.IntFlag{Name: "unfrozen-layers", Value: -1, Usage: "train only the top N layers and the head", DefaultText: "-1, every layer"},
			&cli.IntFlag{Name: "save-total-limit", Value: 2, Usage: "keep only the newest N checkpoints, and the best with --keep-best (0: keep all)"},
			&cli.BoolFlag{Name: "keep-best", Value: true, Usage: "with --save-total-limit, also keep the checkpoint with the lowest eval loss (OUT/best-checkpoint names it; --keep-best=false: only the newest)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from OUT's newest checkpoint, with the same data and settings"},
			overwriteFlag,
			skipBadFlag,
			quietFlag,
		}, runtimeFlags()...),
		Action: runSFT,
	}
}

func runSFT(c *cli.Context) error {
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	ms, err := neox.Open(c.String("model"))
	if err != nil {
		return err
	}
	m, err := ms.Load()
	if err != nil {
		return err
	}
	data := c.String("input")
	if n := c.Int("max-length"); n < 0 {
		return fmt.Errorf("--max-length %d must not be negative (0: the model's limit)", n)
	}
	trunc, err := rows.ParseTruncation(c.String("truncate"))
	if err != nil {
		return err
	}
	tokPath := ms.TokenizerPath(c.String("tokenizer"))
	bad := &rows.Bad{Skip: c.Bool("skip-bad")}
	examples, tok, err := sft.ReadExamples(data, m.Config, sft.ExampleOptions{
		Read:      rows.Options{TextField: c.String("text-field"), PromptField: c.String("prompt-field"), Format: c.String("input-format")},
		Tokenizer: tokPath, MaxLength: c.Int("max-length"), Truncate: trunc, AppendEOS: c.Bool("append-eos"), Bad: bad,
	})
	if err != nil {
		return err
	}
	bad.Report(os.Stderr)
	cfg := sft.Config{
		Out: c.String("out"), Epochs: c.Int("epochs"), BatchSize: c.Int("batch-size"),
		Schedule:    optim.ScheduleConfig{Kind: c.String("schedule"), Peak: c.Float64("lr"), Min: c.Float64("min-lr"), Warmup: c.Int("warmup")},
		AdamW:       optim.AdamWConfig{Beta1: c.Float64("beta1"), Beta2: c.Float64("beta2"), Eps: 1e-8, WeightDecay: c.Float64("weight-decay")},
		MaxGradNorm: c.Float64("max-grad-norm"), Seed: c.Uint64("seed"), EvalFraction: c.Float64("eval-fraction"),
		SaveEvery: c.Int("save-every"), UnfrozenLayers: c.Int("unfrozen-layers"), Resume: c.Bool("resume"), Session: so,
		Overwrite: c.Bool("overwrite"), SaveTotalLimit: c.Int("save-total-limit"), KeepBest: c.Bool("keep-best"),
		ModelFingerprint: ms.Fingerprint, Context: c.Context,
	}
	if !c.Bool("quiet") {
		cfg.Progress = os.Stderr
	}
	cfg.Notes = c.App.ErrWriter
	if tok != nil {
		// Every checkpoint stands alone, tokenizer included.
		cfg.Extra = map[string]string{"tokenizer.json": tokPath}
	}
	res, err := sft.Run(m, examples, cfg)
	if err != nil {
		return err
	}
	where := "checkpoint " + res.Dir
	if res.Final != "" {
		where = "final model " + res.Final
	}
	fmt.Fprintf(os.Stderr, "%d steps: loss %.4f → %.4f, eval loss %.4f; %s\n", res.Steps, res.FirstLoss, res.LastLoss, res.EvalLoss, where)
	return nil
}
