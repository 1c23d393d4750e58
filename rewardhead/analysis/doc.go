// Package analysis runs the paper's analyses of reward heads and draws
// their plots with gonum.org/v1/plot:
//
//   - ScoreNoise and WeightNoise: metrics under zero-mean Gaussian noise on
//     the reward scores (the paper's Figure 3) or on a head's weights
//     (Figure 8), over a σ grid with seeded repeats.
//   - DataRatio: heads trained with the non-toxic pool fixed and toxic
//     examples added step by step, then the reverse (Figure 2).
//   - Epochs: non-identifiability across every epoch's head, with per-class
//     reward statistics, emphasis groups (Figure 6) and the ensemble.
//   - Perturb: reward deltas of (original, probe) pairs (Table 6).
//   - EvalPlots: reward distributions by class, the confusion matrix and the
//     scatter against ground truth (Figure 1).
//
// Every result is a plain struct that encodes to JSON; metrics summarised
// over repeats are Summary values whose undefined cases are null with a
// reason, as in package rewardhead.
package analysis
