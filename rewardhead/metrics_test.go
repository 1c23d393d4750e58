package rewardhead

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestConfusionByHand(t *testing.T) {
	pos := []float64{0.5, -0.2, 0.0, 1}
	neg := []float64{-1, 0.3, -0.5}
	c := Classify(pos, neg, 0)
	if c != (Confusion{TP: 2, FP: 2, TN: 2, FN: 1}) {
		t.Fatalf("confusion %+v", c)
	}
	checks := []struct {
		name string
		v    Value
		want float64
	}{
		{"accuracy", c.Accuracy(), 4.0 / 7},
		{"precision", c.Precision(), 2.0 / 4},
		{"recall", c.Recall(), 2.0 / 3},
		{"f1", c.F1(), 4.0 / 7},
		{"specificity", c.Specificity(), 2.0 / 4},
	}
	for _, k := range checks {
		if !k.v.OK() || !near(k.v.X, k.want) {
			t.Errorf("%s = %+v, want %v", k.name, k.v, k.want)
		}
	}
	// Nothing predicted toxic: precision is undefined, F1 is 0.
	c = Classify([]float64{1, 2}, []float64{3}, 0)
	if c.Precision().OK() || !strings.Contains(c.Precision().Why, "predicted toxic") {
		t.Errorf("precision with no toxic predictions = %+v", c.Precision())
	}
	if f := c.F1(); !f.OK() || f.X != 0 {
		t.Errorf("F1 with no hits = %+v, want 0", f)
	}
}

func TestAUCByHandAndBruteForce(t *testing.T) {
	// Pairs: 3>2, 3>1, 2=2, 2>1, 2=2, 2>1: 4 wins and 2 ties of 6.
	if a := AUC([]float64{3, 2, 2}, []float64{2, 1}); !near(a.X, 5.0/6) {
		t.Errorf("AUC = %v, want 5/6", a.X)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		pos := make([]float64, 1+rng.IntN(40))
		neg := make([]float64, 1+rng.IntN(40))
		for i := range pos {
			pos[i] = float64(rng.IntN(7)) // coarse values force ties
		}
		for i := range neg {
			neg[i] = float64(rng.IntN(7)) - 1
		}
		var wins float64
		for _, a := range pos {
			for _, b := range neg {
				switch {
				case a > b:
					wins++
				case a == b:
					wins += 0.5
				}
			}
		}
		want := wins / float64(len(pos)*len(neg))
		if got := AUC(pos, neg); !near(got.X, want) {
			t.Fatalf("AUC = %v, brute force %v", got.X, want)
		}
	}
}

func TestCohensDByHand(t *testing.T) {
	// Means 2 and 0, variances 1 and 2, pooled (2·1 + 1·2)/3 = 4/3.
	if d := CohensD([]float64{1, 2, 3}, []float64{-1, 1}); !near(d.X, 2/math.Sqrt(4.0/3)) {
		t.Errorf("d = %v, want √3", d.X)
	}
	if d := CohensD([]float64{1, 1}, []float64{0, 0}); d.OK() {
		t.Errorf("d with zero within-class variance = %v, want undefined", d.X)
	}
}

func TestBestF1ThresholdBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 30; trial++ {
		pos := make([]float64, 1+rng.IntN(30))
		neg := make([]float64, 1+rng.IntN(30))
		for i := range pos {
			pos[i] = math.Round(rng.NormFloat64()*4+1) / 2
		}
		for i := range neg {
			neg[i] = math.Round(rng.NormFloat64()*4-1) / 2
		}
		thr := BestF1Threshold(pos, neg)
		got := Classify(pos, neg, thr).F1().X
		for _, cand := range append(append([]float64(nil), pos...), neg...) {
			if f := Classify(pos, neg, cand).F1().X; f > got+1e-15 {
				t.Fatalf("threshold %v gives F1 %v but %v gives %v", thr, got, cand, f)
			}
		}
	}
}

func TestThresholdRules(t *testing.T) {
	pos, neg := []float64{1, 3}, []float64{-1, 1}
	for s, want := range map[string]float64{"mean": 1, "0.25": 0.25, "-2": -2} {
		th, err := ParseThreshold(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Resolve(pos, neg); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{"median", "NaN", "inf", ""} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q) accepted", bad)
		}
	}
}

func TestEvaluateReport(t *testing.T) {
	pos := []float64{0.5, -0.2, 0.0, 1}
	neg := []float64{-1, 0.3, -0.5}
	gtPos := []float64{2, 1, -1, 3}
	gtNeg := []float64{-2, -1.5, 1.5}
	r := Evaluate(pos, neg, gtPos, gtNeg, Threshold{})
	// Row by row (toxic = last three): IRL right on rows 0,3,4,6; GT right
	// on rows 0,1,3,4,5. Both: 0,3,4. Neither: 2. Only IRL: 6. Only GT: 1,5.
	want := Agreement{BothRight: 3, BothWrong: 1, OnlyIRL: 1, OnlyGT: 2}
	if *r.Agreement != want {
		t.Errorf("agreement %+v, want %+v", *r.Agreement, want)
	}
	irl := append(append([]float64(nil), pos...), neg...)
	gt := append(append([]float64(nil), gtPos...), gtNeg...)
	if !near(r.Pearson.X, stat.Correlation(irl, gt, nil)) {
		t.Errorf("pearson %v vs gonum %v", r.Pearson.X, stat.Correlation(irl, gt, nil))
	}
	// No ties in either variable, so τ-b equals gonum's τ-a.
	if !near(r.KendallTau.X, stat.Kendall(irl, gt, nil)) {
		t.Errorf("kendall %v vs gonum %v", r.KendallTau.X, stat.Kendall(irl, gt, nil))
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"accuracy", "precision", "recall", "f1", "specificity", "separation", "cohens_d", "n_pos", "n_neg", "kendall_tau", "spearman", "pearson", "agreement"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q: %s", k, b)
		}
	}
}

func TestEvaluateUndefinedIsNull(t *testing.T) {
	// Constant rewards: no separation in d, correlations undefined.
	r := Evaluate([]float64{1, 1}, []float64{1}, []float64{0.5, 0.2}, []float64{-1}, Threshold{Rule: "value", Value: 0})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, k := range []string{`"precision":null`, `"cohens_d":null`, `"kendall_tau":null`, `"pearson":null`, `"spearman":null`} {
		if !strings.Contains(s, k) {
			t.Errorf("report lacks %s: %s", k, s)
		}
	}
	if strings.Contains(s, "NaN") {
		t.Errorf("report has NaN: %s", s)
	}
	for _, k := range []string{"precision", "cohens_d", "kendall_tau", "pearson", "spearman"} {
		if r.Undefined[k] == "" {
			t.Errorf("no reason for undefined %s", k)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Precision.OK() || !back.Accuracy.OK() {
		t.Errorf("decoding the report: %v %+v", err, back)
	}
}

// MeanStd by hand: {2, 4, 4, 4, 5, 5, 7, 9} has mean 5 and squared
// deviations summing to 32, so a sample deviation of √(32/7); one value has
// deviation 0, and none gives 0, 0.
func TestMeanStdByHand(t *testing.T) {
	m, s := MeanStd([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if m != 5 || math.Abs(s-math.Sqrt(32.0/7)) > 1e-15 {
		t.Errorf("MeanStd = %v, %v; want 5, %v", m, s, math.Sqrt(32.0/7))
	}
	if m, s := MeanStd([]float64{3}); m != 3 || s != 0 {
		t.Errorf("one value: %v, %v", m, s)
	}
	if m, s := MeanStd(nil); m != 0 || s != 0 {
		t.Errorf("none: %v, %v", m, s)
	}
}
