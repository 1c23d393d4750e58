package reward

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLists(t *testing.T) (string, string) {
	dir := t.TempDir()
	tox, non := filepath.Join(dir, "toxic.txt"), filepath.Join(dir, "nontoxic.txt")
	os.WriteFile(tox, []byte("# toxic\nNasty\nvile\n"), 0o644)
	os.WriteFile(non, []byte("kind\n\nwarm-hearted\n"), 0o644)
	return tox, non
}

// Algorithm 2 by hand, with and without noise.
func TestLexiconAlgorithm2(t *testing.T) {
	tox, non := writeLists(t)
	l, err := LoadLexicon(tox, non, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]float64{
		"The cat is kind.":                  0.5,
		"The cat is NASTY!":                 -0.5,
		"The cat is kind but vile.":         -0.3,
		"The cat is blue.":                  0,
		"A warm-hearted dog":                0.5,
		"kindness is not kind-of a word":    0, // neither "kindness" nor "kind-of" is listed
		"":                                  0,
		"vile, vile, vile":                  -0.5,
		"the nasty dog and the kind person": -0.3,
	}
	for text, want := range cases {
		if got := l.Base(text); got != want {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
	noisy, _ := LoadLexicon(tox, non, 0.2, 7)
	samples := []Sample{{Response: "kind", Key: 1}, {Response: "vile", Key: 2}, {Response: "blue", Key: 3}, {Response: "kind", Key: 1}}
	got, _ := noisy.Score(samples)
	if got[0] < 0.3 || got[0] > 0.7 || got[1] < -0.7 || got[1] > -0.3 || got[2] != 0 {
		t.Errorf("noisy scores %v", got)
	}
	if got[0] != got[3] {
		t.Error("the same key gave different noise")
	}
	if got[0] == 0.5 {
		t.Error("no noise drawn")
	}
	if _, err := LoadLexicon(tox, tox, 0, 1); err == nil || !strings.Contains(err.Error(), "in both") {
		t.Errorf("a word in both lists: %v", err)
	}
}
