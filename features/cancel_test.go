package features

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// A done Context stops Extract before its next batch, with an error
// wrapping the context's, and no features.
func TestExtractStopsWhenCancelled(t *testing.T) {
	m, err := neox.Load(filepath.Join(fixtures, "tiny-neox-parallel"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := Options{Layer: -1, BatchSize: 2, Session: onnx.Options{Threads: 1}, Context: ctx}
	e, err := NewModelExtractor(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	x, st, err := Extract(e, [][]int64{{1, 2}, {3}, {4, 5, 6}}, o)
	if !errors.Is(err, context.Canceled) || x != nil || st.Batches != 0 {
		t.Errorf("%d batches, %d features, %v; want none and context.Canceled", st.Batches, len(x), err)
	}
}
