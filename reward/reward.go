// Package reward scores texts for RLHF and evaluation: one interface, Source,
// behind every reward the project knows — the paper's lexicon (Algorithm 2),
// a recovered reward head on a frozen encoder (IRL-RLHF), a sequence
// classifier (toxicity), or any program a user writes. `irl ppo`, `irl score`
// and the experiments build their sources with Parse, from a spec such as
// "lexicon:toxic.txt,nontoxic.txt".
package reward

import (
	"fmt"
	"strings"
)

// Sample is one text to score: a prompt and a response, with the prompt
// row's other fields.
type Sample struct {
	Prompt, Response string
	Fields           map[string]any
	// Key identifies the sample for sources with seeded noise: the same key
	// and seed always give the same noise, so a resumed run draws what an
	// uninterrupted one drew.
	Key uint64
}

// Source scores batches of samples: one float per sample, higher better.
type Source interface {
	Score(samples []Sample) ([]float64, error)
	// Close releases what the source holds (sessions, a child process).
	Close() error
}

// Kinds lists the spec prefixes Parse knows.
var Kinds = []string{"lexicon", "head", "classifier", "cmd"}

// splitSpec splits "kind:rest".
func splitSpec(spec string) (kind, rest string, err error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("reward spec %q: want KIND:ARGS with KIND one of %s", spec, strings.Join(Kinds, ", "))
	}
	return kind, rest, nil
}
