// Package atomicfile writes files and folders so that a crash never leaves a
// half-written one under its final name: everything is written under a
// temporary name beside the destination and renamed into place when done.
// It also checks destinations before long work starts, so that a bad --out
// fails at once rather than after the compute.
package atomicfile
