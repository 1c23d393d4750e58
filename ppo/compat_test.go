package ppo

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/onnx"
)

// A tiny run in each TRLx compat mode: β, as metrics.jsonl logs it at each
// step (before that step's move), moves when PhasePlan says (the fork:
// after each minibatch's ppo_epochs steps; carper: after each pass; never
// after the run's last step), by the phase's KL (policy/sqrt_kl²) with n =
// batch size; and a run killed mid-phase and resumed logs what the
// uninterrupted run logs.
func TestCompatLoop(t *testing.T) {
	w := newToyWorld(t)
	for _, mode := range []string{CompatFork, CompatCarper} {
		t.Run(mode, func(t *testing.T) {
			cfg := toyConfig()
			cfg.TRLxCompat = mode
			cfg.NumRollouts, cfg.ChunkSize, cfg.BatchSize, cfg.PPOEpochs = 16, 8, 8, 2 // 4 steps a phase
			cfg.Target, cfg.Horizon, cfg.InitKLCoef = 0.01, 10, 0.05                   // β moves visibly
			cfg.TotalSteps, cfg.EvalInterval, cfg.CheckpointInterval = 8, 0, 2
			so := onnx.Options{Threads: 1}
			a := filepath.Join(t.TempDir(), "a")
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so}); err != nil {
				t.Fatal(err)
			}
			var steps []map[string]any
			for _, l := range readLines(t, filepath.Join(a, "metrics.jsonl")) {
				if _, ok := l["losses/total_loss"]; ok {
					steps = append(steps, l)
				}
			}
			if len(steps) != cfg.TotalSteps {
				t.Fatalf("%d step lines, want %d", len(steps), cfg.TotalSteps)
			}
			plan := PhasePlan(mode, cfg.NumRollouts, cfg.BatchSize, cfg.PPOEpochs, func(int) []int { return make([]int, cfg.NumRollouts) })
			kl := KLController{Value: cfg.InitKLCoef, Target: cfg.Target, Horizon: cfg.Horizon}
			for i, l := range steps {
				got := l["kl_ctl_value"].(float64)
				if math.Abs(got-kl.Value) > 1e-12 {
					t.Errorf("step %d: β %v, want %v", i+1, got, kl.Value)
				}
				sq := l["policy/sqrt_kl"].(float64)
				if i+1 == cfg.TotalSteps {
					break
				}
				for j := 0; j < plan[i%len(plan)].KLUpdate; j++ {
					kl.Update(sq*sq, cfg.BatchSize)
				}
			}
			if steps[0]["kl_ctl_value"] == steps[len(steps)-1]["kl_ctl_value"] {
				t.Error("β never moved")
			}

			b := filepath.Join(t.TempDir(), "b")
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, StopAfter: 6}); err != nil {
				t.Fatal(err)
			}
			if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: b, Session: so, Resume: true}); err != nil {
				t.Fatal(err)
			}
			sameMetrics(t, readLines(t, filepath.Join(a, "metrics.jsonl")), readLines(t, filepath.Join(b, "metrics.jsonl")), false)
			sameFinal(t, a, b)
		})
	}
}

// trlx_compat: the presets name the fork, a bad value is refused naming the
// key, and "none" is recorded as "" is (by omission), so runs from before
// the key resume.
func TestCompatConfig(t *testing.T) {
	for _, p := range Presets() {
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.TRLxCompat != CompatFork || c.MaxGradNorm != 0 {
			t.Errorf("preset %s: trlx_compat %q, max_grad_norm %v; want %s and 0 (neither TRLx clips)", p, c.TRLxCompat, c.MaxGradNorm, CompatFork)
		}
	}
	c := Defaults()
	if c.TRLxCompat != "" {
		t.Errorf("Defaults: trlx_compat %q, want empty (the package's own loop)", c.TRLxCompat)
	}
	c.TRLxCompat = "trlx"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "trlx_compat") {
		t.Errorf("trlx_compat trlx: %v", err)
	}
	c.TRLxCompat = CompatNone
	if _, ok := c.settings("", 1, 1)["trlx_compat"]; ok {
		t.Error("trlx_compat none is recorded in the settings; runs from before the key would not resume")
	}
	c.TRLxCompat = CompatFork
	if c.settings("", 1, 1)["trlx_compat"] != CompatFork {
		t.Error("trlx_compat is not among the settings a resume checks")
	}
}

// score_position and advantage_whitening: TRLx's under a compat mode unless
// set (what the paper ran), the fixes under none; a bad value is refused
// naming the key and the values; the settings a resume checks record them
// only where they are TRLx's, so runs from before the keys (the fixes in
// every mode) resume under none and are refused under a compat mode. The
// presets state trlx.
func TestScoreAndWhiteningSettings(t *testing.T) {
	for _, tc := range []struct {
		compat, score, white string
		wantScore, wantWhite string
	}{
		{"", "", "", ScoreLastToken, WhitenRealTokens},
		{CompatNone, "", "", ScoreLastToken, WhitenRealTokens},
		{CompatFork, "", "", ScoreTRLx, WhitenTRLx},
		{CompatCarper, "", "", ScoreTRLx, WhitenTRLx},
		{CompatFork, ScoreLastToken, WhitenRealTokens, ScoreLastToken, WhitenRealTokens},
		{CompatFork, ScoreLastToken, "", ScoreLastToken, WhitenTRLx},
		{CompatNone, ScoreTRLx, WhitenTRLx, ScoreTRLx, WhitenTRLx},
	} {
		c := Defaults()
		c.TRLxCompat, c.ScorePosition, c.AdvantageWhitening = tc.compat, tc.score, tc.white
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		tag := tc.compat + "/" + tc.score + "/" + tc.white
		if c.scorePosition() != tc.wantScore || c.whitening() != tc.wantWhite {
			t.Errorf("%s: %s and %s, want %s and %s", tag, c.scorePosition(), c.whitening(), tc.wantScore, tc.wantWhite)
		}
		m := c.settings("", 1, 1)
		for key, trlx := range map[string]bool{"score_position": tc.wantScore == ScoreTRLx, "advantage_whitening": tc.wantWhite == WhitenTRLx} {
			if v, ok := m[key]; ok != trlx || ok && v != "trlx" {
				t.Errorf("%s: settings record %s = %v (%v), want it recorded as trlx only when in effect", tag, key, v, ok)
			}
		}
	}
	c := Defaults()
	c.ScorePosition, c.AdvantageWhitening = "last", "padded"
	err := c.Validate()
	for _, want := range []string{`score_position "last": want trlx or last_token`, `advantage_whitening "padded": want trlx or real_tokens`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	if flags := RenameKeys(err.Error(), func(k string) string { return "--" + strings.ReplaceAll(k, "_", "-") }); !strings.Contains(flags, "--score-position") || !strings.Contains(flags, "--advantage-whitening") {
		t.Errorf("flag names: %q", flags)
	}
	for _, p := range Presets() {
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.ScorePosition != ScoreTRLx || c.AdvantageWhitening != WhitenTRLx {
			t.Errorf("preset %s: score_position %q, advantage_whitening %q; want both stated as trlx", p, c.ScorePosition, c.AdvantageWhitening)
		}
	}
}

// A compat-mode run's rollouts, as its mid-phase checkpoint saves them,
// follow TRLx's make_experience (score_position trlx, the default): each
// sample holds TRLxSpan positions of its chunk, one past the EOS where its
// response is shorter than the chunk's longest, with TokenRewardsTRLx's
// rewards; with score_position last_token they hold the response's tokens
// with TokenRewards'.
func TestCompatRolloutLayout(t *testing.T) {
	w := newToyWorld(t)
	eos64, _ := w.tok.EOS()
	eos := int64(eos64)
	for _, score := range []string{"", ScoreLastToken} {
		cfg := toyConfig()
		cfg.TRLxCompat, cfg.ScorePosition = CompatFork, score
		cfg.TotalSteps, cfg.EvalInterval, cfg.CheckpointInterval = 4, 0, 1
		// Hot sampling, so that responses of one chunk differ in length
		// (the SFT model ends nearly every one after an adjective and a
		// period).
		cfg.Temperature = 4
		out := filepath.Join(t.TempDir(), "run")
		if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: out, Session: onnx.Options{Threads: 1}, StopAfter: 1}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "checkpoint-000001", rolloutsFile))
		if err != nil {
			t.Fatal(err)
		}
		var phase []sample
		if err := json.Unmarshal(b, &phase); err != nil {
			t.Fatal(err)
		}
		past := 0
		for lo := 0; lo < len(phase); lo += cfg.ChunkSize {
			chunk := phase[lo:min(lo+cfg.ChunkSize, len(phase))]
			longest := 0
			for _, s := range chunk {
				longest = max(longest, len(s.Response))
			}
			for i, s := range chunk {
				n := len(s.Response)
				l, want := n, []float64(nil)
				if score == "" {
					l = TRLxSpan(TRLxCounted(s.Response, eos), longest)
					if len(s.Value) == l {
						want = TokenRewardsTRLx(s.LogProb, s.RefLogProb, TRLxCounted(s.Response, eos), s.Score, cfg.InitKLCoef)
					}
				} else if len(s.Value) == l {
					want, _, _ = TokenRewards(s.LogProb, s.RefLogProb, s.Score, cfg.InitKLCoef)
				}
				if len(s.Value) != l || len(s.LogProb) != l || len(s.Reward) != l {
					t.Fatalf("score_position %q sample %d: %d values, %d log-probs, %d rewards; want %d", score, lo+i, len(s.Value), len(s.LogProb), len(s.Reward), l)
				}
				if l > n {
					past++
				}
				for k := range want {
					if s.Reward[k] != want[k] {
						t.Errorf("score_position %q sample %d entry %d: reward %v, want %v", score, lo+i, k, s.Reward[k], want[k])
					}
				}
			}
		}
		if score == "" && past == 0 {
			t.Error("no sample's slice reaches past its response: the test's responses are all as long as their chunk's longest")
		}
		t.Logf("score_position %q: %d of %d samples hold positions past their response", score, past, len(phase))
	}
}
