package features

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"irl/neox"
	"irl/onnx"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

// PipelineOptions configure Pipeline: `irl features` as a library.
type PipelineOptions struct {
	// Model is a Hugging Face folder or an .onnx file, opened by neox.Open:
	// its kind, configuration and fingerprint are read from it.
	Model *neox.Source
	// Tokenizer is a tokenizer.json; "" means tokenizer.DefaultPath.
	Tokenizer string
	// Layer, Pool, BatchSize, Session and Progress are Options'; so are
	// Layers and Pools, a grid of feature choices that Grid extracts.
	Layer     int
	Pool      neox.Pooling
	Layers    []int
	Pools     []neox.Pooling
	BatchSize int
	Session   onnx.Options
	Progress  io.Writer
	// MaxLength is the longest row in tokens; 0 means the model's
	// max_position_embeddings.
	MaxLength int
	// Truncate cuts longer rows; "" is rows.TruncateLeft, which keeps the
	// output being scored.
	Truncate rows.Truncation
	// Context, if set, stops Features between two batches once it is done
	// (see Options.Context).
	Context context.Context
}

// Pipeline turns rows into features: rows → token ids (rows.Encode) →
// length-sorted batches → pooled hidden states, with the metadata that
// identifies how they were made. Commands that score text through features
// (irl features, a head: reward) share it, so they compute the same h(o).
// Destroy it when done.
type Pipeline struct {
	o      PipelineOptions
	ext    Extractor
	cfg    *neox.Config // nil for an .onnx file without config.json
	tok    *tokenizer.Tokenizer
	tokErr error
}

// NewPipeline opens the model. The tokenizer is loaded when text rows first
// need it.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	if o.Model == nil {
		return nil, fmt.Errorf("features: no model")
	}
	// Model limits: known for folders, from the config; an .onnx file may
	// have a config.json beside it.
	p := &Pipeline{o: o, cfg: o.Model.Config}
	if o.Truncate == "" {
		p.o.Truncate = rows.TruncateLeft
	}
	if p.cfg != nil {
		if p.o.MaxLength <= 0 {
			p.o.MaxLength = p.cfg.MaxPositions
		}
		if p.o.MaxLength > p.cfg.MaxPositions {
			return nil, fmt.Errorf("features: max_length %d exceeds the model's max_position_embeddings %d", p.o.MaxLength, p.cfg.MaxPositions)
		}
	}
	ext, err := Open(o.Model, Options{Layer: o.Layer, Pool: o.Pool, Layers: o.Layers, Pools: o.Pools, BatchSize: o.BatchSize, Session: o.Session, Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	p.ext = ext
	return p, nil
}

// Destroy closes the model's session.
func (p *Pipeline) Destroy() { p.ext.Destroy() }

// MaxLength is the resolved length limit (0: none known).
func (p *Pipeline) MaxLength() int { return p.o.MaxLength }

func (p *Pipeline) tokenizer(file string) (*tokenizer.Tokenizer, error) {
	if p.tok == nil && p.tokErr == nil {
		if p.o.Tokenizer == "" && p.o.Model.IsONNX() && p.cfg == nil {
			p.tokErr = fmt.Errorf("%s has text rows: give a tokenizer (none is in the model folder)", file)
		} else if p.tok, p.tokErr = tokenizer.Load(p.o.Model.TokenizerPath(p.o.Tokenizer)); p.tokErr != nil {
			p.tokErr = fmt.Errorf("%s has text rows, which need a tokenizer: %w", file, p.tokErr)
		}
	}
	return p.tok, p.tokErr
}

// Encode turns rows read from file into token ids under the pipeline's rules
// (prompt and text tokenized separately and joined; the length limit and
// truncation; the vocabulary). Bad rows go to bad, which stops or skips them.
func (p *Pipeline) Encode(file string, rs []rows.Row, bad *rows.Bad) ([]rows.Encoded, error) {
	eo := rows.EncodeOptions{MaxLength: p.o.MaxLength, Truncate: p.o.Truncate}
	if p.cfg != nil {
		eo.VocabSize = p.cfg.VocabSize
	}
	for _, r := range rs {
		if r.IDs == nil {
			tok, err := p.tokenizer(file)
			if err != nil {
				return nil, err
			}
			eo.Tokenizer = tok
			break
		}
	}
	enc, badRows := rows.Encode(file, rs, eo)
	if err := bad.AddAll(badRows); err != nil {
		return nil, err
	}
	return enc, nil
}

// Features extracts the features of encoded rows, with their source rows
// and the metadata `irl features` writes (input names the row file).
func (p *Pipeline) Features(input string, enc []rows.Encoded, skipped int) (*rewardhead.Features, Stats, error) {
	if len(p.o.Pools) > 0 {
		panic("features: Features on a pipeline of a grid of choices (use Grid)")
	}
	x, index, truncated, st, err := p.extract(input, enc)
	if err != nil {
		return nil, st, err
	}
	f, err := p.wrap(input, x, index, p.ext.Layer(), p.pool(), truncated, skipped)
	return f, st, err
}

// Grid extracts a grid of feature choices (PipelineOptions.Layers and
// Pools) in one pass through the model: one Features a choice, layer by
// layer and within a layer in Pools' order, each as Features would give it
// for that layer and pooling alone.
func (p *Pipeline) Grid(input string, enc []rows.Encoded) ([]*rewardhead.Features, Stats, error) {
	if len(p.o.Pools) == 0 {
		panic("features: Grid on a pipeline of one choice (use Features)")
	}
	x, index, truncated, st, err := p.extract(input, enc)
	if err != nil {
		return nil, st, err
	}
	me := p.ext.(*modelExtractor)
	n, d := len(enc), me.cfg.HiddenSize
	k := len(me.layers) * len(p.o.Pools)
	var out []*rewardhead.Features
	for c := 0; c < k; c++ {
		col := make([]float32, 0, n*d)
		for r := 0; r < n; r++ {
			col = append(col, x[(r*k+c)*d:(r*k+c+1)*d]...)
		}
		f, err := p.wrap(input, col, index, me.layers[c/len(p.o.Pools)], p.o.Pools[c%len(p.o.Pools)], truncated, 0)
		if err != nil {
			return nil, st, err
		}
		out = append(out, f)
	}
	return out, st, nil
}

// extract runs the rows through the model: F32 [N, Dim()], their rows'
// indices and how many were truncated.
func (p *Pipeline) extract(input string, enc []rows.Encoded) (x []float32, index []int64, truncated int, st Stats, err error) {
	if len(enc) == 0 {
		return nil, nil, 0, Stats{}, fmt.Errorf("%s: no usable rows", input)
	}
	seqs := make([][]int64, len(enc))
	index = make([]int64, len(enc))
	for i, e := range enc {
		seqs[i], index[i] = e.IDs, int64(e.Index)
		if e.Truncated {
			truncated++
		}
	}
	x, st, err = Extract(p.ext, seqs, Options{BatchSize: p.o.BatchSize, Progress: p.o.Progress, Context: p.o.Context})
	return x, index, truncated, st, err
}

// wrap makes features of x with the metadata `irl features` writes.
func (p *Pipeline) wrap(input string, x []float32, index []int64, layer int, pool neox.Pooling, truncated, skipped int) (*rewardhead.Features, error) {
	meta := map[string]string{
		"model":             filepath.Clean(p.o.Model.Path),
		"model_fingerprint": p.o.Model.Fingerprint,
		"layer":             fmt.Sprint(layer),
		"pool":              string(pool),
		"max_length":        fmt.Sprint(p.o.MaxLength),
		"truncate":          string(p.o.Truncate),
		"truncated":         fmt.Sprint(truncated),
		"skipped":           fmt.Sprint(skipped),
		"input":             input,
	}
	if layer < 0 {
		meta["layer"] = "last_hidden_state"
	}
	f, err := rewardhead.NewFeatures(input, len(index), len(x)/len(index), x, index, meta)
	if err != nil {
		return nil, fmt.Errorf("features of %s from %s: %w", input, p.o.Model.Path, err)
	}
	return f, nil
}

func (p *Pipeline) pool() neox.Pooling {
	if p.o.Pool == neox.NoPool {
		return neox.PoolLast
	}
	return p.o.Pool
}
