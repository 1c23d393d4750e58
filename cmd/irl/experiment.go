package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	extox "irl/experiments/toxicity"
	"irl/experiments/toy"
	"irl/neox"
)

func experimentCommand() *cli.Command {
	return &cli.Command{
		Name:  "experiment",
		Usage: "the paper's experiments, end to end, with reports beside the paper's tables",
		Subcommands: []*cli.Command{
			experimentToxicityCommand(),
			{
				Name:      "toy",
				Usage:     "the simplified demonstration (Section 3, Appendix C): SFT, RLHF on a lexicon, IRL, Tables 1, 3, 4 and Figures 1–3, 5, 6",
				UsageText: "irl experiment toy --out demo/ [--seeds N] [--base-model DIR] [--rollouts paper|plain] [--noise-scale absolute|relative] [--quick] [--quiet]",
				Description: `Runs every stage with a progress line per stage (and bars for the stages
that train, unless --quiet), and writes under --out:
  report.md and report.json (table1, table3, table4, seconds, paper)
  data/      the dataset, the lexicon lists, the tokenizer
  sft/, rlhf/        the SFT and PPO runs (checkpoints, metrics, plots)
  generations/       the samples behind Tables 3 and 4
  features/, heads/  IRL's demonstrations and every epoch's head
  eval/      pos, neg, gt-pos and gt-neg files: "irl reward eval --head
             heads/head.json --pos eval/pos.safetensors --neg eval/neg.safetensors
             --gt-pos eval/gt-pos.safetensors --gt-neg eval/gt-neg.safetensors"
             prints Table 1 again
  plots/, analyses/  Figure 1; data ratios, noise (in and out of distribution),
             every epoch's head
By default the model is a small Pythia-shaped one trained from scratch on the
demo's own vocabulary; --base-model starts from a real checkpoint instead (a
Hugging Face folder with its tokenizer, such as pythia-70m), the paper's setting.
--seeds N repeats everything and reports mean ± std. A run holds --out (a lock
in OUT/.lock naming its pid and host): a second run into it is refused.`,
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Required: true, Usage: "report folder"},
					&cli.IntFlag{Name: "seeds", Value: 1, Usage: "repeat the run with seeds 1…N and report mean ± std"},
					&cli.StringFlag{Name: "base-model", Usage: "start SFT from this Hugging Face folder (with tokenizer.json)"},
					&cli.BoolFlag{Name: "quick", Usage: "a short run that shows every stage works (CI); its numbers are not the demo's"},
					&cli.StringFlag{Name: "pool", Usage: "feature pooling for the head (see irl features --pool); with --layer", DefaultText: "chosen among the variants on the training demonstrations"},
					&cli.IntFlag{Name: "layer", Value: -1, Usage: "feature layer for the head, with --pool (see irl features --layer)"},
					&cli.StringFlag{Name: "rollouts", Value: toy.RolloutsPaper, Usage: "PPO's rollout sampling: paper (temperature 1.4, top-p 0.95, as the paper samples) or plain (temperature 1, no top-p)"},
					&cli.StringFlag{Name: "noise-scale", Value: toy.NoiseAbsolute, Usage: "σ of the noise analyses (Figures 3, 5): absolute (reward units, the paper's) or relative (× the scores' std)"},
					overwriteFlag, quietFlag,
				}, runtimeFlags()...),
				Action: func(c *cli.Context) error {
					so, err := sessionOptions(c)
					if err != nil {
						return err
					}
					var pool neox.Pooling
					if c.IsSet("pool") {
						if pool, err = neox.ParsePooling(c.String("pool")); err != nil {
							return fmt.Errorf("--pool: %w", err)
						}
					}
					res, err := toy.Run(toy.Config{Out: c.String("out"), Seeds: c.Int("seeds"), BaseModel: c.String("base-model"),
						Quick: c.Bool("quick"), Pool: pool, Layer: c.Int("layer"), Rollouts: c.String("rollouts"), NoiseScale: c.String("noise-scale"), Overwrite: c.Bool("overwrite"),
						Session: so, Progress: os.Stderr, Quiet: c.Bool("quiet"), Context: c.Context})
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "report: %s/report.md (%s; %.0fs)\n", c.String("out"), res.Summary(), res.Seconds)
					return nil
				},
			},
		},
	}
}

func experimentToxicityCommand() *cli.Command {
	return &cli.Command{
		Name:      "toxicity",
		Usage:     "the toxicity experiment (Section 4) as one resumable pipeline: prompts → RLHF → IRL → IRL-RLHF → Table 2 and Figure 4",
		UsageText: "irl experiment toxicity --config experiments/toxicity/pythia-70m.yaml --out DIR [--from STAGE] [--quiet]",
		Description: `Stages, each writing DIR/<stage>/: ` + strings.Join(extox.Stages, ", ") + `.
The configuration is checked whole before the first stage: every path, and
every value's bounds. A stage whose settings and inputs are unchanged since it
finished is skipped (a hash in DIR/<stage>/stage.json); a stage that failed or
was killed starts over, and the PPO stages (rlhf, rlhf-poor, irl-rlhf) resume from their
checkpoints (from the start when killed before the first). irl-rlhf keeps each
run, and toxicity each policy's evaluation, whose own inputs are unchanged
(DIR/<stage>/<part>.inputs.json). A cmd: reward program is hashed, but not
what it reads: after changing that, use --from. --from STAGE reruns from that
stage on. Each stage prints a line and a progress bar (none with --quiet). A
run holds DIR (a lock in DIR/.lock naming its pid and host): a second run into
it is refused. The report is DIR/report.md and DIR/report.json. experiments/toxicity/ holds pythia-70m.yaml and
pythia-410m.yaml (the paper's settings; point their paths at your copies) and
mini.yaml (a miniature that runs anywhere in minutes).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Required: true, Usage: "the pipeline's YAML configuration"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "the run folder"},
			&cli.StringFlag{Name: "from", Usage: "rerun from this stage on: " + strings.Join(extox.Stages, ", ")},
			quietFlag,
		}, runtimeFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := extox.LoadConfig(c.String("config"))
			if err != nil {
				return err
			}
			so, err := sessionOptions(c)
			if err != nil {
				return err
			}
			res, err := extox.Run(cfg, extox.Options{Out: c.String("out"), From: c.String("from"), Session: so, Progress: os.Stderr, Quiet: c.Bool("quiet"),
				Context: c.Context})
			if err != nil {
				return err
			}
			reused := ""
			if len(res.Reused) > 0 {
				reused = fmt.Sprintf("; %d runs and evaluations reused", len(res.Reused))
			}
			fmt.Fprintf(os.Stderr, "report: %s/report.md (%d stages ran, %d unchanged%s)\n", c.String("out"), len(res.Ran), len(res.Skipped), reused)
			return nil
		},
	}
}
