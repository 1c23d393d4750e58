// Package reward scores texts for RLHF and evaluation: one interface, Source,
// behind every reward the project knows — the paper's lexicon (Algorithm 2),
// a recovered reward head on a frozen encoder (IRL-RLHF), a sequence
// classifier (toxicity), or any program a user writes. `irl ppo`, `irl score`
// and the experiments build their sources with Parse, from a spec such as
// "lexicon:toxic.txt,nontoxic.txt".
//
// Every source returns finite rewards or an error naming the sample
// (*SampleError); none invents a score. Sources may offer more through
// optional interfaces: Detailed (a classifier's probabilities and logits),
// Validator (which samples cannot be scored, found before any compute),
// Describer (metadata for the files scores are written to) and Identifier
// (settings and file fingerprints, which a resumed run checks). The
// wrappers Relative and Transformed pass all four through.
package reward
