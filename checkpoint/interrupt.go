package checkpoint

import "fmt"

// InterruptedError is a training run stopped by its context at a safe
// point: after Step steps, every one logged, with Dir the checkpoint of
// that step to resume from ("" when it stopped before its first step and
// saved none: a resume then starts the run anew). It wraps the context's
// error, so errors.Is(err, context.Canceled) holds.
type InterruptedError struct {
	Step int
	Dir  string
	Err  error
}

func (e *InterruptedError) Error() string {
	if e.Dir == "" {
		return fmt.Sprintf("interrupted after step %d, before any checkpoint; the same command with --resume starts the run anew", e.Step)
	}
	return fmt.Sprintf("interrupted after step %d; checkpoint %s; resume with the same command and --resume", e.Step, e.Dir)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// StageInterrupted is a pipeline stopped by its context in a stage: it says
// msg (where it stopped and how to go on) rather than the wrapped error's
// text, and wraps err, so that errors.Is(err, context.Canceled) and
// errors.As for an *InterruptedError see through it.
func StageInterrupted(msg string, err error) error { return &stageInterrupted{msg, err} }

type stageInterrupted struct {
	msg string
	err error
}

func (e *stageInterrupted) Error() string { return e.msg }
func (e *stageInterrupted) Unwrap() error { return e.err }
