package toy

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// A run whose context is done stops before its next stage and says how
// to go on: the demo starts over.
func TestInterruptedSaysStartOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(Config{Out: filepath.Join(t.TempDir(), "o"), Quick: true, Context: ctx})
	want := "toy: seed 1: interrupted in stage data; the demo starts over: rerun the same command with --overwrite"
	if !errors.Is(err, context.Canceled) || err.Error() != want {
		t.Errorf("got %v, want %q wrapping context.Canceled", err, want)
	}
}
