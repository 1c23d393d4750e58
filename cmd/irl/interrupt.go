package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"irl/reward"
)

// interruptMsg is said at the first SIGINT or SIGTERM.
const interruptMsg = "irl: interrupted: stopping at the next safe point (Ctrl-C again to stop now)"

// interrupts turns signals into a graceful stop. The first SIGINT or SIGTERM
// cancels ctx, which every command passes to its long loops: sft and ppo
// save a checkpoint at their next safe point and return an error saying how
// to resume; the others stop between batches, and their outputs, written
// whole or not at all, are left as they were. A second signal, or SIGHUP
// (the terminal is gone), kills the reward children's process groups and
// exits at once, with 128 + the signal's number, as the shell reports a
// process the signal killed (130 for SIGINT, 143 for SIGTERM).
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	first  syscall.Signal // 0: none yet
}

// watchInterrupts starts watching for the signals, saying what it does on
// w; exit ends the process (os.Exit). A signal the process was started
// ignoring (SIGINT in a background job, nohup's SIGHUP) stays ignored.
func watchInterrupts(w io.Writer, exit func(int)) *interrupts {
	in := &interrupts{}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	// The reward package's own handler, which kills its children and
	// re-raises the signal, would end the process at the first signal.
	reward.HandleSignals(false)
	sigs := make(chan os.Signal, 4)
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(s) {
			signal.Notify(sigs, s)
		}
	}
	// A progress bar, or the terminal's ^C, may be mid-line.
	const nl = "\n"
	go func() {
		for s := range sigs {
			sig, _ := s.(syscall.Signal)
			in.mu.Lock()
			again := in.first != 0
			if !again && sig != syscall.SIGHUP {
				in.first = sig
			}
			in.mu.Unlock()
			if again || sig == syscall.SIGHUP {
				what := "interrupted again"
				if !again {
					what = "hangup"
				}
				fmt.Fprintf(w, "%sirl: %s: stopping now\n", nl, what)
				reward.KillChildren()
				exit(128 + int(sig))
				return
			}
			fmt.Fprintf(w, "%s%s\n", nl, interruptMsg)
			in.cancel()
		}
	}()
	return in
}

// signal is the first SIGINT or SIGTERM received (0: none).
func (in *interrupts) signal() syscall.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.first
}
