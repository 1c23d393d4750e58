package reward

import (
	"errors"
	"fmt"

	"irl/rows"
)

// Scored is rows scored by a source: the rows the source took, in order,
// and for each its reward and, from a classifier, the label's probability
// and the logits.
type Scored struct {
	Rows    []rows.Row
	Rewards []float64
	Probs   []float64
	Logits  [][]float32
}

// ScoreRows scores rows of file with src: each row is a Sample of its
// prompt, text or ids, and fields (with its index as RowField, unless the
// row has its own). Rows the source cannot take are bad rows, added to bad
// before any compute (bad says whether they stop the run or are left out);
// an error while scoring names the row's file and line.
func ScoreRows(src Source, file string, rs []rows.Row, bad *rows.Bad) (*Scored, error) {
	samples := make([]Sample, len(rs))
	for i, r := range rs {
		fields := r.Fields
		if _, ok := fields[RowField]; !ok {
			if fields == nil {
				fields = map[string]any{}
			}
			fields[RowField] = r.Index
		}
		samples[i] = Sample{Prompt: r.Prompt, Response: r.Text, IDs: r.IDs, Fields: fields, Key: uint64(r.Index)}
	}
	if errs := Validate(src, samples); len(errs) > 0 {
		drop := map[int]bool{}
		for _, e := range errs {
			r := rs[e.Index]
			if err := bad.Add(&rows.RowError{File: file, Line: r.Line, Index: r.Index, Err: e}); err != nil {
				return nil, err
			}
			drop[e.Index] = true
		}
		keptRows, keptSamples := rs[:0:0], samples[:0:0]
		for i := range rs {
			if !drop[i] {
				keptRows, keptSamples = append(keptRows, rs[i]), append(keptSamples, samples[i])
			}
		}
		rs, samples = keptRows, keptSamples
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s: no usable rows", file)
	}
	rewards, probs, logits, err := ScoreDetailed(src, samples)
	if err != nil {
		var se *SampleError
		if errors.As(err, &se) && se.Index >= 0 && se.Index < len(rs) {
			return nil, fmt.Errorf("%s:%d: %w", file, rs[se.Index].Line, err)
		}
		return nil, err
	}
	if len(rewards) != len(samples) {
		return nil, fmt.Errorf("the reward gave %d scores for %d rows", len(rewards), len(samples))
	}
	return &Scored{Rows: rs, Rewards: rewards, Probs: probs, Logits: logits}, nil
}
