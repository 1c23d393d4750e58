package ppo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
)

// FuzzTrainerState feeds trainer_state.json and a phase's rollouts.json to
// the resume path: reading, decoding, then check. Bad bytes must give an
// error, never a panic; a state that check passes must then drive the loop's
// own code (prompt order, batch layout, GAE) without a panic or a hang.
func FuzzTrainerState(f *testing.F) {
	good := loopState{Phase: 3, PhaseStart: 10, PromptEpoch: 1, PromptPos: 2, KL: KLController{Value: 0.05, Target: 6, Horizon: 10000},
		Moments: NewRunningMoments(), Stats: &phaseStats{ScoresMean: 0.5, ScoresStd: 1, MeanKL: 0.1}, InPhase: true}
	rolls := make([]sample, 4)
	for i := range rolls {
		rolls[i] = sample{Prompt: []int64{1, 2}, Response: []int64{3, 4, 5}, LogProb: []float64{-1, -2, -3}, RefLogProb: []float64{-1, -2, -3},
			Value: []float64{0, 0, 0}, Reward: []float64{0, 0, 1}, Score: 1, Row: i}
	}
	state := func(st loopState, step int) []byte {
		tr, _ := json.Marshal(st)
		b, _ := json.Marshal(checkpoint.State{Step: step, Settings: map[string]any{"seed": 1}, Trainer: tr})
		return b
	}
	rb, _ := json.Marshal(rolls)
	f.Add(state(good, 12), rb)
	out := good
	out.InPhase = false
	f.Add(state(out, 12), []byte("[]"))
	for _, bad := range []func(s *loopState){
		func(s *loopState) { s.PromptPos = 1 << 40 },
		func(s *loopState) { s.PromptPos = -1 },
		func(s *loopState) { s.Stats = nil },
		func(s *loopState) { s.PhaseStart = 1000 },
		func(s *loopState) { s.KL.Value = -1 },
	} {
		s := good
		bad(&s)
		f.Add(state(s, 12), rb)
	}
	short := append([]sample(nil), rolls...)
	short[1].Value = short[1].Value[:1]
	sb, _ := json.Marshal(short)
	f.Add(state(good, 12), sb)
	f.Add([]byte(`{"step": -1}`), []byte(`null`))
	f.Add([]byte(`{"step": 1, "trainer": {"prompt_pos": "x"}}`), []byte(`[{"Prompt": [1e300]}]`))

	cfg := Defaults()
	cfg.NumRollouts, cfg.BatchSize, cfg.PPOEpochs, cfg.Seed = 4, 2, 2, 1
	const nTrain, vocab, maxLen = 5, 50, 64
	f.Fuzz(func(t *testing.T, stateJSON, rolloutsJSON []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, checkpoint.StateFile), stateJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		saved, err := checkpoint.ReadState(dir)
		if err != nil {
			return
		}
		var st loopState
		if len(saved.Trainer) > 0 {
			if json.Unmarshal(saved.Trainer, &st) != nil {
				return
			}
		}
		var phase []sample
		if st.InPhase && json.Unmarshal(rolloutsJSON, &phase) != nil {
			return
		}
		if st.check(cfg, phase, nTrain, saved.Step, vocab, maxLen, 0) != nil {
			return
		}
		tr := &trainer{cfg: cfg, train: make([]Prompt, nTrain), st: st, phase: phase}
		tr.takePrompts(2*nTrain + 1)
		if !st.InPhase {
			return
		}
		idx := make([]int, len(phase))
		for i := range idx {
			idx[i] = i
			GAE(phase[i].Reward, phase[i].Value, cfg.Gamma, cfg.Lam)
		}
		layout(phase, idx, width(phase, spansOf(cfg, phase, 0)), 0)
	})
}

// check takes a state the loop wrote and refuses each way a saved state
// can be broken, naming what is wrong.
func TestCheckState(t *testing.T) {
	cfg := Defaults()
	cfg.NumRollouts, cfg.BatchSize, cfg.PPOEpochs = 4, 2, 2
	good := loopState{PhaseStart: 10, PromptPos: 2, KL: KLController{Value: 0.05}, Moments: NewRunningMoments(), Stats: &phaseStats{}, InPhase: true}
	rolls := func() []sample {
		r := make([]sample, 4)
		for i := range r {
			r[i] = sample{Prompt: []int64{1}, Response: []int64{3, 4}, LogProb: []float64{-1, -2}, RefLogProb: []float64{-1, -2}, Value: []float64{0, 0}, Reward: []float64{0, 1}}
		}
		return r
	}
	if err := good.check(cfg, rolls(), 5, 12, 50, 64, 0); err != nil {
		t.Fatalf("a good state: %v", err)
	}
	for _, tc := range []struct {
		name  string
		state func(s *loopState)
		phase func(p []sample) []sample
		want  string
	}{
		{"prompt position past the prompts", func(s *loopState) { s.PromptPos = 5 }, nil, "prompt position 5"},
		{"negative phase", func(s *loopState) { s.Phase = -1 }, nil, "phase -1"},
		{"negative β", func(s *loopState) { s.KL.Value = -0.1 }, nil, "KL controller"},
		{"negative variance", func(s *loopState) { s.Moments.Var = -1 }, nil, "running moments"},
		{"negative ref_std", func(s *loopState) { z := -1.0; s.RefStd = &z }, nil, "ref_std"},
		{"no statistics in a phase", func(s *loopState) { s.Stats = nil }, nil, "statistics"},
		{"phase past its steps", func(s *loopState) { s.PhaseStart = 4 }, nil, "phase begun at step 4"},
		{"rollouts outside a phase", func(s *loopState) { s.InPhase = false }, nil, "outside a phase"},
		{"too few rollouts", nil, func(p []sample) []sample { return p[:3] }, "3 rollouts"},
		{"short value list", nil, func(p []sample) []sample { p[2].Value = p[2].Value[:1]; return p }, "rollout 2"},
		{"empty response", nil, func(p []sample) []sample { p[0].Response = nil; return p }, "rollout 0"},
		{"token outside the vocabulary", nil, func(p []sample) []sample { p[1].Response[0] = 50; return p }, "outside the vocabulary"},
		{"too long", nil, func(p []sample) []sample { p[3].Prompt = make([]int64, 63); return p }, "positions"},
	} {
		s := good
		s.Moments = good.Moments
		if tc.state != nil {
			tc.state(&s)
		}
		p := rolls()
		if tc.phase != nil {
			p = tc.phase(p)
		}
		if err := s.check(cfg, p, 5, 12, 50, 64, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
