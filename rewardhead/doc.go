// Package rewardhead recovers the reward a language model was trained on as a
// linear head over frozen-model features, following "Insights from the
// Inverse: Reconstructing LLM Training Goals Through Inverse Reinforcement
// Learning" (Joselowitz et al.).
//
// A Head scores a feature row h(o) of an output o as R(o) = wᵀh(o) + b.
// Higher reward means more like the expert: the RLHF-trained model's
// non-toxic outputs ("pos"), against the baseline model's toxic outputs
// ("neg"). Features come from files written by `irl features` (LoadFeatures);
// a head records the model, layer, pooling and maximum length of the features
// it was trained on, and Head.Check refuses any others.
//
// Three ways to make a head:
//
//   - Train is pairwise max-margin IRL, the paper's eq. 1: Adam on the mean
//     of a Loss of x = R(o⁺) − R(o⁻) over pairs of expert and baseline rows
//     drawn each epoch, keeping every epoch's head.
//   - TrainProbe is a logistic-regression probe on labelled features, giving
//     a ground-truth reward R* = −f(o) with f the toxicity logit.
//   - Apprentice is Abbeel & Ng's apprenticeship learning (the paper's
//     Algorithm 1) over policies represented by feature expectations, with
//     the policy step behind the Oracle interface.
//
// Evaluate computes the paper's metrics with toxic as the positive class (a
// row is predicted toxic when its reward is ≤ the threshold): accuracy,
// precision, recall, F1, specificity, the AUC as our definition of
// separation (SeparationDefinition), Cohen's d, and against ground truth
// Kendall's τ-b, Spearman, Pearson and the agreement table. A metric with no
// value is a Value that encodes as JSON null with its reason, never NaN.
//
// Package analysis builds the paper's analyses on top: noise robustness,
// data ratio, non-identifiability across epochs, perturbation probes, and
// their plots.
//
// Bad data (a NaN in a feature row, mismatched dimensions or metadata, an
// empty class) is an error naming the file and row; misuse of the API, such
// as scoring features of the wrong dimension without checking, panics.
package rewardhead
