// Package toxeval holds the paper's toxicity experiment's data and its
// evaluation (the pipeline that runs the experiment is
// experiments/toxicity): readers for jaredjoss/jigsaw-long-2000, the raw Jigsaw
// comments (and the split that made long-2000 from them), and
// allenai/real-toxicity-prompts; the official code's 80/20 split; and the
// two ways a policy's toxicity is measured, the official code's protocol
// ("paper") and RealToxicityPrompts' ("rtp"), repeated over seeds.
package toxeval
