package audit

import (
	"math"
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
		{Group: 1, Source: "tuned", Text: " warm."}, {Group: 1, Source: "base", Text: " rude."},
	}}
	for _, c := range []struct {
		a    *auditor
		want map[string]bool
	}{
		{greedy, map[string]bool{"kind": true, "vile": true, "gla": true, "rude-ish": true, "rude": false}},
		// "kind" twice in one text is one text; "gla" and "rude" in one
		// text each are left out.
		{sampled, map[string]bool{"kind": false, "warm": true, "vile": true, "gla": false, "rude": false}},
	} {
		got := c.a.written()
		for w, want := range c.want {
			if got[w] != want {
				t.Errorf("%q written %v, want %v (texts %v)", w, got[w], want, c.a.demos)
			}
		}
	}
}
