package reward

import (
	"fmt"
	"strings"
)

// The reward transforms Options.Transform names.
const (
	TransformNone        = "none"
	TransformOfficialRF2 = "official-rf2"
)

// Transforms lists the names Options.Transform accepts.
var Transforms = []string{TransformNone, TransformOfficialRF2}

func checkTransform(name string) (string, error) {
	switch name {
	case "", TransformNone:
		return TransformNone, nil
	case TransformOfficialRF2:
		return name, nil
	}
	return "", fmt.Errorf("unknown reward transform %q: want one of %s", name, strings.Join(Transforms, ", "))
}

// OfficialRF2 reproduces what the paper's official IRL-RLHF code does to
// the recovered rewards of each scoring call (get_toxicity_score and
// normalize_scores of train_rlhf_irl_rm.py, ai4ai-lab/irl_for_llms
// 1597c93): min-max scale them to [−1, 1], then apply g(x) = 1.5x for
// x < 0 and −0.5x otherwise. When every reward of the call is equal (one
// sample included), normalize_scores returns its new_min, −1, for each, so
// every sample gets −1.5.
//
// WARNING: g is NOT MONOTONIC. It rises on [−1, 0) and falls on [0, 1], so
// the call's best sample (x = 1) gets −0.5, below a middling one (x = 0,
// reward 0), and the ordering of rewards is not preserved. It also makes
// every reward depend on the rest of the batch. It exists only to compare
// with the paper's numbers; do not use it as a reward otherwise.
func OfficialRF2(rewards []float64) []float64 {
	out := make([]float64, len(rewards))
	if len(rewards) == 0 {
		return out
	}
	lo, hi := rewards[0], rewards[0]
	for _, r := range rewards {
		lo, hi = min(lo, r), max(hi, r)
	}
	if hi == lo {
		for i := range out {
			out[i] = -1.5 // normalize_scores' [new_min] * len(values), then g
		}
		return out
	}
	for i, r := range rewards {
		x := 2*(r-lo)/(hi-lo) - 1
		if x < 0 {
			out[i] = 1.5 * x
		} else {
			out[i] = 0 - 0.5*x // not −0.5·x, which makes 0 into −0
		}
	}
	return out
}

// Transformed applies Options.Transform "official-rf2" (OfficialRF2) to
// each scoring call of the source it wraps: the min and max are those of the
// call's samples, so the batch a sample is scored with changes its reward.
//
// WARNING: the transform is not monotonic (see OfficialRF2); it exists only
// to reproduce the paper's official code.
type Transformed struct {
	inner Source
	name  string
}

// NewTransform wraps src in the named transform; "none" (or "") returns src
// itself, and an unknown name is an error listing the transforms.
func NewTransform(src Source, name string) (Source, error) {
	name, err := checkTransform(name)
	if err != nil {
		return nil, err
	}
	if name == TransformNone {
		return src, nil
	}
	return &Transformed{inner: src, name: name}, nil
}

// Score transforms the wrapped source's rewards for samples.
func (t *Transformed) Score(samples []Sample) ([]float64, error) {
	r, _, _, err := t.ScoreDetailed(samples)
	return r, err
}

// ScoreDetailed transforms the rewards and passes the wrapped source's
// probabilities and logits through unchanged.
func (t *Transformed) ScoreDetailed(samples []Sample) (rewards, probs []float64, logits [][]float32, err error) {
	raw, probs, logits, err := ScoreDetailed(t.inner, samples)
	if err != nil {
		return nil, nil, nil, err
	}
	// The inner source has checked its rewards, so the scaling is finite;
	// checked again all the same, as every source's output is.
	out := OfficialRF2(raw)
	if err := checkFinite("transform", samples, out); err != nil {
		return nil, nil, nil, err
	}
	return out, probs, logits, nil
}

// Labels are the wrapped source's.
func (t *Transformed) Labels() []string { return Labels(t.inner) }

// Validate is the wrapped source's.
func (t *Transformed) Validate(samples []Sample) []*SampleError { return Validate(t.inner, samples) }

// Describe adds the transform to the wrapped source's metadata.
func (t *Transformed) Describe() map[string]string {
	m := copyMeta(Describe(t.inner))
	m["transform"] = t.name
	return m
}

// Close closes the wrapped source.
func (t *Transformed) Close() error { return t.inner.Close() }

func copyMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}
