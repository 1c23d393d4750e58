package reward

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"irl/classifier"
	"irl/rows"
	"irl/tokenizer"
)

// DefaultLabel is the classifier label whose probability is the penalty
// when Options.Label is empty.
const DefaultLabel = "toxic"

// ClassifierSource is the reward −P(label | prompt + join + response) of a
// RoBERTa sequence classifier (a Hugging Face folder or an .onnx file, see
// classifier.Open), such as a toxicity classifier: the softmax over its
// labels, or a sigmoid per label for a multi-label classifier.
//
// The joiner goes in only when there is a prompt. A text is tokenized with
// the classifier's tokenizer with its special tokens (<s> … </s>), cut to
// the length limit on the Truncate side (the specials kept), and scored in
// length-sorted batches. A sample with IDs is
// taken as it is: ids already carrying the specials, never cut.
type ClassifierSource struct {
	model    string
	c        *classifier.Classifier
	label    int
	labels   []string
	join     string
	maxLen   int // 0: no known limit
	trunc    tokenizer.Truncation
	tokPath  string
	tok      *tokenizer.Tokenizer
	tokErr   error
	vocab    int // 0: unknown
	batch    int
	progress io.Writer
}

// OpenClassifier opens the classifier at model with o's Label, Join,
// MaxLength, Truncate (default right), Tokenizer, BatchSize, Session and
// Progress. Its tokenizer is loaded now, so that a folder without one is
// one error up front; with o.IDsOnly it is loaded only if a text sample
// comes after all.
func OpenClassifier(model string, o Options) (*ClassifierSource, error) {
	trunc := tokenizer.TruncateRight
	if o.Truncate != "" {
		trunc = tokenizer.Truncation(o.Truncate)
	}
	label := o.Label
	if label == "" {
		label = DefaultLabel
	}
	c, err := classifier.Open(model, o.Session)
	if err != nil {
		return nil, err
	}
	s := &ClassifierSource{
		model: filepath.Clean(model), c: c, labels: c.Labels(), join: o.Join, trunc: trunc,
		tokPath: tokenizer.DefaultPath(model, o.Tokenizer), batch: o.BatchSize, progress: o.Progress,
	}
	if s.label, err = c.LabelIndex(label); err != nil {
		c.Destroy()
		return nil, err
	}
	s.maxLen = c.MaxTokens()
	if o.MaxLength > 0 {
		if s.maxLen > 0 && o.MaxLength > s.maxLen {
			c.Destroy()
			return nil, fmt.Errorf("max length %d exceeds the %d tokens %s's positions cover", o.MaxLength, s.maxLen, model)
		}
		s.maxLen = o.MaxLength
	}
	// The vocabulary bounds pre-tokenized ids, so an id outside it names its
	// sample instead of a row of a sorted batch.
	s.vocab = c.VocabSize()
	if !o.IDsOnly {
		if _, err := s.tokenizer(); err != nil {
			c.Destroy()
			return nil, fmt.Errorf("classifier %s: %w", model, err)
		}
	}
	return s, nil
}

func (s *ClassifierSource) tokenizer() (*tokenizer.Tokenizer, error) {
	if s.tok == nil && s.tokErr == nil {
		if s.tok, s.tokErr = tokenizer.Load(s.tokPath); s.tokErr != nil {
			s.tokErr = fmt.Errorf("text needs the classifier's tokenizer (give one, or rows of input_ids): %w", s.tokErr)
		}
	}
	return s.tok, s.tokErr
}

// encode turns samples into the classifier's input ids by the one rule
// for rows (rows.Encode): prompt and response joined, the post-processor's
// special tokens kept through truncation. bad lists the samples it cannot
// encode, and err is a failure that concerns them all (no tokenizer).
func (s *ClassifierSource) encode(samples []Sample) (seqs [][]int64, bad []*SampleError, err error) {
	rs := make([]rows.Row, len(samples))
	o := rows.EncodeOptions{JoinPrompt: true, Joiner: s.join, Special: true, MaxLength: s.maxLen, Truncate: s.trunc, VocabSize: s.vocab}
	for i, smp := range samples {
		rs[i] = rows.Row{Index: i, Text: smp.Response, Prompt: smp.Prompt, IDs: smp.IDs}
		if smp.IDs == nil && o.Tokenizer == nil {
			if o.Tokenizer, err = s.tokenizer(); err != nil {
				return nil, nil, err
			}
		}
	}
	enc, badRows := rows.Encode("", rs, o)
	seqs = make([][]int64, len(samples))
	for _, e := range enc {
		seqs[e.Index] = e.IDs
	}
	for _, b := range badRows {
		bad = append(bad, sampleError("classifier", samples, b.Index, b.Err))
	}
	return seqs, bad, nil
}

// Validate returns the samples that cannot be encoded: too long under
// truncation "error", ids outside the vocabulary, too many pre-tokenized
// ids. Without a tokenizer for text samples, every text sample is refused.
func (s *ClassifierSource) Validate(samples []Sample) []*SampleError {
	_, bad, err := s.encode(samples)
	if err != nil {
		bad = nil
		for i, smp := range samples {
			if smp.IDs == nil {
				bad = append(bad, sampleError("classifier", samples, i, err))
			}
		}
	}
	return bad
}

// Score returns −P(label) for each sample.
func (s *ClassifierSource) Score(samples []Sample) ([]float64, error) {
	r, _, _, err := s.ScoreDetailed(samples)
	return r, err
}

// ScoreDetailed returns −P(label), P(label) and the logits of each sample.
func (s *ClassifierSource) ScoreDetailed(samples []Sample) (rewards, probs []float64, logits [][]float32, err error) {
	if len(samples) == 0 {
		return []float64{}, []float64{}, [][]float32{}, nil
	}
	seqs, bad, err := s.encode(samples)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("classifier reward %s: %w", s.model, err)
	}
	if len(bad) > 0 {
		return nil, nil, nil, bad[0]
	}
	flat, err := s.c.Score(seqs, s.batch, s.progress)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("classifier reward: %w", err)
	}
	p := s.c.Probs(flat)
	w := len(s.labels)
	rewards, probs, logits = make([]float64, len(samples)), make([]float64, len(samples)), make([][]float32, len(samples))
	for i := range samples {
		probs[i] = float64(p[i*w+s.label])
		rewards[i] = -probs[i]
		logits[i] = flat[i*w : (i+1)*w : (i+1)*w]
	}
	if err := checkFinite("classifier", samples, rewards); err != nil {
		return nil, nil, nil, err
	}
	return rewards, probs, logits, nil
}

// Labels are the classifier's labels in logit order.
func (s *ClassifierSource) Labels() []string { return append([]string(nil), s.labels...) }

// Describe names the model, the label and the tokenization.
func (s *ClassifierSource) Describe() map[string]string {
	m := map[string]string{
		"kind": "classifier", "model": s.model, "label": s.labels[s.label], "labels": strings.Join(s.labels, ","),
		"join": s.join, "max_length": fmt.Sprint(s.maxLen), "truncate": string(s.trunc),
	}
	if s.tok != nil {
		m["tokenizer"] = s.tokPath
	}
	return m
}

// Close releases the session.
func (s *ClassifierSource) Close() error {
	s.c.Destroy()
	return nil
}
