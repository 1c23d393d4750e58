package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "irl:", err)
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
irl source folder ("make ort" fills it), then the system's library folders.`,
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
