package ppo

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

// Merged batch by batch, the moments equal those of all scores at once.
func TestRunningMoments(t *testing.T) {
	r := NewRunningMoments()
	all := []float64{}
	batches := [][]float64{{1, 2, 3, 4}, {10, -2}, {0.5, 0.25, 7}}
	for _, b := range batches {
		m, s := r.Update(b)
		var bm float64
		for _, x := range b {
			bm += x
		}
		bm /= float64(len(b))
		var bv float64
		for _, x := range b {
			bv += (x - bm) * (x - bm)
		}
		if !near(m, bm, 1e-12) || !near(s, math.Sqrt(bv/float64(len(b)-1)), 1e-12) {
			t.Errorf("batch stats %v %v", m, s)
		}
		all = append(all, b...)
	}
	var mean, v float64
	for _, x := range all {
		mean += x
	}
	mean /= float64(len(all))
	for _, x := range all {
		v += (x - mean) * (x - mean)
	}
	if !near(r.Mean, mean, 1e-12) || !near(r.Var, v/float64(len(all)), 1e-9) || !near(r.Std, math.Sqrt(v/float64(len(all)-1)), 1e-9) {
		t.Errorf("running %+v, want mean %v var %v", r, mean, v/float64(len(all)))
	}
}

func TestKLControllers(t *testing.T) {
	fixed := KLController{Value: 0.035}
	fixed.Update(100, 16)
	if fixed.Value != 0.035 {
		t.Errorf("fixed controller moved to %v", fixed.Value)
	}
	k := KLController{Value: 0.1, Target: 6, Horizon: 10000}
	k.Update(12, 16) // error 1 clipped to 0.2
	if want := 0.1 * (1 + 0.2*16/10000.0); !near(k.Value, want, 1e-15) {
		t.Errorf("above target: %v, want %v", k.Value, want)
	}
	k = KLController{Value: 0.1, Target: 6, Horizon: 10000}
	k.Update(5.4, 8) // error −0.1
	if want := 0.1 * (1 - 0.1*8/10000.0); !near(k.Value, want, 1e-15) {
		t.Errorf("below target: %v, want %v", k.Value, want)
	}
}

// The score lands on the last real response token (EOS when there is one),
// whatever each sample's length: the caller passes real tokens only.
func TestTokenRewardsScoreAtEnd(t *testing.T) {
	r, kl, kl1 := TokenRewards([]float64{-1, -2, -0.5}, []float64{-1.5, -2, -0.25}, 3, 0.1)
	want := []float64{-0.1 * 0.5, 0, -0.1*-0.25 + 3}
	for i := range want {
		if !near(r[i], want[i], 1e-12) {
			t.Errorf("reward[%d] = %v, want %v", i, r[i], want[i])
		}
	}
	wkl := (math.Exp(0.5) - 1 - 0.5) + 0 + (math.Exp(-0.25) - 1 + 0.25)
	if !near(kl, wkl, 1e-12) || !near(kl1, 0.5-0.25, 1e-12) {
		t.Errorf("kl %v %v, want %v %v", kl, kl1, wkl, 0.25)
	}
	// Ragged samples: a one-token response gets the score on its only token.
	r, _, _ = TokenRewards([]float64{-1}, []float64{-1}, -2, 0.5)
	if r[0] != -2 {
		t.Errorf("one-token response: %v", r)
	}
}

// GAE against the definition: Aₜ = Σₗ (γλ)ˡ δₜ₊ₗ.
func TestGAENaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7} {
		r, v := make([]float64, n), make([]float64, n)
		for i := range r {
			r[i], v[i] = rng.NormFloat64(), rng.NormFloat64()
		}
		gamma, lam := 0.99, 0.95
		adv, ret := GAE(r, v, gamma, lam)
		for t0 := 0; t0 < n; t0++ {
			var want float64
			for l := 0; t0+l < n; l++ {
				next := 0.0
				if t0+l+1 < n {
					next = v[t0+l+1]
				}
				delta := r[t0+l] + gamma*next - v[t0+l]
				want += math.Pow(gamma*lam, float64(l)) * delta
			}
			if !near(adv[t0], want, 1e-12) || !near(ret[t0], want+v[t0], 1e-12) {
				t.Errorf("n=%d t=%d: adv %v, want %v", n, t0, adv[t0], want)
			}
		}
	}
}

// Whitening counts only real tokens; padding stays as it was.
func TestWhitenMasked(t *testing.T) {
	x := []float64{1, 2, 3, 99, 99}
	Whiten(x, []bool{true, true, true, false, false})
	// mean 2, sample variance 1.
	want := []float64{-1 / math.Sqrt(1+1e-8), 0, 1 / math.Sqrt(1+1e-8), 99, 99}
	for i := range want {
		if !near(x[i], want[i], 1e-12) {
			t.Errorf("x[%d] = %v, want %v", i, x[i], want[i])
		}
	}
}

// The clipped losses by hand, and their gradients against finite
// differences away from the kinks.
func TestLossHandAndGradient(t *testing.T) {
	c := LossConfig{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 1, EntCoef: 0.01}
	// Token 0: r = e^0.5 > 1.2 with A > 0 → clipped (pg2 = −1.2 > pg1).
	// Token 1: r = 1, A < 0 → unclipped. Token 2 is padding.
	logp := []float64{0.5, -1, 7}
	old := []float64{0, -1, 0}
	adv := []float64{1, -2, 5}
	vals := []float64{0.5, 0.1, 3}
	oldv := []float64{0, 0, 0}
	ret := []float64{1, 0, 0}
	ent := []float64{2, 3, 9}
	mask := []bool{true, true, false}
	l := Loss(logp, old, vals, oldv, adv, ret, ent, mask, c)
	pg := (-1*1.2 + 2*1) / 2
	// Token 0: vf1 = 0.25, clipped V = 0.2 → vf2 = 0.64 > vf1 (clipped).
	// Token 1: vf1 = 0.01, clipped V = 0.1 → vf2 = 0.01, not larger.
	vf := 0.5 * (0.64 + 0.01) / 2
	if !near(l.Policy, pg, 1e-12) || !near(l.Value, vf, 1e-12) || l.PolicyClipFrac != 0.5 || l.ValueClipFrac != 0.5 {
		t.Errorf("losses %+v, want pg %v vf %v", l, pg, vf)
	}
	if !near(l.Total, pg+vf-0.01*2.5, 1e-12) {
		t.Errorf("total %v", l.Total)
	}
	if !near(l.ApproxKL, ((math.Exp(0.5)-1)-0.5)/2, 1e-12) {
		t.Errorf("approx kl %v", l.ApproxKL)
	}
	// Finite differences at a point without kinks.
	rng := rand.New(rand.NewPCG(3, 4))
	k := 6
	rand := func() []float64 {
		x := make([]float64, k)
		for i := range x {
			x[i] = 0.3 * rng.NormFloat64()
		}
		return x
	}
	logp, old, vals, oldv, adv, ret, ent = rand(), rand(), rand(), rand(), rand(), rand(), rand()
	mask = []bool{true, true, false, true, true, true}
	l = Loss(logp, old, vals, oldv, adv, ret, ent, mask, c)
	const h = 1e-6
	for _, v := range []struct {
		name string
		x    []float64
		g    []float64
	}{{"logp", logp, l.DLogProb}, {"value", vals, l.DValue}, {"entropy", ent, l.DEntropy}} {
		for i := range v.x {
			x0 := v.x[i]
			v.x[i] = x0 + h
			up := Loss(logp, old, vals, oldv, adv, ret, ent, mask, c).Total
			v.x[i] = x0 - h
			down := Loss(logp, old, vals, oldv, adv, ret, ent, mask, c).Total
			v.x[i] = x0
			fd := (up - down) / (2 * h)
			if math.Abs(fd-v.g[i]) > 1e-6 {
				t.Errorf("d total/d %s[%d] = %v, finite difference %v", v.name, i, v.g[i], fd)
			}
		}
	}
}
