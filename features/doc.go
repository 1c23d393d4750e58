// Package features extracts h(o), a frozen model's pooled hidden state for
// each text, in fast batches: the reward head sees text only through it.
//
// The path is rows → token ids → length-sorted buckets padded on the right →
// a forward graph that stops at the requested layer and pools in the graph →
// one F32 [N,D] matrix in input order.
package features
