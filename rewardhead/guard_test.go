package rewardhead

import (
	"math"
	"strings"
	"testing"
	"time"
)

const headPrefix = `{"format":"irl-reward-head/v1","kind":"irl","features":{"dim":3},`

// A null weight or bias used to read as 0.
func TestParseHeadRefusesNull(t *testing.T) {
	for body, want := range map[string]string{
		headPrefix + `"w":[1,null,3],"b":0}`: "w[1] is null",
		headPrefix + `"w":[null,2,3],"b":0}`: "w[0] is null",
		headPrefix + `"w":[1,2,3],"b":null}`: "bias b is null",
	} {
		_, err := ParseHead("h.json", []byte(body))
		if err == nil || !strings.HasPrefix(err.Error(), "h.json: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming h.json and %q", body, err, want)
		}
	}
	h, err := ParseHead("h.json", []byte(headPrefix+`"w":[1,-2,3.5],"b":0.25}`))
	if err != nil || h.W[1] != -2 || h.W[2] != 3.5 || h.B != 0.25 {
		t.Errorf("good head read as %+v, %v", h, err)
	}
	// A missing bias still reads as 0, as it always has.
	if h, err := ParseHead("h.json", []byte(headPrefix+`"w":[1,2,3]}`)); err != nil || h.B != 0 {
		t.Errorf("head without b: %+v, %v", h, err)
	}
}

// A finite but huge head scored ±Inf or NaN and panicked in CohensD; it
// is refused at read, naming the file.
func TestParseHeadRefusesOverflowingWeights(t *testing.T) {
	for _, body := range []string{
		headPrefix + `"w":[1e308,0,0],"b":0}`,
		headPrefix + `"w":[1e270,1e270,0],"b":0}`,
		headPrefix + `"w":[1,1,1],"b":1.7e308}`,
	} {
		_, err := ParseHead("big.json", []byte(body))
		if err == nil || !strings.HasPrefix(err.Error(), "big.json: weights too large") {
			t.Errorf("%s: %v", body, err)
		}
	}
	// Just inside the bound every score of finite features is finite.
	h, err := ParseHead("edge.json", []byte(headPrefix+`"w":[1e269,-1e269,5e268],"b":-1e300}`))
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{math.MaxFloat32, -math.MaxFloat32, math.MaxFloat32, -math.MaxFloat32, math.MaxFloat32, 0, 1, 2, 3}
	f, err := NewFeatures("x", 3, 3, x, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range h.Score(f) {
		if math.IsInf(s, 0) || math.IsNaN(s) {
			t.Errorf("row %d scores %v", i, s)
		}
	}
}

// noPanic runs f, failing on a panic or on f running past a few seconds
// (BestF1Threshold looped forever on a NaN reward).
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	select {
	case r := <-done:
		if r != nil {
			t.Errorf("%s: panic: %v", what, r)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: did not return", what)
	}
}

// Rewards that are huge, infinite or NaN give finite metrics or Undefined
// ones with a reason, never a panic or a hang, and the report encodes.
func TestMetricsOnExtremeRewards(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	sets := map[string][2][]float64{
		"huge":         {{1e308, 9e307, -1e308}, {-1.7e308, 1.7e308, 3}},
		"huge-sd":      {{1e200, -1e200, 3e200}, {2e200, -5e199, 0}},
		"tiny":         {{1e-310, 2e-310, 3e-310}, {-1e-310, 0, -2e-310}},
		"inf":          {{inf, 1, 2}, {-inf, 0, 1}},
		"nan":          {{nan, 1, 2}, {0, nan, 1}},
		"all nan":      {{nan, nan}, {nan}},
		"inf and -inf": {{inf, -inf}, {inf, -inf}},
	}
	for name, s := range sets {
		pos, neg := s[0], s[1]
		for _, thr := range []Threshold{{Rule: "mean"}, {Rule: "best-f1"}, {Rule: "value", Value: 0}} {
			noPanic(t, name+" "+thr.Rule, func() {
				if _, err := MarshalJSON(Evaluate(pos, neg, nil, nil, thr)); err != nil && allFinite(pos, neg) {
					t.Errorf("%s: report of finite rewards does not encode: %v", name, err)
				}
			})
			noPanic(t, name+" "+thr.Rule+" with ground truth", func() {
				gtPos, gtNeg := make([]float64, len(pos)), make([]float64, len(neg))
				for i := range gtPos {
					gtPos[i] = float64(i)
				}
				r := Evaluate(pos, neg, gtPos, gtNeg, thr)
				for k, v := range map[string]Value{"accuracy": r.Accuracy, "separation": r.Separation, "cohens_d": r.CohensD, "kendall_tau": *r.KendallTau, "spearman": *r.Spearman, "pearson": *r.Pearson} {
					if v.OK() && (math.IsNaN(v.X) || math.IsInf(v.X, 0)) {
						t.Errorf("%s: %s = %v", name, k, v.X)
					}
				}
			})
		}
		n := min(len(pos), len(neg))
		noPanic(t, name+" pearson", func() { Pearson(pos[:n], neg[:n]) })
		noPanic(t, name+" ranks", func() { Ranks(append(append([]float64{}, pos...), neg...)) })
	}
}

// Huge finite rewards: Cohen's d, Pearson and the class summary equal the
// same rewards scaled down, instead of overflowing.
func TestMetricsScaleInvariant(t *testing.T) {
	pos, neg := []float64{1.5, 2, 4, 3}, []float64{-1, 0.5, -2}
	big := func(x []float64, f float64) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v * f
		}
		return out
	}
	const f = 0x1p1000 // a power of two: scaling is exact
	d, D := CohensD(pos, neg), CohensD(big(pos, f), big(neg, f))
	if !D.OK() || D.X != d.X {
		t.Errorf("Cohen's d of huge rewards %+v, of small ones %v", D, d.X)
	}
	dt := CohensD(big(pos, 0x1p-1040), big(neg, 0x1p-1040)) // subnormal
	if !dt.OK() || math.Abs(dt.X-d.X) > 1e-9 {
		t.Errorf("Cohen's d of tiny rewards %+v, want %v", dt, d.X)
	}
	r, R := Pearson(pos[:3], neg), Pearson(big(pos[:3], f), big(neg, 1/f))
	if !R.OK() || R.X != r.X {
		t.Errorf("Pearson of huge × tiny %+v, want %v", R, r.X)
	}
	s, S := Summarise(pos), Summarise(big(pos, f))
	if S.Mean != s.Mean*f || S.Std != s.Std*f {
		t.Errorf("summary of huge rewards %+v, want %+v × 2^1000", S, s)
	}
	m := Threshold{Rule: "mean"}
	if got := m.Resolve([]float64{1e308, 1e308}, []float64{1e308}); got != 1e308 {
		t.Errorf("mean threshold of huge rewards %v", got)
	}
	if got := BestF1Threshold([]float64{math.NaN(), 2}, []float64{1, math.NaN()}); got != 1 {
		t.Errorf("best-F1 threshold with NaNs %v, want 1", got)
	}
}
