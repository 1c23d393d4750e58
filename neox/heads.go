package neox

import "irl/onnx"

// The heads on the final hidden state (N,D): each forward beside the
// backward the training graph takes through it, and the statistics of the
// decode graphs' logits.

// logits is the output head, hidden·Wᵀ (N,V). Every graph that scores tokens
// computes logits this way, on the flat hidden state, so that log-probs from
// an inference graph and from a training graph come from the same kernels.
func (b *builder) logits(hidden onnx.Value) onnx.Value {
	return b.g.Gemm(hidden, b.weight(b.outName()), "", false, true)
}

// headGrads is what a loss head hands the backward: the gradient of its
// loss in the logits as dlogits = dz ⊙ rowScale, with rowScale a row factor
// (N,1) kept apart so that the output head's backward applies it on the
// (N,D) side (to hidden before dW = dzᵀ·hidden, to dz·W after) instead of
// writing one more (N,V) tensor; rowScale "" is 1. dhidden is the head's own
// share of d(hidden) (the value head's), or "". outputs are the graph
// outputs the head added, the loss first.
type headGrads struct {
	dz, rowScale, dhidden onnx.Value
	outputs               []string
}

// headFunc builds a loss head of kind loss on the final hidden state hidden
// (N,D), shape being [B,S]: (*builder).lossHead, or in a test the heads it
// replaced.
type headFunc func(b *builder, loss LossKind, hidden, shape onnx.Value) headGrads

// lossHead builds the loss head of kind loss on the final hidden state
// (N,D); shape is [B,S].
func (b *builder) lossHead(loss LossKind, hidden, shape onnx.Value) headGrads {
	switch loss {
	case LogProb:
		return b.logProbHead(hidden, shape)
	case PPO:
		return b.ppoHead(hidden, shape)
	}
	return b.crossEntropy(hidden)
}

// softmaxParts are the pieces of softmax(z) over the last axis of z (N,V)
// from which the heads take what they need, with no (N,V) log-softmax and
// no (N,V) probabilities written: zc = z − max(z) (N,V), e = exp(zc) (N,V),
// s = Σ e (N,1) and log s (N,1), so that p = e/s and log p = zc − log s.
// s is rowSum's and log s rowLog's, each the same whatever the batch, so
// that a row's log-prob does not depend on the rows beside it (PPO's ratio
// before its first update is exactly 1).
func (b *builder) softmaxParts(z onnx.Value) (zc, e, s, logS onnx.Value) {
	g := b.g
	zc = g.Sub(z, g.ReduceMax(z, true, 1))
	e = g.Exp(zc)
	s = b.rowSum(e)
	return zc, e, s, rowLog(g, s)
}

// rowSum is Σ x over the last axis of x (N,V), (N,1), as x·1 with a column
// of V ones. ReduceSum would not do: ONNX Runtime sums each row with Eigen,
// which adds the entries before the first aligned address one by one and
// the rest in vector lanes, so unless V is a multiple of the vector width a
// row's sum depends on where the row starts, that is on its place in the
// batch (PPO's first ratio came out 1.0000002). The product's kernel reads
// each row the same way wherever it lies, and sums more accurately, at about
// twice ReduceSum's time: 17 against 7.6 ms on (1024, 50304), 1% of a
// pythia-70m training step for the two sums of the LogProb head.
func (b *builder) rowSum(x onnx.Value) onnx.Value {
	if b.onesV == "" {
		b.onesV = onesColumn(b.g, b.c.VocabSize)
	}
	return b.g.MatMul(x, b.onesV)
}

// onesColumn is a constant (n,1) of ones, rowSum's right-hand side.
func onesColumn(g *onnx.Graph, n int) onnx.Value {
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	return g.ConstF32([]int{n, 1}, ones)
}

// crossEntropy is the CE head on z = hidden·Wᵀ: with zc, e, s as in
// softmaxParts and w the loss mask,
//
//	loss = Σ w·(log s − zc[label]) / Σ w
//	dlogits = (softmax(z) − onehot(label))·w/Σw = (e − s·onehot)·(w/Σw)/s
//
// returned as dz = e − s·onehot, a scatter-add into e (no (N,V) one-hot),
// and rowScale = (w/Σw)/s. (N,V) tensors written: z, zc, e, dz.
func (b *builder) crossEntropy(hidden onnx.Value) headGrads {
	g := b.g
	labels := g.Reshape(onnx.Value(LabelsInput), -1, 1)                             // (N,1)
	w := g.Reshape(onnx.Value(LossMaskInput), -1, 1)                                // (N,1)
	wsum := g.Op("Max", []onnx.Value{g.ReduceSum(w, false, 0), g.ScalarF32(1e-12)}) // (1)
	ws := g.Div(w, wsum)                                                            // (N,1): w/Σw
	zc, e, s, logS := b.softmaxParts(b.logits(hidden))
	nll := g.Sub(logS, g.Op("GatherElements", []onnx.Value{zc, labels}, onnx.AttrInt("axis", 1))) // −log p(label) (N,1)
	// Summed over axis 0 alone, (N,1) gives the loss's shape (1), unreshaped.
	g.Output(g.Rename(g.ReduceSum(g.Mul(nll, ws), false, 0), LossOutput), LossOutput, onnx.Float, 1)
	return headGrads{
		dz:       addAt(g, e, labels, g.Neg(s)),
		rowScale: g.Div(ws, s),
		outputs:  []string{LossOutput},
	}
}

// addAt adds updates (N,1) to x (N,V) at column idx (N,1) of each row.
func addAt(g *onnx.Graph, x, idx, updates onnx.Value) onnx.Value {
	return g.Op("ScatterElements", []onnx.Value{x, idx, updates}, onnx.AttrInt("axis", 1), onnx.AttrString("reduction", "add"))
}

// perToken is the LogProb head's forward: with z = logits/T, p = softmax(z)
// and zc, e, s as in softmaxParts,
//
//	lp = log p[token] = zc[token] − log s (N,1)
//	ent = −Σ p log p = log s − ez (N,1), ez = Σ e·zc / s = Σ p·zc
//
// zc, e, s, ez and the tokens (N,1) are kept for the backward.
type perToken struct {
	zc, e, s, ez, tokens onnx.Value
	lp, ent              onnx.Value
}

// tokenLogProbs builds perToken on the final hidden state (N,D), for the
// tokens and temperature of the graph inputs TokensInput and
// TemperatureInput. z is computed as (hidden/T)·Wᵀ: the division by T is on
// (N,D), not (N,V). The inference graphs' log-probs come from here too, so
// that they equal the training graph's bit for bit.
func (b *builder) tokenLogProbs(hidden onnx.Value) perToken {
	g := b.g
	var t perToken
	var logS onnx.Value
	t.zc, t.e, t.s, logS = b.softmaxParts(b.logits(g.Div(hidden, onnx.Value(TemperatureInput))))
	t.tokens = g.Reshape(onnx.Value(TokensInput), -1, 1)
	t.lp = g.Sub(g.Op("GatherElements", []onnx.Value{t.zc, t.tokens}, onnx.AttrInt("axis", 1)), logS)
	t.ez = g.Div(b.rowSum(g.Mul(t.e, t.zc)), t.s)
	t.ent = g.Sub(logS, t.ez)
	return t
}

// value is the value head, hidden·wᵥᵀ + bᵥ (N,1).
func (b *builder) value(hidden onnx.Value) onnx.Value {
	return b.g.Gemm(hidden, b.weight(ValueHeadWeight), b.weight(ValueHeadBias), false, true)
}

// logProbHead outputs tokenLogProbs' log-probs and entropy and the value
// head's values, [B,S] each, and a loss Σ cₗ·logprob + cₑ·entropy + cᵥ·value
// with caller-supplied cotangents.
func (b *builder) logProbHead(hidden, shape onnx.Value) headGrads {
	g := b.g
	t := b.tokenLogProbs(hidden)
	val := b.value(hidden)
	outputs := b.emitPerToken(shape, t.lp, t.ent, val)
	cl := g.Reshape(onnx.Value(LogProbsCotangent), -1, 1)
	ce := g.Reshape(onnx.Value(EntropyCotangent), -1, 1)
	cv := g.Reshape(onnx.Value(ValuesCotangent), -1, 1)
	loss := g.ReduceSum(g.Add(g.Add(g.Mul(cl, t.lp), g.Mul(ce, t.ent)), g.Mul(cv, val)), false, 0) // (1)
	g.Output(g.Rename(loss, LossOutput), LossOutput, onnx.Float, 1)
	h := b.perTokenBackward(t, hidden, cl, ce, cv)
	h.outputs = append([]string{LossOutput}, outputs...)
	return h
}

// emitPerToken outputs log-probs, entropies and values (N,1) as [B,S]. Each
// Reshape is named as its output (Rename), so that no Identity copies it.
func (b *builder) emitPerToken(shape, lp, ent, val onnx.Value) []string {
	var outputs []string
	for _, o := range []struct {
		v    onnx.Value
		name string
	}{{lp, LogProbsOutput}, {ent, EntropyOutput}, {val, ValuesOutput}} {
		b.g.Output(b.g.Rename(b.g.ReshapeTo(o.v, shape), o.name), o.name, onnx.Float, "batch", "seq")
		outputs = append(outputs, o.name)
	}
	return outputs
}

// perTokenBackward is the backward of tokenLogProbs and value for cotangents
// cₗ, cₑ, cᵥ (N,1). With H the entropy, log p + H = zc − ez, so
//
//	∂L/∂z = cₗ(onehot − p) − cₑ·p(log p + H) = (cₗ·s·onehot − u)/s
//	u = e·(cₗ − cₑ·ez + cₑ·zc)
//
// and dlogits = ∂L/∂z / T: dz = cₗ·s·onehot − u, a scatter-add into
// −u = e·(a − cₑ·zc) with a = cₑ·ez − cₗ (N,1), and rowScale = 1/(s·T). No
// (N,V) log p is formed; (N,V) tensors written: cₑ·zc, a − cₑ·zc, −u, dz.
// Also the value head's gradients and its share of d(hidden).
func (b *builder) perTokenBackward(t perToken, hidden, cl, ce, cv onnx.Value) headGrads {
	g := b.g
	a := g.Sub(g.Mul(ce, t.ez), cl) // (N,1)
	negU := g.Mul(t.e, g.Sub(a, g.Mul(ce, t.zc)))
	b.addGrad(ValueHeadWeight, g.Gemm(cv, hidden, "", true, false)) // (1,D)
	b.addGrad(ValueHeadBias, g.ReduceSum(cv, false, 0))             // (1)
	return headGrads{
		dz:       addAt(g, negU, t.tokens, g.Mul(cl, t.s)),
		rowScale: g.Div(g.ScalarF32(1), g.Mul(t.s, onnx.Value(TemperatureInput))),
		dhidden:  g.MatMul(cv, b.weight(ValueHeadWeight)), // (N,D)
	}
}

// ppoHead is PPO's clipped loss (ppoLoss) on the LogProb head's per-token
// outputs, and its backward.
func (b *builder) ppoHead(hidden, shape onnx.Value) headGrads {
	t := b.tokenLogProbs(hidden)
	val := b.value(hidden)
	outputs := b.emitPerToken(shape, t.lp, t.ent, val)
	cl, ce, cv := b.ppoLoss(t.lp, t.ent, val)
	h := b.perTokenBackward(t, hidden, cl, ce, cv)
	h.outputs = append([]string{LossOutput}, append(outputs, PPOStatsOutput)...)
	return h
}

// ppoLoss outputs PPO's clipped loss, as TRLx's PPOConfig.loss, with an
// entropy bonus, and its statistics, for the per-token log-probs lp,
// entropies ent and values val (N,1), over n = Σ mask positions:
//
//	r = exp(logp − old), pg = Σ max(−A·r, −A·clip(r, 1±ε))·mask / n
//	vf = ½ Σ max((V − R)², (clip(V, old_V ± ε_v) − R)²)·mask / n
//	loss = pg + vf_coef·vf − ent_coef·Σ H·mask / n
//
// It returns the loss's cotangents in lp, ent and val (N,1). They take the
// larger branch's gradient; an active clip has none, and the larger branch
// is the clipped one exactly when its clip is active. ppo.Loss computes the
// same in Go and tests hold the two equal.
func (b *builder) ppoLoss(lp, ent, val onnx.Value) (cl, ce, cv onnx.Value) {
	g := b.g
	col := func(name string) onnx.Value { return g.Reshape(onnx.Value(name), -1, 1) }
	old, oldV, adv, ret, mask := col(OldLogProbsInput), col(OldValuesInput), col(AdvantagesInput), col(ReturnsInput), col(LossMaskInput)
	coefs := g.Split(onnx.Value(PPOCoefsInput), 0, 1, 1, 1, 1)
	eps, epsV, vfCoef, entCoef := coefs[0], coefs[1], coefs[2], coefs[3]
	one := g.ScalarF32(1)
	// Sums over axis 0 of (N,1) columns are (1): the loss and the statistics
	// have their output shapes with no Reshape.
	n := g.Op("Max", []onnx.Value{g.ReduceSum(mask, false, 0), one}) // (1)
	inv := g.Div(mask, n)                                            // (N,1): mask/n
	clip := func(x, lo, hi onnx.Value) onnx.Value {
		return g.Op("Min", []onnx.Value{g.Op("Max", []onnx.Value{x, lo}), hi})
	}
	// Policy.
	lr := g.Mul(g.Sub(lp, old), mask)
	r := g.Exp(lr)
	pg1 := g.Mul(g.Neg(adv), r)
	pg2 := g.Mul(g.Neg(adv), clip(r, g.Sub(one, eps), g.Add(one, eps)))
	pgClipped := g.Op("Greater", []onnx.Value{pg2, pg1})
	pg := g.ReduceSum(g.Mul(g.Op("Max", []onnx.Value{pg1, pg2}), inv), false, 0)
	zero := g.ScalarF32(0)
	cl = g.Mul(g.Where(pgClipped, zero, pg1), inv) // d pg/d logp = −A·r
	// Value.
	vc := clip(val, g.Sub(oldV, epsV), g.Add(oldV, epsV))
	e1, e2 := g.Sub(val, ret), g.Sub(vc, ret)
	vf1, vf2 := g.Mul(e1, e1), g.Mul(e2, e2)
	vfClipped := g.Op("Greater", []onnx.Value{vf2, vf1})
	vf := g.Mul(g.ReduceSum(g.Mul(g.Op("Max", []onnx.Value{vf1, vf2}), inv), false, 0), g.ScalarF32(0.5))
	cv = g.Mul(g.Mul(g.Where(vfClipped, zero, e1), inv), vfCoef)
	// Entropy bonus.
	entMean := g.ReduceSum(g.Mul(ent, inv), false, 0)
	ce = g.Neg(g.Mul(inv, entCoef))
	loss := g.Sub(g.Add(pg, g.Mul(vfCoef, vf)), g.Mul(entCoef, entMean))
	g.Output(g.Rename(loss, LossOutput), LossOutput, onnx.Float, 1)
	frac := func(c onnx.Value) onnx.Value {
		return g.ReduceSum(g.Mul(g.Cast(c, onnx.Float), inv), false, 0)
	}
	approxKL := g.ReduceSum(g.Mul(g.Sub(g.Sub(r, one), lr), inv), false, 0)
	stats := g.Concat(0, pg, vf, entMean, frac(pgClipped), frac(vfClipped), approxKL) // (6)
	g.Output(g.Rename(stats, PPOStatsOutput), PPOStatsOutput, onnx.Float, 6)
	return cl, ce, cv
}

// logitStats adds the outputs logsumexp, argmax and max_logit of logits
// [B,V]. log Σ exp(l) = m + log Σ exp(l − m) with m the row's maximum: a
// tenth of the time of ReduceLogSumExp, whose CPU kernel is not vectorised.
func (b *builder) logitStats(logits onnx.Value) { logitStats(b.g, logits, b.rowSum, "batch") }

// logitStats is the statistics of logits (B,V), their sum taken by rowSum
// (one that is the same in any batch) and the outputs' batch dimension b
// (a name, or a size in a static-shape graph).
func logitStats(g *onnx.Graph, logits onnx.Value, rowSum func(onnx.Value) onnx.Value, b any) {
	top := g.ReduceMax(logits, true, 1)
	sum := rowSum(g.Exp(g.Sub(logits, top))) // (B,1)
	lse := g.Add(rowLog(g, sum), top)
	g.Output(g.Squeeze(lse, 1), LogSumExpOutput, onnx.Float, b)
	argmax := g.Op("ArgMax", []onnx.Value{logits}, onnx.AttrInt("axis", 1), onnx.AttrInt("keepdims", 0))
	g.Output(argmax, ArgMaxOutput, onnx.Int64, b)
	g.Output(g.Squeeze(top, 1), MaxLogitOutput, onnx.Float, b)
}

// rowLog is log x of a column x (N,1), the same in every batch. ONNX
// Runtime's Log runs in vector lanes on whole groups of entries and in
// scalar code on the rest, and the two round differently: a row's log-prob
// would depend on how many rows share its batch (a sharded generation
// would differ from the unsharded one). Spread over 16 columns, every
// entry takes the vector path.
func rowLog(g *onnx.Graph, x onnx.Value) onnx.Value {
	wide := g.Op("Expand", []onnx.Value{x, g.ConstI64(1, 16)})
	return g.Slice(g.Log(wide), []int64{0}, []int64{1}, []int64{1})
}

func zeroF32Attr() onnx.Attr { return onnx.AttrTensorF32("value", []float32{0}) }
