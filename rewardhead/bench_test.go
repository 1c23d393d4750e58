package rewardhead

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkTrain is the training benchmark: 60 epochs of 50 + 50
// rows (2500 pairs each) at D = 1024, default settings, monitor set
// included.
func BenchmarkTrain(b *testing.B) {
	pos, neg, _ := planted(1, 1000, 1000, 1024, 2)
	cfg := DefaultTrainConfig()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Train(pos, neg, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	evalOnce             sync.Once
	evalPos, evalNeg     *Features
	evalHead             *Head
	evalGTPos, evalGTNeg []float64
	scoresPos, scoresNeg []float64
)

// evalData is 10⁵ rows (half per class) at D = 1024, a head and ground
// truth, made once for the eval benchmarks.
func evalData() {
	evalOnce.Do(func() {
		const n, d = 50000, 1024
		var wStar []float64
		evalPos, evalNeg, wStar = planted(2, n, n, d, 1)
		evalHead = &Head{Format: HeadFormat, Kind: KindIRL, W: wStar, Features: evalPos.Info()}
		rng := rand.New(rand.NewPCG(5, 5))
		scoresPos, scoresNeg = evalHead.Score(evalPos), evalHead.Score(evalNeg)
		evalGTPos, evalGTNeg = make([]float64, n), make([]float64, n)
		for i := range evalGTPos {
			evalGTPos[i] = scoresPos[i] + rng.NormFloat64()
			evalGTNeg[i] = scoresNeg[i] + rng.NormFloat64()
		}
	})
}

// BenchmarkEval is the eval benchmark: score 10⁵ rows at D = 1024
// and compute every metric, ground-truth ones included.
func BenchmarkEval(b *testing.B) {
	evalData()
	b.ResetTimer()
	for b.Loop() {
		sp, sn := evalHead.Score(evalPos), evalHead.Score(evalNeg)
		Evaluate(sp, sn, evalGTPos, evalGTNeg, Threshold{Rule: "best-f1"})
	}
}

// BenchmarkMetrics is Evaluate alone on 10⁵ scored rows.
func BenchmarkMetrics(b *testing.B) {
	evalData()
	b.ResetTimer()
	for b.Loop() {
		Evaluate(scoresPos, scoresNeg, evalGTPos, evalGTNeg, Threshold{})
	}
}

// BenchmarkKendall is τ-b on 10⁵ pairs.
func BenchmarkKendall(b *testing.B) {
	evalData()
	x := append(append([]float64(nil), scoresPos...), scoresNeg...)
	y := append(append([]float64(nil), evalGTPos...), evalGTNeg...)
	b.ResetTimer()
	for b.Loop() {
		KendallTauB(x, y)
	}
}

// BenchmarkProbe fits the logistic probe on 2000 rows at D = 1024.
func BenchmarkProbe(b *testing.B) {
	pos, neg, _ := planted(3, 1000, 1000, 1024, 1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := TrainProbe(pos, neg, ProbeConfig{L2: 1e-2}); err != nil {
			b.Fatal(err)
		}
	}
}
