// Package ppo fine-tunes a GPT-NeoX policy with PPO against any reward
// source (package reward): the paper's RLHF, which makes the expert π_E from a
// ground-truth reward, and IRL-RLHF, which fine-tunes a fresh model against a
// recovered reward head. It follows TRLx's AcceleratePPOTrainer, the code the
// paper ran, except where the README says "fixed"; where the fix is a
// choice (Config.ScorePosition, Config.AdvantageWhitening), TRLx's
// behaviour is the default under a compat mode and the fix under none.
//
// A phase samples NumRollouts continuations from the current weights in
// chunks of ChunkSize prompts, scores them, and turns scores into per-token
// rewards (a KL penalty against the frozen starting model on every token and
// the score on the last, or at the end of TRLx's slice); then PPOEpochs
// passes over the phase, in shuffled
// minibatches of BatchSize, each one optimiser step of the clipped PPO loss,
// computed with its gradient in one ONNX Runtime run (neox.PPO).
// Config.TRLxCompat instead follows one TRLx version's loop exactly: the
// fork the paper ran (unshuffled minibatches, each taking PPOEpochs steps)
// or CarperAI main; see PhasePlan, ScaleScoresTRLx and ControllerKL, and
// trlx_test.go for the comparisons with TRLx's own outputs.
//
// Every random draw is a function of the seed and of where the run is (the
// phase, the chunk, the pass), and the checkpoint holds everything else —
// weights, optimiser, β and the KL controller, the running score moments,
// the prompt order and position, and the rollouts of a phase in progress —
// so a resumed run's metrics equal an uninterrupted run's bit for bit.
package ppo
