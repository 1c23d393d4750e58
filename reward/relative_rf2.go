package reward

import (
	"fmt"

	"irl/tokenizer"
)

// officialEOS is the text RelativeRF2 appends for src as the official
// reward_fn appends irl_rm_tokenizer.eos_token: a head's encoder
// tokenizer's EOS ("<|endoftext|>" for Pythia); "" for any other source (a
// classifier adds its own special tokens, a lexicon or program reads words).
func officialEOS(src Source) string {
	h, ok := src.(*HeadSource)
	if !ok || h.tokPath == "" {
		return ""
	}
	tok, err := tokenizer.Load(h.tokPath)
	if err != nil {
		return ""
	}
	id, ok := tok.EOS()
	if !ok {
		return ""
	}
	return tok.Decode([]int64{int64(id)})
}

// OfficialRelativeRF2 is the IRL-RLHF reward of the paper's official code
// (reward_fn of train_rlhf_irl_rm.py, ai4ai-lab/irl_for_llms 1597c93, lines
// 281–291): rf2 of the generated batch minus rf2 of the batch of originals,
// each batch transformed by OfficialRF2 over itself:
// rf2(head(p + gen))ᵢ − rf2(head(p + orig))ᵢ. gen and orig are the head's
// raw rewards, row-aligned.
func OfficialRelativeRF2(gen, orig []float64) []float64 {
	g, o := OfficialRF2(gen), OfficialRF2(orig)
	out := make([]float64, len(g))
	for i := range g {
		out[i] = g[i] - o[i]
	}
	return out
}

// RelativeRF2 is the source of the official IRL-RLHF reward
// (OfficialRelativeRF2): each call scores the samples' prompt + response +
// EOS and their prompt + original + EOS with the wrapped source (the
// recovered head), transforms each of the two batches separately with
// OfficialRF2 and returns the difference. EOS is the text of the head's
// tokenizer's end-of-text token ("<|endoftext|>" for Pythia), appended to
// both texts as the official reward_fn appends irl_rm_tokenizer.eos_token,
// so the head's last-token state is read at that appended EOS (the
// official RewardModel reads hidden_states[-1][:, -1, :]). Unlike Relative,
// the originals are not cached: their transformed score depends on the
// call's batch. The original is read from the sample field Field.
type RelativeRF2 struct {
	inner Source
	field string
	eos   string
}

// NewRelativeRF2 wraps src (a head) in the official relative rf2 reward.
func NewRelativeRF2(src Source, field, eos string) *RelativeRF2 {
	return &RelativeRF2{inner: src, field: field, eos: eos}
}

// Score returns rf2(head(p + gen + EOS)) − rf2(head(p + orig + EOS)).
func (r *RelativeRF2) Score(samples []Sample) ([]float64, error) {
	if len(samples) == 0 {
		return []float64{}, nil
	}
	gens := make([]Sample, len(samples))
	origs := make([]Sample, len(samples))
	for i, s := range samples {
		v, ok := s.Fields[r.field]
		o, isStr := v.(string)
		if !ok || !isStr {
			return nil, sampleError("relative-rf2", samples, i, fmt.Errorf("it has no string field %q, which the relative reward scores against", r.field))
		}
		gens[i] = Sample{Prompt: s.Prompt, Response: s.Response + r.eos, Fields: s.Fields, Key: s.Key}
		origs[i] = Sample{Prompt: s.Prompt, Response: o + r.eos, Fields: s.Fields, Key: originalKey(s.Prompt, o)}
	}
	g, err := r.inner.Score(gens)
	if err != nil {
		return nil, err
	}
	o, err := r.inner.Score(origs)
	if err != nil {
		return nil, fmt.Errorf("relative-rf2: scoring the originals (field %q): %w", r.field, err)
	}
	if len(g) != len(samples) || len(o) != len(samples) {
		return nil, fmt.Errorf("relative-rf2: the source gave %d and %d scores for %d samples", len(g), len(o), len(samples))
	}
	out := OfficialRelativeRF2(g, o)
	if err := checkFinite("relative-rf2", samples, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate is the wrapped source's, on the samples' own responses.
func (r *RelativeRF2) Validate(samples []Sample) []*SampleError { return Validate(r.inner, samples) }

// Describe adds the relative field, the transform and the EOS to the
// wrapped source's metadata.
func (r *RelativeRF2) Describe() map[string]string {
	m := copyMeta(Describe(r.inner))
	m["relative"] = r.field
	m["transform"] = "official-relative-rf2"
	m["appended_eos"] = r.eos
	return m
}

// Close closes the wrapped source.
func (r *RelativeRF2) Close() error { return r.inner.Close() }

// Identity adds the relative field, the transform and the EOS to the
// wrapped source's.
func (r *RelativeRF2) Identity() (map[string]string, error) {
	id, err := withIdentity(r.inner, "relative", r.field)
	if err != nil {
		return nil, err
	}
	id["transform"] = "official-relative-rf2"
	id["appended_eos"] = r.eos
	return id, nil
}
