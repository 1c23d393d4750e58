// Package audit is `irl audit`: from a tuned model (or its outputs) to the
// reward it was trained on, with that reward's reliability and its reasons,
// in one run.
//
// The stages, in order:
//
//   - demonstrations: the tuned model and its base continue the same prompts
//     (Config.Samples sampled continuations each, or one greedy with
//     Config.Greedy), paired by prompt; or, with Config.Pos
//     and Config.Neg, two files of outputs. The prompts are split into a
//     training and a held-out part by Config.Seed.
//   - features: each of Variants (layer × pooling) trains a head on the
//     training pairs; the one whose head orders its own monitor pairs best
//     is kept (ChooseVariant): a rule that sees no held-out text.
//   - irl: max-margin IRL (rewardhead.TrainToDir), every epoch's head kept.
//   - reliability: held-out pair accuracy (the share of held-out prompts
//     where the tuned model's texts score above the base model's on
//     average, pairAccuracy) and separation (AUC) with
//     bootstrap 95% intervals; agreement (Kendall τ-b of the scores of
//     held-out texts) between the chosen head and every epoch's, and heads
//     trained with other seeds; a label-shuffle control that should fall
//     to 0.5.
//   - reasons: every whole word of the tokenizer's vocabulary (or
//     Config.ProbeWords) scored in neutral templates, the most rewarded and
//     most penalised listed; the held-out texts ranked highest and lowest,
//     and the pairs the head gets most wrong; those texts read token by
//     token (Attribute). The word lists rank only words whose features lie
//     within the demonstrations' range: elsewhere a linear head's score is
//     extrapolation along directions the data never checked.
//   - direction, with Config.GT: a logistic probe of ground-truth scores
//     of the texts on the same features of the training texts; its cosine
//     with the head's weights, its own held-out pair accuracy and
//     correlation with the ground truth, and the ground truth's own
//     held-out figures (Direction).
//
// The report is OUT/report.json, OUT/report.md and OUT/report.html, one
// self-contained page (html.go, report.html.tmpl): inline SVG charts and
// every example's tokens coloured by the head's reading.
package audit
