package optim

import (
	"fmt"
	"math"
	"strings"
)

// Schedule gives the learning rate for a step. step counts the steps already
// taken, so the first update uses LR(0); AdamW.Steps gives it. LR panics on a
// negative step.
type Schedule interface {
	LR(step int) float64
}

// Constant is the same learning rate at every step.
type Constant struct {
	Peak float64
}

// LR returns Peak.
func (c Constant) LR(step int) float64 {
	checkStep(step)
	return c.Peak
}

// Cosine decays from Peak at step 0 to Min at step Steps along half a cosine,
// and stays at Min after:
//
//	LR(t) = Min + (Peak-Min) * (1 + cos(π t/Steps)) / 2
type Cosine struct {
	Peak, Min float64
	Steps     int
}

// LR returns the cosine-decayed learning rate.
func (c Cosine) LR(step int) float64 {
	checkStep(step)
	if step >= c.Steps {
		return c.Min
	}
	return c.Min + (c.Peak-c.Min)*(1+math.Cos(math.Pi*float64(step)/float64(c.Steps)))/2
}

// CosineAnnealing is PyTorch's CosineAnnealingLR, which the paper's official
// code runs: the cosine from Peak at step 0 to Min at step TMax, and past
// TMax on along the same cosine, back up toward Peak (period 2·TMax), as
// PyTorch's recursive form does too:
//
//	LR(t) = Min + (Peak-Min) * (1 + cos(π t/TMax)) / 2   for every t
//
// Min may exceed Peak (the official 70m configuration's η_min 5.45e-6 over
// lr 3e-6): the rate then rises.
type CosineAnnealing struct {
	Peak, Min float64
	TMax      int
}

// LR returns PyTorch's CosineAnnealingLR rate after step scheduler steps.
func (c CosineAnnealing) LR(step int) float64 {
	checkStep(step)
	return c.Min + (c.Peak-c.Min)*(1+math.Cos(math.Pi*float64(step)/float64(c.TMax)))/2
}

// Linear falls in a straight line from Peak at step 0 to Min at step Steps,
// and stays at Min after.
type Linear struct {
	Peak, Min float64
	Steps     int
}

// LR returns the linearly decayed learning rate.
func (l Linear) LR(step int) float64 {
	checkStep(step)
	if step >= l.Steps {
		return l.Min
	}
	return l.Peak + (l.Min-l.Peak)*float64(step)/float64(l.Steps)
}

// Warmup ramps the learning rate linearly over the first Steps steps up to
// the rate Then gives at its start, then follows Then shifted by Steps:
//
//	LR(t) = Then.LR(0) * (t+1)/Steps   for t < Steps
//	LR(t) = Then.LR(t-Steps)           otherwise
//
// The ramp counts from t+1, not t, so that the first step is not wasted at
// rate 0 and the last warmup step reaches the full rate.
type Warmup struct {
	Steps int
	Then  Schedule
}

// LR returns the warmed-up learning rate.
func (w Warmup) LR(step int) float64 {
	checkStep(step)
	if step < w.Steps {
		return w.Then.LR(0) * float64(step+1) / float64(w.Steps)
	}
	return w.Then.LR(step - w.Steps)
}

func checkStep(step int) {
	if step < 0 {
		panic(fmt.Sprintf("optim: schedule: negative step %d", step))
	}
}

// ScheduleKinds lists the kinds ScheduleConfig accepts.
var ScheduleKinds = []string{"constant", "cosine", "linear", "cosine_annealing"}

// ScheduleConfig describes a schedule as a command line gives it.
type ScheduleConfig struct {
	// Kind is "constant", "cosine", "linear" or "cosine_annealing"
	// (PyTorch's CosineAnnealingLR over TMax; case-insensitive).
	Kind string
	// Peak is the learning rate after warmup, > 0.
	Peak float64
	// Min is the cosine's final rate η_min, in [0, Peak]; ignored by constant.
	Min float64
	// Warmup is the number of linear warmup steps before the schedule, >= 0.
	Warmup int
	// Total is the number of training steps, warmup included; the cosine
	// decays over the Total-Warmup steps after warmup. Ignored by constant.
	Total int
	// TMax is cosine_annealing's half period (PyTorch's T_max), which need
	// not be Total: past it the rate rises again. Its Min may exceed Peak.
	TMax int
}

// Build returns the schedule c describes, or an error naming the field that
// is out of range.
func (c ScheduleConfig) Build() (Schedule, error) {
	if !(c.Peak > 0) || math.IsInf(c.Peak, 1) {
		return nil, fmt.Errorf("schedule: peak learning rate %v must be positive and finite", c.Peak)
	}
	if c.Warmup < 0 {
		return nil, fmt.Errorf("schedule: negative warmup %d", c.Warmup)
	}
	var s Schedule
	switch strings.ToLower(strings.TrimSpace(c.Kind)) {
	case "constant":
		s = Constant{Peak: c.Peak}
	case "cosine":
		if !(c.Min >= 0 && c.Min <= c.Peak) {
			return nil, fmt.Errorf("schedule: cosine minimum %v outside [0, peak %v]", c.Min, c.Peak)
		}
		if c.Total <= c.Warmup {
			return nil, fmt.Errorf("schedule: cosine needs total steps %d > warmup steps %d", c.Total, c.Warmup)
		}
		s = Cosine{Peak: c.Peak, Min: c.Min, Steps: c.Total - c.Warmup}
	case "linear":
		if !(c.Min >= 0 && c.Min <= c.Peak) {
			return nil, fmt.Errorf("schedule: linear minimum %v outside [0, peak %v]", c.Min, c.Peak)
		}
		if c.Total <= c.Warmup {
			return nil, fmt.Errorf("schedule: linear needs total steps %d > warmup steps %d", c.Total, c.Warmup)
		}
		s = Linear{Peak: c.Peak, Min: c.Min, Steps: c.Total - c.Warmup}
	case "cosine_annealing":
		if !(c.Min >= 0) || math.IsInf(c.Min, 1) {
			return nil, fmt.Errorf("schedule: cosine_annealing minimum %v must be finite and not negative", c.Min)
		}
		if c.TMax <= 0 {
			return nil, fmt.Errorf("schedule: cosine_annealing needs T_max > 0, got %d", c.TMax)
		}
		s = CosineAnnealing{Peak: c.Peak, Min: c.Min, TMax: c.TMax}
	default:
		return nil, fmt.Errorf("schedule: unknown kind %q (want one of %s)", c.Kind, strings.Join(ScheduleKinds, ", "))
	}
	if c.Warmup > 0 {
		s = Warmup{Steps: c.Warmup, Then: s}
	}
	return s, nil
}
