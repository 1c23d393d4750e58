package policy

import (
	"fmt"

	"irl/onnx"
)

// Training graphs: the inference graph's own forward, recording its
// intermediates, a loss head, and the hand-derived backward of every block
// (blocks.go pairs each forward with its backward). Parameters are graph
// inputs named as in the checkpoint; the graph's outputs are the loss, the
// head's extra outputs, and grad.<name> for every trainable parameter.
// Shapes in comments: B batch, S sequence, N = B·S, D width, V vocabulary.

// Training-graph input and output names.
const (
	// LabelsInput holds each position's target token, I64 [B,S].
	LabelsInput = "labels"
	// LossMaskInput weighs each position's loss, F32 [B,S].
	LossMaskInput = "loss_mask"
	// LossOutput is the scalar loss, F32 [1].
	LossOutput = "loss"
	// TokensInput holds the tokens whose log-probs the LogProb head returns, I64 [B,S].
	TokensInput = "tokens"
	// TemperatureInput is the LogProb head's temperature, F32 [1].
	TemperatureInput = "temperature"
	// LogProbsOutput, EntropyOutput and ValuesOutput are the LogProb head's
	// per-position outputs, F32 [B,S].
	LogProbsOutput = "logprobs"
	EntropyOutput  = "entropy"
	ValuesOutput   = "values"
	// The LogProb head's loss is Σ (c_lp·logprob + c_ent·entropy + c_v·value)
	// with these cotangents, F32 [B,S], supplied by the caller.
	LogProbsCotangent = "d_logprobs"
	EntropyCotangent  = "d_entropy"
	ValuesCotangent   = "d_values"
)

// Value-head parameter names (only in graphs with the LogProb head).
const (
	ValueHeadWeight = "value_head.weight" // [1,D]
	ValueHeadBias   = "value_head.bias"   // [1]
)

// GradName is the output name of a parameter's gradient.
func GradName(param string) string { return "grad." + param }

// LossKind picks the loss head of a training graph.
type LossKind int

const (
	// CrossEntropy is the mean next-token cross-entropy over positions
	// weighted by loss_mask: Σ mask·(−log p(label)) / Σ mask.
	CrossEntropy LossKind = iota
	// LogProb returns per-token log-probs of given tokens under
	// softmax(logits/temperature), the entropy of that distribution, and a
	// scalar value head's output; its loss is the cotangent-weighted sum of
	// the three, so a caller (PPO) computes any loss of them in Go, passes
	// dLoss/d(output) as cotangents, and gets dLoss/dθ.
	LogProb
	// PPO is the LogProb head with PPO's clipped loss computed in the graph
	// (TRLx's formulas; see ppo.Loss, its reference in Go), so one run gives
	// the new log-probs and the gradient: the cotangents depend on the new
	// log-probs, which a Go-side loss would need a second run to know.
	PPO
)

// PPO head inputs, F32 [B,S] unless noted: the rollout's log-probs and
// values, the (whitened) advantages and the returns at each scored position,
// the mask of positions that count, and the coefficients F32 [4]: cliprange,
// cliprange_value, vf_coef, ent_coef.
const (
	OldLogProbsInput = "old_logprobs"
	OldValuesInput   = "old_values"
	AdvantagesInput  = "advantages"
	ReturnsInput     = "returns"
	PPOCoefsInput    = "ppo_coefs"
	// PPOStatsOutput is F32 [6]: policy loss, value loss, mean entropy,
	// policy clip fraction, value clip fraction, approximate KL.
	PPOStatsOutput = "ppo_stats"
)

// TrainOptions configures a training graph.
type TrainOptions struct {
	Loss LossKind
	// UnfrozenLayers is how many top layers get gradients, with the final
	// layer norm and the output head (and the value head). Negative, or at
	// least NumLayers, trains everything, embeddings included. No backward is
	// built below the lowest unfrozen layer.
	UnfrozenLayers int
	// Params is the store a Trainer reads the weights from and whose memory
	// its gradients live in, shared with the sessions that read or update
	// them (see ParamStore); nil gives the Trainer a store of its own. It
	// takes no part in the graph.
	Params *ParamStore
}

// TrainGraph is a built training graph.
type TrainGraph struct {
	Graph *onnx.Graph
	// Loss is the graph's loss head.
	Loss LossKind
	// Inputs lists data inputs then parameter inputs, in order.
	Inputs []string
	// Params lists every parameter input (all parameters; frozen ones too).
	Params []ParamSpec
	// Trainable lists the parameters that get a gradient output.
	Trainable []string
	// Outputs lists the loss, any head outputs, then grad.<name> in Trainable's order.
	Outputs []string
}

// TrainParamSpecs lists the parameters of a training graph: the model's, plus
// the value head's for the LogProb loss.
func TrainParamSpecs(c Config, loss LossKind) []ParamSpec {
	specs := c.ParamSpecs()
	if loss == LogProb || loss == PPO {
		specs = append(specs, ParamSpec{ValueHeadWeight, []int{1, c.HiddenSize}}, ParamSpec{ValueHeadBias, []int{1}})
	}
	return specs
}

// BuildTrain builds a training graph for configuration c.
func BuildTrain(c Config, o TrainOptions) (*TrainGraph, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := onnx.NewGraph("gpt_neox_train")
	b := newBuilder(g, c, nil)
	L := c.NumLayers
	lowest := 0
	if o.UnfrozenLayers >= 0 && o.UnfrozenLayers < L {
		lowest = L - o.UnfrozenLayers
	}
	trainEmb := lowest == 0

	tgraph := &TrainGraph{Graph: g, Loss: o.Loss}
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	mask := g.Input(AttentionMask, onnx.Int64, "batch", "seq")
	pos := g.Input(PositionIDs, onnx.Int64, "batch", "seq")
	tgraph.Inputs = []string{InputIDs, AttentionMask, PositionIDs}
	switch o.Loss {
	case CrossEntropy:
		g.Input(LabelsInput, onnx.Int64, "batch", "seq")
		g.Input(LossMaskInput, onnx.Float, "batch", "seq")
		tgraph.Inputs = append(tgraph.Inputs, LabelsInput, LossMaskInput)
	case LogProb:
		g.Input(TokensInput, onnx.Int64, "batch", "seq")
		g.Input(TemperatureInput, onnx.Float, 1)
		for _, n := range []string{LogProbsCotangent, EntropyCotangent, ValuesCotangent} {
			g.Input(n, onnx.Float, "batch", "seq")
		}
		tgraph.Inputs = append(tgraph.Inputs, TokensInput, TemperatureInput, LogProbsCotangent, EntropyCotangent, ValuesCotangent)
	case PPO:
		g.Input(TokensInput, onnx.Int64, "batch", "seq")
		g.Input(TemperatureInput, onnx.Float, 1)
		for _, n := range []string{OldLogProbsInput, OldValuesInput, AdvantagesInput, ReturnsInput, LossMaskInput} {
			g.Input(n, onnx.Float, "batch", "seq")
		}
		g.Input(PPOCoefsInput, onnx.Float, 4)
		tgraph.Inputs = append(tgraph.Inputs, TokensInput, TemperatureInput, OldLogProbsInput, OldValuesInput, AdvantagesInput, ReturnsInput, LossMaskInput, PPOCoefsInput)
	default:
		return nil, fmt.Errorf("policy: unknown loss %d", o.Loss)
	}
	tgraph.Params = TrainParamSpecs(c, o.Loss)
	for _, s := range tgraph.Params {
		dims := make([]any, len(s.Shape))
		for i, d := range s.Shape {
			dims[i] = d
		}
		b.weights[s.Name] = g.Input(s.Name, onnx.Float, dims...)
		tgraph.Inputs = append(tgraph.Inputs, s.Name)
	}

	// Forward: the inference graph's own blocks, recording what the backward
	// needs; its weights are the parameter inputs declared above.
	x := g.Gather(b.weight("gpt_neox.embed_in.weight"), ids, 0) // (B,S,D)
	bias := b.maskBias(ids, mask)
	cos, sin := b.rotary(pos)
	shape := g.Shape(ids) // [B,S]
	acts := make([]*layerActs, L)
	for l := 0; l < L; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		acts[l] = &layerActs{}
		x, _, _ = b.layer(x, l, bias, cos, sin, "", "", acts[l])
	}
	g.Scope = "head"
	var fln *lnActs
	hidden := b.flat(b.layerNorm(x, "gpt_neox.final_layer_norm", &fln)) // (N,D)
	outW := b.outName()
	logits := b.logits(hidden) // (N,V)

	var dlogits, dhidden onnx.Value
	switch o.Loss {
	case CrossEntropy:
		loss, dl := b.crossEntropy(logits)
		g.Output(loss, LossOutput, onnx.Float, 1)
		tgraph.Outputs = append(tgraph.Outputs, LossOutput)
		dlogits = dl
	case LogProb:
		var outs []string
		dlogits, dhidden, outs = b.logProbHead(logits, hidden, shape)
		tgraph.Outputs = append(tgraph.Outputs, outs...)
	case PPO:
		var outs []string
		dlogits, dhidden, outs = b.ppoHead(logits, hidden, shape)
		tgraph.Outputs = append(tgraph.Outputs, outs...)
	}

	// Backward.
	b.addGrad(outW, g.Gemm(dlogits, hidden, "", true, false)) // (V,D)
	dh := g.MatMul(dlogits, b.weight(outW))                   // (N,D)
	if dhidden != "" {
		dh = g.Add(dh, dhidden)
	}
	dx := b.layerNormBackward(fln, dh, "gpt_neox.final_layer_norm")
	for l := L - 1; l >= lowest; l-- {
		g.Scope = fmt.Sprintf("layer%d_back", l)
		dx = b.layerBackward(acts[l], dx, l, shape, cos, sin, l > lowest || trainEmb)
	}
	g.Scope = ""
	if trainEmb {
		// dE[v] = Σ over positions with id v of dx: a scatter-add into zeros.
		zeros := g.Op("ConstantOfShape", []onnx.Value{g.Shape(b.weight("gpt_neox.embed_in.weight"))}, zeroF32Attr())
		idx := g.Reshape(ids, -1, 1)
		b.addGrad("gpt_neox.embed_in.weight", g.Op("ScatterND", []onnx.Value{zeros, idx, dx}, onnx.AttrString("reduction", "add")))
	}

	for _, s := range tgraph.Params {
		d, ok := b.grads[s.Name]
		if !ok {
			continue
		}
		dims := make([]any, len(s.Shape))
		for i, v := range s.Shape {
			dims[i] = v
		}
		g.Output(g.Reshape(d, dims64(s.Shape)...), GradName(s.Name), onnx.Float, dims...)
		tgraph.Trainable = append(tgraph.Trainable, s.Name)
		tgraph.Outputs = append(tgraph.Outputs, GradName(s.Name))
	}
	return tgraph, nil
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, s := range shape {
		d[i] = int64(s)
	}
	return d
}

func zeroF32Attr() onnx.Attr { return onnx.AttrTensorF32("value", []float32{0}) }

// The heads on the final hidden state (N,D): each forward beside the
// backward the training graph takes through it.

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
