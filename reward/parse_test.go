package reward

import (
	"strings"
	"testing"
)

func TestParseSpecs(t *testing.T) {
	tox, non := writeLists(t)
	for _, tc := range []struct{ spec, want string }{
		{"bert:model", "unknown kind \"bert\""},
		{"nothing", "KIND:ARGS"},
		{"lexicon:", "KIND:ARGS"},
		{"lexicon:" + tox, "two word lists"},
		{"lexicon:" + tox + "," + non + ",x", "two word lists"},
		{"head:/no/such/head.json", "no such file"},
		{"classifier:/no/such/model", "no such file"},
	} {
		_, err := Parse(tc.spec, Options{Session: single})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.spec, err, tc.want)
		}
	}
	_, err := Parse("bert:model", Options{})
	for _, k := range Kinds {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("%v does not list %q", err, k)
		}
	}
	if _, err := Parse("lexicon:"+tox+","+non, Options{Truncate: "middle"}); err == nil || !strings.Contains(err.Error(), "middle") {
		t.Errorf("bad truncation: %v", err)
	}
	// Noise: 0 is the paper's 0.2, negative is none.
	src, err := Parse("lexicon:"+tox+","+non, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := src.(*Lexicon); l.Noise != DefaultNoise {
		t.Errorf("default noise %v", l.Noise)
	}
	src, _ = Parse("lexicon:"+tox+","+non, Options{Noise: NoNoise})
	if l := src.(*Lexicon); l.Noise != 0 {
		t.Errorf("NoNoise gave %v", l.Noise)
	}
	if k, err := SpecKind("cmd:python3 score.py"); k != "cmd" || err != nil {
		t.Errorf("SpecKind: %q %v", k, err)
	}
	// The lexicon reads text: a sample with only ids is refused, not scored 0.
	if _, err := src.Score([]Sample{{IDs: []int64{1}}}); err == nil || !strings.Contains(err.Error(), "token ids") {
		t.Errorf("ids only: %v", err)
	}
}

// Non-finite rewards never leave a source: the check names the sample.
func TestCheckFinite(t *testing.T) {
	samples := []Sample{{}, {Fields: map[string]any{RowField: "17"}}}
	err := checkFinite("x", samples, []float64{1, nanValue()})
	if err == nil || !strings.Contains(err.Error(), "sample 1 (row 17)") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("%v", err)
	}
	if err := checkFinite("x", samples, []float64{1, 2}); err != nil {
		t.Error(err)
	}
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}
