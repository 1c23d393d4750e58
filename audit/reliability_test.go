package audit

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The held-out figures on a hand-computed case.
func TestPairAccuracy(t *testing.T) {
	us := []unit{
		// means 2 > 1.5: right; text pairs 3>1 ✓, 3>2 ✓, 1>1 tie, 1>2 ✗ → 2.5 of 4
		{pos: []float64{3, 1}, neg: []float64{1, 2}},
		// means 0 < 1: wrong; its one pair wrong
		{pos: []float64{0}, neg: []float64{1}},
		// means 1 = 1: a tie; text pairs: 2>1 ✓, 0>1 ✗ → 1 of 2
		{pos: []float64{2, 0}, neg: []float64{1}},
		// only one side: no pair
		{pos: []float64{5}},
	}
	acc, n := pairAccuracy(us)
	if n != 3 || math.Abs(acc-1.5/3) > 1e-12 {
		t.Errorf("pairAccuracy = %v over %d, want 0.5 over 3", acc, n)
	}
	tacc, tn := textPairAccuracy(us)
	if tn != 7 || math.Abs(tacc-3.5/7) > 1e-12 {
		t.Errorf("textPairAccuracy = %v over %d, want 0.5 over 7", tacc, tn)
	}
	// One text a side: the two are one figure.
	one := []unit{{pos: []float64{1}, neg: []float64{0}}, {pos: []float64{0}, neg: []float64{2}}, {pos: []float64{3}, neg: []float64{2}}}
	a, _ := pairAccuracy(one)
	b, _ := textPairAccuracy(one)
	if a != b || math.Abs(a-2.0/3) > 1e-12 {
		t.Errorf("one text a side: %v and %v, want 2/3 both", a, b)
	}
	// No prompt with both sides: the AUC of all texts.
	if acc, n := pairAccuracy([]unit{{pos: []float64{2}}, {neg: []float64{1}}, {neg: []float64{3}}}); n != 0 || acc != 0.5 {
		t.Errorf("no pairs: %v over %d, want the AUC 0.5", acc, n)
	}
}

// A prompt is left out when the two models wrote the same texts, as many
// times each.
func TestSameText(t *testing.T) {
	ds := []demo{
		{Group: 0, Source: "tuned", Text: "a"}, {Group: 0, Source: "base", Text: "a"},
		{Group: 1, Source: "tuned", Text: "a"}, {Group: 1, Source: "base", Text: "b"},
		{Group: 2, Source: "tuned", Text: "a"}, {Group: 2, Source: "tuned", Text: "b"}, {Group: 2, Source: "base", Text: "b"}, {Group: 2, Source: "base", Text: "a"},
		{Group: 3, Source: "tuned", Text: "a"}, {Group: 3, Source: "tuned", Text: "a"}, {Group: 3, Source: "base", Text: "a"}, {Group: 3, Source: "base", Text: "b"},
		{Group: 4, Source: "tuned", Text: "a"},
	}
	got := sameText(ds)
	want := map[int]bool{0: true, 1: false, 2: true, 3: false, 4: false}
	for g, w := range want {
		if got[g] != w {
			t.Errorf("prompt %d: same %v, want %v", g, got[g], w)
		}
	}
}

// A word counts as written in one greedy text, but in two where the models
// wrote several texts a prompt.
func TestWritten(t *testing.T) {
	greedy := &auditor{demos: []demo{
		{Group: 0, Source: "tuned", Text: " kind."}, {Group: 0, Source: "base", Text: " vile gla."},
		{Group: 1, Source: "tuned", Text: " kind."}, {Group: 1, Source: "base", Text: " rude-ish."},
	}}
	sampled := &auditor{demos: []demo{
		{Group: 0, Source: "tuned", Text: " kind kind."}, {Group: 0, Source: "tuned", Text: " warm."},
		{Group: 0, Source: "base", Text: " vile gla."}, {Group: 0, Source: "base", Text: " vile."},
		{Group: 1, Source: "tuned", Text: " warm."}, {Group: 1, Source: "tuned", Text: " rude wr."},
		{Group: 1, Source: "base", Text: " rude wr."}, {Group: 1, Source: "base", Text: " rude wr."},
	}}
	for _, c := range []struct {
		a    *auditor
		want map[string]bool
	}{
		{greedy, map[string]bool{"kind": true, "vile": true, "gla": true, "rude-ish": true, "rude": false}},
		// "kind" twice in one text is one text; "gla" in one text, and
		// "rude" and "wr" in one text written three times after one
		// prompt, are left out; "warm", one text after two prompts, is in.
		{sampled, map[string]bool{"kind": false, "warm": true, "vile": true, "gla": false, "rude": false, "wr": false}},
	} {
		got := c.a.written()
		for w, want := range c.want {
			if got[w] != want {
				t.Errorf("%q written %v, want %v (texts %v)", w, got[w], want, c.a.demos)
			}
		}
	}
}

// A figure with nothing to count (NaN) does not stop the report: JSON has
// no NaN, so it is written as −1, and the markdown says "undefined" for
// text pairs it did not have.
func TestReportWithUndefinedFigures(t *testing.T) {
	nan := math.NaN()
	r := &Report{NotDone: []string{}, HeldOut: HeldOut{PairAccuracy: 0.5, TextPairAccuracy: nan},
		Shuffle:   Shuffle{PairAccuracy: nan, Each: []float64{nan, 0.5}},
		Agreement: Agreement{Seeds: []TauRow{{Seed: 2, KendallTau: nan, PairAccuracy: nan}}},
		Direction: &Direction{Cosine: nan, ProbePairAccuracy: nan, GTPairAccuracy: nan, GTTextPairAccuracy: nan},
		Words:     Words{Rewarded: []WordScore{}, Penalised: []WordScore{}}}
	dir := t.TempDir()
	if err := r.write(dir); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Direction map[string]any `json:"direction"`
		Shuffle   struct {
			Each []float64 `json:"each"`
		} `json:"shuffle_control"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Direction["gt_text_pair_accuracy"] != -1.0 || j.Shuffle.Each[0] != -1 {
		t.Errorf("undefined figures written as %v and %v, want -1", j.Direction["gt_text_pair_accuracy"], j.Shuffle.Each[0])
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| undefined |") {
		t.Errorf("report.md does not say the text pair accuracy is undefined:\n%s", md)
	}
}
