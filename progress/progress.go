package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Bar is a progress bar. A nil *Bar does nothing, so callers need no checks
// when progress is off.
type Bar struct {
	b *progressbar.ProgressBar
}

// New starts a bar of total steps named desc on w; unit, if set, names what
// is counted and shows a rate ("rows" gives rows/s). A nil w gives a nil Bar.
func New(w io.Writer, total int, desc, unit string) *Bar {
	if w == nil || total <= 0 {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	}
	if unit != "" {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
	}
	return &Bar{b: progressbar.NewOptions(total, opts...)}
}

// Add advances the bar by n steps.
func (b *Bar) Add(n int) {
	if b != nil {
		b.b.Add(n)
	}
}

// Describe replaces the bar's text, for live figures such as a loss.
func (b *Bar) Describe(s string) {
	if b != nil {
		b.b.Describe(s)
	}
}

// Finish completes the bar and ends its line.
func (b *Bar) Finish() {
	if b != nil {
		b.b.Finish()
	}
}

// Stop ends the bar's line where the bar stands, for a run that stops
// short (an interrupt); a later Finish does nothing.
func (b *Bar) Stop() {
	if b != nil {
		b.b.Exit()
	}
}
