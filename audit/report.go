package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"irl/atomicfile"
	"irl/neox"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

// Report is report.json.
type Report struct {
	Model          string        `json:"model,omitempty"`
	Base           string        `json:"base,omitempty"`
	Prompts        string        `json:"prompts,omitempty"`
	Pos            string        `json:"pos,omitempty"`
	Neg            string        `json:"neg,omitempty"`
	Encoder        string        `json:"encoder"`
	Seed           uint64        `json:"seed"`
	Demonstrations DemoSummary   `json:"demonstrations"`
	Features       FeatureChoice `json:"features"`
	Head           string        `json:"head"`
	HeldOut        HeldOut       `json:"heldout"`
	Agreement      Agreement     `json:"agreement"`
	Shuffle        Shuffle       `json:"shuffle_control"`
	Words          Words         `json:"words"`
	Examples       Examples      `json:"examples"`
	// Direction is there only with a ground truth (Config.GT).
	Direction *Direction         `json:"direction,omitempty"`
	Seconds   map[string]float64 `json:"seconds"`
	NotDone   []string           `json:"not_done"`
}

// DemoSummary counts the demonstrations.
type DemoSummary struct {
	Texts   int `json:"texts"`
	Prompts int `json:"prompts"`
	Train   int `json:"train_texts"`
	HeldOut int `json:"heldout_texts"`
	// Pairs is the pairs of a tuned and a base text of one prompt,
	// Identical those of two equal texts, and LeftOut the prompts where
	// the two models wrote the same texts, left out of training and of the
	// held-out figures.
	Pairs     int  `json:"pairs"`
	Identical int  `json:"identical_pairs"`
	LeftOut   int  `json:"identical_prompts"`
	Sampled   bool `json:"sampled"`
}

// FeatureChoice is the features chosen, and the variants compared.
type FeatureChoice struct {
	Layer    int             `json:"layer"`
	Pool     string          `json:"pooling"`
	Rule     string          `json:"rule"`
	Variants []VariantResult `json:"variants"`
}

// HeldOut is the chosen head on the held-out prompts, with bootstrap 95%
// intervals (prompts resampled).
//
// PairAccuracy compares the two models prompt by prompt (pairAccuracy):
// over PairedPrompts, the held-out prompts with texts of both models, the share where the tuned model's texts score above
// the base model's on average. TextPairAccuracy is the share of the
// TextPairs within-prompt pairs of texts ordered right: the same with one
// continuation a side, lower with samples, where two texts of one prompt
// often do the same thing.
type HeldOut struct {
	PairAccuracy     float64 `json:"pair_accuracy"`
	PairAccuracyLow  float64 `json:"pair_accuracy_low"`
	PairAccuracyHigh float64 `json:"pair_accuracy_high"`
	Separation       float64 `json:"separation"`
	SeparationLow    float64 `json:"separation_low"`
	SeparationHigh   float64 `json:"separation_high"`
	PairedPrompts    int     `json:"paired_prompts"`
	TextPairAccuracy float64 `json:"text_pair_accuracy"`
	TextPairs        int     `json:"text_pairs"`
	Prompts          int     `json:"prompts"`
	Tuned            int     `json:"tuned_texts"`
	Base             int     `json:"base_texts"`
	Note             string  `json:"note,omitempty"`
}

// TauRow is one head's agreement with the chosen head.
type TauRow struct {
	Epoch        int     `json:"epoch,omitempty"`
	Seed         uint64  `json:"seed,omitempty"`
	KendallTau   float64 `json:"kendall_tau"`
	PairAccuracy float64 `json:"pair_accuracy,omitempty"`
}

// Agreement is how far heads of other epochs and seeds rank the held-out
// texts as the chosen head does.
type Agreement struct {
	Epochs         []TauRow `json:"epochs"`
	MinTauLastHalf float64  `json:"min_tau_last_half_epochs"`
	Seeds          []TauRow `json:"seeds"`
}

// Shuffle is the label-shuffle control on the held-out pairs.
type Shuffle struct {
	// PairAccuracy and Separation are the means over the shuffles; Each
	// is each shuffle's pair accuracy, Head the first shuffle's head.
	PairAccuracy float64   `json:"pair_accuracy"`
	Each         []float64 `json:"each"`
	Separation   float64   `json:"separation"`
	Head         string    `json:"head"`
}

// WordScore is a word's mean score over the templates.
type WordScore struct {
	Word  string  `json:"word"`
	Score float64 `json:"score"`
	// Distance is the word's Mahalanobis distance² from the training
	// demonstrations' features; InRange says it is within their range.
	Distance float64 `json:"distance"`
	InRange  bool    `json:"in_range"`
}

// rangeRule says which words the lists rank.
const rangeRule = "a word is in range when a demonstration contains it as a whole word (two texts that differ in prompt or text, where a model wrote several texts after a prompt; for the vocabulary's words, --probe-words need not) and, in every template, its features' Mahalanobis distance² from the training demonstrations' (covariance + 1% of the mean variance on the diagonal) is at most the median of the distinct training texts' leave-one-out distances²; the lists rank the words in range"

// ridge regularises the covariance of the distances; rangeQuantile of the
// distinct training texts' leave-one-out distances² is the range.
const (
	ridge         = 0.01
	rangeQuantile = 0.5
)

// Words are the most rewarded and most penalised words, best first.
type Words struct {
	Source    string      `json:"source"`
	Templates []string    `json:"templates"`
	Scored    int         `json:"scored"`
	InRange   int         `json:"in_range"`
	RangeRule string      `json:"range_rule"`
	Rewarded  []WordScore `json:"rewarded"`
	Penalised []WordScore `json:"penalised"`
}

// Example is a held-out text with its score.
type Example struct {
	Prompt string  `json:"prompt"`
	Text   string  `json:"text"`
	Source string  `json:"source"`
	Score  float64 `json:"score"`
}

// WrongPair is a held-out pair the head orders wrongly.
type WrongPair struct {
	Prompt     string  `json:"prompt"`
	Tuned      string  `json:"tuned"`
	Base       string  `json:"base"`
	TunedScore float64 `json:"tuned_score"`
	BaseScore  float64 `json:"base_score"`
}

// Examples are the held-out texts ranked highest and lowest, and the pairs
// most wrong.
type Examples struct {
	Highest   []Example   `json:"highest"`
	Lowest    []Example   `json:"lowest"`
	MostWrong []WrongPair `json:"most_wrong"`
	// Tokens reads the highest and lowest texts token by token.
	Tokens []Attribution `json:"tokens"`
}

const examples = 10

// stageNames are the stages in order, for the reports' timings.
var stageNames = []string{"demonstrations", "features", "irl", "reliability", "reasons", "direction"}

// written is the set of whole words the demonstrations' texts contain. A
// vocabulary word no model wrote has a score no demonstration checks: in
// the toy world these were pieces of the entities' names that the
// tokenizer keeps as tokens ("leopar", "blanke"), which topped the lists.
// Where a model wrote several texts after any prompt (samples), a word must
// be in two texts that differ in prompt or text: one sampled text can hold
// a slip of sampling, a token the model rarely writes (in the toy world
// "gla", "wr", "cl", each in one of 2,000 texts), and a text written twice
// after one prompt is still one slip. A greedy text is each model's mode,
// so there once is enough. Words the user lists (--probe-words) are scored whether written
// or not.
func (a *auditor) written() map[string]bool {
	if a.words0 == nil {
		texts := map[string]int{}
		perSide := map[[2]any]int{}   // (prompt, source) → texts
		distinct := map[[2]any]bool{} // (prompt, text)
		for _, d := range a.demos {
			perSide[[2]any{d.Group, d.Source}]++
			k := [2]any{d.Group, d.Text}
			if distinct[k] {
				continue
			}
			distinct[k] = true
			seen := map[string]bool{}
			for _, w := range strings.FieldsFunc(d.Text, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '\'')
			}) {
				if !seen[w] {
					seen[w] = true
					texts[w]++
				}
			}
		}
		least := 1
		for _, n := range perSide {
			if n > 1 {
				least = 2
			}
		}
		a.words0 = map[string]bool{}
		for w, n := range texts {
			if n >= least {
				a.words0[w] = true
			}
		}
	}
	return a.words0
}

func (a *auditor) stageReasons() (string, error) {
	s := a.sc
	h := s.chosen
	ws := h.Score(s.words)
	nt := len(a.temps)
	// How far each word's features lie from the demonstrations' (the
	// largest of its templates' Mahalanobis distances²), against how far
	// a demonstration text lies from the others. A word outside that range
	// (in the toy world: the entities, and tokenizer fragments no text
	// contains) is scored by directions the demonstrations never vary in,
	// which no data checks.
	d := distances([]*rewardhead.Features{s.trPos, s.trNeg}, s.words, ridge)
	if d == nil { // every training text the same: no range to be within
		d = make([]float64, s.words.N)
		for i := range d {
			d[i] = math.Inf(1)
		}
	}
	limit := looLimit([]*rewardhead.Features{s.trPos, s.trNeg}, rangeQuantile)
	all := make([]WordScore, len(a.words))
	for i, w := range a.words {
		var sum, far float64
		for k := 0; k < nt; k++ {
			sum += ws[i*nt+k]
			far = math.Max(far, d[i*nt+k])
		}
		all[i] = WordScore{Word: w, Score: sum / float64(nt), Distance: far, InRange: far <= limit && (a.cfg.ProbeWords != "" || a.written()[w])}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score > all[j].Score })
	src := "the tokenizer's whole words"
	if a.cfg.ProbeWords != "" {
		src = a.cfg.ProbeWords
	}
	// The lists rank the words within the demonstrations' range; the
	// others' scores are extrapolation. Too few in range: the lists fill
	// with the nearest of the rest, flagged.
	var in, out []WordScore
	for _, x := range all {
		if x.InRange {
			in = append(in, x)
		} else {
			out = append(out, x)
		}
	}
	ranked := in
	if len(in) < a.cfg.Top {
		rest := append([]WordScore(nil), out...)
		sort.SliceStable(rest, func(i, j int) bool { return rest[i].Distance < rest[j].Distance })
		ranked = append(append([]WordScore(nil), in...), rest[:min(len(rest), a.cfg.Top-len(in))]...)
		sort.SliceStable(ranked, func(i, j int) bool { return ranked[i].Score > ranked[j].Score })
	}
	top := min(a.cfg.Top, len(ranked))
	w := Words{Source: src, Templates: a.temps, Scored: len(all), InRange: len(in), RangeRule: rangeRule, Rewarded: append([]WordScore(nil), ranked[:top]...)}
	for i := len(ranked) - 1; i >= len(ranked)-top; i-- {
		w.Penalised = append(w.Penalised, ranked[i])
	}
	a.rep.Words = w
	var b []byte
	for _, x := range all {
		j, _ := json.Marshal(x)
		b = append(append(b, j...), '\n')
	}
	if err := atomicfile.WriteBytes(filepath.Join(a.cfg.Out, "words.jsonl"), b); err != nil {
		return "", err
	}
	// Examples: each text once (a model's samples repeat themselves).
	sp, sn := h.Score(s.hPos), h.Score(s.hNeg)
	var ex []Example
	listed := map[[3]string]bool{}
	add := func(d demo, score float64) {
		if k := [3]string{d.Prompt, d.Text, d.Source}; !listed[k] {
			listed[k] = true
			ex = append(ex, Example{Prompt: d.Prompt, Text: d.Text, Source: d.Source, Score: score})
		}
	}
	for i, d := range s.dPos {
		add(d, sp[i])
	}
	for i, d := range s.dNeg {
		add(d, sn[i])
	}
	sort.SliceStable(ex, func(i, j int) bool { return ex[i].Score > ex[j].Score })
	k := min(examples, len(ex))
	a.rep.Examples.Highest = append([]Example(nil), ex[:k]...)
	for i := len(ex) - 1; i >= len(ex)-k; i-- {
		a.rep.Examples.Lowest = append(a.rep.Examples.Lowest, ex[i])
	}
	var wrong []WrongPair
	seenPair := map[[3]string]bool{}
	for i, p := range s.dPos {
		for j, n := range s.dNeg {
			if k := [3]string{p.Prompt, p.Text, n.Text}; p.Group == n.Group && sp[i] <= sn[j] && p.Text != n.Text && !seenPair[k] {
				seenPair[k] = true
				wrong = append(wrong, WrongPair{Prompt: p.Prompt, Tuned: p.Text, Base: n.Text, TunedScore: sp[i], BaseScore: sn[j]})
			}
		}
	}
	sort.SliceStable(wrong, func(i, j int) bool {
		return wrong[i].BaseScore-wrong[i].TunedScore > wrong[j].BaseScore-wrong[j].TunedScore
	})
	a.rep.Examples.MostWrong = wrong[:min(examples, len(wrong))]
	if !a.encoder.IsONNX() {
		tok, err := tokenizer.Load(a.tokPath)
		if err != nil {
			return "", err
		}
		var rs []rows.Row
		var srcs []string
		for _, e := range append(append([]Example(nil), a.rep.Examples.Highest...), a.rep.Examples.Lowest...) {
			rs = append(rs, rows.Row{Index: len(rs), Line: len(rs) + 1, Prompt: e.Prompt, Text: e.Text})
			srcs = append(srcs, e.Source)
		}
		at, err := Attribute(a.encoder, tok, a.cfg.Session, a.rep.Features.Layer, neox.Pooling(a.rep.Features.Pool), h, rs)
		if err != nil {
			return "", fmt.Errorf("token attributions: %w", err)
		}
		for i := range at {
			at[i].Source = srcs[i]
		}
		a.rep.Examples.Tokens = at
	}
	return fmt.Sprintf("%d words scored in %d templates, %d in range; most rewarded %q, most penalised %q", len(all), nt, len(in), w.Rewarded[0].Word, w.Penalised[0].Word), nil
}

func mkdirFor(path string) error { return os.MkdirAll(filepath.Dir(path), 0o755) }

// finite makes NaN and ±Inf JSON-safe (null is not a float64).
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return -1
	}
	return x
}

func (r *Report) write(dir string) error {
	h := &r.HeldOut
	for _, p := range []*float64{&h.PairAccuracy, &h.PairAccuracyLow, &h.PairAccuracyHigh, &h.Separation, &h.SeparationLow, &h.SeparationHigh, &h.TextPairAccuracy,
		&r.Shuffle.PairAccuracy, &r.Shuffle.Separation, &r.Agreement.MinTauLastHalf} {
		*p = finite(*p)
	}
	for i := range r.Shuffle.Each {
		r.Shuffle.Each[i] = finite(r.Shuffle.Each[i])
	}
	if d := r.Direction; d != nil {
		for _, p := range []*float64{&d.Cosine, &d.ProbePairAccuracy, &d.GTPairAccuracy, &d.GTTextPairAccuracy} {
			*p = finite(*p)
		}
	}
	for _, rows := range [][]TauRow{r.Agreement.Epochs, r.Agreement.Seeds} {
		for i := range rows {
			rows[i].PairAccuracy = finite(rows[i].PairAccuracy)
			rows[i].KendallTau = finite(rows[i].KendallTau)
		}
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "report.md"), []byte(r.Markdown())); err != nil {
		return err
	}
	page, err := r.HTML()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "report.html"), page); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "report.json"), append(j, '\n'))
}

// Markdown is report.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	w("# Audit\n\n")
	if r.Model != "" {
		w("Tuned model `%s` against its base `%s`, on the prompts of `%s`", r.Model, r.Base, r.Prompts)
	} else {
		w("Outputs `%s` (tuned) against `%s` (base)", r.Pos, r.Neg)
	}
	d := r.Demonstrations
	how := "given outputs"
	if r.Model != "" {
		how = "greedy"
		if d.Sampled {
			how = "sampled"
		}
	}
	w("; features from `%s`; seed %d.\n\n", r.Encoder, r.Seed)
	left := "no prompt where the two models wrote the same texts"
	if d.LeftOut > 0 {
		left = fmt.Sprintf("%d prompts where the two models wrote the same texts left out of training and of the held-out figures (no head can order them)", d.LeftOut)
	}
	w("%d texts after %d prompts (%s), %d for training and %d held out; %d of %d pairs of a tuned and a base text identical; %s.\n\n", d.Texts, d.Prompts, how, d.Train, d.HeldOut, d.Identical, d.Pairs, left)
	w("## What the model was rewarded for: words\n\n")
	w("Each of %d words (%s) scored by the recovered head in the templates %s, averaged. ", r.Words.Scored, r.Words.Source, "`"+strings.Join(r.Words.Templates, "`, `")+"`")
	w("%d of them occur in a demonstration and lie within the range of the demonstrations' features, where the head's score rests on data (%s); the lists rank those. Every word's score is in words.jsonl.\n\n", r.Words.InRange, r.Words.RangeRule)
	w("| # | most rewarded | score | most penalised | score |\n|---|---|---|---|---|\n")
	for i := range r.Words.Rewarded {
		w("| %d | %s | %.3f | %s | %.3f |\n", i+1, r.Words.Rewarded[i].Word, r.Words.Rewarded[i].Score, r.Words.Penalised[i].Word, r.Words.Penalised[i].Score)
	}
	h := r.HeldOut
	w("\n## How far to trust it\n\n")
	w("| measure | value | 95%% interval |\n|---|---|---|\n")
	w("| held-out pair accuracy: prompts where the tuned model's texts score above the base model's on average (%d prompts) | %.3f | %.3f – %.3f |\n", h.PairedPrompts, h.PairAccuracy, h.PairAccuracyLow, h.PairAccuracyHigh)
	textAcc := "undefined"
	if h.TextPairs > 0 {
		textAcc = fmt.Sprintf("%.3f", h.TextPairAccuracy)
	}
	w("| held-out text pairs ordered right (%d pairs of a tuned and a base text of one prompt) | %s | |\n", h.TextPairs, textAcc)
	w("| held-out separation (AUC, %d + %d texts) | %.3f | %.3f – %.3f |\n", h.Tuned, h.Base, h.Separation, h.SeparationLow, h.SeparationHigh)
	w("| label-shuffle control pair accuracy, mean of %d shuffles (should be near 0.5) | %.3f | each %s |\n", len(r.Shuffle.Each), r.Shuffle.PairAccuracy, floats(r.Shuffle.Each))
	w("| lowest Kendall τ-b vs the chosen head, last half of the epochs | %.3f | |\n", r.Agreement.MinTauLastHalf)
	for _, s := range r.Agreement.Seeds {
		w("| Kendall τ-b vs a head trained with seed %d (its pair accuracy %.3f) | %.3f | |\n", s.Seed, s.PairAccuracy, s.KendallTau)
	}
	if h.Note != "" {
		w("\n%s.\n", h.Note)
	}
	w("\nHead: `%s`; features: pool %s at layer %d (%s):\n\n| pool | layer | training pair accuracy | |\n|---|---|---|---|\n", r.Head, r.Features.Pool, r.Features.Layer, r.Features.Rule)
	for _, v := range r.Features.Variants {
		mark := ""
		if v.Chosen {
			mark = "chosen"
		}
		w("| %s | %d | %.3f | %s |\n", v.Pool, v.Layer, v.TrainPairAccuracy, mark)
	}
	w("\n## Examples (held out)\n\n| rank | source | prompt | text | score |\n|---|---|---|---|---|\n")
	for i, e := range r.Examples.Highest {
		w("| top %d | %s | %s | %s | %.3f |\n", i+1, e.Source, md(e.Prompt), md(e.Text), e.Score)
	}
	for i, e := range r.Examples.Lowest {
		w("| bottom %d | %s | %s | %s | %.3f |\n", i+1, e.Source, md(e.Prompt), md(e.Text), e.Score)
	}
	w("\nPairs most wrong (the base model's text scored above the tuned model's):\n\n| prompt | tuned | score | base | score |\n|---|---|---|---|---|\n")
	for _, p := range r.Examples.MostWrong {
		w("| %s | %s | %.3f | %s | %.3f |\n", md(p.Prompt), md(p.Tuned), p.TunedScore, md(p.Base), p.BaseScore)
	}
	if len(r.Examples.Tokens) > 0 {
		w("\n## Token by token\n\nThe head applied to every position's hidden state (with mean pooling, each token's share of the score; otherwise the reward if the text ended there, the pooled token in bold):\n\n")
		for _, at := range r.Examples.Tokens {
			var parts []string
			for i, t := range at.Tokens {
				p := fmt.Sprintf("`%s` %+.3f", strings.ReplaceAll(t.Token, "`", "'"), t.Value)
				if i == at.Pooled {
					p = "**" + p + "**"
				}
				parts = append(parts, p)
			}
			w("- %s, score %.3f: %s\n", at.Source, at.Score, strings.Join(parts, " · "))
		}
	}
	if d := r.Direction; d != nil {
		w("\n## Against the ground truth\n\nA logistic probe of the scores in `%s` (column `%s`) on the same features of the training texts (%d above the mean score %.3f, %d at or below it):\n\n", d.GT, d.Field, d.TrainHigh, d.Split, d.TrainLow)
		w("| measure | value |\n|---|---|\n| cosine between the head's weights and the probe's (%d dimensions; random directions ±%.3f) | %.3f |\n", d.Dimensions, d.Chance, d.Cosine)
		w("| the probe's held-out pair accuracy | %.3f |\n", d.ProbePairAccuracy)
		w("| the ground truth's own held-out pair accuracy (ties half) | %.3f |\n", d.GTPairAccuracy)
		w("| the ground truth's own held-out text pairs ordered right (ties half) | %.3f |\n", d.GTTextPairAccuracy)
		for _, c := range []struct {
			who string
			x   *float64
		}{{"the probe's", d.ProbePearson}, {"the head's", d.HeadPearson}} {
			if c.x != nil {
				w("| %s Pearson correlation with the ground truth, held-out texts | %.3f |\n", c.who, *c.x)
			}
		}
		if d.Note != "" {
			w("\n%s\n", d.Note)
		}
	}
	if len(r.NotDone) > 0 {
		w("\nNot yet in this report: %s.\n", strings.Join(r.NotDone, ", "))
	}
	return b.String()
}

func md(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

func floats(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(parts, ", ")
}
