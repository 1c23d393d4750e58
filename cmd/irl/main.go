package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	in := watchInterrupts(os.Stderr, os.Exit)
	app := newApp()
	err := app.RunContext(in.ctx, os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "irl:", err)
	}
	// An interrupted command fails, even one that finished before its next
	// safe point: a script's next command must not run.
	if sig := in.signal(); sig != 0 {
		if err == nil {
			fmt.Fprintln(os.Stderr, "irl: interrupted, after the command had finished")
		}
		os.Exit(128 + int(sig))
	}
	if err != nil {
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "irl",
		Usage: "recover and audit the reward a language model was trained on (inverse RL on GPT-NeoX / Pythia)",
		Description: `irl follows "Insights from the Inverse: Reconstructing LLM Training Goals
Through Inverse Reinforcement Learning": fine-tune a Pythia model with RLHF against a
ground-truth reward, treat its outputs as expert demonstrations, and recover that
reward with max-margin IRL as a linear head on a frozen model's hidden states.

Heavy compute runs on ONNX Runtime (CPU, or CUDA with --device cuda). The runtime
library is found through --ort-lib, then $ONNXRUNTIME_LIB, then .cache/ort/ in the
irl source folder ("make ort" fills it), then the system's library folders.

Ctrl-C (SIGINT) or SIGTERM stops a command at its next safe point: sft and ppo
save a checkpoint there and say how to resume (the same command with --resume),
the experiments how to go on, and the others stop between batches, leaving
their outputs as they were. A second Ctrl-C stops at once. Either way irl
exits with status 130 (143 for SIGTERM).`,
		Commands: []*cli.Command{
			modelCommand(),
			tokenizeCommand(),
			featuresCommand(),
			sftCommand(),
			rewardCommand(),
			generateCommand(),
			scoreCommand(),
			ppoCommand(),
			experimentCommand(),
			evalCommand(),
			dataCommand(),
			auditCommand(),
			mergeCommand(),
		},
		EnableBashCompletion: true,
		Version:              version(),
	}
	cli.VersionPrinter = printVersion
	for _, c := range app.Commands {
		prepare(c)
	}
	return app
}
