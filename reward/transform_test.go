package reward

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

// official-rf2 by hand: min-max to [−1, 1], then 1.5x below 0, −0.5x above.
func TestOfficialRF2ByHand(t *testing.T) {
	in := []float64{0, 1, 2, 3, 4}
	// x = −1, −0.5, 0, 0.5, 1
	want := []float64{-1.5, -0.75, 0, -0.25, -0.5}
	got := OfficialRF2(in)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("%v → %v, want %v", in[i], got[i], want[i])
		}
	}
	// Not monotonic: the best input (4) gets less than a middling one (2),
	// and 3 beats 4.
	if !(got[4] < got[2] && got[3] > got[4]) {
		t.Errorf("expected the non-monotonic ordering, got %v", got)
	}
	if fmt.Sprint(OfficialRF2([]float64{7, 7, 7})) != "[-1.5 -1.5 -1.5]" || len(OfficialRF2(nil)) != 0 {
		t.Error("all equal must give −1.5 each, as normalize_scores' new_min does")
	}
	// Per call: the same reward scores differently in another batch.
	a, b := OfficialRF2([]float64{1, 2})[1], OfficialRF2([]float64{1, 2, 3})[1]
	if a == b {
		t.Errorf("%v in both batches", a)
	}
}

// The transform wraps any source; with a relative reward it is the
// official relative rf2.
func TestTransformedSource(t *testing.T) {
	tox, non := writeLists(t)
	src, err := Parse("lexicon:"+tox+","+non, Options{Transform: "official-rf2", Noise: NoNoise})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Score([]Sample{{Response: "kind"}, {Response: "vile"}, {Response: "blue"}, {Response: "kind vile"}})
	if err != nil {
		t.Fatal(err)
	}
	// 0.5, −0.5, 0, −0.3 → x = 1, −1, 0, −0.6 → −0.5, −1.5, 0, −0.9
	for i, w := range []float64{-0.5, -1.5, 0, -0.9} {
		if math.Abs(got[i]-w) > 1e-12 {
			t.Errorf("sample %d: %v, want %v", i, got[i], w)
		}
	}
	if d := Describe(src); d["transform"] != "official-rf2" {
		t.Errorf("describe %v", d)
	}
	both, err := Parse("lexicon:"+tox+","+non, Options{Transform: "official-rf2", Relative: "original", Noise: NoNoise})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = both.Score([]Sample{{Response: "kind", Fields: orig("vile", 0)}, {Response: "blue", Fields: orig("blue", 1)}, {Response: "vile", Fields: orig("kind", 2)}})
	// The official reward_fn: rf2 of each side's batch, then the difference.
	// generated 0.5, 0, −0.5 → −0.5, 0, −1.5; originals −0.5, 0, 0.5 →
	// −1.5, 0, −0.5; difference 1, 0, −1.
	if fmt.Sprint(got) != "[1 0 -1]" {
		t.Errorf("relative official-rf2: %v", got)
	}
	if _, ok := both.(*RelativeRF2); !ok {
		t.Errorf("wrapper is %T, want RelativeRF2", both)
	}
	if same, _ := NewTransform(src, "none"); same != src {
		t.Error("none must not wrap")
	}
	if _, err := Parse("lexicon:"+tox+","+non, Options{Transform: "rf2"}); err == nil || !strings.Contains(err.Error(), "official-rf2") {
		t.Errorf("unknown transform: %v", err)
	}
}

// OfficialRF2 equals the official code's get_toxicity_score, run by
// tools/trlx-reference.py on the head's negated outputs (our reward), the
// all-equal and one-sample batches included.
func TestOfficialRF2MatchesTheOfficialCode(t *testing.T) {
	b, err := os.ReadFile("../testdata/trlx/irl_for_llms.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		RF2 struct {
			Cases []struct {
				Name    string
				Negated []float64
				RF2     []float64
			}
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.RF2.Cases) < 4 {
		t.Fatalf("%d cases", len(ref.RF2.Cases))
	}
	for _, c := range ref.RF2.Cases {
		got := OfficialRF2(c.Negated)
		for i := range got {
			if math.Abs(got[i]-c.RF2[i]) > 1e-12 {
				t.Errorf("%s: sample %d: %v, the official code %v", c.Name, i, got[i], c.RF2[i])
			}
		}
	}
}
