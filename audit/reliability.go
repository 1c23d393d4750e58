package audit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"

	"gonum.org/v1/gonum/stat"

	"irl/rewardhead"
)

// bootstraps is how many resamples the 95% intervals take.
const bootstraps = 1000

// shuffles is how many label shuffles the control averages. A shuffled
// head's direction is random, but where it leans along the features' main
// axis the prompt means amplify that lean, so one shuffle's pair accuracy
// spreads widely (0.32–0.83 in the toy world); 30 bring their mean's
// spread to about ±0.03.
const shuffles = 30

// unit is one held-out prompt's scores: its tuned and base texts'.
type unit struct{ pos, neg []float64 }

// units groups held-out scores by prompt.
func units(dPos, dNeg []demo, sPos, sNeg []float64) []unit {
	idx := map[int]int{}
	var us []unit
	get := func(g int) *unit {
		i, ok := idx[g]
		if !ok {
			i = len(us)
			idx[g] = i
			us = append(us, unit{})
		}
		return &us[i]
	}
	for i, d := range dPos {
		u := get(d.Group)
		u.pos = append(u.pos, sPos[i])
	}
	for i, d := range dNeg {
		u := get(d.Group)
		u.neg = append(u.neg, sNeg[i])
	}
	return us
}

// pairAccuracy is the share of held-out prompts where the head's mean
// score of the tuned model's texts is above its mean score of the base
// model's, ties counting half; with no prompt holding both, that of all
// pairs of texts (the AUC). n is the prompts counted.
//
// It compares the two policies, not single texts: max-margin IRL asks of a
// reward that the tuned model's expected reward exceed the base model's
// (Abbeel & Ng's feature expectations), prompt by prompt here. With one
// continuation a side (greedy) it is the share of text pairs ordered
// right. Two sampled texts of one prompt often do the same thing (both
// models write a kind word), and no reward, the true one included, orders
// them: textPairAccuracy, which counts each such pair, is reported beside
// it.
func pairAccuracy(us []unit) (acc float64, n int) {
	var sum float64
	for _, u := range us {
		if len(u.pos) == 0 || len(u.neg) == 0 {
			continue
		}
		n++
		p, q := stat.Mean(u.pos, nil), stat.Mean(u.neg, nil)
		if p > q {
			sum++
		} else if p == q {
			sum += 0.5
		}
	}
	if n == 0 {
		return separation(us), 0
	}
	return sum / float64(n), n
}

// textPairAccuracy is the share of within-prompt pairs of texts (tuned,
// base) the scores order right, ties counting half; NaN with none. n is the
// pairs counted.
func textPairAccuracy(us []unit) (acc float64, n int) {
	var sum float64
	for _, u := range us {
		for _, p := range u.pos {
			for _, q := range u.neg {
				n++
				if p > q {
					sum++
				} else if p == q {
					sum += 0.5
				}
			}
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return sum / float64(n), n
}

// separation is the AUC of all tuned against all base scores.
func separation(us []unit) float64 {
	var pos, neg []float64
	for _, u := range us {
		pos, neg = append(pos, u.pos...), append(neg, u.neg...)
	}
	v := rewardhead.AUC(pos, neg)
	if !v.OK() {
		return math.NaN()
	}
	return v.X
}

// interval is the bootstrap 95% percentile interval of stat over
// resamples of the units.
func interval(us []unit, seed uint64, stat func([]unit) float64) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(seed, 0xb007))
	var xs []float64
	res := make([]unit, len(us))
	for b := 0; b < bootstraps; b++ {
		for i := range res {
			res[i] = us[rng.IntN(len(us))]
		}
		if x := stat(res); !math.IsNaN(x) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	sort.Float64s(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return q(0.025), q(0.975)
}

func (a *auditor) heldOut(h *rewardhead.Head) []unit {
	s := a.sc
	return units(s.dPos, s.dNeg, h.Score(s.hPos), h.Score(s.hNeg))
}

// tau is Kendall's τ-b of two heads' scores on every held-out text.
func (a *auditor) tau(x, y *rewardhead.Head) float64 {
	s := a.sc
	sx := append(x.Score(s.hPos), x.Score(s.hNeg)...)
	sy := append(y.Score(s.hPos), y.Score(s.hNeg)...)
	v := rewardhead.KendallTauB(sx, sy)
	if !v.OK() {
		return math.NaN()
	}
	return v.X
}

func (a *auditor) stageReliability() (string, error) {
	s := a.sc
	us := a.heldOut(s.chosen)
	acc, n := pairAccuracy(us)
	sep := separation(us)
	tacc, tn := textPairAccuracy(us)
	h := HeldOut{PairAccuracy: acc, Separation: sep, PairedPrompts: n, TextPairAccuracy: tacc, TextPairs: tn, Prompts: len(us), Tuned: s.hPos.N, Base: s.hNeg.N}
	// A resample without a prompt holding both sides would fall back to
	// the AUC, another measure: where the sample has such prompts, the
	// interval skips those resamples.
	h.PairAccuracyLow, h.PairAccuracyHigh = interval(us, a.cfg.Seed, func(u []unit) float64 {
		x, m := pairAccuracy(u)
		if m == 0 && n > 0 {
			return math.NaN()
		}
		return x
	})
	h.SeparationLow, h.SeparationHigh = interval(us, a.cfg.Seed+1, separation)
	if n == 0 {
		h.Note = "no held-out prompt has texts from both sides: pair accuracy is over all pairs (the AUC), and no text pair of one prompt is there to count"
	}
	a.rep.HeldOut = h
	// Agreement between epochs and seeds: τ-b of the scores of held-out texts.
	ag := Agreement{}
	for i, e := range s.heads {
		if (i+1)%10 == 0 || i == 0 || i == len(s.heads)-1 {
			ag.Epochs = append(ag.Epochs, TauRow{Epoch: e.Epoch, KendallTau: a.tau(e, s.chosen)})
		}
	}
	half := s.heads[len(s.heads)/2:]
	ag.MinTauLastHalf = 1
	for _, e := range half {
		ag.MinTauLastHalf = math.Min(ag.MinTauLastHalf, a.tau(e, s.chosen))
	}
	for k := uint64(1); k <= 2; k++ {
		res, err := rewardhead.Train(s.trPos, s.trNeg, a.trainConfig(a.cfg.Seed+1000*k))
		if err != nil {
			return "", err
		}
		ua := a.heldOut(res.Best)
		pa, _ := pairAccuracy(ua)
		ag.Seeds = append(ag.Seeds, TauRow{Seed: a.cfg.Seed + 1000*k, KendallTau: a.tau(res.Best, s.chosen), PairAccuracy: pa})
	}
	a.rep.Agreement = ag
	// The label-shuffle control: the training texts dealt to the two
	// sides at random, shuffles times; one shuffle's head can land on a
	// direction of large variance by chance, either way, so the control
	// is their mean.
	var sh Shuffle
	for k := 0; k < shuffles; k++ {
		sp, sn := a.shuffled(uint64(k))
		res, err := rewardhead.Train(sp, sn, a.trainConfig(a.cfg.Seed))
		if err != nil {
			return "", err
		}
		if k == 0 {
			sh.Head = filepath.Join(a.cfg.Out, "shuffle", "head.json")
			if err := mkdirFor(sh.Head); err != nil {
				return "", err
			}
			if err := rewardhead.WriteHead(sh.Head, res.Best); err != nil {
				return "", err
			}
		}
		uc := a.heldOut(res.Best)
		ca, _ := pairAccuracy(uc)
		sh.Each = append(sh.Each, ca)
		sh.PairAccuracy += ca / shuffles
		sh.Separation += separation(uc) / shuffles
	}
	a.rep.Shuffle = sh
	ca := sh.PairAccuracy
	return fmt.Sprintf("held-out pair accuracy %.3f [%.3f, %.3f], separation %.3f [%.3f, %.3f]; shuffle control %.3f",
		h.PairAccuracy, h.PairAccuracyLow, h.PairAccuracyHigh, h.Separation, h.SeparationLow, h.SeparationHigh, ca), nil
}

// shuffled deals the training texts to the two sides at random, keeping
// the sides' sizes: labels that carry nothing.
func (a *auditor) shuffled(k uint64) (pos, neg *rewardhead.Features) {
	s := a.sc
	d := s.trPos.D
	all := make([][]float32, 0, s.trPos.N+s.trNeg.N)
	for i := 0; i < s.trPos.N; i++ {
		all = append(all, s.trPos.Row(i))
	}
	for i := 0; i < s.trNeg.N; i++ {
		all = append(all, s.trNeg.Row(i))
	}
	rng := rand.New(rand.NewPCG(a.cfg.Seed, 0x5eed+k))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	mk := func(name string, rs [][]float32) *rewardhead.Features {
		x := make([]float32, 0, len(rs)*d)
		for _, r := range rs {
			x = append(x, r...)
		}
		f, err := rewardhead.NewFeatures(name, len(rs), d, x, nil, s.trPos.Meta)
		if err != nil {
			panic(err) // rows of valid features
		}
		return f
	}
	return mk("shuffled-pos", all[:s.trPos.N]), mk("shuffled-neg", all[s.trPos.N:])
}
