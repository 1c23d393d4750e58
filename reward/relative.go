package reward

import (
	"fmt"
	"hash/fnv"
	"sort"
)

// Relative scores each sample against an original response: R(prompt +
// response) − R(prompt + original), with the original read from the field
// Options.Relative names (Fields). Both are scored by the same source. An
// original's score never changes, so it is computed once and cached, keyed
// by prompt and original.
//
// Scored as a sample of its own, an original has the first sample's Fields
// and a Key hashed from prompt and original, so its score (noise included)
// is the same whichever sample first asks for it. A Relative is not safe for
// concurrent use.
type Relative struct {
	inner Source
	field string
	cache map[[2]string]float64
	// hits counts samples whose original's score came from the cache;
	// misses counts originals scored.
	hits, misses int
}

// NewRelative wraps src so that it scores relative to the originals in
// field.
func NewRelative(src Source, field string) *Relative {
	return &Relative{inner: src, field: field, cache: map[[2]string]float64{}}
}

// CacheStats says how many samples found their original's score in the
// cache, and how many originals were scored.
func (r *Relative) CacheStats() (hits, misses int) { return r.hits, r.misses }

// original reads a sample's original response.
func (r *Relative) original(s Sample) (string, error) {
	v, ok := s.Fields[r.field]
	if !ok || v == nil {
		return "", fmt.Errorf("it has no field %q, which relative rewards score against", r.field)
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q is a %T, not a string (the original response)", r.field, v)
	}
	return str, nil
}

// originalKey is the Key an original is scored with.
func originalKey(prompt, original string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(prompt))
	h.Write([]byte{0})
	h.Write([]byte(original))
	return h.Sum64()
}

// originals returns the samples of the originals that are not cached yet
// (one per distinct prompt and original) and, for each of them, the index
// of the first sample that asked for it.
func (r *Relative) originals(samples []Sample) (keys [][2]string, todo []Sample, first []int, err error) {
	keys = make([][2]string, len(samples))
	seen := map[[2]string]bool{}
	for i, s := range samples {
		o, err := r.original(s)
		if err != nil {
			return nil, nil, nil, sampleError("relative", samples, i, err)
		}
		k := [2]string{s.Prompt, o}
		keys[i] = k
		if _, ok := r.cache[k]; ok || seen[k] {
			continue
		}
		seen[k] = true
		todo = append(todo, Sample{Prompt: s.Prompt, Response: o, Fields: s.Fields, Key: originalKey(s.Prompt, o)})
		first = append(first, i)
	}
	return keys, todo, first, nil
}

// Score returns R(response) − R(original) for each sample.
func (r *Relative) Score(samples []Sample) ([]float64, error) {
	out, _, _, err := r.ScoreDetailed(samples)
	return out, err
}

// ScoreDetailed is Score with the probabilities and logits of the samples'
// own responses, when the wrapped source has them.
func (r *Relative) ScoreDetailed(samples []Sample) (rewards, probs []float64, logits [][]float32, err error) {
	keys, todo, first, err := r.originals(samples)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(todo) > 0 {
		orig, err := r.inner.Score(todo)
		if err != nil {
			return nil, nil, nil, r.originalError(samples, first, err)
		}
		if len(orig) != len(todo) {
			return nil, nil, nil, fmt.Errorf("relative reward: the source gave %d scores for %d originals", len(orig), len(todo))
		}
		for j, v := range orig {
			r.cache[keys[first[j]]] = v
		}
		r.misses += len(todo)
	}
	r.hits += len(samples) - len(todo)
	gen, probs, logits, err := ScoreDetailed(r.inner, samples)
	if err != nil {
		return nil, nil, nil, err
	}
	out := make([]float64, len(samples))
	for i := range samples {
		out[i] = gen[i] - r.cache[keys[i]]
	}
	if err := checkFinite("relative", samples, out); err != nil {
		return nil, nil, nil, err
	}
	return out, probs, logits, nil
}

// originalError names the sample whose original failed.
func (r *Relative) originalError(samples []Sample, first []int, err error) error {
	if se, ok := err.(*SampleError); ok && se.Index >= 0 && se.Index < len(first) {
		return sampleError("relative", samples, first[se.Index], fmt.Errorf("its original (field %q): %w", r.field, err))
	}
	return fmt.Errorf("relative reward: scoring the originals (field %q): %w", r.field, err)
}

// Labels are the wrapped source's.
func (r *Relative) Labels() []string { return Labels(r.inner) }

// Validate returns the samples without an original, and those the wrapped
// source refuses, for their response or their original.
func (r *Relative) Validate(samples []Sample) []*SampleError {
	var bad []*SampleError
	seen := map[int]bool{}
	add := func(e *SampleError) {
		if !seen[e.Index] {
			seen[e.Index] = true
			bad = append(bad, e)
		}
	}
	var origs []Sample
	var from []int
	for i, s := range samples {
		o, err := r.original(s)
		if err != nil {
			add(sampleError("relative", samples, i, err))
			continue
		}
		origs = append(origs, Sample{Prompt: s.Prompt, Response: o, Fields: s.Fields, Key: originalKey(s.Prompt, o)})
		from = append(from, i)
	}
	for _, e := range Validate(r.inner, samples) {
		add(e)
	}
	for _, e := range Validate(r.inner, origs) {
		i := from[e.Index]
		add(sampleError("relative", samples, i, fmt.Errorf("its original (field %q): %w", r.field, e)))
	}
	sort.Slice(bad, func(a, b int) bool { return bad[a].Index < bad[b].Index })
	return bad
}

// Describe adds the relative field to the wrapped source's metadata.
func (r *Relative) Describe() map[string]string {
	m := copyMeta(Describe(r.inner))
	m["relative"] = r.field
	return m
}

// Close closes the wrapped source.
func (r *Relative) Close() error { return r.inner.Close() }
