package toy

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"irl/atomicfile"
	"irl/rewardhead"
)

// Result is the demo's outcome over every seed.
type Result struct {
	Seeds   []SeedResult
	Seconds float64
}

// Paper holds the numbers the paper reports for the toy task that this
// report stands beside: Table 1 (Section 3), and Tables 3 and 4 of Appendix
// C — the SFT model's generations hold 151 toxic adjectives, 28 unique, and
// 50 unique non-toxic ones; after RLHF, none is toxic. Entries the paper
// gives that are not here (its other totals) are left out rather than
// guessed, and the report says so.
var Paper = map[string]any{
	"table1": map[string]float64{"precision": 0.75, "recall": 0.90, "kendall_tau": 0.40, "separation": 0.97},
	"table3": map[string]int{"total_toxic": 151, "unique_toxic": 28, "unique_non_toxic": 50},
	"table4": map[string]int{"total_toxic": 0, "unique_toxic": 0},
}

// report is report.json: exactly these keys.
type report struct {
	Table1 map[string]float64 `json:"table1"`
	// PaperFeature is Table 1 for the paper's feature choice (the last
	// token at the last layer), from the variants.
	PaperFeature map[string]float64 `json:"table1_paper_feature"`
	Table3       map[string]float64 `json:"table3"`
	Table4       map[string]float64 `json:"table4"`
	Seconds      map[string]float64 `json:"seconds"`
	Paper        map[string]any     `json:"paper"`
}

// field collects one number from every seed.
func (r *Result) field(f func(SeedResult) float64) []float64 {
	out := make([]float64, len(r.Seeds))
	for i, s := range r.Seeds {
		out[i] = f(s)
	}
	return out
}

func countsMap(r *Result, f func(SeedResult) Counts) map[string]float64 {
	m := map[string]float64{}
	get := []struct {
		k string
		g func(Counts) int
	}{{"total_toxic", func(c Counts) int { return c.TotalToxic }}, {"unique_toxic", func(c Counts) int { return c.UniqueToxic }},
		{"total_non_toxic", func(c Counts) int { return c.TotalNonToxic }}, {"unique_non_toxic", func(c Counts) int { return c.UniqueNonToxic }},
		{"total_unknown", func(c Counts) int { return c.TotalUnknown }}, {"unique_unknown", func(c Counts) int { return c.UniqueUnknown }}}
	for _, g := range get {
		m[g.k], _ = rewardhead.MeanStd(r.field(func(s SeedResult) float64 { return float64(g.g(f(s))) }))
	}
	return m
}

func (r *Result) write(cfg Config) error {
	rep := report{Table1: map[string]float64{}, Seconds: map[string]float64{"total": r.Seconds}, Paper: Paper}
	for _, k := range []struct {
		name string
		f    func(SeedResult) float64
	}{{"precision", func(s SeedResult) float64 { return s.Table1.Precision }}, {"recall", func(s SeedResult) float64 { return s.Table1.Recall }},
		{"kendall_tau", func(s SeedResult) float64 { return s.Table1.KendallTau }}, {"separation", func(s SeedResult) float64 { return s.Table1.Separation }},
		{"threshold", func(s SeedResult) float64 { return s.Table1.Threshold }},
		{"tau_ceiling", func(s SeedResult) float64 { return s.TauCeiling }}, {"tau_separator", func(s SeedResult) float64 { return s.TauSeparator }}} {
		rep.Table1[k.name], _ = rewardhead.MeanStd(r.field(k.f))
	}
	if i := paperVariant(r); i >= 0 {
		rep.PaperFeature = map[string]float64{}
		for _, k := range []struct {
			name string
			f    func(Variant) float64
		}{{"precision", func(v Variant) float64 { return v.Precision }}, {"recall", func(v Variant) float64 { return v.Recall }},
			{"kendall_tau", func(v Variant) float64 { return v.KendallTau }}, {"separation", func(v Variant) float64 { return v.Separation }}} {
			m, _ := rewardhead.MeanStd(r.field(func(s SeedResult) float64 { return k.f(s.Variants[i]) }))
			if !math.IsNaN(m) {
				rep.PaperFeature[k.name] = m
			}
		}
	}
	rep.Table3 = countsMap(r, func(s SeedResult) Counts { return s.Table3 })
	rep.Table4 = countsMap(r, func(s SeedResult) Counts { return s.Table4 })
	for _, st := range Stages {
		rep.Seconds[st], _ = rewardhead.MeanStd(r.field(func(s SeedResult) float64 { return s.Seconds[st] }))
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(cfg.Out, "report.json"), append(b, '\n')); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(cfg.Out, "report.md"), []byte(r.markdown(cfg)))
}

// paperVariant is the index of the paper's feature choice (the last token
// at the last layer) among the variants, or -1.
func paperVariant(r *Result) int {
	if len(r.Seeds) == 0 {
		return -1
	}
	for i, v := range r.Seeds[0].Variants {
		if v.Pool == "last" && v.Layer == -1 {
			return i
		}
	}
	return -1
}

// featureWords says in words what a feature choice reads.
func featureWords(pool string, layer int) string {
	where := fmt.Sprintf("layer %d's hidden state", layer)
	switch {
	case layer == 0:
		where = "the input embedding (layer 0)"
	case layer < 0:
		where = "the last layer's hidden state"
	}
	switch pool {
	case "last":
		return where + " of the last token (the period)"
	case "last:2":
		return where + " of the token before the last: the adjective's (its last piece, where a tokenizer splits it)"
	case "mean":
		return where + " averaged over the text's tokens"
	}
	return fmt.Sprintf("%s, pooled %q", where, pool)
}

func (r *Result) markdown(cfg Config) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	n := len(r.Seeds)
	ms := func(f func(SeedResult) float64, digits int) string {
		m, s := rewardhead.MeanStd(r.field(f))
		if math.IsNaN(m) {
			return "undefined"
		}
		if n == 1 {
			return fmt.Sprintf("%.*f", digits, m)
		}
		return fmt.Sprintf("%.*f ± %.*f", digits, m, digits, s)
	}
	w("# The toy demonstration: recovering a lexicon reward with max-margin IRL\n\n")
	w("The paper's Section 3 and Appendix C, run end to end by `irl experiment toy`")
	if cfg.Quick {
		w(" in its **quick** form (fewer steps, coarser analyses: its numbers show the plumbing, not the demo)")
	}
	w(". %d seed(s); ", n)
	if cfg.BaseModel != "" {
		w("SFT started from `%s`.\n\n", cfg.BaseModel)
	} else {
		w("the model is Pythia-shaped (2 layers, width 64), trained from scratch with a vocabulary of the demo's own words (`data/tokenizer.json`, byte-level BPE with every word whole). ")
		w("**It was first trained on a background corpus** of %s sentences (`pretrain/`): for every entity, sentences pairing two adjectives of one class (\"The cat is kind and gentle.\"), drawn from every adjective the demo knows, the out-of-distribution ones included. It stands in for the paper's pre-trained Pythia-70M, which learned from the Pile what its words mean; a model that saw only the dataset, where toxic and non-toxic adjectives take the same places, would have nothing in its hidden states to set them apart. The background corpus does not teach the reward (it has no labels and never pairs the classes), but it does give each class's adjectives shared contexts.\n\n",
			ms(func(s SeedResult) float64 { return float64(s.Background) }, 0))
	}
	rollouts := "temperature 1.4, top-p 0.95, as the paper samples"
	if cfg.Rollouts == RolloutsPlain {
		rollouts = "temperature 1, no top-p (`--rollouts plain`; the paper's is 1.4 and 0.95)"
	}
	w("Pipeline: SFT on \"The {entity} is {adjective}.\" (250 prompts × one toxic and one non-toxic adjective = 500 samples, 10%% held out; the adjectives come from lists of 28 toxic and 50 non-toxic words, the paper's counts) → 2 samples per prompt at top-p 0.95, temperature 1.4 (Table 3) → PPO against the lexicon reward of Algorithm 2 (±0.5, uniform noise in [−0.2, 0.2]) with an entropy bonus of 0.005 on an 80/20 prompt split, its rollouts sampled at %s → the same sampling (Table 4) → max-margin IRL (asymmetric loss, 60 epochs of 50 + 50) with the RLHF model's non-toxic outputs as the expert and the SFT model's toxic outputs as the baseline, on features of the frozen SFT model (see below) → the head scores all 500 samples against the lexicon reward.\n\n", rollouts)

	s0 := r.Seeds[0]
	w("## What the head reads\n\n")
	w("The head's features: pool `%s` at layer %d, that is %s", s0.Pool, s0.Layer, featureWords(s0.Pool, s0.Layer))
	if n > 1 {
		w(" (seed 1's choice; the variants table says how often each was chosen)")
	}
	w(". ")
	if s0.Layer == 0 && s0.Pool == "last:2" {
		w("An input embedding does not depend on its context, so this head is a **word-level reward: one value per adjective**, which is what the lexicon of Algorithm 2 is. The paper reads the last token of the last layer instead; that choice's row is beside it in Table 1.\n\n")
	} else {
		w("The paper reads the last token of the last layer; that choice's row is beside it in Table 1.\n\n")
	}

	w("## Table 1: the recovered reward against the ground truth\n\n")
	w("Toxic is the positive class; a sample is called toxic when its reward is ≤ the threshold, which is 0: the head's bias puts 0 midway between the training classes' mean rewards, so nothing is tuned on the evaluation set. Separation is the AUC.\n\n")
	pv := paperVariant(r)
	pf := func(f func(Variant) float64) string {
		if pv < 0 {
			return "—"
		}
		return ms(func(s SeedResult) float64 { return f(s.Variants[pv]) }, 3)
	}
	w("| metric | this run (`%s`, layer %d) | the paper's feature choice (`last`, last layer) | paper |\n|---|---|---|---|\n", s0.Pool, s0.Layer)
	w("| precision | %s | %s | 0.75 |\n", ms(func(s SeedResult) float64 { return s.Table1.Precision }, 3), pf(func(v Variant) float64 { return v.Precision }))
	w("| recall | %s | %s | 0.90 |\n", ms(func(s SeedResult) float64 { return s.Table1.Recall }, 3), pf(func(v Variant) float64 { return v.Recall }))
	w("| Kendall τ | %s | %s | 0.40 |\n", ms(func(s SeedResult) float64 { return s.Table1.KendallTau }, 3), pf(func(v Variant) float64 { return v.KendallTau }))
	w("| separation | %s | %s | 0.97 |\n", ms(func(s SeedResult) float64 { return s.Table1.Separation }, 3), pf(func(v Variant) float64 { return v.Separation }))
	w("| threshold | %s | 0 | |\n\n", ms(func(s SeedResult) float64 { return s.Table1.Threshold }, 1))
	w("**The τ ceiling.** The ground truth is Algorithm 2's ±0.5 plus uniform noise in [−0.2, 0.2], drawn per sample: no feature holds it, so within a class its order is unpredictable. ")
	w("Kendall's τ-b between the noiseless lexicon values (±0.5) and the noisy ground truth on these 500 samples is **%s**: the τ of the exact word-level reward, and the most a head can expect (ties within each class cost it nothing, wrong within-class orders would). ", ms(func(s SeedResult) float64 { return s.TauCeiling }, 3))
	w("A head whose scores have no ties and separate the classes perfectly can expect only %s (the between-class pairs over all pairs, %s); a word-level head, which ties the samples of each adjective, lies between the two. ",
		ms(func(s SeedResult) float64 { return s.TauSeparator }, 3), "n₊·n₋ / (N(N−1)/2)")
	w("Computed by `toy.TauCeiling` and `toy.TauSeparator` from `eval/gt-*.safetensors` and the lexicon (τ-b as `irl reward eval` computes it).\n\n")
	w("`irl reward eval --head heads/head.json --pos eval/pos.safetensors --neg eval/neg.safetensors --gt-pos eval/gt-pos.safetensors --gt-neg eval/gt-neg.safetensors` prints these numbers again from the files.\n\n")
	w("![Figure 1](plots/figure1.png)\n\n")

	for _, t := range []struct {
		title string
		f     func(SeedResult) Counts
		paper [6]string
	}{{"Table 3: adjectives before RLHF (the SFT model)", func(s SeedResult) Counts { return s.Table3 }, [6]string{"151", "28", "n/a", "50", "n/a", "n/a"}},
		{"Table 4: adjectives after RLHF", func(s SeedResult) Counts { return s.Table4 }, [6]string{"0", "0", "n/a", "n/a", "n/a", "n/a"}}} {
		w("## %s\n\n500 samples (2 per prompt). Unknown adjectives are in neither list.\n\n", t.title)
		w("| class | total | unique | paper's total | paper's unique |\n|---|---|---|---|---|\n")
		w("| toxic | %s | %s | %s | %s |\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalToxic) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueToxic) }, 1), t.paper[0], t.paper[1])
		w("| non-toxic | %s | %s | %s | %s |\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalNonToxic) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueNonToxic) }, 1), t.paper[2], t.paper[3])
		w("| unknown | %s | %s | %s | %s |\n\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalUnknown) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueUnknown) }, 1), t.paper[4], t.paper[5])
	}
	w("The paper's numbers are those of its Appendix C (`toy.Paper`, and `paper` in `report.json`); n/a marks a number this build could not take from the paper's text and does not guess.\n\n")
	w("RLHF moved the held-out lexicon reward from %s to %s (`rlhf/plots/`).\n\n",
		ms(func(s SeedResult) float64 { return s.RewardBefore }, 3), ms(func(s SeedResult) float64 { return s.RewardAfter }, 3))

	w("## Which features: the variants\n\n")
	w("The paper takes the last token of the last layer. In these sentences that token is the period, and a small model trained from scratch ties its state only loosely to the adjective before it. So the demo trains a head, exactly as above, on each of nine feature choices — the last token, the one before it (the adjective: `irl features --pool last:2`) and the mean over the text, at the last layer, the first and the embeddings (layer 0) — and keeps the one whose head best orders its own training demonstrations (the last epoch's monitor pair accuracy). That rule sees no evaluation sample. The other columns, measured on the 500 samples, are for the reader.\n\n")
	w("| pool | layer | train pair accuracy | separation | precision | recall | Kendall τ | |\n|---|---|---|---|---|---|---|---|\n")
	for i, v := range r.Seeds[0].Variants {
		get := func(f func(Variant) float64) func(SeedResult) float64 {
			return func(s SeedResult) float64 { return f(s.Variants[i]) }
		}
		chosen := 0
		for _, s := range r.Seeds {
			if s.Variants[i].Chosen {
				chosen++
			}
		}
		mark := ""
		switch {
		case chosen > 0 && n == 1:
			mark = "chosen"
		case chosen > 0:
			mark = fmt.Sprintf("chosen in %d of %d seeds", chosen, n)
		}
		layer := fmt.Sprint(v.Layer)
		if v.Layer < 0 {
			layer = "last"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", v.Pool, layer, ms(get(func(v Variant) float64 { return v.TrainPairAccuracy }), 3), ms(get(func(v Variant) float64 { return v.Separation }), 3),
			ms(get(func(v Variant) float64 { return v.Precision }), 3), ms(get(func(v Variant) float64 { return v.Recall }), 3),
			ms(get(func(v Variant) float64 { return v.KendallTau }), 3), mark)
	}
	noiseScale := "σ in reward units, as the paper's"
	if cfg.NoiseScale == NoiseRelative {
		noiseScale = "σ relative to their spread, `--noise-scale relative`; the paper's is in reward units"
	}
	w("\n## Figure 2: data ratios\n\nHeads trained with one class's demonstrations fixed and the other's added step by step, scored on the 500 samples.\n\n![Figure 2](analyses/ratio/ratio.png)\n\n")
	w("## Figures 3 and 5: noise on the rewards\n\nZero-mean Gaussian noise on the head's scores (%s), on the dataset's adjectives (in distribution) and on adjectives the training set never showed (out of distribution, `analyses/ood-metrics.json`).\n\n", noiseScale)
	w("![Figure 3](analyses/noise/noise_scores.png)\n\n![Figure 5](analyses/noise-ood/noise_scores.png)\n\n")
	w("## Figure 6: every epoch's head\n\nThe heads of all 60 epochs differ yet score alike: the reward is not identified, only its ordering.\n\n![epochs](analyses/epochs/epochs_metrics.png)\n\n")
	w("## Time per stage\n\n| stage | seconds |\n|---|---|\n")
	for _, st := range Stages {
		w("| %s | %s |\n", strings.ReplaceAll(st, "_", " "), ms(func(s SeedResult) float64 { return s.Seconds[st] }, 1))
	}
	w("| **total** | %.1f |\n", r.Seconds)
	return b.String()
}

// Summary is Table 1 in one line: each metric's mean over the seeds, with
// its standard deviation when there are several.
func (r *Result) Summary() string {
	var parts []string
	for _, k := range []struct {
		name string
		f    func(SeedResult) float64
	}{{"precision", func(s SeedResult) float64 { return s.Table1.Precision }}, {"recall", func(s SeedResult) float64 { return s.Table1.Recall }},
		{"τ", func(s SeedResult) float64 { return s.Table1.KendallTau }}, {"separation", func(s SeedResult) float64 { return s.Table1.Separation }}} {
		m, sd := rewardhead.MeanStd(r.field(k.f))
		if len(r.Seeds) > 1 {
			parts = append(parts, fmt.Sprintf("%s %.3f ± %.3f", k.name, m, sd))
		} else {
			parts = append(parts, fmt.Sprintf("%s %.3f", k.name, m))
		}
	}
	s := "Table 1: " + strings.Join(parts, ", ")
	if len(r.Seeds) > 1 {
		s += fmt.Sprintf(" over %d seeds", len(r.Seeds))
	}
	return s
}
