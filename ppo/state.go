package ppo

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// check refuses a saved loop state, and the phase's rollouts with it, that
// this run cannot continue from: one edited by hand, cut short, or written
// under other settings. Without it such a state reaches the loop as an
// index past the prompts (takePrompts would never finish) or a rollout whose
// per-token lists disagree (GAE panics). nTrain is the number of training
// prompts, step the checkpoint's step, vocab and maxLen the model's
// vocabulary and positions, eos its EOS token (the pad, which TRLx's slice
// counts by; see spansOf).
func (s *loopState) check(cfg Config, phase []sample, nTrain, step, vocab, maxLen int, eos int64) error {
	steps := cfg.PPOEpochs * ((cfg.NumRollouts + cfg.BatchSize - 1) / cfg.BatchSize)
	switch {
	case s.Phase < 0 || s.PromptEpoch < 0:
		return fmt.Errorf("phase %d, prompt epoch %d: want both ≥ 0", s.Phase, s.PromptEpoch)
	case s.PromptPos < 0 || s.PromptPos >= nTrain:
		return fmt.Errorf("prompt position %d: want 0 ≤ it < %d, the training prompts", s.PromptPos, nTrain)
	case !finite(s.KL.Value, s.KL.Target, s.KL.Horizon) || s.KL.Value < 0:
		return fmt.Errorf("KL controller %+v: want finite values and β ≥ 0", s.KL)
	case !finite(s.Moments.Mean, s.Moments.Var, s.Moments.Std, s.Moments.Count) || s.Moments.Var < 0 || s.Moments.Std < 0 || s.Moments.Count < 0:
		return fmt.Errorf("running moments %+v: want finite, with variance, std and count ≥ 0", s.Moments)
	case s.RefStd != nil && !(finite(*s.RefStd) && *s.RefStd >= 0):
		return fmt.Errorf("ref_std %v: want finite and ≥ 0", *s.RefStd)
	case s.BestReward != nil && !finite(*s.BestReward):
		return fmt.Errorf("best_reward %v: want finite", *s.BestReward)
	case s.BestCheckpoint != "" && (filepath.Base(s.BestCheckpoint) != s.BestCheckpoint || !strings.HasPrefix(s.BestCheckpoint, "checkpoint-")):
		// Pruning keeps the checkpoint it names: it must be one of the run's.
		return fmt.Errorf("best_checkpoint %q: want a checkpoint's name", s.BestCheckpoint)
	}
	if s.Stats != nil {
		st := s.Stats
		if !finite(st.ScoresMean, st.ScoresStd, st.RunningStd, st.MeanKL, st.MeanKL1, st.TimeGenerate, st.TimeScore, st.TimeForward, st.TimeReference) {
			return fmt.Errorf("phase statistics %+v: want finite values", *st)
		}
	}
	if !s.InPhase {
		if len(phase) > 0 {
			return fmt.Errorf("%d rollouts saved outside a phase", len(phase))
		}
		return nil
	}
	if s.Stats == nil {
		return fmt.Errorf("in a phase without its statistics")
	}
	if k := step - s.PhaseStart; s.PhaseStart < 0 || k < 0 || k >= steps {
		return fmt.Errorf("phase begun at step %d, checkpoint at step %d: want 0 ≤ the difference < %d, the steps of a phase", s.PhaseStart, step, steps)
	}
	if len(phase) != cfg.NumRollouts {
		return fmt.Errorf("%d rollouts in the phase, want %d (num_rollouts)", len(phase), cfg.NumRollouts)
	}
	// How many response positions each rollout must hold: its tokens, or
	// TRLx's slice, which can reach past them (score_position trlx). A list
	// of another length would be read outside the sample's row.
	spans := spansOf(cfg, phase, eos)
	for i, sm := range phase {
		n, l := len(sm.Response), spans[i]
		switch {
		case len(sm.Prompt) == 0 || n == 0:
			return fmt.Errorf("rollout %d: %d prompt and %d response tokens, want at least one of each", i, len(sm.Prompt), n)
		case len(sm.Prompt)+max(n, l-1) > maxLen:
			return fmt.Errorf("rollout %d: %d tokens, more than the model's %d positions", i, len(sm.Prompt)+max(n, l-1), maxLen)
		case len(sm.LogProb) != l || len(sm.RefLogProb) != l || len(sm.Value) != l || len(sm.Reward) != l:
			return fmt.Errorf("rollout %d: %d response tokens with %d log-probs, %d reference log-probs, %d values and %d rewards; want %d of each (score_position %s)",
				i, n, len(sm.LogProb), len(sm.RefLogProb), len(sm.Value), len(sm.Reward), l, cfg.scorePosition())
		case !finite(sm.Score) || !finite(sm.LogProb...) || !finite(sm.RefLogProb...) || !finite(sm.Value...) || !finite(sm.Reward...):
			return fmt.Errorf("rollout %d: a score, log-prob, value or reward is not finite", i)
		}
		for _, ids := range [][]int64{sm.Prompt, sm.Response} {
			for _, id := range ids {
				if id < 0 || id >= int64(vocab) {
					return fmt.Errorf("rollout %d: token %d outside the vocabulary of %d", i, id, vocab)
				}
			}
		}
	}
	return nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
