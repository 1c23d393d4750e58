// Command irl recovers the reward a language model was trained to optimise:
// it runs GPT-NeoX (Pythia) models on ONNX Runtime, extracts hidden-state
// features, trains linear reward heads with max-margin inverse RL, and
// evaluates them against ground truth.
//
// The command is wiring and help only: each subcommand reads its flags
// (flags.go holds those that several share, app.go the rules every command
// follows: required flags, stray arguments, path flags cleaned and run
// folders read as models), calls a library, and prints what it returned.
// The pipelines live in the packages: features, sft, ppo, reward,
// rewardhead, toxicity and experiments.
//
// Run `irl --help` or `irl COMMAND --help` for details.
package main
