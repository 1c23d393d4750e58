package ppo

import (
	"strings"
	"testing"
)

// Validate names settings by their keys, and RenameKeys turns every key
// into the caller's name and nothing else: the CLI's flags, a YAML file's
// keys.
func TestValidateNamesKeys(t *testing.T) {
	c := Defaults()
	c.NumRollouts, c.SeqLength, c.MaxNewTokens, c.ClipRangeValue, c.MinLR = 0, 8, 16, -1, 1
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{"num_rollouts 0 must be positive", "seq_length 8 must exceed max_new_tokens 16", "cliprange_value -1 must be positive", "min_lr 1 must lie in [0, lr]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "--") {
		t.Errorf("a library message names a flag: %q", msg)
	}
	flags := RenameKeys(msg, func(k string) string { return "--" + strings.ReplaceAll(k, "_", "-") })
	for _, want := range []string{"--num-rollouts 0 must be positive", "--seq-length 8 must exceed --max-new-tokens 16", "--cliprange-value -1", "must lie in [0, --lr]"} {
		if !strings.Contains(flags, want) {
			t.Errorf("%q lacks %q", flags, want)
		}
	}
	yaml := RenameKeys(msg, func(k string) string { return "ppo." + k })
	if !strings.Contains(yaml, "ppo.cliprange_value -1") || strings.Contains(yaml, "ppo.ppo.") {
		t.Errorf("yaml names: %q", yaml)
	}
}

// cosine_annealing takes the official code's schedules: 410m's T_max 10000
// over 12,000 steps, and 70m's eta_min above lr; other schedules still
// refuse a min_lr above lr, and cosine_annealing needs its T_max.
func TestCosineAnnealingSetting(t *testing.T) {
	c := Defaults()
	c.Scheduler, c.LR, c.MinLR, c.TMax = "cosine_annealing", 3e-6, 5.45e-6, 10000
	if err := c.Validate(); err != nil {
		t.Errorf("70m's official schedule: %v", err)
	}
	c.TMax = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "t_max") {
		t.Errorf("no T_max: %v", err)
	}
	c.Scheduler, c.TMax = "cosine", 10000
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "min_lr") {
		t.Errorf("cosine with min_lr above lr: %v", err)
	}
}
