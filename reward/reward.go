package reward

import (
	"encoding/json"
	"fmt"
	"math"
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
	// IDs, when not nil, are the whole input as a token-level source's
	// model takes it, prompt and special tokens included: the classifier
	// and head sources then read them instead of Prompt and Response and
	// need no tokenizer. Text sources (lexicon, cmd) read Response and
	// refuse a sample that has only IDs.
	IDs []int64
}

// RowField is the Fields entry that names a sample's source row in errors
// ("sample 3 (row 17)"). `irl score` sets it to the row's index in its file.
const RowField = "row"

// Source scores batches of samples: one float per sample, higher better,
// always finite. A source is not safe for concurrent use.
type Source interface {
	Score(samples []Sample) ([]float64, error)
	// Close releases what the source holds (sessions, a child process).
	Close() error
}

// Detailed is a Source whose rewards come from a classifier's
// probabilities, which it can return with them.
type Detailed interface {
	Source
	// ScoreDetailed is Score with, for each sample, the probability of the
	// reward's label and the logits of every label (in Labels order).
	// probs and logits are nil when the source has none: a wrapper around a
	// source without them.
	ScoreDetailed(samples []Sample) (rewards, probs []float64, logits [][]float32, err error)
	// Labels are the classifier's labels in logit order; nil when the
	// source has none.
	Labels() []string
}

// Validator is a Source that can tell, before any compute, which samples it
// cannot score (too long under truncation "error", an id outside the
// vocabulary, a missing field), so a caller can skip them (--skip-bad)
// instead of stopping mid-run.
type Validator interface {
	Validate(samples []Sample) []*SampleError
}

// Describer is a Source that says what it is, for the metadata of the files
// its scores are written to: its kind, model, label and settings.
type Describer interface {
	Describe() map[string]string
}

// ScoreDetailed scores samples with src, with probabilities and logits when
// src is Detailed (nil otherwise).
func ScoreDetailed(src Source, samples []Sample) (rewards, probs []float64, logits [][]float32, err error) {
	if d, ok := src.(Detailed); ok {
		return d.ScoreDetailed(samples)
	}
	rewards, err = src.Score(samples)
	return rewards, nil, nil, err
}

// Labels returns a Detailed source's labels, nil for any other source.
func Labels(src Source) []string {
	if d, ok := src.(Detailed); ok {
		return d.Labels()
	}
	return nil
}

// Validate returns the samples src cannot score, when src is a Validator
// (nil otherwise).
func Validate(src Source, samples []Sample) []*SampleError {
	if v, ok := src.(Validator); ok {
		return v.Validate(samples)
	}
	return nil
}

// Describe returns src's metadata when it is a Describer (nil otherwise).
func Describe(src Source) map[string]string {
	if d, ok := src.(Describer); ok {
		return d.Describe()
	}
	return nil
}

// SampleError is a failure that concerns one sample of a batch.
type SampleError struct {
	// Source names the reward that failed: "lexicon", "head", "classifier",
	// "cmd", "relative", "transform".
	Source string
	// Index is the sample's index in the batch given to Score.
	Index int
	// Row is the sample's Fields[RowField] as text, "" without one.
	Row string
	Err error
}

// Error returns "KIND reward: sample I (row R): message".
func (e *SampleError) Error() string {
	where := fmt.Sprintf("sample %d", e.Index)
	if e.Row != "" {
		where += " (row " + e.Row + ")"
	}
	return fmt.Sprintf("%s reward: %s: %v", e.Source, where, e.Err)
}

// Unwrap returns the underlying error.
func (e *SampleError) Unwrap() error { return e.Err }

// sampleError makes the SampleError of samples[i].
func sampleError(source string, samples []Sample, i int, err error) *SampleError {
	e := &SampleError{Source: source, Index: i, Err: err}
	if i >= 0 && i < len(samples) {
		e.Row = rowOf(samples[i])
	}
	return e
}

// rowOf is a sample's Fields[RowField] as text.
func rowOf(s Sample) string {
	v, ok := s.Fields[RowField]
	if !ok || v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

// checkFinite refuses a reward that is NaN or infinite, naming its sample:
// a non-finite reward poisons every mean, advantage and metric after it.
func checkFinite(source string, samples []Sample, rewards []float64) error {
	for i, r := range rewards {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return sampleError(source, samples, i, fmt.Errorf("reward is %v; rewards must be finite", r))
		}
	}
	return nil
}

// needText refuses samples a text source cannot read: those that carry only
// token ids.
func needText(source string, samples []Sample) []*SampleError {
	var bad []*SampleError
	for i, s := range samples {
		if s.IDs != nil && s.Response == "" {
			bad = append(bad, sampleError(source, samples, i, fmt.Errorf("it has only token ids, and the %s reward reads text", source)))
		}
	}
	return bad
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

// SpecKind returns a spec's kind ("lexicon", "head", "classifier", "cmd"),
// or an error listing the kinds, without opening anything: a command learns
// whether it needs ONNX Runtime before it loads it.
func SpecKind(spec string) (string, error) {
	kind, _, err := splitSpec(spec)
	if err != nil {
		return "", err
	}
	for _, k := range Kinds {
		if k == kind {
			return kind, nil
		}
	}
	return "", fmt.Errorf("reward spec %q: unknown kind %q: want one of %s", spec, kind, strings.Join(Kinds, ", "))
}
