package ppo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"irl/atomicfile"
	"irl/checkpoint"
	"irl/floatbits"
	"irl/neox"
	"irl/policy"
	"irl/progress"
	"irl/reward"
)

// plan is the current phase's steps (see PhasePlan); the shuffles are
// drawn from the seed, the phase and the pass, so a resumed run draws the
// same.
func (t *trainer) plan() []PhaseStep {
	phase := uint64(t.st.Phase)
	return PhasePlan(t.cfg.compat(), len(t.phase), t.cfg.BatchSize, t.cfg.PPOEpochs, func(pass int) []int {
		return rand.New(rand.NewPCG(mix(t.cfg.Seed, seedShuffle, phase, uint64(pass)), 1)).Perm(len(t.phase))
	})
}

func (t *trainer) loop() error {
	cfg := t.cfg
	end := cfg.TotalSteps
	if t.opt.StopAfter > 0 && t.opt.StopAfter < end {
		end = t.opt.StopAfter
	}
	label := t.opt.Label
	if label == "" {
		label = "ppo"
	}
	t.bar = progress.New(t.opt.Progress, end-t.step, label, "")
	defer t.bar.Finish()
	t.res.FirstReward, t.res.LastReward = math.NaN(), math.NaN()
	if t.step == 0 {
		if err := t.evaluate(); err != nil {
			return err
		}
	}
	for t.step < end {
		if t.ctx.Err() != nil {
			return t.interrupted()
		}
		if !t.st.InPhase {
			if err := t.makeExperience(); err == errPhaseDropped {
				return t.interrupted()
			} else if err != nil {
				return err
			}
		}
		k := t.step - t.st.PhaseStart
		plan := t.plan()
		line, err := t.trainStep(plan[k].Samples, k == 0)
		if err != nil {
			return err
		}
		t.step++
		// β moves by the phase's KL with n = batch size, when and as
		// often as the compat mode says (see PhasePlan); TRLx's learn()
		// returns at total_steps before it would move β.
		moves := plan[k].KLUpdate
		if cfg.compat() != CompatNone && t.step == cfg.TotalSteps {
			moves = 0
		}
		for i := 0; i < moves; i++ {
			t.st.KL.Update(t.st.Stats.MeanKL, cfg.BatchSize)
		}
		if k+1 == len(plan) {
			t.st.InPhase = false
			t.phase = nil
		}
		if cfg.EvalInterval > 0 && t.step%cfg.EvalInterval == 0 || t.step == cfg.TotalSteps {
			if err := t.evaluateInto(&line); err != nil {
				return err
			}
		}
		if err := t.run.Log(line); err != nil {
			return err
		}
		t.bar.Describe(fmt.Sprintf("%s step %d reward %.3f kl %.3f β %.4f %.0f tok/s", label, t.step, t.res.LastReward, t.st.Stats.MeanKL, t.st.KL.Value, deref(line.TokensPerS)))
		t.bar.Add(1)
		if cfg.CheckpointInterval > 0 && t.step%cfg.CheckpointInterval == 0 || t.step == cfg.TotalSteps || t.step == end {
			if err := t.checkpoint(false); err != nil {
				return err
			}
		}
	}
	t.res.Steps = t.step
	if t.step == cfg.TotalSteps {
		return t.final()
	}
	return nil
}

// errPhaseDropped is makeExperience's answer when the context ended
// between two chunks: the phase is dropped and the state is as it was
// before it.
var errPhaseDropped = errors.New("ppo: phase dropped")

// interrupted stops the run after t.step steps, a safe point: every step
// logged, and a checkpoint saved there (with the phase's rollouts when
// mid-phase) resumes exactly. It saves one unless the newest is of that
// step, and says where it is.
func (t *trainer) interrupted() error {
	t.bar.Stop()
	t.res.Steps = t.step
	e := &checkpoint.InterruptedError{Step: t.step, Err: t.ctx.Err()}
	if t.step > 0 {
		if t.saved != t.step {
			if err := t.checkpoint(true); err != nil {
				return fmt.Errorf("ppo: interrupted after step %d, and the checkpoint failed: %w", t.step, err)
			}
		}
		e.Dir = filepath.Join(t.opt.Out, checkpoint.Name(t.step))
	}
	return fmt.Errorf("ppo: %w", e)
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func f(v float64) *float64 { return &v }

// takePrompts returns the next n training prompts, in an order shuffled
// anew (from the seed) for every pass over them.
func (t *trainer) takePrompts(n int) []Prompt {
	var out []Prompt
	for len(out) < n {
		order := rand.New(rand.NewPCG(mix(t.cfg.Seed, seedPrompts, uint64(t.st.PromptEpoch)), 2)).Perm(len(t.train))
		for t.st.PromptPos < len(order) && len(out) < n {
			out = append(out, t.train[order[t.st.PromptPos]])
			t.st.PromptPos++
		}
		if t.st.PromptPos == len(order) {
			t.st.PromptEpoch++
			t.st.PromptPos = 0
		}
	}
	return out
}

// generate samples one continuation per prompt from the current weights.
func (t *trainer) generate(ps []Prompt, seed uint64) ([][]int64, error) {
	ids := make([][]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.IDs
	}
	gens, err := t.tr.Generator.Generate(ids, policy.GenerateOptions{
		MaxNewTokens: t.cfg.MaxNewTokens, Seed: seed, BatchSize: len(ps),
		Sampling: policy.SampleOptions{Temperature: t.cfg.Temperature, TopK: t.cfg.TopK, TopP: t.cfg.TopP},
	})
	if err != nil {
		return nil, fmt.Errorf("ppo: generating: %w", err)
	}
	out := make([][]int64, len(gens))
	for i, g := range gens {
		out[i] = g.IDs
	}
	return out, nil
}

// text decodes a response without its EOS.
func (t *trainer) text(ids []int64) string {
	n := len(ids)
	if n > 0 && ids[n-1] == int64(t.m.Config.EOSTokenID) {
		n--
	}
	return strings.ToValidUTF8(t.tok.Decode(ids[:n]), "\uFFFD")
}

// score asks the reward source for one score per response, refusing a
// score that is not a number.
func (t *trainer) score(ps []Prompt, resp [][]int64, key uint64) ([]float64, error) {
	samples := make([]reward.Sample, len(ps))
	for i, p := range ps {
		// The row rides along, so a reward's errors can name it.
		fields := make(map[string]any, len(p.Fields)+1)
		for k, v := range p.Fields {
			fields[k] = v
		}
		fields[reward.RowField] = p.Row
		samples[i] = reward.Sample{Prompt: t.promptText(p), Response: t.text(resp[i]), Fields: fields, Key: key + uint64(i)}
	}
	s, err := t.src.Score(samples)
	if err != nil {
		return nil, fmt.Errorf("ppo: reward: %w", err)
	}
	if len(s) != len(ps) {
		return nil, fmt.Errorf("ppo: the reward source gave %d scores for %d samples", len(s), len(ps))
	}
	for i, x := range s {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("ppo: the reward of prompt row %d is %v; no step is taken on it", ps[i].Row, x)
		}
		if math.Abs(x) > MaxScore {
			return nil, fmt.Errorf("ppo: the reward of prompt row %d is %g, beyond ±%g: rewards are of order 1, so this is a bug in the reward; no step is taken on it", ps[i].Row, x, MaxScore)
		}
	}
	return s, nil
}

// promptText is the prompt as the model saw it (cut on the left).
func (t *trainer) promptText(p Prompt) string {
	return strings.ToValidUTF8(t.tok.Decode(p.IDs), "\uFFFD")
}

// makeExperience samples a phase: NumRollouts continuations in chunks of
// ChunkSize prompts, scored, scaled and clipped (in TRLx's order under a
// compat mode, ScaleScoresTRLx; else ScaleScoresOwn), with the rollout's
// and the reference's log-probs and the values, and the per-token rewards:
// over TRLx's slice with the score at its end under score_position trlx
// (TokenRewardsTRLx), else over the response with the score on its last
// token (TokenRewards).
func (t *trainer) makeExperience() error {
	cfg := t.cfg
	var st phaseStats
	var samples []sample
	var chunkMeans, chunkStds []float64
	before := t.st // values all, or pointers replaced rather than written through
	for chunk := 0; len(samples) < cfg.NumRollouts; chunk++ {
		if t.ctx.Err() != nil {
			t.st = before
			return errPhaseDropped
		}
		ps := t.takePrompts(min(cfg.ChunkSize, cfg.NumRollouts-len(samples)))
		t0 := time.Now()
		resp, err := t.generate(ps, mix(cfg.Seed, seedRollout, uint64(t.st.Phase), uint64(chunk)))
		if err != nil {
			return err
		}
		t1 := time.Now()
		scores, err := t.score(ps, resp, mix(cfg.Seed, seedReward, uint64(t.st.Phase), uint64(chunk)))
		if err != nil {
			return err
		}
		st.TimeGenerate += t1.Sub(t0).Seconds()
		st.TimeScore += time.Since(t1).Seconds()
		scale := ScaleScoresOwn
		if cfg.compat() != CompatNone {
			scale = ScaleScoresTRLx
		}
		m, s := scale(scores, cfg.ClipRangeReward, cfg.ScaleReward, &t.st.Moments, &t.st.RefStd)
		chunkMeans, chunkStds = append(chunkMeans, m), append(chunkStds, s)
		for i := range scores {
			samples = append(samples, sample{Prompt: ps[i].IDs, Response: resp[i], Score: scores[i], Row: ps[i].Row})
		}
	}
	seqKL, err := t.rolloutForward(samples, &st)
	if err != nil {
		return err
	}
	var klSum, kl1Sum float64
	eos := int64(t.m.Config.EOSTokenID)
	for i := range samples {
		s := &samples[i]
		var kl, kl1 float64
		// The KL estimates are over the real response tokens in either
		// placement: policy/kl and, under none, the controller read them.
		n := len(s.Response)
		s.Reward, kl, kl1 = TokenRewards(s.LogProb[:n], s.RefLogProb[:n], s.Score, t.st.KL.Value)
		if cfg.scorePosition() == ScoreTRLx {
			s.Reward = TokenRewardsTRLx(s.LogProb, s.RefLogProb, TRLxCounted(s.Response, eos), s.Score, t.st.KL.Value)
		}
		klSum += kl
		kl1Sum += kl1
	}
	st.MeanKL = klSum / float64(len(samples))
	if cfg.compat() != CompatNone {
		// TRLx's: each chunk's mean of the whole sequences' k3 KL, the
		// chunks averaged as their square roots.
		var chunks []float64
		for lo := 0; lo < len(seqKL); lo += cfg.ChunkSize {
			chunks = append(chunks, mean(seqKL[lo:min(lo+cfg.ChunkSize, len(seqKL))]))
		}
		st.MeanKL = ControllerKL(chunks)
	}
	st.MeanKL1 = kl1Sum / float64(len(samples))
	st.ScoresMean, st.ScoresStd = mean(chunkMeans), mean(chunkStds)
	st.RunningStd = t.st.Moments.Std
	t.phase = samples
	t.st.Stats = &st
	t.st.Phase++
	t.st.PhaseStart = t.step
	t.st.InPhase = true
	return nil
}

func stats(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, 1
	}
	for _, v := range x {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(x)-1))
}

func mean(x []float64) float64 {
	var s float64
	n := 0
	for _, v := range x {
		if !math.IsNaN(v) {
			s += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// width is the phase's row width: every forward over the phase's samples,
// at rollout and in training, lays each sample out alone in a row of this
// width, prompt then response then padding. A row's numbers then depend on
// nothing else in its batch, so the log-probs a minibatch computes before
// its first update equal the rollout's bit for bit: the ratio starts at 1.
// Each sample's row holds its spans[i] response positions (see spans),
// position k read at p+k−1.
func width(samples []sample, spans []int) int {
	w := 0
	for i, s := range samples {
		w = max(w, len(s.Prompt)+max(len(s.Response), spans[i]-1))
	}
	return w
}

// spans gives how many response positions of each sample PPO uses: its
// tokens, or under score_position trlx TRLx's slice (TRLxSpan, from the
// longest response of the sample's chunk, ChunkSize samples in order as
// makeExperience drew them), which can reach past them. A function of the
// responses and the settings, so a resumed phase gets the same.
func (t *trainer) spans(samples []sample) []int {
	return spansOf(t.cfg, samples, int64(t.m.Config.EOSTokenID))
}

// spansOf is spans for the settings cfg and the model's EOS, the pad.
func spansOf(cfg Config, samples []sample, eos int64) []int {
	out := make([]int, len(samples))
	for lo := 0; lo < len(samples); lo += cfg.ChunkSize {
		hi := min(lo+cfg.ChunkSize, len(samples))
		longest := 0
		for _, s := range samples[lo:hi] {
			longest = max(longest, len(s.Response))
		}
		for i := lo; i < hi; i++ {
			out[i] = len(samples[i].Response)
			if cfg.scorePosition() == ScoreTRLx {
				out[i] = TRLxSpan(TRLxCounted(samples[i].Response, eos), longest)
			}
		}
	}
	return out
}

// layout builds a batch of samples: ids, mask, and each position's next
// token (the token it scores).
func layout(samples []sample, idx []int, s int, pad int64) *neox.Batch {
	b := len(idx)
	bt := &neox.Batch{B: b, S: s, InputIDs: make([]int64, b*s), AttentionMask: make([]int64, b*s)}
	for r, i := range idx {
		row := bt.InputIDs[r*s : (r+1)*s]
		n := copy(row, samples[i].Prompt)
		n += copy(row[n:], samples[i].Response)
		for j := range row {
			if j < n {
				bt.AttentionMask[r*s+j] = 1
			} else {
				row[j] = pad
			}
		}
	}
	return bt
}

func nextTokens(bt *neox.Batch) []int64 {
	tok := make([]int64, len(bt.InputIDs))
	for r := 0; r < bt.B; r++ {
		for j := 0; j+1 < bt.S; j++ {
			tok[r*bt.S+j] = bt.InputIDs[r*bt.S+j+1]
		}
	}
	return tok
}

// rolloutForward fills each sample's rollout log-probs and values (current
// weights) and reference log-probs, chunk by chunk, over its spans (see
// spans): response position k of a sample with a p-token prompt is scored
// at position p+k−1; past the response, that is the position whose input
// is the EOS or padding, as TRLx's slice reads it. (TRLx's own forward
// masks the EOS as padding, position id 1; ours attends to it as a real
// token, which only the values past the response's last token see.)
//
// It also returns each sample's k3 KL over the whole sequence as TRLx's
// make_experience sums it (with its tokenizer's pad = EOS, as TRLx sets it
// for causal models): every position whose conditioning token is real and
// not EOS — the prompt's, the response's up to the one predicting its EOS
// — and, for a response without EOS shorter than its chunk's longest, the
// one predicting the padding after it (an EOS here, as there; at a row's
// last position nextTokens gives token 0, which is Pythia's EOS).
func (t *trainer) rolloutForward(samples []sample, st *phaseStats) ([]float64, error) {
	spans := t.spans(samples)
	s := width(samples, spans)
	pad := int64(t.m.Config.EOSTokenID)
	temp := float32(t.cfg.Temperature)
	eos := pad
	seqKL := make([]float64, len(samples))
	for lo := 0; lo < len(samples); lo += t.cfg.ChunkSize {
		var idx []int
		for i := lo; i < min(lo+t.cfg.ChunkSize, len(samples)); i++ {
			idx = append(idx, i)
		}
		bt := layout(samples, idx, s, pad)
		tok := nextTokens(bt)
		t0 := time.Now()
		po, err := t.tr.Runner.ForwardTokens(bt, tok, temp)
		if err != nil {
			return nil, fmt.Errorf("ppo: rollout log-probs: %w", err)
		}
		t1 := time.Now()
		bt = layout(samples, idx, s, pad)
		if err := t.bindEmbeddings(); err != nil {
			return nil, fmt.Errorf("ppo: reference embeddings: %w", err)
		}
		ro, err := t.ref.ForwardTokens(bt, tok, temp)
		if err != nil {
			return nil, fmt.Errorf("ppo: reference log-probs: %w", err)
		}
		st.TimeForward += t1.Sub(t0).Seconds()
		st.TimeReference += time.Since(t1).Seconds()
		longest := 0
		for _, i := range idx {
			longest = max(longest, len(samples[i].Response))
		}
		for r, i := range idx {
			sm := &samples[i]
			p, n := len(sm.Prompt), len(sm.Response)
			m := n
			if n > 0 && sm.Response[n-1] == eos {
				m--
			}
			for j := 0; j < TRLxKLPositions(p, m, longest) && j < s; j++ {
				at := r*s + j
				x := float64(po[neox.LogProbsOutput].Data[at]) - float64(ro[neox.LogProbsOutput].Data[at])
				seqKL[i] += math.Exp(x) - 1 - x
			}
			l := spans[i]
			sm.LogProb, sm.RefLogProb, sm.Value = make([]float64, l), make([]float64, l), make([]float64, l)
			for k := 0; k < l; k++ {
				at := r*s + p + k - 1
				sm.LogProb[k] = float64(po[neox.LogProbsOutput].Data[at])
				sm.Value[k] = float64(po[neox.ValuesOutput].Data[at])
				sm.RefLogProb[k] = float64(ro[neox.LogProbsOutput].Data[at])
			}
		}
	}
	return seqKL, nil
}

// trainStep takes one optimiser step on the phase's samples idx.
func (t *trainer) trainStep(idx []int, first bool) (Metrics, error) {
	cfg := t.cfg
	s := width(t.phase, t.spans(t.phase))
	eos := int64(t.m.Config.EOSTokenID)
	bt := layout(t.phase, idx, s, eos)
	n := bt.B * s
	tb := &policy.TrainBatch{Batch: *bt, Tokens: nextTokens(bt), Temperature: float32(cfg.Temperature),
		LossMask: make([]float32, n), OldLogProbs: make([]float32, n), OldValues: make([]float32, n),
		Advantages: make([]float32, n), Returns: make([]float32, n),
		PPOCoefs: [4]float32{float32(cfg.ClipRange), float32(cfg.ClipRangeValue), float32(cfg.VFCoef), float32(cfg.EntCoef)}}
	// Advantages by GAE over each sample's rewards (its response tokens,
	// or TRLx's slice), whitened over the padded minibatch as TRLx does
	// (advantage_whitening trlx) or over the real response tokens only;
	// the loss is over the tokens TRLx's mask keeps (not the EOS) or over
	// every real response token.
	var adv, ret [][]float64
	if cfg.whitening() == WhitenTRLx {
		var rewards, values [][]float64
		for _, i := range idx {
			rewards, values = append(rewards, t.phase[i].Reward), append(values, t.phase[i].Value)
		}
		adv, ret = AdvantagesTRLx(rewards, values, cfg.Gamma, cfg.Lam, true)
	} else {
		var realAdv []float64
		for _, i := range idx {
			sm := &t.phase[i]
			a, r := GAE(sm.Reward, sm.Value, cfg.Gamma, cfg.Lam)
			adv, ret = append(adv, a), append(ret, r)
			realAdv = append(realAdv, a[:len(sm.Response)]...)
		}
		mask := make([]bool, len(realAdv))
		for i := range mask {
			mask[i] = true
		}
		Whiten(realAdv, mask)
		for r, i := range idx {
			n := len(t.phase[i].Response)
			copy(adv[r][:n], realAdv[:n])
			realAdv = realAdv[n:]
		}
	}
	var where []int // the positions the loss counts
	var retSum float64
	for r, i := range idx {
		sm := &t.phase[i]
		trained := len(sm.Response)
		if cfg.whitening() == WhitenTRLx {
			trained = TRLxCounted(sm.Response, eos)
		}
		p := len(sm.Prompt)
		for k := range sm.Value {
			at := r*s + p + k - 1
			tb.OldLogProbs[at] = float32(sm.LogProb[k])
			tb.OldValues[at] = float32(sm.Value[k])
			tb.Advantages[at] = float32(adv[r][k])
			tb.Returns[at] = float32(ret[r][k])
			if k < trained {
				tb.LossMask[at] = 1
				where = append(where, at)
				retSum += ret[r][k]
			}
		}
	}
	t0 := time.Now()
	lr := t.sch.LR(t.step)
	res, norm, err := t.tr.Step(tb, lr, cfg.MaxGradNorm)
	if err != nil {
		return Metrics{}, fmt.Errorf("ppo: step %d: %w", t.step+1, err)
	}
	el := time.Since(t0).Seconds()
	var valSum float64
	for _, at := range where {
		valSum += float64(res.Outputs[neox.ValuesOutput][at])
	}
	ps := res.Outputs[neox.PPOStatsOutput]
	cnt := max(float64(len(where)), 1) // TRLx's mask can be empty: every response a lone EOS
	ph := t.st.Stats
	line := Metrics{Step: t.step + 1,
		ScoresMean: f(ph.ScoresMean), ScoresStd: f(ph.ScoresStd), ScoresRunningStd: f(ph.RunningStd),
		ReturnsMean: f(retSum / cnt), PolicyLoss: f(float64(ps[0])), ValueLoss: f(float64(ps[1])), TotalLoss: f(res.Loss),
		ApproxKL: f(float64(ps[5])), ClipFrac: f(float64(ps[3])), SqrtKL: f(math.Sqrt(math.Max(ph.MeanKL, 0))), KL: f(ph.MeanKL1),
		KLCoef: f(t.st.KL.Value), ValuesMean: f(valSum / cnt), Entropy: f(float64(ps[2])), LearningRate: f(lr),
		GradNorm: f(norm), TimeRolloutGen: f(ph.TimeGenerate), TimeRolloutScore: f(ph.TimeScore),
		TimeForward: f(ph.TimeForward), TimeReference: f(ph.TimeReference), TimeBackward: f(el), TokensPerS: f(float64(n) / el)}
	if first {
		// The ratio before the phase's first update: exactly 1 by
		// construction (see width).
		var worst float64
		for _, at := range where {
			worst = math.Max(worst, math.Abs(float64(res.Outputs[neox.LogProbsOutput][at]-tb.OldLogProbs[at])))
		}
		line.PolicyRatioAtStart = f(math.Exp(worst))
	}
	return line, nil
}

// evaluate samples continuations of the held-out prompts from the current
// weights, scores them, logs reward/mean and writes samples/step-N.jsonl.
func (t *trainer) evaluate() error {
	var line Metrics
	if err := t.evaluateInto(&line); err != nil {
		return err
	}
	line.Step = t.step
	return t.run.Log(line)
}

func (t *trainer) evaluateInto(line *Metrics) error {
	var all []evalSample
	var sum float64
	for lo := 0; lo < len(t.eval); lo += t.cfg.ChunkSize {
		ps := t.eval[lo:min(lo+t.cfg.ChunkSize, len(t.eval))]
		resp, err := t.generate(ps, mix(t.cfg.Seed, seedEval, uint64(t.step), uint64(lo)))
		if err != nil {
			return err
		}
		scores, err := t.score(ps, resp, mix(t.cfg.Seed, seedEval, seedReward, uint64(t.step), uint64(lo)))
		if err != nil {
			return err
		}
		for i, p := range ps {
			all = append(all, evalSample{Row: p.Row, Prompt: t.promptText(p), Response: t.text(resp[i]), Reward: scores[i]})
			sum += scores[i]
		}
	}
	m := sum / float64(len(all))
	line.RewardMean = f(m)
	t.evalStep = t.step
	if math.IsNaN(t.res.FirstReward) {
		t.res.FirstReward = m
	}
	t.res.LastReward = m
	dir := filepath.Join(t.opt.Out, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b []byte
	for _, e := range all {
		j, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(append(b, j...), '\n')
	}
	return atomicfile.WriteBytes(filepath.Join(dir, fmt.Sprintf("step-%d.jsonl", t.step)), b)
}

type evalSample struct {
	Row      int     `json:"row"`
	Prompt   string  `json:"prompt"`
	Response string  `json:"response"`
	Reward   float64 `json:"reward"`
}

// checkpoint saves the run after t.step steps. One saved because the run
// was interrupted is never the best: the uninterrupted run saves none at
// that step, and the state must be as it has it.
func (t *trainer) checkpoint(interrupt bool) error {
	// The best checkpoint is chosen among those evaluated at their step;
	// the state saved with it already names it, so a resume keeps it.
	best := !interrupt && t.evalStep == t.step && (t.st.BestReward == nil || t.res.LastReward > *t.st.BestReward)
	if best {
		r := t.res.LastReward
		t.st.BestReward, t.st.BestCheckpoint = &r, checkpoint.Name(t.step)
	}
	lj, err := json.Marshal(t.st)
	if err != nil {
		return err
	}
	var blobs []checkpoint.Blob
	if t.st.InPhase {
		phase := t.phase
		blobs = append(blobs, checkpoint.Blob{Name: rolloutsFile, Write: func(path string) error {
			b, err := json.Marshal(phase)
			if err != nil {
				return err
			}
			return os.WriteFile(path, b, 0o644)
		}})
	}
	extra := map[string]string{}
	if t.opt.TokenizerPath != "" {
		extra["tokenizer.json"] = t.opt.TokenizerPath
	}
	if _, err = t.tr.Save(t.run, checkpoint.State{Step: t.step, Settings: t.settings, Trainer: lj}, extra, blobs...); err != nil {
		return err
	}
	t.saved = t.step
	if best {
		if err := atomicfile.WriteBytes(filepath.Join(t.opt.Out, BestCheckpointFile), []byte(t.st.BestCheckpoint+"\n")); err != nil {
			return err
		}
		t.res.Best = t.st.BestCheckpoint
	}
	return t.run.Prune(t.opt.SaveTotalLimit, t.st.BestCheckpoint)
}

// final writes DIR/final: the last checkpoint's contents and model.onnx.
func (t *trainer) final() error {
	last, err := checkpoint.Last(t.opt.Out)
	if err != nil {
		return err
	}
	dir := filepath.Join(t.opt.Out, "final")
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		ents, err := os.ReadDir(last)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Name() == rolloutsFile {
				continue
			}
			b, err := os.ReadFile(filepath.Join(last, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(tmp, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
		return neox.Export(t.m, filepath.Join(tmp, "model.onnx"), 0)
	})
	if err != nil {
		return fmt.Errorf("ppo: final model: %w", err)
	}
	t.res.Final = dir
	if err := Plot(filepath.Join(t.opt.Out, checkpoint.MetricsFile), filepath.Join(t.opt.Out, "plots")); err != nil {
		return fmt.Errorf("ppo: plots: %w", err)
	}
	return nil
}

// promptsHash identifies the prompt split, so a resume on other prompts is
// refused.
func promptsHash(train, eval []Prompt) string {
	h := sha256.New()
	var b [8]byte
	for _, set := range [][]Prompt{train, eval} {
		binary.LittleEndian.PutUint64(b[:], uint64(len(set)))
		h.Write(b[:])
		for _, p := range set {
			binary.LittleEndian.PutUint64(b[:], uint64(len(p.IDs)))
			h.Write(b[:])
			h.Write(floatbits.Int64Bytes(p.IDs))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
