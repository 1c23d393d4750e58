package policy

import (
	"context"
	"errors"
	"testing"
)

// A done Context stops GenerateEach between two batches, with an error
// wrapping the context's; the batches already done were emitted.
func TestGenerateEachStopsWhenCancelled(t *testing.T) {
	m, _ := loadFixture(t, "tiny-neox-parallel")
	g := newGenerator(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := GenerateOptions{MaxNewTokens: 2, Sampling: SampleOptions{Greedy: true}, BatchSize: 2, Context: ctx}
	prompts := [][]int64{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}}
	n := 0
	err := g.GenerateEach(prompts, o, func(Generation) error {
		n++
		cancel() // during the first batch
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Errorf("%d sequences, then %v; want 2, then context.Canceled", n, err)
	}
}
