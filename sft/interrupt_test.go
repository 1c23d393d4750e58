package sft

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"irl/checkpoint"
)

// cancelAt is a context cancelled when its Err is asked for the n-th time:
// the loop asks once before each step, so the run stops after n−1 steps.
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

// A run whose context is cancelled stops at the next step boundary, saves a
// checkpoint there (none when the step's own was just saved), says so with
// a *checkpoint.InterruptedError wrapping context.Canceled; resumed, it
// gives exactly the metrics and weights of an uninterrupted run.
func TestInterruptThenResumeIsExact(t *testing.T) {
	data := toyCorpus(40) // 32 training rows in batches of 8: 4 steps an epoch
	a := config(t.TempDir())
	a.Epochs = 3
	ma := tinyModel(t)
	if _, err := Run(ma, data, a); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		after int // steps before the interrupt
	}{{"mid-epoch", 6}, {"just saved", 4}} {
		t.Run(c.name, func(t *testing.T) {
			b := config(t.TempDir())
			b.Epochs = 3
			b.Context = newCancelAt(c.after + 1)
			_, err := Run(tinyModel(t), data, b)
			var ie *checkpoint.InterruptedError
			if !errors.Is(err, context.Canceled) || !errors.As(err, &ie) {
				t.Fatalf("interrupted run: %v; want an InterruptedError wrapping context.Canceled", err)
			}
			want := filepath.Join(b.Out, checkpoint.Name(c.after))
			if ie.Step != c.after || ie.Dir != want {
				t.Errorf("interrupted after step %d at %q; want %d at %q", ie.Step, ie.Dir, c.after, want)
			}
			if last, err := checkpoint.Last(b.Out); err != nil || last != want {
				t.Errorf("last checkpoint %q (%v), want %q", last, err, want)
			}
			b.Context, b.Resume = nil, true
			mb := tinyModel(t)
			rb, err := Run(mb, data, b)
			if err != nil {
				t.Fatal(err)
			}
			if rb.Final == "" || rb.Steps != 12 {
				t.Errorf("resumed run: %d steps, final %q", rb.Steps, rb.Final)
			}
			xa, xb := readMetrics(t, filepath.Join(a.Out, "metrics.jsonl")), readMetrics(t, filepath.Join(b.Out, "metrics.jsonl"))
			if len(xa) != len(xb) {
				t.Fatalf("%d metric lines vs %d", len(xa), len(xb))
			}
			for i := range xa {
				x, y := xa[i], xb[i]
				if !(x.Step == y.Step && eq(x.Loss, y.Loss) && eq(x.EvalLoss, y.EvalLoss) && eq(x.GradNorm, y.GradNorm) && x.LR == y.LR) {
					t.Errorf("metric line %d: %+v vs %+v", i, x, y)
				}
			}
			for name, p := range ma.Params {
				for i, v := range p.Data {
					if mb.Params[name].Data[i] != v {
						t.Fatalf("%s[%d]: %v resumed, %v uninterrupted", name, i, mb.Params[name].Data[i], v)
					}
				}
			}
		})
	}
}

// Interrupted before its first step, a run saves nothing and says a resume
// starts it anew.
func TestInterruptBeforeFirstStep(t *testing.T) {
	b := config(t.TempDir())
	b.Epochs, b.Context = 1, newCancelAt(1)
	_, err := Run(tinyModel(t), toyCorpus(40), b)
	var ie *checkpoint.InterruptedError
	if !errors.As(err, &ie) || ie.Step != 0 || ie.Dir != "" {
		t.Fatalf("got %v, want an InterruptedError after step 0 with no checkpoint", err)
	}
	if _, err := checkpoint.Last(b.Out); err == nil {
		t.Error("a checkpoint was saved")
	}
	b.Context, b.Resume = nil, true
	if res, err := Run(tinyModel(t), toyCorpus(40), b); err != nil || res.Steps != 4 {
		t.Errorf("resumed: %d steps, %v", res.Steps, err)
	}
}
