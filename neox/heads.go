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

// crossEntropy is the CE head: loss = Σ w·(logsumexp(z) − z[label]) / Σ w and
// dlogits = (softmax(z) − onehot(label)) · w / Σ w.
func (b *builder) crossEntropy(logits onnx.Value) (loss, dlogits onnx.Value) {
	g := b.g
	labels := g.Reshape(onnx.Value(LabelsInput), -1, 1) // (N,1)
	w := g.Reshape(onnx.Value(LossMaskInput), -1, 1)    // (N,1)
	wsum := g.Op("Max", []onnx.Value{g.ReduceSum(w, false, 0, 1), g.ScalarF32(1e-12)})
	lsm := g.Op("LogSoftmax", []onnx.Value{logits}, onnx.AttrInt("axis", -1)) // (N,V)
	picked := g.Op("GatherElements", []onnx.Value{lsm, labels}, onnx.AttrInt("axis", 1))
	loss = g.Reshape(g.Div(g.ReduceSum(g.Mul(g.Neg(picked), w), false, 0, 1), wsum), 1)
	// softmax·w/Σw, then −w/Σw added at each label: no [N,V] one-hot.
	scale := g.Div(w, wsum)
	dlogits = addAt(g, g.Mul(g.Exp(lsm), scale), labels, g.Neg(scale))
	return loss, dlogits
}

// addAt adds updates (N,1) to x (N,V) at column idx (N,1) of each row.
func addAt(g *onnx.Graph, x, idx, updates onnx.Value) onnx.Value {
	return g.Op("ScatterElements", []onnx.Value{x, idx, updates}, onnx.AttrInt("axis", 1), onnx.AttrString("reduction", "add"))
}

// tokenLogProbs is the LogProb head's forward: with z = logits/T and
// p = softmax(z), each position's log p[token] (N,1) and entropy
// −Σ p log p (N,1), and log p and p themselves (N,V) for the backward. The
// tokens and the temperature are the graph inputs TokensInput and
// TemperatureInput.
func (b *builder) tokenLogProbs(logits onnx.Value) (lsm, p, lp, ent onnx.Value) {
	g := b.g
	z := g.Div(logits, onnx.Value(TemperatureInput))
	lsm = g.Op("LogSoftmax", []onnx.Value{z}, onnx.AttrInt("axis", -1)) // (N,V)
	p = g.Exp(lsm)
	tokens := g.Reshape(onnx.Value(TokensInput), -1, 1)
	lp = g.Op("GatherElements", []onnx.Value{lsm, tokens}, onnx.AttrInt("axis", 1)) // (N,1)
	ent = g.Neg(g.ReduceSum(g.Mul(p, lsm), true, 1))                                // (N,1)
	return lsm, p, lp, ent
}

// value is the value head, hidden·wᵥᵀ + bᵥ (N,1).
func (b *builder) value(hidden onnx.Value) onnx.Value {
	return b.g.Gemm(hidden, b.weight(ValueHeadWeight), b.weight(ValueHeadBias), false, true)
}

// logProbHead outputs tokenLogProbs' log-probs and entropy and the value
// head's values, [B,S] each, and a loss Σ cₗ·logprob + cₑ·entropy + cᵥ·value
// with caller-supplied cotangents.
func (b *builder) logProbHead(logits, hidden, shape onnx.Value) (dlogits, dhidden onnx.Value, outputs []string) {
	g := b.g
	lsm, p, lp, ent := b.tokenLogProbs(logits)
	val := b.value(hidden)
	outputs = b.emitPerToken(shape, lp, ent, val)
	cl := g.Reshape(onnx.Value(LogProbsCotangent), -1, 1)
	ce := g.Reshape(onnx.Value(EntropyCotangent), -1, 1)
	cv := g.Reshape(onnx.Value(ValuesCotangent), -1, 1)
	loss := g.ReduceSum(g.Add(g.Add(g.Mul(cl, lp), g.Mul(ce, ent)), g.Mul(cv, val)), false, 0, 1)
	g.Output(g.Reshape(loss, 1), LossOutput, onnx.Float, 1)
	dlogits, dhidden = b.perTokenBackward(lsm, p, ent, hidden, cl, ce, cv)
	return dlogits, dhidden, append([]string{LossOutput}, outputs...)
}

// emitPerToken outputs log-probs, entropies and values (N,1) as [B,S].
func (b *builder) emitPerToken(shape, lp, ent, val onnx.Value) []string {
	var outputs []string
	for _, o := range []struct {
		v    onnx.Value
		name string
	}{{lp, LogProbsOutput}, {ent, EntropyOutput}, {val, ValuesOutput}} {
		b.g.Output(b.g.ReshapeTo(o.v, shape), o.name, onnx.Float, "batch", "seq")
		outputs = append(outputs, o.name)
	}
	return outputs
}

// perTokenBackward is the backward of tokenLogProbs and value for cotangents
// cₗ, cₑ, cᵥ (N,1): dz = cₗ(onehot − p) − cₑ·p(log p + H), dlogits = dz/T,
// and the value head's gradients and its share of d(hidden).
func (b *builder) perTokenBackward(lsm, p, ent, hidden, cl, ce, cv onnx.Value) (dlogits, dhidden onnx.Value) {
	g := b.g
	// −p·(cₗ + cₑ(log p + H)), then cₗ added at each token.
	tokens := g.Reshape(onnx.Value(TokensInput), -1, 1)
	dz := addAt(g, g.Neg(g.Mul(p, g.Add(cl, g.Mul(ce, g.Add(lsm, ent))))), tokens, cl)
	dlogits = g.Div(dz, onnx.Value(TemperatureInput))
	b.addGrad(ValueHeadWeight, g.Gemm(cv, hidden, "", true, false)) // (1,D)
	b.addGrad(ValueHeadBias, g.ReduceSum(cv, false, 0))
	dhidden = g.MatMul(cv, b.weight(ValueHeadWeight)) // (N,D)
	return dlogits, dhidden
}

// ppoHead is PPO's clipped loss on the per-token outputs, as TRLx's
// PPOConfig.loss, with an entropy bonus, over n = Σ mask positions:
//
//	r = exp(logp − old), pg = Σ max(−A·r, −A·clip(r, 1±ε))·mask / n
//	vf = ½ Σ max((V − R)², (clip(V, old_V ± ε_v) − R)²)·mask / n
//	loss = pg + vf_coef·vf − ent_coef·Σ H·mask / n
//
// Its cotangents take the larger branch's gradient; an active clip has none,
// and the larger branch is the clipped one exactly when its clip is active.
// ppo.Loss computes the same in Go and tests hold the two equal.
func (b *builder) ppoHead(logits, hidden, shape onnx.Value) (dlogits, dhidden onnx.Value, outputs []string) {
	g := b.g
	lsm, p, lp, ent := b.tokenLogProbs(logits)
	val := b.value(hidden)
	outputs = b.emitPerToken(shape, lp, ent, val)
	col := func(name string) onnx.Value { return g.Reshape(onnx.Value(name), -1, 1) }
	old, oldV, adv, ret, mask := col(OldLogProbsInput), col(OldValuesInput), col(AdvantagesInput), col(ReturnsInput), col(LossMaskInput)
	coefs := g.Split(onnx.Value(PPOCoefsInput), 0, 1, 1, 1, 1)
	eps, epsV, vfCoef, entCoef := coefs[0], coefs[1], coefs[2], coefs[3]
	one := g.ScalarF32(1)
	n := g.Op("Max", []onnx.Value{g.ReduceSum(mask, false, 0, 1), one})
	inv := g.Div(mask, n) // (N,1): mask/n
	clip := func(x, lo, hi onnx.Value) onnx.Value {
		return g.Op("Min", []onnx.Value{g.Op("Max", []onnx.Value{x, lo}), hi})
	}
	// Policy.
	lr := g.Mul(g.Sub(lp, old), mask)
	r := g.Exp(lr)
	pg1 := g.Mul(g.Neg(adv), r)
	pg2 := g.Mul(g.Neg(adv), clip(r, g.Sub(one, eps), g.Add(one, eps)))
	pgClipped := g.Op("Greater", []onnx.Value{pg2, pg1})
	pg := g.ReduceSum(g.Mul(g.Op("Max", []onnx.Value{pg1, pg2}), inv), false, 0, 1)
	zero := g.ScalarF32(0)
	cl := g.Mul(g.Where(pgClipped, zero, pg1), inv) // d pg/d logp = −A·r
	// Value.
	vc := clip(val, g.Sub(oldV, epsV), g.Add(oldV, epsV))
	e1, e2 := g.Sub(val, ret), g.Sub(vc, ret)
	vf1, vf2 := g.Mul(e1, e1), g.Mul(e2, e2)
	vfClipped := g.Op("Greater", []onnx.Value{vf2, vf1})
	vf := g.Mul(g.ReduceSum(g.Mul(g.Op("Max", []onnx.Value{vf1, vf2}), inv), false, 0, 1), g.ScalarF32(0.5))
	cv := g.Mul(g.Mul(g.Where(vfClipped, zero, e1), inv), vfCoef)
	// Entropy bonus.
	entMean := g.ReduceSum(g.Mul(ent, inv), false, 0, 1)
	ce := g.Neg(g.Mul(inv, entCoef))
	loss := g.Sub(g.Add(pg, g.Mul(vfCoef, vf)), g.Mul(entCoef, entMean))
	g.Output(g.Reshape(loss, 1), LossOutput, onnx.Float, 1)
	frac := func(c onnx.Value) onnx.Value {
		return g.ReduceSum(g.Mul(g.Cast(c, onnx.Float), inv), false, 0, 1)
	}
	approxKL := g.ReduceSum(g.Mul(g.Sub(g.Sub(r, one), lr), inv), false, 0, 1)
	stats := g.Concat(0, g.Reshape(pg, 1), g.Reshape(vf, 1), g.Reshape(entMean, 1), g.Reshape(frac(pgClipped), 1), g.Reshape(frac(vfClipped), 1), g.Reshape(approxKL, 1))
	g.Output(stats, PPOStatsOutput, onnx.Float, 6)
	dlogits, dhidden = b.perTokenBackward(lsm, p, ent, hidden, cl, ce, cv)
	return dlogits, dhidden, append([]string{LossOutput}, append(outputs, PPOStatsOutput)...)
}

// logitStats adds the outputs logsumexp, argmax and max_logit of logits
// [B,V]. log Σ exp(l) = m + log Σ exp(l − m) with m the row's maximum: a
// tenth of the time of ReduceLogSumExp, whose CPU kernel is not vectorised.
func logitStats(g *onnx.Graph, logits onnx.Value) {
	top := g.ReduceMax(logits, true, 1)
	sum := g.ReduceSum(g.Exp(g.Sub(logits, top)), true, 1) // (B,1)
	lse := g.Add(rowLog(g, sum), top)
	g.Output(g.Squeeze(lse, 1), LogSumExpOutput, onnx.Float, "batch")
	argmax := g.Op("ArgMax", []onnx.Value{logits}, onnx.AttrInt("axis", 1), onnx.AttrInt("keepdims", 0))
	g.Output(argmax, ArgMaxOutput, onnx.Int64, "batch")
	g.Output(g.Squeeze(top, 1), MaxLogitOutput, onnx.Float, "batch")
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
