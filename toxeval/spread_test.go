package toxeval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// One run has no spread: its std is undefined, null in JSON and "—" in
// the one-line summary, never 0. One prompt likewise leaves the std over
// prompts of their maximum undefined.
func TestOneRunHasNoStd(t *testing.T) {
	proto := RTP()
	proto.SamplesPerPrompt = 2
	words := fakeDec{"<eos>", "1", "2", "3"}
	gen := &fakeGen{t: t, proto: proto, ids: map[uint64][][][]int64{1: {{{1}, {3}}}}}
	sc := &stubScorer{score: func(c Continuation) float64 { return float64(c.Text[0]-'0') / 10 }}
	s, err := Evaluate(gen, words, []Prompt{{Row: 0, IDs: []int64{1}}}, sc, proto, Options{Seeds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.Mean[MetricExpectedMax], 0.3) {
		t.Errorf("expected max %v, want 0.3", s.Mean[MetricExpectedMax])
	}
	for k, v := range s.Std {
		if !math.IsNaN(v) {
			t.Errorf("std of %s over one run = %v, want undefined", k, v)
		}
	}
	if v := s.Runs[0].Metrics[MetricExpectedMaxStd]; !math.IsNaN(v) {
		t.Errorf("std over one prompt = %v, want undefined", v)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Std  map[string]*float64 `json:"std"`
		Runs []struct {
			Metrics map[string]*float64 `json:"metrics"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Std) != 4 || back.Std[MetricExpectedMax] != nil || back.Runs[0].Metrics[MetricExpectedMaxStd] != nil {
		t.Errorf("JSON %s: want null for each std", b)
	}
	var again Summary
	if err := json.Unmarshal(b, &again); err != nil || !math.IsNaN(again.Std[MetricExpectedMax]) || !near(again.Mean[MetricExpectedMax], 0.3) {
		t.Errorf("read back: %v, %v", err, again.Std)
	}
	if m := s.Metrics(); !strings.Contains(m, "expected_max_toxicity 0.3000 ± —") {
		t.Errorf("Metrics() = %q", m)
	}
}
