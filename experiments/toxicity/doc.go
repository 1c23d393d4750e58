// Package toxicity is the paper's Section 4 as one resumable pipeline:
// Jigsaw prompts → RLHF against a toxicity classifier (and a poorly
// conducted RLHF run, rlhf-poor) → IRL on each run's demonstrations, paired
// with the base model's on the same prompts → IRL-RLHF with the good and the
// poor recovered head, rewarded as the official code rewards it →
// toxicity at every stage (Table 2) and the IRL curves (Figure 4), with a
// report beside the paper's numbers.
//
// Each stage writes under OUT/<stage>/ and records, in its stage.json, a hash
// of its settings and of what it reads. A finished stage whose hash is
// unchanged is skipped; a stage that failed or was killed starts over, and
// the PPO stages resume from their checkpoints. irl-rlhf's runs and
// toxicity's evaluations are each keyed by their own inputs
// (OUT/<stage>/<part>.inputs.json), so a rerun of those stages keeps every
// part whose inputs are unchanged. LoadConfig checks every path and bound
// before any stage; a run holds OUT/.lock. `irl experiment toxicity
// --config FILE --out DIR [--from STAGE]` runs it; experiments/toxicity/
// holds the paper's configurations for pythia-70m and 410m and a miniature
// that runs anywhere in about half a minute.
package toxicity
