package reward

import (
	"fmt"
	"path/filepath"
	"strconv"

	"irl/features"
	"irl/neox"
	"irl/rewardhead"
	"irl/rows"
)

// HeadSource is IRL-RLHF's reward: a linear head R = wᵀh(o) + b on the
// frozen encoder it was trained on, h(o) computed exactly as `irl features`
// computes it, in memory. The layer, pooling and max_length come from the
// head's feature metadata; the prompt and the response are tokenized
// separately and their ids joined, as `irl features --prompt-field` does.
type HeadSource struct {
	path        string
	head        *rewardhead.Head
	model       string
	fingerprint string
	p           *features.Pipeline
	// trunc and tokPath ("" when the encoder has none) are for Identity.
	trunc   rows.Truncation
	tokPath string
}

// OpenHead reads the head at path and opens its encoder: o.RewardModel, or
// the model its feature metadata names. A head whose metadata does not fit
// the encoder — another model (by fingerprint, wherever it lies), a layer it
// does not have, a dimension other than its hidden size, a max_length other
// than o.MaxLength or beyond its positions — is an error that says which. Truncation is o.Truncate, or left as in
// `irl features` (a head does not record it).
func OpenHead(path string, o Options) (*HeadSource, error) {
	h, err := rewardhead.ReadHead(path)
	if err != nil {
		return nil, err
	}
	info := h.Features
	model := o.RewardModel
	if model == "" {
		if model = info.Model; model == "" {
			return nil, fmt.Errorf("head %s names no model in its feature metadata; give the encoder (reward_model)", path)
		}
	}
	layer := -1
	if info.Layer != "" && info.Layer != "last_hidden_state" {
		if layer, err = strconv.Atoi(info.Layer); err != nil {
			return nil, fmt.Errorf("head %s: feature metadata layer %q is not a layer index", path, info.Layer)
		}
	}
	// Every pooling `irl features` writes is read by the one rule that
	// parses --pool, so a head of last:K features scores as it was trained.
	pool := neox.PoolLast
	if info.Pool != "" {
		if pool, err = neox.ParsePooling(info.Pool); err != nil {
			return nil, fmt.Errorf("head %s: feature metadata pool: %w", path, err)
		}
	}
	maxLen := 0
	if info.MaxLength != "" {
		if maxLen, err = strconv.Atoi(info.MaxLength); err != nil || maxLen < 0 {
			return nil, fmt.Errorf("head %s: feature metadata max_length %q is not a length", path, info.MaxLength)
		}
	}
	if o.MaxLength > 0 && maxLen > 0 && o.MaxLength != maxLen {
		return nil, fmt.Errorf("head %s was trained on features of max_length %d, not the %d asked for: its h(o) would differ", path, maxLen, o.MaxLength)
	}
	if maxLen == 0 {
		maxLen = o.MaxLength
	}
	// The encoder is opened once: its kind, config.json and fingerprint
	// serve every check below and the features pipeline.
	src, err := neox.Open(model)
	if err != nil {
		return nil, fmt.Errorf("head %s: its encoder: %w", path, err)
	}
	model = src.Path
	// The dimension is known before the session opens for a folder; an
	// .onnx file tells it with its first batch (checked in Score).
	if !src.IsONNX() && src.Config != nil && src.Config.HiddenSize != h.Dim() {
		return nil, fmt.Errorf("head %s has dimension %d, but %s's hidden states have dimension %d", path, h.Dim(), model, src.Config.HiddenSize)
	}
	// The encoder must be the model the head was trained on, wherever it
	// lies now: its fingerprint says so before any compute.
	fingerprint := src.Fingerprint
	if info.Fingerprint != "" && fingerprint != info.Fingerprint {
		return nil, fmt.Errorf("head %s was trained on features of another model (model_fingerprint %s, from %s) than %s (%s)",
			path, info.Fingerprint, orUnknown(info.Model), model, fingerprint)
	}
	trunc := o.Truncate
	if trunc == "" {
		trunc = rows.TruncateLeft
	}
	p, err := features.NewPipeline(features.PipelineOptions{
		Model: src, Tokenizer: o.Tokenizer, Layer: layer, Pool: pool, BatchSize: o.BatchSize,
		Session: o.Session, Progress: o.Progress, MaxLength: maxLen, Truncate: trunc,
	})
	if err != nil {
		return nil, fmt.Errorf("head %s (features of layer %s, pool %s, max_length %s) on %s: %w", path, orUnknown(info.Layer), pool, orUnknown(info.MaxLength), model, err)
	}
	if maxLen > 0 && p.MaxLength() != maxLen {
		p.Destroy()
		return nil, fmt.Errorf("head %s was trained on features of max_length %d, but %s takes %d", path, maxLen, model, p.MaxLength())
	}
	return &HeadSource{path: path, head: h, model: filepath.Clean(model), fingerprint: fingerprint, p: p,
		trunc: trunc, tokPath: headTokenizer(src.TokenizerPath(o.Tokenizer))}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// encode turns samples into the encoder's token ids under the pipeline's
// rules; bad lists the samples it cannot encode.
func (s *HeadSource) encode(samples []Sample) ([]rows.Encoded, []*SampleError, error) {
	rs := make([]rows.Row, len(samples))
	for i, smp := range samples {
		rs[i] = rows.Row{Index: i, Line: i + 1, Text: smp.Response, Prompt: smp.Prompt, IDs: smp.IDs}
	}
	// Skip collects every bad row here; they are returned as SampleErrors,
	// since a sample is not a line of a file.
	bad := &rows.Bad{Skip: true}
	enc, err := s.p.Encode("samples", rs, bad)
	if err != nil {
		return nil, nil, fmt.Errorf("head reward %s: %w", s.path, err)
	}
	var errs []*SampleError
	for _, e := range bad.List {
		if re, ok := e.(*rows.RowError); ok {
			errs = append(errs, sampleError("head", samples, re.Index, re.Err))
		} else {
			return nil, nil, fmt.Errorf("head reward %s: %w", s.path, e)
		}
	}
	return enc, errs, nil
}

// Validate returns the samples the encoder cannot take: no tokens, an id
// outside its vocabulary, too long under truncation "error".
func (s *HeadSource) Validate(samples []Sample) []*SampleError {
	_, bad, err := s.encode(samples)
	if err != nil {
		bad = nil
		for i := range samples {
			bad = append(bad, sampleError("head", samples, i, err))
		}
	}
	return bad
}

// Score returns wᵀh(o) + b for each sample.
func (s *HeadSource) Score(samples []Sample) ([]float64, error) {
	if len(samples) == 0 {
		return []float64{}, nil
	}
	enc, bad, err := s.encode(samples)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	f, _, err := s.p.Features("reward head "+s.path, enc, 0)
	if err != nil {
		return nil, fmt.Errorf("head reward %s: %w", s.path, err)
	}
	if f.D != s.head.Dim() {
		return nil, fmt.Errorf("head %s has dimension %d, but %s's hidden states have dimension %d", s.path, s.head.Dim(), s.model, f.D)
	}
	// What the pipeline resolved must be what the head was trained on;
	// the model's path may differ (a moved or copied encoder).
	// Metadata the head lacks vouches for nothing and is not compared; the
	// path is information only.
	want, got := s.head.Features, f.Info()
	got.Model = want.Model
	for _, kv := range [][2]*string{{&want.Fingerprint, &got.Fingerprint}, {&want.Layer, &got.Layer}, {&want.Pool, &got.Pool}, {&want.MaxLength, &got.MaxLength}} {
		if *kv[0] == "" {
			*kv[1] = ""
		}
	}
	if err := want.Compare(got, "head "+s.path+" was trained on", s.model); err != nil {
		return nil, err
	}
	out := s.head.Score(f)
	if err := checkFinite("head", samples, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Head is the head being applied.
func (s *HeadSource) Head() *rewardhead.Head { return s.head }

// Describe names the head, its encoder and its features.
func (s *HeadSource) Describe() map[string]string {
	fi := s.head.Features
	return map[string]string{
		"kind": "head", "head": s.path, "model": s.model, "model_fingerprint": s.fingerprint, "layer": fi.Layer, "pool": fi.Pool,
		"max_length": fmt.Sprint(s.p.MaxLength()),
	}
}

// Close releases the encoder's session.
func (s *HeadSource) Close() error {
	s.p.Destroy()
	return nil
}
