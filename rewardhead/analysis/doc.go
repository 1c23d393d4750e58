// Package analysis runs the paper's analyses of reward heads and draws
// their plots with gonum.org/v1/plot:
//
//   - ScoreNoise and WeightNoise: metrics under zero-mean Gaussian noise on
//     the reward scores (the paper's Figure 3) or on a head's weights
//     (Figure 8), over a σ grid with seeded repeats.
//   - DataRatio: heads trained with the non-toxic pool fixed and toxic
//     examples added step by step, then the reverse (Figure 2, drawn as
//     two panels of one ratio.png against the number of samples added).
//   - Epochs: non-identifiability across every epoch's head, with per-class
//     reward statistics, emphasis groups (Figure 6) and the ensemble.
//   - Perturb: reward deltas of (original, probe) pairs (Table 6).
//   - EvalPlots and Figure1: the scatter against ground truth, reward
//     distributions by class and the confusion matrix (Figure 1), as
//     panels of one figure1.png and as files of their own.
//
// Plots are drawn with package irl/plots: legends beside the data, margins
// that keep titles and tick labels whole, and the colour-blind-safe
// palette, with markers and dashes where series are many.
//
// Every result is a plain struct that encodes to JSON; metrics summarised
// over repeats are Summary values whose undefined cases are null with a
// reason, as in package rewardhead.
package analysis
