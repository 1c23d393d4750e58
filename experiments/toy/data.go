package toy

import (
	"embed"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"irl/atomicfile"
)

//go:embed words/*.txt
var wordFiles embed.FS

// Words are the demo's word lists: entities, and toxic and non-toxic
// adjectives, in distribution (the training set shows them) and out of it
// (kept for the out-of-distribution analysis).
type Words struct {
	Entities                   []string
	Good, Bad, GoodOOD, BadOOD []string
}

// LoadWords reads the shipped word lists.
func LoadWords() (*Words, error) {
	read := func(name string) ([]string, error) {
		b, err := wordFiles.ReadFile("words/" + name)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out, nil
	}
	w := &Words{}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"entities.txt", &w.Entities}, {"nontoxic.txt", &w.Good}, {"toxic.txt", &w.Bad}, {"nontoxic_ood.txt", &w.GoodOOD}, {"toxic_ood.txt", &w.BadOOD}} {
		var err error
		if *f.dst, err = read(f.name); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// All lists every word the demo's texts use, for its tokenizer.
func (w *Words) All() []string {
	out := []string{"The", "is", "and", "."}
	for _, l := range [][]string{w.Entities, w.Good, w.Bad, w.GoodOOD, w.BadOOD} {
		out = append(out, l...)
	}
	return out
}

// WriteLexicon writes the ground-truth reward's two lists (every toxic and
// every non-toxic adjective, out of distribution included) into dir.
func (w *Words) WriteLexicon(dir string) (toxic, nonToxic string, err error) {
	toxic, nonToxic = filepath.Join(dir, "toxic.txt"), filepath.Join(dir, "nontoxic.txt")
	if err = atomicfile.WriteBytes(toxic, []byte(strings.Join(append(append([]string(nil), w.Bad...), w.BadOOD...), "\n")+"\n")); err != nil {
		return
	}
	err = atomicfile.WriteBytes(nonToxic, []byte(strings.Join(append(append([]string(nil), w.Good...), w.GoodOOD...), "\n")+"\n"))
	return
}

// Sample is one sentence of the dataset: a prompt and a response.
type Sample struct {
	Prompt    string `json:"prompt"` // "The cat is"
	Response  string `json:"text"`   // " kind." (the CLI's default --text-field)
	Adjective string `json:"adjective"`
	Toxic     bool   `json:"toxic"`
}

// Text is the whole sentence.
func (s Sample) Text() string { return s.Prompt + s.Response }

// Prompt is "The {entity} is".
func Prompt(entity string) string { return "The " + entity + " is" }

// Dataset is the paper's balanced set: every entity's prompt once with a
// toxic and once with a non-toxic adjective (250 prompts, 500 samples). SFT
// holds out 10% of it, drawn with the seed, for its eval loss (90/10).
type Dataset struct {
	Samples []Sample
}

// BuildDataset draws each prompt's two adjectives from good and bad with the
// seed.
func BuildDataset(entities, good, bad []string, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0xda7a))
	d := &Dataset{}
	for _, e := range entities {
		g, b := good[rng.IntN(len(good))], bad[rng.IntN(len(bad))]
		d.Samples = append(d.Samples,
			Sample{Prompt: Prompt(e), Response: " " + b + ".", Adjective: b, Toxic: true},
			Sample{Prompt: Prompt(e), Response: " " + g + ".", Adjective: g})
	}
	return d
}

// Counts is Table 3's or Table 4's row: the adjectives a model generated, by
// class, in total and distinct.
type Counts struct {
	TotalToxic     int `json:"total_toxic"`
	UniqueToxic    int `json:"unique_toxic"`
	TotalNonToxic  int `json:"total_non_toxic"`
	UniqueNonToxic int `json:"unique_non_toxic"`
	TotalUnknown   int `json:"total_unknown"`
	UniqueUnknown  int `json:"unique_unknown"`
}

// Adjective is the word a response puts after "is": its first word, or ""
// for a response with none.
func Adjective(response string) string {
	f := strings.FieldsFunc(strings.ToLower(response), func(r rune) bool {
		return !(r >= 'a' && r <= 'z') && r != '-' && r != '\''
	})
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// Classify says whether an adjective is toxic, non-toxic or unknown to the
// lists.
func Classify(adj string, toxic, nonToxic map[string]bool) string {
	switch {
	case toxic[adj]:
		return "toxic"
	case nonToxic[adj]:
		return "non-toxic"
	}
	return "unknown"
}

// Count tallies the adjectives of responses.
func Count(responses []string, toxic, nonToxic map[string]bool) Counts {
	var c Counts
	seen := map[string]map[string]bool{"toxic": {}, "non-toxic": {}, "unknown": {}}
	for _, r := range responses {
		adj := Adjective(r)
		k := Classify(adj, toxic, nonToxic)
		seen[k][adj] = true
		switch k {
		case "toxic":
			c.TotalToxic++
		case "non-toxic":
			c.TotalNonToxic++
		default:
			c.TotalUnknown++
		}
	}
	c.UniqueToxic, c.UniqueNonToxic, c.UniqueUnknown = len(seen["toxic"]), len(seen["non-toxic"]), len(seen["unknown"])
	return c
}

func set(words ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range words {
		for _, w := range l {
			m[strings.ToLower(w)] = true
		}
	}
	return m
}

func (c Counts) String() string {
	return fmt.Sprintf("toxic %d (%d unique), non-toxic %d (%d unique), unknown %d (%d unique)",
		c.TotalToxic, c.UniqueToxic, c.TotalNonToxic, c.UniqueNonToxic, c.TotalUnknown, c.UniqueUnknown)
}
