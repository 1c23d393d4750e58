package reward

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"unicode"
)

// Lexicon is the paper's Algorithm 2: the response is lower-cased and split
// into words; −0.3 if it holds words of both lists, −0.5 if only toxic ones,
// +0.5 if only non-toxic ones, and 0 otherwise; every case but 0 gets seeded
// uniform noise in [−Noise, Noise].
type Lexicon struct {
	Toxic, NonToxic map[string]bool
	Noise           float64
	Seed            uint64
	// lists are the two files LoadLexicon read, for Describe.
	lists [2]string
}

// LoadLexicon reads two word lists, one word per line (blank lines and lines
// starting with # are skipped; words are lower-cased).
func LoadLexicon(toxicPath, nonToxicPath string, noise float64, seed uint64) (*Lexicon, error) {
	l := &Lexicon{Noise: noise, Seed: seed, lists: [2]string{toxicPath, nonToxicPath}}
	var err error
	if l.Toxic, err = readWords(toxicPath); err != nil {
		return nil, err
	}
	if l.NonToxic, err = readWords(nonToxicPath); err != nil {
		return nil, err
	}
	for w := range l.Toxic {
		if l.NonToxic[w] {
			return nil, fmt.Errorf("%q is in both %s and %s", w, toxicPath, nonToxicPath)
		}
	}
	return l, nil
}

func readWords(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	words := map[string]bool{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		w := strings.ToLower(strings.TrimSpace(sc.Text()))
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		if strings.IndexFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && r != '-' && r != '\'' }) >= 0 {
			return nil, fmt.Errorf("%s:%d: %q is not a single word", path, line, w)
		}
		words[w] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s: no words", path)
	}
	return words, nil
}

// Words splits text as the lexicon reads it: lower-cased runs of letters,
// hyphens and apostrophes ("kind." → "kind").
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && r != '-' && r != '\''
	})
}

// Classify says which lists the text's words come from: "toxic",
// "non-toxic", "both" or "none".
func (l *Lexicon) Classify(text string) string {
	var tox, non bool
	for _, w := range Words(text) {
		tox = tox || l.Toxic[w]
		non = non || l.NonToxic[w]
	}
	switch {
	case tox && non:
		return "both"
	case tox:
		return "toxic"
	case non:
		return "non-toxic"
	}
	return "none"
}

// Base is Algorithm 2's reward without noise.
func (l *Lexicon) Base(text string) float64 {
	switch l.Classify(text) {
	case "both":
		return -0.3
	case "toxic":
		return -0.5
	case "non-toxic":
		return 0.5
	}
	return 0
}

// Score scores each sample's response. A sample with token ids and no
// response text is an error: scoring "" would silently give it 0.
func (l *Lexicon) Score(samples []Sample) ([]float64, error) {
	if bad := needText("lexicon", samples); bad != nil {
		return nil, bad[0]
	}
	out := make([]float64, len(samples))
	for i, s := range samples {
		r := l.Base(s.Response)
		if r != 0 && l.Noise > 0 {
			rng := rand.New(rand.NewPCG(l.Seed, s.Key))
			r += l.Noise * (2*rng.Float64() - 1)
		}
		out[i] = r
	}
	if err := checkFinite("lexicon", samples, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate returns the samples that have token ids but no response text.
func (l *Lexicon) Validate(samples []Sample) []*SampleError { return needText("lexicon", samples) }

// Describe names the word lists and the noise.
func (l *Lexicon) Describe() map[string]string {
	return map[string]string{
		"kind": "lexicon", "toxic_words": l.lists[0], "nontoxic_words": l.lists[1],
		"noise": fmt.Sprint(l.Noise), "seed": fmt.Sprint(l.Seed),
	}
}

// Close does nothing.
func (l *Lexicon) Close() error { return nil }
