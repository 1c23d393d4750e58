package toxeval

import (
	"context"
	"errors"
	"testing"
)

// A done Context stops Evaluate between batches, with an error wrapping
// the context's: no summary, and nothing scored after it.
func TestEvaluateStopsWhenCancelled(t *testing.T) {
	proto := RTP()
	proto.SamplesPerPrompt = 1
	words := fakeDec{"<eos>", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	gen := &fakeGen{t: t, proto: proto, ids: map[uint64][][][]int64{1: {{{1}}, {{2}}, {{3}}, {{4}}}}}
	sc := &stubScorer{score: func(Continuation) float64 { return 0 }}
	prompts := []Prompt{{Row: 0, IDs: []int64{1}}, {Row: 1, IDs: []int64{2}}, {Row: 2, IDs: []int64{3}}, {Row: 3, IDs: []int64{4}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	s, err := Evaluate(gen, words, prompts, sc, proto, Options{BatchSize: 2, Context: ctx, Emit: func(Sample) error {
		n++
		cancel() // after the first batch is scored
		return nil
	}})
	if !errors.Is(err, context.Canceled) || s != nil || n != 2 {
		t.Errorf("%d samples, then %v (summary %v); want 2, then context.Canceled", n, err, s)
	}
}
