package ppo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"irl/checkpoint"
	"irl/onnx"
)

// cancelAt is a context cancelled when its Err is asked for the n-th time.
type cancelAt struct {
	context.Context
	cancel context.CancelFunc
	n      int32
	calls  atomic.Int32
}

func newCancelAt(n int) *cancelAt {
	ctx, cancel := context.WithCancel(context.Background())
	return &cancelAt{Context: ctx, cancel: cancel, n: int32(n)}
}

func (c *cancelAt) Err() error {
	if c.calls.Add(1) >= c.n {
		c.cancel()
	}
	return c.Context.Err()
}

// checks counts the loop's questions to its context before step s (s
// steps done): one before each step, and one before each rollout chunk of
// a phase (chunks a phase, steps a phase).
func checks(s, chunks, perPhase int) int {
	n := 0
	for k := 0; k < s; k++ {
		n++
		if k%perPhase == 0 {
			n += chunks
		}
	}
	return n
}

// A run whose context is cancelled stops at the next safe point — between
// two steps, mid-phase with the phase's rollouts, or between two rollout
// chunks, dropping the phase begun — saves a checkpoint there (none when
// that step's was just saved), says so with a *checkpoint.InterruptedError
// wrapping context.Canceled, and, resumed, logs and trains exactly what an
// uninterrupted run does.
func TestInterruptThenResumeIsExact(t *testing.T) {
	w := newToyWorld(t)
	cfg := toyConfig()
	cfg.TotalSteps = 16 // four steps a phase, two chunks; checkpoints and evaluations every 10
	so := onnx.Options{Threads: 1}
	a := filepath.Join(t.TempDir(), "a")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so}); err != nil {
		t.Fatal(err)
	}
	la := readLines(t, filepath.Join(a, "metrics.jsonl"))
	for _, c := range []struct {
		name    string
		cancel  int // the Err call that cancels
		step    int // the step the run stops after
		inPhase bool
	}{
		{"mid-phase", checks(6, 2, 4) + 1, 6, true},
		{"between chunks", checks(8, 2, 4) + 3, 8, false}, // after the first chunk
		{"just saved", checks(10, 2, 4) + 1, 10, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := filepath.Join(t.TempDir(), "b")
			_, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Context: newCancelAt(c.cancel)})
			var ie *checkpoint.InterruptedError
			if !errors.Is(err, context.Canceled) || !errors.As(err, &ie) {
				t.Fatalf("interrupted run: %v; want an InterruptedError wrapping context.Canceled", err)
			}
			want := filepath.Join(b, checkpoint.Name(c.step))
			if ie.Step != c.step || ie.Dir != want {
				t.Errorf("interrupted after step %d at %q; want %d at %q", ie.Step, ie.Dir, c.step, want)
			}
			if !strings.Contains(err.Error(), "resume with the same command and --resume") {
				t.Errorf("the error says %q", err)
			}
			if last, err := checkpoint.Last(b); err != nil || last != want {
				t.Fatalf("last checkpoint %q (%v), want %q", last, err, want)
			}
			if _, err := os.Stat(filepath.Join(want, rolloutsFile)); (err == nil) != c.inPhase {
				t.Errorf("the checkpoint holds rollouts: %v, want %v", err == nil, c.inPhase)
			}
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Resume: true}); err != nil {
				t.Fatal(err)
			}
			sameMetrics(t, la, readLines(t, filepath.Join(b, "metrics.jsonl")), true)
			sameFinal(t, a, b)
		})
	}
}
