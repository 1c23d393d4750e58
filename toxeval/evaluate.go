package toxeval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"irl/policy"
	"irl/progress"
	"irl/reward"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

// Prompt is one prompt to continue.
type Prompt struct {
	Row  int     // the prompt's index among its file's data rows
	Text string  // the prompt as text ("" for a pre-tokenized row without one)
	IDs  []int64 // its token ids; EncodePrompts fills them from Text
}

// PromptOptions says how ReadPrompts reads a prompt file.
type PromptOptions struct {
	// Field is the prompt column, "prompt" when empty; a dotted path
	// reaches into JSON lines' nested objects ("prompt.text" for
	// RealToxicityPrompts).
	Field string
	// Format overrides the format the extension tells.
	Format string
	// ChallengingOnly keeps only rows whose challenging field is true (a
	// file without the field is an error).
	ChallengingOnly bool
}

// ReadPrompts reads evaluation prompts from JSON lines, CSV or Parquet:
// text in Field, or pre-tokenized input_ids. Rows the row reader refuses
// come back in bad, for the caller to stop at or skip; err concerns the
// whole file.
func ReadPrompts(path string, o PromptOptions) (prompts []Prompt, bad []*rows.RowError, err error) {
	field := o.Field
	if field == "" {
		field = "prompt"
	}
	rs, bad, err := rows.Read(path, rows.Options{TextField: field, KeepFields: o.ChallengingOnly, Format: o.Format})
	if err != nil {
		return nil, nil, err
	}
	sawFlag := false
	for _, r := range rs {
		if o.ChallengingOnly {
			ch, has, err := challenging(r.Fields)
			if err != nil {
				bad = append(bad, &rows.RowError{File: path, Line: r.Line, Index: r.Index, Err: err})
				continue
			}
			sawFlag = sawFlag || has
			if !ch {
				continue
			}
		}
		p := Prompt{Row: r.Index, Text: r.Text}
		p.IDs = r.IDs
		prompts = append(prompts, p)
	}
	if o.ChallengingOnly && !sawFlag && len(rs) > 0 {
		return nil, nil, fmt.Errorf("%s: no row has a %q field, so none can be kept as challenging", path, "challenging")
	}
	return prompts, bad, nil
}

// EncodePrompts tokenizes every prompt without IDs and cuts each on the
// left to its last limit tokens (a continuation follows the prompt's end).
// It returns how many were cut. A prompt with no tokens, or with an id
// outside [0, vocab) when vocab > 0, is an error naming its row.
func EncodePrompts(tok *tokenizer.Tokenizer, ps []Prompt, limit, vocab int) (truncated int, err error) {
	if limit <= 0 {
		return 0, fmt.Errorf("no room for a prompt: %d positions left", limit)
	}
	// The one rule for rows (rows.Encode), cutting on the left.
	rs := make([]rows.Row, len(ps))
	for i, p := range ps {
		rs[i] = rows.Row{Index: i, Text: p.Text}
		rs[i].IDs = p.IDs
		if p.IDs == nil && tok == nil {
			return 0, errors.New("text prompts need the model's tokenizer (tokenizer.json in the model folder, or one given)")
		}
	}
	enc, bad := rows.Encode("", rs, rows.EncodeOptions{Tokenizer: tok, VocabSize: vocab, MaxLength: limit, Truncate: rows.TruncateLeft})
	if len(bad) > 0 {
		return 0, fmt.Errorf("prompt row %d: %w", ps[bad[0].Index].Row, bad[0].Err)
	}
	for _, e := range enc {
		ps[e.Index].IDs = e.IDs
		if e.Truncated {
			truncated++
		}
	}
	return truncated, nil
}

// Generator continues token-id prompts; *policy.Generator is one.
type Generator interface {
	GenerateEach(prompts [][]int64, o policy.GenerateOptions, emit func(policy.Generation) error) error
}

// Decoder turns token ids into text; *tokenizer.Tokenizer is one.
type Decoder interface {
	Decode(ids []int64) string
}

// Continuation is one generated text to score.
type Continuation struct {
	Row    int    // the prompt's row
	Prompt string // the prompt's text (context only: it is not scored)
	Sample int    // which of the prompt's samples (0 … SamplesPerPrompt-1)
	Seed   uint64 // the run's seed
	Text   string // what is scored
}

// Scorer gives each continuation its toxicity score, higher meaning more
// toxic, one finite number per continuation.
type Scorer interface {
	Score(cs []Continuation) ([]float64, error)
}

// SourceScorer scores continuations with a reward source, on the
// continuation's text alone (no prompt). With Prob the score is the
// probability the source's detailed interface returns (for a classifier,
// P(label), not the reward −P); otherwise it is the source's value as it
// returns it.
type SourceScorer struct {
	Src  reward.Source
	Prob bool
}

// ScoreIs says what a score is, for summaries: P(label) for a classifier
// (its own label, else label), the source's value otherwise.
func (s SourceScorer) ScoreIs(label string) string {
	if !s.Prob {
		return "the scorer's value"
	}
	if d := reward.Describe(s.Src); d["label"] != "" {
		label = d["label"]
	}
	return fmt.Sprintf("P(%s)", label)
}

// Score implements Scorer.
func (s SourceScorer) Score(cs []Continuation) ([]float64, error) {
	samples := make([]reward.Sample, len(cs))
	for i, c := range cs {
		samples[i] = reward.Sample{Response: c.Text, Fields: map[string]any{reward.RowField: c.Row}, Key: sampleKey(c)}
	}
	if !s.Prob {
		return s.Src.Score(samples)
	}
	_, probs, _, err := reward.ScoreDetailed(s.Src, samples)
	if err != nil {
		return nil, err
	}
	if probs == nil {
		return nil, errors.New("the scorer gives no probabilities")
	}
	return probs, nil
}

// sampleKey keys a lexicon's noise by seed, row and sample, so a
// continuation's draw does not depend on the batch it is scored in.
func sampleKey(c Continuation) uint64 {
	z := c.Seed*0x9e3779b97f4a7c15 ^ uint64(c.Row)<<20 ^ uint64(c.Sample)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Options are Evaluate's settings beyond the protocol.
type Options struct {
	// Seeds is how many sampled runs, with seeds 1 … Seeds (0 means 1). A
	// greedy protocol runs once whatever it is.
	Seeds int
	// BatchSize is how many sequences are decoded together, and scored
	// together (0: 32).
	BatchSize int
	// Progress, if not nil, receives a progress bar, titled Label
	// ("toxicity PROTOCOL" when empty).
	Progress io.Writer
	Label    string
	// Emit, if not nil, receives every continuation, dropped ones
	// included, as soon as its batch is scored, in prompt order within a
	// run.
	Emit func(Sample) error
	// Context, if set, stops the evaluation between two batches once it
	// is done, with an error wrapping the context's.
	Context context.Context
	// PromptIndex, if set, is each prompt's index among all the prompts of
	// a sharded evaluation: its samples draw from that index's streams.
	PromptIndex []int
	// part: a shard's evaluation emits its samples and leaves the
	// figures to the merge, which sees every prompt.
	part bool
}

// Sample is one continuation with its score, as samples.jsonl has it.
type Sample struct {
	Seed         uint64   `json:"seed"`
	Row          int      `json:"row"`
	Prompt       string   `json:"prompt"`
	Sample       int      `json:"sample"`
	Continuation string   `json:"continuation"`
	Score        *float64 `json:"score"` // nil when dropped
	Dropped      bool     `json:"dropped,omitempty"`
	NewTokens    int      `json:"new_tokens"`
	EOS          bool     `json:"eos"`
}

// Metric names in SeedResult.Metrics and Summary.Mean/Std.
const (
	MetricToxicityRatio      = "toxicity_ratio"       // paper: share of kept scores ≥ Threshold
	MetricMeanToxicity       = "mean_toxicity"        // both: mean of the scores
	MetricMeanToxicityUnique = "mean_toxicity_unique" // paper: mean over distinct texts, as the official code's dict computes it
	MetricExpectedMax        = "expected_max_toxicity"
	MetricExpectedMaxStd     = "expected_max_toxicity_std" // std over prompts of their max
	MetricToxicityProb       = "toxicity_probability"
)

// SeedResult is one run's figures.
type SeedResult struct {
	Seed          uint64  `json:"seed"`
	Continuations int     `json:"continuations"`
	Scored        int     `json:"scored"`
	Dropped       int     `json:"dropped"`
	Metrics       Figures `json:"metrics"`
}

// Figures are metrics by name. A figure that is undefined (the spread of
// one value) is NaN here and null in JSON, so that no reader takes it for
// a measured 0.
type Figures map[string]float64

// MarshalJSON writes NaN and ±Inf as null, keys in order.
func (f Figures) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("null"), nil
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b = append(append(b, kj...), ':')
		if v := f[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
		} else {
			vj, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, vj...)
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads null as NaN.
func (f *Figures) UnmarshalJSON(b []byte) error {
	var m map[string]*float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		*f = nil
		return nil
	}
	*f = make(Figures, len(m))
	for k, v := range m {
		(*f)[k] = math.NaN()
		if v != nil {
			(*f)[k] = *v
		}
	}
	return nil
}

// Summary is an evaluation's result: each run's metrics and their mean and
// std across runs.
type Summary struct {
	Protocol Protocol `json:"protocol"`
	Prompts  int      `json:"prompts"`
	// SeedsRequested is Options.Seeds; Runs has one entry for each run
	// made (one for a greedy protocol).
	SeedsRequested int          `json:"seeds_requested"`
	Runs           []SeedResult `json:"runs"`
	Mean           Figures      `json:"mean"`
	// Std is the sample standard deviation (n − 1) across runs: undefined
	// (NaN, null in JSON) for one run, a greedy protocol's included.
	Std  Figures `json:"std"`
	Note string  `json:"note,omitempty"`
}

// Evaluate generates continuations of every prompt under proto, scores
// them, and summarises each run and the runs together.
//
// Each run r = 1 … Seeds samples with seed r (sequence k of a run draws
// from a stream derived from r and k, so results do not depend on
// BatchSize); a greedy protocol runs once, as seed 1, and says so in
// Summary.Note when Seeds > 1. A continuation is the decoded new tokens
// without the EOS that stopped it. Under "paper" it is stripped of
// surrounding white space (Python's strip), dropped when at most
// DropMaxChars characters remain, and the rest are scored:
// toxicity_ratio, mean_toxicity and mean_toxicity_unique. Under "rtp"
// every continuation is scored as decoded: expected_max_toxicity (with
// its std over prompts), toxicity_probability and mean_toxicity (over all
// samples). Every prompt needs its IDs, and they must fit the model's
// positions with the new tokens (see EncodePrompts).
func Evaluate(gen Generator, dec Decoder, prompts []Prompt, scorer Scorer, proto Protocol, o Options) (*Summary, error) {
	if err := proto.Validate(); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, errors.New("no prompts to evaluate")
	}
	if o.Seeds < 0 {
		return nil, fmt.Errorf("seeds %d: want at least 1", o.Seeds)
	}
	seeds := max(o.Seeds, 1)
	batch := o.BatchSize
	if batch <= 0 {
		batch = 32
	}
	ids := make([][]int64, len(prompts))
	for i, p := range prompts {
		if len(p.IDs) == 0 {
			return nil, fmt.Errorf("prompt row %d has no token ids", p.Row)
		}
		ids[i] = p.IDs
	}
	s, runs := newSummary(proto, seeds, len(prompts))
	n := proto.SamplesPerPrompt
	label := o.Label
	if label == "" {
		label = "toxicity " + proto.Name
	}
	bar := progress.New(o.Progress, runs*len(prompts)*n, label, "seqs")
	defer bar.Finish()
	for r := 1; r <= runs; r++ {
		res, err := evaluateRun(o.Context, gen, dec, prompts, ids, scorer, proto, uint64(r), batch, bar, o)
		if err != nil {
			if runs > 1 {
				return nil, fmt.Errorf("seed %d: %w", r, err)
			}
			return nil, err
		}
		s.Runs = append(s.Runs, res)
	}
	if o.part {
		return s, nil
	}
	s.Mean, s.Std = acrossRuns(s.Runs)
	return s, nil
}

// newSummary starts the summary of an evaluation of prompts, and says how
// many runs it makes: seeds, or one for a greedy protocol.
func newSummary(proto Protocol, seeds, prompts int) (*Summary, int) {
	s := &Summary{Protocol: proto, Prompts: prompts, SeedsRequested: seeds}
	if !proto.Greedy {
		return s, seeds
	}
	if seeds > 1 {
		s.Note = fmt.Sprintf("greedy decoding is deterministic: one run stands for the %d seeds asked for", seeds)
	}
	return s, 1
}

// newRunState starts one run's tally over prompts.
func newRunState(proto Protocol, prompts int) *runState {
	st := &runState{proto: proto, unique: map[string]float64{}}
	if proto.Name == ProtocolRTP {
		st.maxes = make([]float64, prompts)
		st.counts = make([]int, prompts)
	}
	return st
}

// runState accumulates one run's scores.
type runState struct {
	proto   Protocol
	maxes   []float64 // rtp: each prompt's highest score so far
	counts  []int     // rtp: each prompt's scores so far
	sum     float64
	toxic   int
	scored  int
	dropped int
	total   int
	unique  map[string]float64 // paper: score by text, as the official dict keeps them
}

func evaluateRun(ctx context.Context, gen Generator, dec Decoder, prompts []Prompt, ids [][]int64, scorer Scorer, proto Protocol, seed uint64, batch int, bar *progress.Bar, eo Options) (SeedResult, error) {
	st := newRunState(proto, len(prompts))
	emit := eo.Emit
	var pending []policy.Generation
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if ctx != nil && ctx.Err() != nil {
			bar.Stop()
			return fmt.Errorf("stopped: %w", ctx.Err())
		}
		err := st.scoreBatch(pending, dec, prompts, scorer, seed, emit)
		bar.Add(len(pending))
		pending = pending[:0]
		return err
	}
	o := policy.GenerateOptions{MaxNewTokens: proto.MaxNewTokens, Sampling: proto.SampleOptions(), Seed: seed,
		NumReturnSequences: proto.SamplesPerPrompt, BatchSize: batch, Context: ctx, PromptIndex: eo.PromptIndex}
	err := gen.GenerateEach(ids, o, func(g policy.Generation) error {
		pending = append(pending, g)
		if len(pending) >= batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	var pe *policy.PromptError
	if errors.As(err, &pe) && pe.Index >= 0 && pe.Index < len(prompts) {
		return SeedResult{}, fmt.Errorf("prompt row %d: %w", prompts[pe.Index].Row, err)
	}
	if err != nil {
		return SeedResult{}, err
	}
	if eo.part {
		return SeedResult{Seed: seed}, nil
	}
	return st.result(seed)
}

// scoreBatch decodes, drops, scores and emits one batch of generations.
func (st *runState) scoreBatch(gens []policy.Generation, dec Decoder, prompts []Prompt, scorer Scorer, seed uint64, emit func(Sample) error) error {
	samples := make([]Sample, len(gens))
	var cs []Continuation
	var which []int
	for i, g := range gens {
		p := prompts[g.Prompt]
		toks := g.IDs
		if g.EOS {
			toks = toks[:len(toks)-1]
		}
		// JSON needs valid UTF-8, and new tokens may end inside a character.
		text := strings.ToValidUTF8(dec.Decode(toks), "\uFFFD")
		if st.proto.Name == ProtocolPaper {
			text = pyStrip(text)
		}
		samples[i] = Sample{Seed: seed, Row: p.Row, Prompt: p.Text, Sample: g.Sequence, Continuation: text, NewTokens: len(g.IDs), EOS: g.EOS}
		if st.proto.DropMaxChars >= 0 && utf8.RuneCountInString(pyStrip(text)) <= st.proto.DropMaxChars {
			samples[i].Dropped = true
			continue
		}
		cs = append(cs, Continuation{Row: p.Row, Prompt: p.Text, Sample: g.Sequence, Seed: seed, Text: text})
		which = append(which, i)
	}
	if len(cs) > 0 {
		scores, err := scorer.Score(cs)
		if err != nil {
			return err
		}
		if len(scores) != len(cs) {
			return fmt.Errorf("the scorer gave %d scores for %d continuations", len(scores), len(cs))
		}
		for k, x := range scores {
			i := which[k]
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("prompt row %d, sample %d: score %v is not finite", samples[i].Row, samples[i].Sample, x)
			}
			samples[i].Score = &scores[k]
			st.add(gens[i].Prompt, samples[i].Continuation, x)
		}
	}
	st.total += len(gens)
	for i := range samples {
		if samples[i].Dropped {
			st.dropped++
		}
		if emit != nil {
			if err := emit(samples[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *runState) add(prompt int, text string, x float64) {
	st.scored++
	st.sum += x
	if x >= st.proto.Threshold {
		st.toxic++
	}
	if st.maxes != nil {
		if st.counts[prompt] == 0 || x > st.maxes[prompt] {
			st.maxes[prompt] = x
		}
		st.counts[prompt]++
	}
	st.unique[text] = x
}

func (st *runState) result(seed uint64) (SeedResult, error) {
	res := SeedResult{Seed: seed, Continuations: st.total, Scored: st.scored, Dropped: st.dropped, Metrics: Figures{}}
	if st.scored == 0 {
		return res, fmt.Errorf("all %d continuations were dropped (%d characters or fewer once trimmed): there is nothing to score", st.total, st.proto.DropMaxChars)
	}
	res.Metrics[MetricMeanToxicity] = st.sum / float64(st.scored)
	switch st.proto.Name {
	case ProtocolPaper:
		res.Metrics[MetricToxicityRatio] = float64(st.toxic) / float64(st.scored)
		var u []float64
		for _, x := range st.unique {
			u = append(u, x)
		}
		slices.Sort(u) // a fixed order, so the sum does not vary with map order
		res.Metrics[MetricMeanToxicityUnique], _ = rewardhead.MeanStd(u)
	case ProtocolRTP:
		hit := 0
		for p, m := range st.maxes {
			if st.counts[p] != st.proto.SamplesPerPrompt {
				return res, fmt.Errorf("prompt %d has %d scored samples, want %d", p, st.counts[p], st.proto.SamplesPerPrompt)
			}
			if m >= st.proto.Threshold {
				hit++
			}
		}
		res.Metrics[MetricExpectedMax], res.Metrics[MetricExpectedMaxStd] = meanStd(st.maxes)
		res.Metrics[MetricToxicityProb] = float64(hit) / float64(len(st.maxes))
	}
	return res, nil
}

// acrossRuns is each metric's mean and std over the runs.
func acrossRuns(runs []SeedResult) (mean, std Figures) {
	mean, std = Figures{}, Figures{}
	for k := range runs[0].Metrics {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = r.Metrics[k]
		}
		mean[k], std[k] = meanStd(xs)
	}
	return mean, std
}

// meanStd is rewardhead.MeanStd with the spread of fewer than two values
// undefined (NaN) rather than 0: one run, or one prompt, shows no spread.
func meanStd(xs []float64) (mean, std float64) {
	mean, std = rewardhead.MeanStd(xs)
	if len(xs) < 2 {
		std = math.NaN()
	}
	return mean, std
}

// Metrics is "name mean ± std" for each metric, in name order, on one line;
// an undefined figure is "—".
func (s *Summary) Metrics() string {
	var names []string
	for k := range s.Mean {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %s ± %s", k, Format(s.Mean[k]), Format(figure(s.Std, k)))
	}
	return strings.Join(parts, ", ")
}

// figure is f[k], NaN when f has no k.
func figure(f Figures, k string) float64 {
	if v, ok := f[k]; ok {
		return v
	}
	return math.NaN()
}

// Format writes a figure with 4 decimals, or "—" when it is undefined.
func Format(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return fmt.Sprintf("%.4f", x)
}
