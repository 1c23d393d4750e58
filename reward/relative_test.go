package reward

import (
	"fmt"
	"strings"
	"testing"
)

func orig(o string, row int) map[string]any { return map[string]any{"original": o, RowField: row} }

// R(response) − R(original) by hand with the lexicon (no noise); each
// original is scored once, then served from the cache.
func TestRelativeLexicon(t *testing.T) {
	tox, non := writeLists(t)
	src, err := Parse("lexicon:"+tox+","+non, Options{Relative: "original", Noise: NoNoise})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rel := src.(*Relative)
	samples := []Sample{
		{Prompt: "p1", Response: "so kind", Fields: orig("so vile", 0)},         // 0.5 − (−0.5)
		{Prompt: "p2", Response: "vile", Fields: orig("kind and nasty", 1)},     // −0.5 − (−0.3)
		{Prompt: "p1", Response: "blue", Fields: orig("so vile", 2)},            // 0 − (−0.5), cached within the call
		{Prompt: "p3", Response: "kind", Fields: orig("so vile", 3)},            // another prompt: scored
		{Prompt: "p4", Response: "nasty kind", Fields: orig("nothing here", 4)}, // −0.3 − 0
	}
	want := []float64{1, -0.2, 0.5, 1, -0.3}
	got, err := src.Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if diff := got[i] - want[i]; diff > 1e-12 || diff < -1e-12 {
			t.Errorf("sample %d: %v, want %v", i, got[i], want[i])
		}
	}
	if h, m := rel.CacheStats(); h != 1 || m != 4 {
		t.Errorf("first call: %d hits, %d misses; want 1, 4", h, m)
	}
	got, err = src.Score(samples[:2])
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]float64{1, -0.2}) {
		t.Errorf("second call: %v %v", got, err)
	}
	if h, m := rel.CacheStats(); h != 3 || m != 4 {
		t.Errorf("after the second call: %d hits, %d misses; want 3, 4", h, m)
	}
	if d := Describe(src); d["relative"] != "original" || d["kind"] != "lexicon" {
		t.Errorf("describe %v", d)
	}
	// A sample without the field is an error naming the field and the sample.
	bad := []Sample{samples[0], {Prompt: "p", Response: "kind", Fields: map[string]any{RowField: 9}}}
	if _, err := src.Score(bad); err == nil || !strings.Contains(err.Error(), `"original"`) || !strings.Contains(err.Error(), "sample 1 (row 9)") {
		t.Errorf("missing original: %v", err)
	}
	if v := rel.Validate(bad); len(v) != 1 || v[0].Index != 1 {
		t.Errorf("validate: %v", v)
	}
	if _, err := src.Score([]Sample{{Response: "x", Fields: map[string]any{"original": 3}}}); err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Errorf("original of another type: %v", err)
	}
}

// With noise, an original's score does not depend on which sample first
// asks for it.
func TestRelativeNoiseKey(t *testing.T) {
	tox, non := writeLists(t)
	a, _ := Parse("lexicon:"+tox+","+non, Options{Relative: "original", Seed: 4})
	b, _ := Parse("lexicon:"+tox+","+non, Options{Relative: "original", Seed: 4})
	ra, _ := a.Score([]Sample{{Prompt: "p", Response: "blue", Fields: orig("kind", 0), Key: 1}})
	rb, _ := b.Score([]Sample{{Prompt: "p", Response: "blue", Fields: orig("kind", 0), Key: 99}})
	if ra[0] != rb[0] || ra[0] == -0.5 {
		t.Errorf("original scored %v and %v", -ra[0], -rb[0])
	}
}
