// Package batching groups variable-length rows into length-sorted batches, so
// that a model padding each batch to its longest row spends little work on
// padding. Every batch scorer (features, classifier scores, reference
// log-probs) uses it; the caller builds its own padded tensors.
package batching
