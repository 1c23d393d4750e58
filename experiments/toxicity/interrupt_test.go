package toxicity

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/onnx"
)

// cancelWhen is a context cancelled when its Err is asked for once cond
// holds.
type cancelWhen struct {
	context.Context
	cancel context.CancelFunc
	cond   func() bool
}

func (c *cancelWhen) Err() error {
	if c.Context.Err() == nil && c.cond() {
		c.cancel()
	}
	return c.Context.Err()
}

// A run interrupted in the rlhf stage stops after the PPO step in progress,
// leaves a checkpoint there and the stage unfinished, and says to rerun the
// command; the rerun resumes the stage from that checkpoint (the metrics
// it logged are kept, wall-clock timings and all).
func TestInterruptedPPOStageResumes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	so := onnx.Options{Threads: 2}
	metrics := filepath.Join(out, "rlhf", "run", checkpoint.MetricsFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cw := &cancelWhen{Context: ctx, cancel: cancel, cond: func() bool {
		b, _ := os.ReadFile(metrics)
		return bytes.Contains(b, []byte(`"step":1,`))
	}}
	_, err := Run(mini(t), Options{Out: out, Session: so, Context: cw})
	var ie *checkpoint.InterruptedError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ie) || ie.Step != 1 {
		t.Fatalf("the interrupted run: %v", err)
	}
	want := "toxicity: interrupted in stage rlhf after step 1 (checkpoint " + filepath.Join(out, "rlhf", "run", checkpoint.Name(1)) + "); rerun the same command to resume"
	if err.Error() != want {
		t.Errorf("the interrupted run says\n%s\nwant\n%s", err, want)
	}
	if st, err := readState(filepath.Join(out, "rlhf", "stage.json")); err != nil || st.Done {
		t.Errorf("rlhf's stage.json: %+v, %v; want not done", st, err)
	}
	before, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(mini(t), Options{Out: out, Session: so, StopIn: "rlhf", StopAfter: 2}); err == nil || !strings.Contains(err.Error(), "stopped after step 2") {
		t.Fatalf("the rerun: %v", err)
	}
	after, _ := os.ReadFile(metrics)
	if !bytes.HasPrefix(after, before) || len(after) == len(before) {
		t.Errorf("the rerun did not continue the interrupted run's metrics:\n%s\nthen\n%s", before, after)
	}
}
