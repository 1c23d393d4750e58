// Package progress draws the progress bars of long commands on stderr: one
// look for features, scoring, fine-tuning, generation, PPO and the
// experiments' stages. A bar counts steps toward a known total, shows a rate
// when given a unit ("rows" gives rows/s), and predicts the time left.
//
// A nil *Bar does nothing, so a caller passes a nil writer for --quiet and
// calls Add, Describe and Finish without checks.
package progress
