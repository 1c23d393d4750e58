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
// report stands beside: Table 1, and the toxic adjective counts of Tables 3
// and 4 (151 before RLHF, 0 after). Entries the paper gives that are not
// here are left out rather than guessed.
var Paper = map[string]any{
	"table1": map[string]float64{"precision": 0.75, "recall": 0.90, "kendall_tau": 0.40, "separation": 0.97},
	"table3": map[string]int{"total_toxic": 151},
	"table4": map[string]int{"total_toxic": 0},
}

// report is report.json: exactly these keys.
type report struct {
	Table1  map[string]float64 `json:"table1"`
	Table3  map[string]float64 `json:"table3"`
	Table4  map[string]float64 `json:"table4"`
	Seconds map[string]float64 `json:"seconds"`
	Paper   map[string]any     `json:"paper"`
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
		{"threshold", func(s SeedResult) float64 { return s.Table1.Threshold }}} {
		rep.Table1[k.name], _ = rewardhead.MeanStd(r.field(k.f))
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
		w("the model is Pythia-shaped (2 layers, width 64), trained from scratch with a vocabulary of the demo's own words (`data/tokenizer.json`, byte-level BPE with every word whole).\n\n")
	}
	w("Pipeline: SFT on \"The {entity} is {adjective}.\" (250 prompts × one toxic and one non-toxic adjective = 500 samples, 10%% held out) → 2 samples per prompt at top-p 0.95, temperature 1.4 (Table 3) → PPO against the lexicon reward of Algorithm 2 with an entropy bonus of 0.005 on an 80/20 prompt split → the same sampling (Table 4) → max-margin IRL (asymmetric loss, 60 epochs of 50 + 50) with the RLHF model's non-toxic outputs as the expert and the SFT model's toxic outputs as the baseline, on features of the frozen SFT model (pool `%s` at layer %d; see the variants) → the head scores all 500 samples against the lexicon reward.\n\n", r.Seeds[0].Pool, r.Seeds[0].Layer)

	w("## Table 1: the recovered reward against the ground truth\n\n")
	w("Toxic is the positive class; a sample is called toxic when its reward is ≤ the threshold, which is 0: the head's bias puts 0 midway between the training classes' mean rewards, so nothing is tuned on the evaluation set. Separation is the AUC.\n\n")
	w("| metric | this run | paper |\n|---|---|---|\n")
	w("| precision | %s | 0.75 |\n", ms(func(s SeedResult) float64 { return s.Table1.Precision }, 3))
	w("| recall | %s | 0.90 |\n", ms(func(s SeedResult) float64 { return s.Table1.Recall }, 3))
	w("| Kendall τ | %s | 0.40 |\n", ms(func(s SeedResult) float64 { return s.Table1.KendallTau }, 3))
	w("| separation | %s | 0.97 |\n", ms(func(s SeedResult) float64 { return s.Table1.Separation }, 3))
	w("| threshold | %s | |\n\n", ms(func(s SeedResult) float64 { return s.Table1.Threshold }, 1))
	w("`irl reward eval --head heads/head.json --pos eval/pos.safetensors --neg eval/neg.safetensors --gt-pos eval/gt-pos.safetensors --gt-neg eval/gt-neg.safetensors` prints these numbers again from the files.\n\n")
	w("![Figure 1](plots/figure1.png)\n\n")

	for _, t := range []struct {
		title string
		f     func(SeedResult) Counts
		paper string
	}{{"Table 3: adjectives before RLHF (the SFT model)", func(s SeedResult) Counts { return s.Table3 }, "151"},
		{"Table 4: adjectives after RLHF", func(s SeedResult) Counts { return s.Table4 }, "0"}} {
		w("## %s\n\n500 samples (2 per prompt). Unknown adjectives are in neither list.\n\n", t.title)
		w("| class | total | unique | paper's total |\n|---|---|---|---|\n")
		w("| toxic | %s | %s | %s |\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalToxic) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueToxic) }, 1), t.paper)
		w("| non-toxic | %s | %s | |\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalNonToxic) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueNonToxic) }, 1))
		w("| unknown | %s | %s | |\n\n", ms(func(s SeedResult) float64 { return float64(t.f(s).TotalUnknown) }, 1), ms(func(s SeedResult) float64 { return float64(t.f(s).UniqueUnknown) }, 1))
	}
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
	w("\n## Figure 2: data ratios\n\nHeads trained with one class's demonstrations fixed and the other's added step by step, scored on the 500 samples.\n\n![Figure 2](analyses/ratio/ratio.png)\n\n")
	w("## Figures 3 and 5: noise on the rewards\n\nZero-mean Gaussian noise on the head's scores (σ relative to their spread), on the dataset's adjectives (in distribution) and on adjectives the training set never showed (out of distribution, `analyses/ood-metrics.json`).\n\n")
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
