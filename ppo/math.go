package ppo

import (
	"fmt"
	"math"
)

// The arithmetic of PPO as TRLx (CarperAI/trlx, AcceleratePPOTrainer)
// computes it, over one sample at a time so that padding never enters: each
// function takes a sample's response tokens only, or a mask.

// RunningMoments tracks the mean and variance of every score seen, merged a
// batch at a time (Chan et al.'s parallel form of Welford's update), as
// TRLx's RunningMoments does. Scores are divided by Std, not centred.
type RunningMoments struct {
	Mean  float64 `json:"mean"`
	Var   float64 `json:"var"`
	Std   float64 `json:"std"`
	Count float64 `json:"count"`
}

// NewRunningMoments starts as TRLx does: mean 0, variance 1, and a count of
// 1e-24, so the first batch all but replaces the prior.
func NewRunningMoments() RunningMoments {
	return RunningMoments{Mean: 0, Var: 1, Std: 1, Count: 1e-24}
}

// Update merges a batch and returns the batch's mean and its sample
// standard deviation (n−1).
func (r *RunningMoments) Update(xs []float64) (mean, std float64) {
	n := float64(len(xs))
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= n
	var v float64 // population variance of the batch
	for _, x := range xs {
		v += (x - mean) * (x - mean)
	}
	v /= n
	delta := mean - r.Mean
	tot := r.Count + n
	oldSum := r.Var*r.Count + delta*delta*r.Count*n/tot
	r.Mean += delta * n / tot
	r.Var = (oldSum + v*n) / tot
	r.Std = math.Sqrt(r.Var * tot / (tot - 1))
	r.Count = tot
	std = math.NaN()
	if n > 1 {
		std = math.Sqrt(v * n / (n - 1))
	}
	return mean, std
}

// KLController holds the KL penalty's coefficient β. With Target 0 it is
// fixed; otherwise it is the adaptive controller of Ziegler et al. (2019):
// e = clip(KL/target − 1, ±0.2), β ← β·(1 + e·n/horizon).
type KLController struct {
	Value   float64 `json:"value"`
	Target  float64 `json:"target,omitempty"`
	Horizon float64 `json:"horizon,omitempty"`
}

// Update moves β after n samples whose mean sequence KL was kl.
func (k *KLController) Update(kl float64, n int) {
	if k.Target <= 0 {
		return
	}
	e := math.Max(-0.2, math.Min(0.2, kl/k.Target-1))
	k.Value *= 1 + e*float64(n)/k.Horizon
}

// TokenRewards are a sample's per-token rewards over its response tokens:
// −β·(log π − log π_ref) at each, plus the score on the last real response
// token — the EOS when the sample has one (score_position last_token;
// TokenRewardsTRLx is TRLx's placement, which can put the score one or two
// positions past the EOS: trlx#433, trl#1893). It also returns two
// estimates of the sample's KL from the reference: kl3 = Σₜ (e^{x} − 1 − x)
// with x = log π − log π_ref, what TRLx's controller reads (and logs as
// policy/sqrt_kl), and kl1 = Σₜ x, the plain estimate of KL(π‖π_ref) from
// samples of π. kl3 grows like e^{x} once π puts far more mass on a token
// than π_ref does.
func TokenRewards(logp, refLogp []float64, score, beta float64) (rewards []float64, kl3, kl1 float64) {
	if len(logp) != len(refLogp) || len(logp) == 0 {
		panic(fmt.Sprintf("ppo: TokenRewards of %d and %d log-probs", len(logp), len(refLogp)))
	}
	rewards = make([]float64, len(logp))
	for t := range logp {
		x := logp[t] - refLogp[t]
		rewards[t] = -beta * x
		kl3 += math.Exp(x) - 1 - x
		kl1 += x
	}
	rewards[len(rewards)-1] += score
	return rewards, kl3, kl1
}

// The score_position values (Config.ScorePosition): where a sample's score
// sits among its per-token rewards.
const (
	// ScoreTRLx is TRLx's make_experience (both versions): the rewards, the
	// log-probs and the values cover the slice [start:ends] of TRLxSpan, the
	// KL penalty masked where the conditioning token is padding, and the
	// score added to the slice's last entry (TokenRewardsTRLx).
	ScoreTRLx = "trlx"
	// ScoreLastToken puts the score on the last real response token, the
	// EOS when there is one (TokenRewards): the score then reaches the EOS
	// undiscounted, and no value the head outputs past the response (at the
	// EOS's input position or at padding) enters the advantages.
	ScoreLastToken = "last_token"
)

// ScorePositions lists the values score_position takes ("": trlx under a
// trlx_compat mode, last_token under none).
var ScorePositions = []string{ScoreTRLx, ScoreLastToken}

// The advantage_whitening values (Config.AdvantageWhitening): over which
// tokens the advantages are whitened and the loss is taken.
const (
	// WhitenTRLx is TRLx's loss: GAE along each row of the minibatch
	// right-padded with zeros to its widest (AdvantagesTRLx), advantages
	// whitened over that whole padded tensor, padding included, and the
	// loss over the tokens TRLx's attention mask keeps (TRLxCounted): with
	// pad = EOS, not the EOS.
	WhitenTRLx = "trlx"
	// WhitenRealTokens whitens over the minibatch's real response tokens
	// and trains on every one of them, the EOS included: padding is not
	// data, and its zeros would pull the mean toward 0 and shrink the
	// spread by an amount that depends on how unequal the lengths are.
	WhitenRealTokens = "real_tokens"
)

// AdvantageWhitenings lists the values advantage_whitening takes ("": trlx
// under a trlx_compat mode, real_tokens under none).
var AdvantageWhitenings = []string{WhitenTRLx, WhitenRealTokens}

// TRLxCounted is how many of a response's tokens TRLx's attention mask
// (all_tokens != pad_token_id) counts: those that are not pad. With the
// tokenizer's pad = EOS, as TRLx sets it for causal models, that leaves out
// the EOS, so a response that stopped on it counts one token fewer.
func TRLxCounted(resp []int64, pad int64) int {
	c := 0
	for _, id := range resp {
		if id != pad {
			c++
		}
	}
	return c
}

// TRLxSpan is how many response positions TRLx's make_experience keeps of
// a sample (both versions): its log-probs, values and rewards are sliced
// [start:ends] with start = prompt width − 1 and
//
//	ends = start + attention_mask[:, start:].sum(1) + 1
//
// cut at the log-probs' width, prompt width + the chunk's longest response
// − 1. The sum counts the last prompt token and the counted response tokens
// (TRLxCounted), so the slice runs counted + 2 positions: up to two past
// the last counted token (on padding when pad ≠ EOS; with pad = EOS one
// past the EOS, at the position whose input is the EOS).
func TRLxSpan(counted, longest int) int {
	return min(counted+2, longest)
}

// TokenRewardsTRLx are a sample's per-token rewards over TRLx's slice
// (TRLxSpan entries: entry k is the log-prob of response position k, past
// the response that of padding): −β·(log π − log π_ref)·m_k, m_k the
// attention mask of the token entry k is conditioned on — the last prompt
// token for k = 0, response token k−1 after, so m_k = 1 for k ≤ counted —
// with the score added to the slice's last entry, as make_experience does
// (kl_penalty = kl_coef · −log_ratio[start:ends]; rewards[-1] += score).
func TokenRewardsTRLx(logp, refLogp []float64, counted int, score, beta float64) []float64 {
	if len(logp) != len(refLogp) || len(logp) == 0 {
		panic(fmt.Sprintf("ppo: TokenRewardsTRLx of %d and %d log-probs", len(logp), len(refLogp)))
	}
	rewards := make([]float64, len(logp))
	for k := range logp {
		if k <= counted {
			rewards[k] = -beta * (logp[k] - refLogp[k])
		}
	}
	rewards[len(rewards)-1] += score
	return rewards
}

// AdvantagesTRLx is TRLx's get_advantages_and_returns on a collated
// minibatch: each sample's rewards and values right-padded with zeros to
// the widest (ppo_collate_fn), GAE along every padded row, and, with
// whiten, the advantages whitened over the whole padded tensor, padding
// included. Returns are the unwhitened advantages plus the values. Rows
// come back at the padded width. At a row's own entries GAE through the
// padding equals GAE over the row alone (zero rewards and values add
// nothing); the whitening is where the padding counts.
func AdvantagesTRLx(rewards, values [][]float64, gamma, lam float64, whiten bool) (adv, ret [][]float64) {
	w := 0
	for _, r := range rewards {
		w = max(w, len(r))
	}
	flat := make([]float64, 0, len(rewards)*w)
	for i := range rewards {
		r, v := make([]float64, w), make([]float64, w)
		copy(r, rewards[i])
		copy(v, values[i])
		a, rt := GAE(r, v, gamma, lam)
		flat = append(flat, a...)
		ret = append(ret, rt)
	}
	if whiten {
		all := make([]bool, len(flat))
		for i := range all {
			all[i] = true
		}
		Whiten(flat, all)
	}
	for i := range rewards {
		adv = append(adv, flat[i*w:(i+1)*w:(i+1)*w])
	}
	return adv, ret
}

// GAE returns a sample's advantages and returns over its response tokens:
// δₜ = rₜ + γ·Vₜ₊₁ − Vₜ with V past the last token 0, Aₜ = δₜ + γλ·Aₜ₊₁,
// returns = A + V.
func GAE(rewards, values []float64, gamma, lam float64) (adv, ret []float64) {
	n := len(rewards)
	if len(values) != n {
		panic(fmt.Sprintf("ppo: GAE of %d rewards and %d values", n, len(values)))
	}
	adv, ret = make([]float64, n), make([]float64, n)
	last := 0.0
	for t := n - 1; t >= 0; t-- {
		next := 0.0
		if t+1 < n {
			next = values[t+1]
		}
		delta := rewards[t] + gamma*next - values[t]
		last = delta + gamma*lam*last
		adv[t] = last
		ret[t] = last + values[t]
	}
	return adv, ret
}

// Whiten shifts and scales xs in place to mean 0 and unit variance over the
// entries whose mask is set, as TRLx's whiten does (variance with n−1).
// TRLx counts padded positions too: a mask over the whole padded tensor
// (AdvantagesTRLx) gives its numbers; the loop's real_tokens whitening
// masks the padding out. Masked-out entries are left as they are.
func Whiten(xs []float64, mask []bool) {
	var n, mean float64
	for i, x := range xs {
		if mask[i] {
			mean += x
			n++
		}
	}
	if n < 2 {
		return
	}
	mean /= n
	var v float64
	for i, x := range xs {
		if mask[i] {
			v += (x - mean) * (x - mean)
		}
	}
	v /= n - 1
	inv := 1 / math.Sqrt(v+1e-8)
	for i := range xs {
		if mask[i] {
			xs[i] = (xs[i] - mean) * inv
		}
	}
}

// Losses are PPO's minibatch losses and statistics, over n masked tokens.
type Losses struct {
	Policy, Value, Entropy, Total float64
	// PolicyClipFrac and ValueClipFrac are the shares of tokens whose
	// clipped branch was the larger.
	PolicyClipFrac, ValueClipFrac float64
	// ApproxKL is mean((r − 1) − log r), TRLx's k3 estimate of
	// KL(old‖new), over real tokens.
	ApproxKL float64
	// Gradients of Total with respect to each token's log-prob, value and
	// entropy: the cotangents the LogProb head takes.
	DLogProb, DValue, DEntropy []float64
}

// LossConfig holds the loss coefficients.
type LossConfig struct {
	ClipRange, ClipRangeValue, VFCoef, EntCoef float64
}

// Loss computes PPO's clipped objective over the n = Σ mask tokens of a
// minibatch, as TRLx's PPOConfig.loss, plus an entropy bonus:
//
//	pg  = Σ max(−A·r, −A·clip(r, 1±ε)) / n,  r = exp(logp − oldLogp)
//	vf  = ½ Σ max((V − R)², (clip(V, V_old ± ε_v) − R)²) / n
//	total = pg + vf_coef·vf − ent_coef·Σ H / n
//
// and its gradient with respect to logp, V and H, taking the larger branch's
// gradient (a clip that is active has none).
func Loss(logp, oldLogp, values, oldValues, adv, returns, entropy []float64, mask []bool, c LossConfig) Losses {
	var l Losses
	k := len(logp)
	l.DLogProb, l.DValue, l.DEntropy = make([]float64, k), make([]float64, k), make([]float64, k)
	var n float64
	for i := range mask {
		if mask[i] {
			n++
		}
	}
	if n == 0 {
		return l
	}
	var pgClip, vfClip float64
	for i := 0; i < k; i++ {
		if !mask[i] {
			continue
		}
		lr := logp[i] - oldLogp[i]
		r := math.Exp(lr)
		l.ApproxKL += (r - 1) - lr
		pg1 := -adv[i] * r
		rc := math.Max(1-c.ClipRange, math.Min(1+c.ClipRange, r))
		pg2 := -adv[i] * rc
		if pg2 > pg1 {
			l.Policy += pg2
			pgClip++
			if rc == r { // the clamp is inactive: its branch has r's gradient
				l.DLogProb[i] = -adv[i] * r / n
			}
		} else {
			l.Policy += pg1
			l.DLogProb[i] = -adv[i] * r / n
		}
		vc := math.Max(oldValues[i]-c.ClipRangeValue, math.Min(oldValues[i]+c.ClipRangeValue, values[i]))
		vf1 := (values[i] - returns[i]) * (values[i] - returns[i])
		vf2 := (vc - returns[i]) * (vc - returns[i])
		if vf2 > vf1 {
			l.Value += vf2
			vfClip++
			if vc == values[i] {
				l.DValue[i] = c.VFCoef * (values[i] - returns[i]) / n
			}
		} else {
			l.Value += vf1
			l.DValue[i] = c.VFCoef * (values[i] - returns[i]) / n
		}
		l.Entropy += entropy[i]
		l.DEntropy[i] = -c.EntCoef / n
	}
	l.Policy /= n
	l.Value = 0.5 * l.Value / n
	l.Entropy /= n
	l.ApproxKL /= n
	l.PolicyClipFrac, l.ValueClipFrac = pgClip/n, vfClip/n
	l.Total = l.Policy + c.VFCoef*l.Value - c.EntCoef*l.Entropy
	return l
}

// The TRLx compatibility modes (Config.TRLxCompat).
const (
	// CompatNone is this package's own loop: minibatches reshuffled every
	// pass, β moved once per minibatch of the phase at the phase's end,
	// scores divided and then clipped, and the controller fed the mean over
	// samples of the response tokens' k3 KL.
	CompatNone = "none"
	// CompatFork is EleutherAI/trlx 126c8f0, the fork the paper's runs
	// pinned: minibatches in rollout order, unshuffled, each taking
	// ppo_epochs consecutive updates, β moved after each minibatch's.
	CompatFork = "eleuther-126c8f0"
	// CompatCarper is CarperAI/trlx main (3340c2f): ppo_epochs passes,
	// each a fresh shuffle of the phase, β moved after each pass.
	CompatCarper = "carper"
)

// CompatModes lists the values trlx_compat takes ("" is none).
var CompatModes = []string{CompatNone, CompatFork, CompatCarper}

// ScaleScoresTRLx scales a chunk's raw scores in place in the order of
// TRLx's make_experience (both versions): clip to ±clip (0: off); on the
// first chunk set refStd to the clipped scores' std (n−1); merge the
// clipped scores into the running moments; divide by the running std
// (scale "running", after this chunk's update) or by refStd ("ref"). The
// mean is never subtracted. It returns the chunk's mean and std (n−1) as
// RunningMoments.Update gives them, which TRLx logs as rollout_scores/*.
//
// Two guards TRLx lacks: a one-score first chunk gives refStd 1 (TRLx:
// NaN), and a spread of 0 leaves the scores undivided (TRLx: ±Inf).
func ScaleScoresTRLx(scores []float64, clip float64, scale string, m *RunningMoments, refStd **float64) (mean, std float64) {
	clipScores(scores, clip)
	return divideScores(scores, scale, m, refStd)
}

// ScaleScoresOwn is this package's order (trlx_compat none): merge the raw
// scores into the running moments, divide, then clip. It is kept as an
// option because it is the more useful clip: applied after the division it
// bounds the scaled score, the quantity PPO sees, at ±clip in units of the
// scores' spread, whatever the reward's scale, so one outlier cannot dwarf
// the KL penalty; TRLx's order clips in the reward's raw units, so
// cliprange_reward 10 never binds for a reward of order 1 (a probability,
// a head's output). (TRLx's order has one merit: the moments take clipped
// scores, so a raw outlier past ±clip cannot inflate the running std.)
func ScaleScoresOwn(scores []float64, clip float64, scale string, m *RunningMoments, refStd **float64) (mean, std float64) {
	mean, std = divideScores(scores, scale, m, refStd)
	clipScores(scores, clip)
	return mean, std
}

// clipScores bounds scores to ±clip in place (0: off).
func clipScores(scores []float64, clip float64) {
	if clip > 0 {
		for i, x := range scores {
			scores[i] = math.Max(-clip, math.Min(clip, x))
		}
	}
}

// divideScores is the middle both orders share: refStd from the first
// chunk, the running moments updated, the scores divided by the running
// std or refStd. A spread of 0 (every score equal so far) leaves the
// scores as they are rather than dividing by it.
func divideScores(scores []float64, scale string, m *RunningMoments, refStd **float64) (mean, std float64) {
	if *refStd == nil {
		_, s := stats(scores)
		*refStd = &s
	}
	mean, std = m.Update(scores)
	for i := range scores {
		switch {
		case scale == "running" && m.Std > 0:
			scores[i] /= m.Std
		case scale == "ref" && **refStd > 0:
			scores[i] /= **refStd
		}
	}
	return mean, std
}

// KL3 is Σ (e^{x} − 1 − x) over the log-ratios x = log π − log π_ref.
func KL3(logp, refLogp []float64) float64 {
	var s float64
	for i := range logp {
		x := logp[i] - refLogp[i]
		s += math.Exp(x) - 1 - x
	}
	return s
}

// ControllerKL is the KL TRLx's learn loop hands the adaptive controller:
// each chunk's mean_kl (the mean over its samples of their sequence k3 KL)
// is logged as policy/sqrt_kl = √mean_kl, the chunks' stats are averaged,
// and self.mean_kl = (mean of the chunks' √mean_kl)².
func ControllerKL(chunkMeanKL []float64) float64 {
	var s float64
	for _, k := range chunkMeanKL {
		s += math.Sqrt(k)
	}
	s /= float64(len(chunkMeanKL))
	return s * s
}

// PhaseStep is one optimiser step of a phase: the samples it trains on,
// and how many times β moves after it (each by the phase's KL with n =
// batch_size).
type PhaseStep struct {
	Samples  []int
	KLUpdate int
}

// PhasePlan is the order of a phase's optimiser steps under a compat mode,
// as TRLx's learn() runs them (see testdata/trlx/learn_loop.json):
//
//   - eleuther-126c8f0: minibatch b (rollouts b·B…, in rollout order) takes
//     ppo_epochs consecutive steps, then β moves once;
//   - carper: ppo_epochs passes, each a fresh permutation cut into
//     minibatches, β moving once after each pass;
//   - none: carper's passes, with β moving once per minibatch of the phase,
//     all at the phase's end.
//
// perm gives pass p's permutation of n samples (carper and none).
func PhasePlan(mode string, n, batch, epochs int, perm func(pass int) []int) []PhaseStep {
	mbs := (n + batch - 1) / batch
	cut := func(order []int, mb int) []int {
		return append([]int(nil), order[mb*batch:min((mb+1)*batch, n)]...)
	}
	var plan []PhaseStep
	if mode == CompatFork {
		ident := make([]int, n)
		for i := range ident {
			ident[i] = i
		}
		for mb := 0; mb < mbs; mb++ {
			for e := 0; e < epochs; e++ {
				s := PhaseStep{Samples: cut(ident, mb)}
				if e == epochs-1 {
					s.KLUpdate = 1
				}
				plan = append(plan, s)
			}
		}
		return plan
	}
	for p := 0; p < epochs; p++ {
		order := perm(p)
		for mb := 0; mb < mbs; mb++ {
			s := PhaseStep{Samples: cut(order, mb)}
			if mb == mbs-1 {
				if mode == CompatCarper {
					s.KLUpdate = 1
				} else if p == epochs-1 {
					s.KLUpdate = mbs
				}
			}
			plan = append(plan, s)
		}
	}
	return plan
}

// TRLxKLPositions is how many positions of a sample, from its first real
// prompt token, TRLx's make_experience sums into the sequence KL: those
// whose conditioning token is real (attention mask 1) — the p prompt tokens
// and the c response tokens the mask counts — less the sequence's last
// column, which attention_mask[:, :-1] drops: a response as long as its
// chunk's longest (longest tokens) loses its last position. With the
// tokenizer's pad = EOS, as TRLx sets it for causal models, the mask drops
// the EOS, so c counts the response's tokens before it.
func TRLxKLPositions(p, c, longest int) int {
	if c == longest {
		return p + c - 1
	}
	return p + c
}
