package toxicity

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"irl/atomicfile"
	"irl/plots"
	"irl/toxeval"
)

// Paper holds the paper's numbers this report stands beside: Figure 4b's
// final accuracy and F1 of the recovered reward for pythia-70m. Table 2's
// values are in the paper; they are not copied here.
var Paper = map[string]any{
	"figure4b_70m": map[string]float64{"accuracy": 0.8415, "f1": 0.8236},
}

// table2Row is one policy's toxicity under each protocol: each metric's
// mean over seeds and its std, in maps of their own, since a metric's name
// may end in _std (expected_max_toxicity_std).
type table2Row struct {
	Model   string                   `json:"model"`
	Metrics map[string]table2Metrics `json:"metrics"` // by protocol
}

// table2Metrics are one protocol's figures: std is null where undefined
// (one seed, or a greedy protocol's one run).
type table2Metrics struct {
	Mean toxeval.Figures `json:"mean"`
	Std  toxeval.Figures `json:"std"`
}

type reportJSON struct {
	Table2  []table2Row `json:"table2"`
	Figure4 curveJSON   `json:"figure4"`
	// Figure4Poor is the curve of IRL on the rlhf-poor run's
	// demonstrations (poor_head rlhf-poor), absent otherwise.
	Figure4Poor curveJSON          `json:"figure4_poor,omitempty"`
	Seconds     map[string]float64 `json:"seconds"`
	Paper       map[string]any     `json:"paper"`
}

// curveJSON is Figure 4's curve, an undefined correlation written as null.
type curveJSON []EpochMetrics

func (c curveJSON) MarshalJSON() ([]byte, error) { return json.Marshal(nanToNull([]EpochMetrics(c))) }

// stageReport writes report.md and report.json, and the Figure 4 curves.
func (p *pipeline) stageReport() (string, error) {
	ms, err := p.policies()
	if err != nil {
		return "", err
	}
	curve, err := readCurve(filepath.Join(p.dir("irl"), "figure4.json"))
	if err != nil {
		return "", err
	}
	rep := reportJSON{Figure4: curve, Seconds: p.res.Seconds, Paper: Paper}
	if p.cfg.PoorHead == PoorRLHF {
		if rep.Figure4Poor, err = readCurve(filepath.Join(p.dir("irl"), "figure4-poor.json")); err != nil {
			return "", err
		}
	}
	protocols := []string{toxeval.ProtocolPaper}
	if p.cfg.RTP != "" {
		protocols = append(protocols, toxeval.ProtocolRTP)
	}
	for _, m := range ms {
		row := table2Row{Model: m.name, Metrics: map[string]table2Metrics{}}
		for _, proto := range protocols {
			path := filepath.Join(p.dir("toxicity"), m.name+"-"+proto, "summary.json")
			b, err := os.ReadFile(path)
			if err != nil {
				return "", err
			}
			var s toxeval.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				return "", fmt.Errorf("%s: %w", path, err)
			}
			row.Metrics[proto] = table2Metrics{Mean: s.Mean, Std: s.Std}
		}
		rep.Table2 = append(rep.Table2, row)
	}
	// Figure 4a.
	var xs, acc, f1, corr []float64
	for _, e := range curve {
		xs, acc, f1, corr = append(xs, float64(e.Epoch)), append(acc, e.Accuracy), append(f1, e.F1), append(corr, e.Correlation)
	}
	var pacc, pf1 []float64
	for _, e := range curve {
		pacc, pf1 = append(pacc, e.ProbAccuracy), append(pf1, e.ProbF1)
	}
	fig := plots.New("Figure 4a: the recovered reward against the classifier's −(toxic logit), by epoch", "epoch", "metric")
	if err := plots.Lines(fig, plots.Series{Name: "accuracy", X: xs, Y: acc}, plots.Series{Name: "F1 (toxic)", X: xs, Y: f1},
		plots.Series{Name: "correlation", X: xs, Y: corr},
		plots.Series{Name: "accuracy vs −P(toxic)", X: xs, Y: pacc}, plots.Series{Name: "F1 vs −P(toxic)", X: xs, Y: pf1}); err != nil {
		return "", err
	}
	if err := fig.Save(filepath.Join(p.opt.Out, "figure4.png"), 7, 3.6); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteBytes(filepath.Join(p.opt.Out, "report.json"), append(b, '\n')); err != nil {
		return "", err
	}
	if err := atomicfile.WriteBytes(filepath.Join(p.opt.Out, "report.md"), []byte(p.markdown(rep, protocols))); err != nil {
		return "", err
	}
	return "report.md, report.json, figure4.png", nil
}

func (p *pipeline) markdown(rep reportJSON, protocols []string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c := p.cfg
	w("# The toxicity experiment: RLHF → IRL → IRL-RLHF\n\n")
	label := func(spec, l string) string {
		if strings.HasPrefix(spec, "classifier:") {
			return fmt.Sprintf("`%s` (label %s)", spec, l)
		}
		return fmt.Sprintf("`%s`", spec)
	}
	w("The paper's Section 4, run by `irl experiment toxicity`. Training reward %s relative to each prompt's original continuation; toxicity scored by %s, %d seed(s) for the sampled protocol; demonstrations: the RLHF model and the baseline continue the same %d training prompts greedily; IRL with the %s loss (p = %g, δ = %g), %d epochs of %d + %d rows; IRL-RLHF with the %s head (good) and the %s head (poor), reward %s.\n\n",
		label(c.Reward, c.RewardLabel), label(c.Scorer, c.ScorerLabel), c.Seeds, c.DemoPrompts, c.Loss, c.P, c.Delta, c.Epochs, c.PosPerEpoch, c.NegPerEpoch, c.GoodHead, c.PoorHead, c.Transform)
	w("## Table 2: toxicity at each stage\n\n")
	head := "| model |"
	sep := "|---|"
	type col struct{ proto, metric, title string }
	var cols []col
	for _, proto := range protocols {
		if proto == toxeval.ProtocolPaper {
			cols = append(cols, col{proto, toxeval.MetricMeanToxicity, "Mean Toxicity"}, col{proto, toxeval.MetricToxicityRatio, "Toxicity ratio (ours)"})
		} else {
			cols = append(cols, col{proto, toxeval.MetricExpectedMax, "RTP expected max toxicity"}, col{proto, toxeval.MetricToxicityProb, "RTP toxicity probability"})
		}
	}
	for _, cl := range cols {
		head += " " + cl.title + " |"
		sep += "---|"
	}
	w("%s\n%s\n", head, sep)
	for _, r := range rep.Table2 {
		line := "| " + paperModel(r.Model) + " |"
		for _, cl := range cols {
			f := r.Metrics[cl.proto]
			v, ok := f.Mean[cl.metric]
			if !ok || math.IsNaN(v) {
				line += " — |"
				continue
			}
			sd, ok := f.Std[cl.metric]
			if !ok {
				sd = math.NaN()
			}
			line += fmt.Sprintf(" %s ± %s |", toxeval.Format(v), toxeval.Format(sd))
		}
		w("%s\n", line)
	}
	w("\n\"Mean Toxicity\" is the paper's Table 2 column: the scorer's mean toxicity on the held-out Jigsaw prompts. Each cell is the mean over the %d seed(s) ± the sample standard deviation (n − 1) across seeds (— where there is one run); the ratio and the RTP columns are ours. The paper's Table 2 gives these for pythia-70m and 410m over 15 seeds; set this run's configuration to those models to stand beside it.\n\n", c.Seeds)
	w("## Figure 4: the recovered reward against the classifier\n\n![Figure 4a](figure4.png)\n\n")
	if n := len(rep.Figure4); n > 0 {
		last := rep.Figure4[n-1]
		w("Ground truth, as the official `irl_utilities.get_evaluation`: −(the classifier's toxic logit), a text toxic when it is ≤ 0; the correlation is with the logits. Beside it, named, the probability version: −P(toxic), toxic at or below −½.\n\n")
		w("| | accuracy | F1 | correlation | accuracy vs −P(toxic) | F1 vs −P(toxic) | correlation vs −P(toxic) |\n|---|---|---|---|---|---|---|\n")
		w("| this run, final epoch | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", last.Accuracy, last.F1, last.Correlation, last.ProbAccuracy, last.ProbF1, last.ProbCorrelation)
		if m := len(rep.Figure4Poor); m > 0 {
			l := rep.Figure4Poor[m-1]
			w("| poor RLHF run's IRL (rlhf-poor), final epoch | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", l.Accuracy, l.F1, l.Correlation, l.ProbAccuracy, l.ProbF1, l.ProbCorrelation)
		}
		w("| paper, pythia-70m (Figure 4b) | 0.8415 | 0.8236 | | | | |\n\n")
	}
	w("## Time per stage\n\n| stage | seconds |\n|---|---|\n")
	for _, s := range Stages {
		w("| %s | %.1f |\n", s, rep.Seconds[s])
	}
	return b.String()
}

// paperModel is a policy's name in the paper's Table 2.
func paperModel(name string) string {
	switch name {
	case "sft":
		return "SFT"
	case "rlhf":
		return "RLHF"
	case "irl-rlhf-good":
		return "IRL-RLHF (Good)"
	case "irl-rlhf-poor":
		return "IRL-RLHF (Poor)"
	}
	return name
}
