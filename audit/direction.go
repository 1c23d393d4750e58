package audit

import (
	"fmt"
	"math"
	"strconv"

	"irl/rewardhead"
	"irl/rows"
)

// Direction compares the recovered head with a ground truth (Config.GT):
// a logistic probe of the ground-truth scores on the same features of the
// training texts gives the direction the ground truth rewards; Cosine is
// the angle between it and the head's weights. The probe is scored on the
// held-out texts as the head is, so a reader can tell a head that missed
// the direction from features that do not carry it.
type Direction struct {
	GT    string `json:"gt"`
	Field string `json:"field"`
	// Cosine is between the chosen head's weights and the probe's;
	// Chance is 1/√Dimensions, the spread of the cosine of two random
	// directions.
	Cosine     float64 `json:"cosine"`
	Dimensions int     `json:"dimensions"`
	Chance     float64 `json:"chance"`
	// ProbePairAccuracy is the probe's held-out pair accuracy (tuned
	// above base), the measure heldout.pair_accuracy gives the head.
	ProbePairAccuracy float64 `json:"probe_pair_accuracy"`
	// GTPairAccuracy and GTTextPairAccuracy are the ground truth's own
	// held-out figures, heldout.pair_accuracy's and
	// heldout.text_pair_accuracy's: what the reward the audit looks for
	// scores on the same prompts and pairs, ties (texts it scores alike)
	// counting half. A head cannot be asked to beat them by much.
	GTPairAccuracy     float64 `json:"gt_pair_accuracy"`
	GTTextPairAccuracy float64 `json:"gt_text_pair_accuracy"`
	// ProbePearson and HeadPearson correlate the probe's and the head's
	// scores of the held-out texts with their ground-truth scores; absent
	// when undefined (Note says why).
	ProbePearson *float64 `json:"probe_pearson,omitempty"`
	HeadPearson  *float64 `json:"head_pearson,omitempty"`
	// The probe's classes: training texts scored above the mean (Split)
	// and the rest.
	Split     float64 `json:"split"`
	TrainHigh int     `json:"train_high"`
	TrainLow  int     `json:"train_low"`
	Probe     string  `json:"probe"`
	Note      string  `json:"note,omitempty"`
}

// probeL2 is irl reward probe's default ridge penalty.
const probeL2 = 1e-3

// gtScore is a ground-truth score and the line it came from.
type gtScore struct {
	score float64
	line  int
}

// gtTable is the rows of Config.GT, looked up by prompt and text, or by text
// alone for files without a prompt column.
type gtTable struct {
	path, field, textField string
	byPair                 map[[2]string]gtScore
	byText                 map[string]gtScore
	// clash holds texts scored differently under different prompts (their
	// two lines), which the text alone cannot look up.
	clash map[string][2]int
}

// readGT reads the ground-truth rows: a text column and a score column,
// with the prompt column when the file has one (irl score --format jsonl
// writes such rows from DIR/demonstrations/demonstrations.jsonl).
func readGT(path, field, textField, promptField string) (*gtTable, error) {
	rs, bad, err := rows.Read(path, rows.Options{TextField: textField, KeepFields: true})
	if err != nil {
		return nil, fmt.Errorf("--gt: %w", err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("--gt %s:%d: %v", path, bad[0].Line, bad[0].Err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("--gt %s holds no rows (a %q text column and a %q score column are read)", path, textField, field)
	}
	g := &gtTable{path: path, field: field, textField: textField, byPair: map[[2]string]gtScore{}, byText: map[string]gtScore{}, clash: map[string][2]int{}}
	for _, r := range rs {
		if r.IDs != nil {
			return nil, fmt.Errorf("--gt %s:%d: give texts, not input_ids (the texts are matched to the demonstrations')", path, r.Line)
		}
		v, ok := r.Field(field)
		if !ok {
			return nil, fmt.Errorf("--gt %s:%d: no %q column: want the ground-truth score there (--gt-field names the column)", path, r.Line, field)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("--gt %s:%d: column %q is %s, want a finite number", path, r.Line, field, v)
		}
		s := gtScore{x, r.Line}
		if p, ok := r.Field(promptField); ok {
			g.byPair[[2]string{p, r.Text}] = s
		}
		if old, ok := g.byText[r.Text]; ok && old.score != x {
			g.clash[r.Text] = [2]int{old.line, r.Line}
		} else if !ok {
			g.byText[r.Text] = s
		}
	}
	return g, nil
}

// lookup finds a demonstration's score: by prompt and text, else by text.
func (g *gtTable) lookup(d demo) (float64, error) {
	if s, ok := g.byPair[[2]string{d.Prompt, d.Text}]; ok {
		return s.score, nil
	}
	if c, ok := g.clash[d.Text]; ok {
		return 0, fmt.Errorf("--gt %s: lines %d and %d score the text %q differently and neither has the prompt %q: give a prompt column to tell them apart", g.path, c[0], c[1], d.Text, d.Prompt)
	}
	if s, ok := g.byText[d.Text]; ok {
		return s.score, nil
	}
	return 0, fmt.Errorf("--gt %s has no row for the text %q (prompt %q)", g.path, d.Text, d.Prompt)
}

// matchGT finds every demonstration's ground-truth score, naming the
// first missing one by its line in demonstrations.jsonl, which lists the
// demonstrations in this order.
func (a *auditor) matchGT() error {
	a.gtScores = map[[2]string]float64{}
	for i, d := range a.demos {
		x, err := a.gt.lookup(d)
		if err != nil {
			return fmt.Errorf("%w: it is demonstration %d (line %d of demonstrations/demonstrations.jsonl, the %s model's); want a row with the text in column %q and its score in column %q",
				err, i+1, i+1, d.Source, a.gt.textField, a.gt.field)
		}
		a.gtScores[[2]string{d.Prompt, d.Text}] = x
	}
	return nil
}

func (a *auditor) gtOf(ds ...[]demo) []float64 {
	var out []float64
	for _, part := range ds {
		for _, d := range part {
			out = append(out, a.gtScores[[2]string{d.Prompt, d.Text}])
		}
	}
	return out
}

func (a *auditor) stageDirection() (string, error) {
	s := a.sc
	gt := a.gtOf(s.trDPos, s.trDNeg)
	var all [][]float32
	for _, f := range []*rewardhead.Features{s.trPos, s.trNeg} {
		for i := 0; i < f.N; i++ {
			all = append(all, f.Row(i))
		}
	}
	// The probe is the project's one ground-truth probe, a logistic
	// regression on two classes (irl reward probe): the classes are the
	// training texts above and at or below the mean ground-truth score,
	// which for a two-valued score such as the lexicon's is its two values.
	var mean float64
	for _, x := range gt {
		mean += x / float64(len(gt))
	}
	var hi, lo [][]float32
	for i, x := range gt {
		if x > mean {
			hi = append(hi, all[i])
		} else {
			lo = append(lo, all[i])
		}
	}
	if len(hi) == 0 || len(lo) == 0 {
		return "", fmt.Errorf("--gt %s scores every training text %v: there is no direction to compare the head with", a.cfg.GT, gt[0])
	}
	d := s.trPos.D
	hiF, err := stack("gt-high", d, hi, s.trPos.Meta)
	if err != nil {
		return "", err
	}
	loF, err := stack("gt-low", d, lo, s.trPos.Meta)
	if err != nil {
		return "", err
	}
	res, err := rewardhead.TrainProbe(hiF, loF, rewardhead.ProbeConfig{L2: probeL2})
	if err != nil {
		return "", fmt.Errorf("the ground-truth probe: %w", err)
	}
	p := res.Head
	dir := Direction{GT: a.cfg.GT, Field: a.cfg.GTField, Cosine: cosine(s.chosen.W, p.W), Dimensions: d, Chance: 1 / math.Sqrt(float64(d)),
		Split: mean, TrainHigh: len(hi), TrainLow: len(lo), Probe: a.path("direction", "probe.json")}
	if err := mkdirFor(dir.Probe); err != nil {
		return "", err
	}
	if err := rewardhead.WriteHead(dir.Probe, p); err != nil {
		return "", err
	}
	pp, pn := p.Score(s.hPos), p.Score(s.hNeg)
	dir.ProbePairAccuracy, _ = pairAccuracy(units(s.dPos, s.dNeg, pp, pn))
	held := a.gtOf(s.dPos, s.dNeg)
	gu := units(s.dPos, s.dNeg, held[:len(s.dPos)], held[len(s.dPos):])
	dir.GTPairAccuracy, _ = pairAccuracy(gu)
	dir.GTTextPairAccuracy, _ = textPairAccuracy(gu)
	for _, c := range []struct {
		dst    **float64
		scores []float64
		who    string
	}{{&dir.ProbePearson, append(pp, pn...), "probe"}, {&dir.HeadPearson, append(s.chosen.Score(s.hPos), s.chosen.Score(s.hNeg)...), "head"}} {
		if v := rewardhead.Pearson(c.scores, held); v.OK() {
			x := v.X
			*c.dst = &x
		} else {
			dir.Note += fmt.Sprintf("The %s's correlation with the ground truth is undefined: %s. ", c.who, v.Why)
		}
	}
	a.rep.Direction = &dir
	return fmt.Sprintf("cosine %.3f between the head and a ground-truth probe (chance ±%.3f); held-out pair accuracy of the probe %.3f, of the ground truth itself %.3f",
		dir.Cosine, dir.Chance, dir.ProbePairAccuracy, dir.GTPairAccuracy), nil
}

// stack makes features of rows.
func stack(name string, d int, rs [][]float32, meta map[string]string) (*rewardhead.Features, error) {
	x := make([]float32, 0, len(rs)*d)
	for _, r := range rs {
		x = append(x, r...)
	}
	return rewardhead.NewFeatures(name, len(rs), d, x, nil, meta)
}

// cosine of two vectors, 0 when either is zero.
func cosine(x, y []float64) float64 {
	var xy, xx, yy float64
	for i := range x {
		xy += x[i] * y[i]
		xx += x[i] * x[i]
		yy += y[i] * y[i]
	}
	if xx == 0 || yy == 0 {
		return 0
	}
	return xy / math.Sqrt(xx*yy)
}
