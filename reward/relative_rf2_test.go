package reward

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// headStub scores a text by a table of the official test case's raw head
// outputs, keyed by the text the head saw.
type headStub struct {
	byText map[string]float64
	seen   []string
}

func (h *headStub) Score(samples []Sample) ([]float64, error) {
	out := make([]float64, len(samples))
	for i, s := range samples {
		t := s.Prompt + s.Response
		h.seen = append(h.seen, t)
		out[i] = h.byText[t]
	}
	return out, nil
}
func (h *headStub) Close() error { return nil }

// TestRelativeRF2Official checks the relative IRL-RLHF reward against the
// official reward_fn run on a hand-made batch (testdata/trlx/irl_for_llms.json,
// "relative"): the texts the head sees, with the appended EOS, and the final
// rewards.
func TestRelativeRF2Official(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "trlx", "irl_for_llms.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Relative struct {
			Prompts  []string  `json:"prompts"`
			Samples  []string  `json:"samples"`
			Original []string  `json:"original_output"`
			HeadGen  []float64 `json:"head_o1_generated"`
			HeadOrig []float64 `json:"head_o1_original"`
			RF2Gen   []float64 `json:"rf2_generated"`
			RF2Orig  []float64 `json:"rf2_original"`
			Final    []float64 `json:"final_rewards"`
			Seen     []string  `json:"texts_seen"`
		} `json:"relative"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	c := f.Relative
	const eos = "<|endoftext|>"
	// The head's raw reward is −o₁ (get_toxicity_score negates the second
	// output); our head's reward is that value.
	stub := &headStub{byText: map[string]float64{}}
	for i := range c.Prompts {
		stub.byText[c.Seen[i]] = -c.HeadGen[i]
		stub.byText[c.Seen[len(c.Prompts)+i]] = -c.HeadOrig[i]
	}
	samples := make([]Sample, len(c.Prompts))
	for i, p := range c.Prompts {
		// TRLx's sample is prompt + output; ours splits them at the prompt.
		samples[i] = Sample{Prompt: p, Response: c.Samples[i][len(p):], Fields: map[string]any{"original_output": c.Original[i]}}
	}
	got, err := NewRelativeRF2(stub, "original_output", eos).Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Seen {
		if stub.seen[i] != s {
			t.Errorf("text %d the head saw: %q, official %q", i, stub.seen[i], s)
		}
	}
	near := func(what string, a, b []float64) {
		for i := range b {
			if math.Abs(a[i]-b[i]) > 1e-12 {
				t.Errorf("%s[%d] = %v, official %v", what, i, a[i], b[i])
			}
		}
	}
	neg := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = -x
		}
		return out
	}
	near("rf2 generated", OfficialRF2(neg(c.HeadGen)), c.RF2Gen)
	near("rf2 original", OfficialRF2(neg(c.HeadOrig)), c.RF2Orig)
	near("final", got, c.Final)
	// All equal on both sides: −1.5 − (−1.5) = 0.
	near("all equal", OfficialRelativeRF2([]float64{2, 2}, []float64{1, 1}), []float64{0, 0})
}
