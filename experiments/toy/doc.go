// Package toy is the paper's simplified demonstration (Section 3 and
// Appendix C) end to end: SFT a small model on "The {entity} is
// {adjective}." with toxic and non-toxic adjectives, RLHF it against the
// lexicon reward (Algorithm 2), recover that reward with max-margin IRL, and
// measure the recovered reward as the paper's Tables 1, 3 and 4 and Figures
// 1, 2, 3 and 5 do, in a report that stands beside the paper's numbers.
//
// It calls the libraries directly: sft, ppo, policy (generation), features,
// rewardhead and its analyses. `irl experiment toy` and `make demo` run it.
package toy
