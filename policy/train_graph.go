package policy

import (
	"fmt"
	"math"

	"irl/onnx"
)

// Training graphs: the inference graph's own forward (graph.go), recording its
// intermediates in layerActs, a loss head, and a hand-derived backward, each
// piece paired with its forward as llm.c does: layerNorm/lnBackward,
// dense/linearBackward, GELU/geluBackward, applyRotary/rotaryBackward,
// layer/layerBackward. Parameters are graph inputs named as in the checkpoint; the
// graph's outputs are the loss, the head's extra outputs, and grad.<name> for
// every trainable parameter. Shapes in comments: B batch, S sequence, N = B·S,
// D width, F MLP width, H heads, hd head width, V vocabulary.

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
)

// TrainOptions configures a training graph.
type TrainOptions struct {
	Loss LossKind
	// UnfrozenLayers is how many top layers get gradients, with the final
	// layer norm and the output head (and the value head). Negative, or at
	// least NumLayers, trains everything, embeddings included. No backward is
	// built below the lowest unfrozen layer.
	UnfrozenLayers int
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
	if loss == LogProb {
		specs = append(specs, ParamSpec{ValueHeadWeight, []int{1, c.HiddenSize}}, ParamSpec{ValueHeadBias, []int{1}})
	}
	return specs
}

// tg carries one training graph's state.
type tg struct {
	g      *onnx.Graph
	c      Config
	params map[string]onnx.Value
	grads  map[string]onnx.Value
}

func (t *tg) p(name string) onnx.Value {
	v, ok := t.params[name]
	if !ok {
		panic("policy: no parameter " + name)
	}
	return v
}

// addGrad accumulates a gradient (a parameter can receive several, e.g. tied
// embeddings).
func (t *tg) addGrad(name string, d onnx.Value) {
	if old, ok := t.grads[name]; ok {
		d = t.g.Add(old, d)
	}
	t.grads[name] = d
}

// BuildTrain builds a training graph for configuration c.
func BuildTrain(c Config, o TrainOptions) (*TrainGraph, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := onnx.NewGraph("gpt_neox_train")
	t := &tg{g: g, c: c, params: map[string]onnx.Value{}, grads: map[string]onnx.Value{}}
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
	default:
		return nil, fmt.Errorf("policy: unknown loss %d", o.Loss)
	}
	tgraph.Params = TrainParamSpecs(c, o.Loss)
	for _, s := range tgraph.Params {
		dims := make([]any, len(s.Shape))
		for i, d := range s.Shape {
			dims[i] = d
		}
		t.params[s.Name] = g.Input(s.Name, onnx.Float, dims...)
		tgraph.Inputs = append(tgraph.Inputs, s.Name)
	}

	// Forward: the inference graph's own blocks, recording what the backward
	// needs; its weights are the parameter inputs declared above.
	b := &builder{g: g, m: &Model{Config: c}, weights: t.params}
	x := g.Gather(t.p("gpt_neox.embed_in.weight"), ids, 0) // (B,S,D)
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
	hidden := t.flat(b.layerNorm(x, "gpt_neox.final_layer_norm", &fln)) // (N,D)
	outW := "embed_out.weight"
	if c.TieEmbeddings {
		outW = "gpt_neox.embed_in.weight"
	}
	logits := g.Gemm(hidden, t.p(outW), "", false, true) // (N,V)

	var dlogits, dhidden onnx.Value
	switch o.Loss {
	case CrossEntropy:
		loss, dl := t.crossEntropy(logits)
		g.Output(loss, LossOutput, onnx.Float, 1)
		tgraph.Outputs = append(tgraph.Outputs, LossOutput)
		dlogits = dl
	case LogProb:
		var outs []string
		dlogits, dhidden, outs = t.logProbHead(logits, hidden, shape)
		tgraph.Outputs = append(tgraph.Outputs, outs...)
	}

	// Backward.
	t.addGrad(outW, g.Gemm(dlogits, hidden, "", true, false)) // (V,D)
	dh := g.MatMul(dlogits, t.p(outW))                        // (N,D)
	if dhidden != "" {
		dh = g.Add(dh, dhidden)
	}
	dx := t.lnBackward(fln, dh, "gpt_neox.final_layer_norm")
	for l := L - 1; l >= lowest; l-- {
		g.Scope = fmt.Sprintf("layer%d_back", l)
		dx = t.layerBackward(acts[l], dx, l, shape, cos, sin, l > lowest || trainEmb)
	}
	g.Scope = ""
	if trainEmb {
		// dE[v] = Σ over positions with id v of dx: a scatter-add into zeros.
		zeros := g.Op("ConstantOfShape", []onnx.Value{g.Shape(t.p("gpt_neox.embed_in.weight"))}, zeroF32Attr())
		idx := g.Reshape(ids, -1, 1)
		t.addGrad("gpt_neox.embed_in.weight", g.Op("ScatterND", []onnx.Value{zeros, idx, dx}, onnx.AttrString("reduction", "add")))
	}

	for _, s := range tgraph.Params {
		d, ok := t.grads[s.Name]
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

// flat views a recorded activation (B,S,W) as (N,W), as the backward works.
func (t *tg) flat(v onnx.Value) onnx.Value {
	return t.g.Op("Flatten", []onnx.Value{v}, onnx.AttrInt("axis", 2))
}

// lnBackward, with xhat = (x − mean)·rstd from the forward's statistics:
// dw = Σ dout·xhat, db = Σ dout, and
// dx = rstd · (dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) with dxhat = dout·w.
func (t *tg) lnBackward(a *lnActs, dout onnx.Value, prefix string) onnx.Value {
	g := t.g
	rstd := t.flat(a.rstd)
	xhat := g.Mul(g.Sub(t.flat(a.x), t.flat(a.mean)), rstd) // (N,D)
	t.addGrad(prefix+".weight", g.ReduceSum(g.Mul(dout, xhat), false, 0))
	t.addGrad(prefix+".bias", g.ReduceSum(dout, false, 0))
	dxhat := g.Mul(dout, t.p(prefix+".weight"))
	m1 := g.ReduceMean(dxhat, true, -1)
	m2 := g.ReduceMean(g.Mul(dxhat, xhat), true, -1)
	return g.Mul(g.Sub(g.Sub(dxhat, m1), g.Mul(xhat, m2)), rstd)
}

// linearBackward: dW = dyᵀ·x, db = Σ dy, dx = dy·W.
func (t *tg) linearBackward(x, dy onnx.Value, prefix string, needDx bool) onnx.Value {
	g := t.g
	t.addGrad(prefix+".weight", g.Gemm(dy, x, "", true, false))
	t.addGrad(prefix+".bias", g.ReduceSum(dy, false, 0))
	if !needDx {
		return ""
	}
	return g.MatMul(dy, t.p(prefix+".weight"))
}

// geluBackward: d/du [u·Φ(u)] = Φ(u) + u·φ(u).
func (t *tg) geluBackward(u, dy onnx.Value) onnx.Value {
	g := t.g
	phi := g.Mul(g.Add(g.Erf(g.Mul(u, g.ScalarF32(float32(1/math.Sqrt2)))), g.ScalarF32(1)), g.ScalarF32(0.5))
	pdf := g.Mul(g.Exp(g.Mul(g.Mul(u, u), g.ScalarF32(-0.5))), g.ScalarF32(float32(1/math.Sqrt(2*math.Pi))))
	return g.Mul(dy, g.Add(phi, g.Mul(u, pdf)))
}

// rotaryBackward undoes the rotation's Jacobian: for y1 = x1·c − x2·s,
// y2 = x2·c + x1·s, dx1 = dy1·c + dy2·s and dx2 = dy2·c − dy1·s.
func (t *tg) rotaryBackward(dy, cos, sin onnx.Value) onnx.Value {
	c := t.c
	r, hd := c.RotaryDims(), c.HeadDim()
	if r == 0 {
		return dy
	}
	g := t.g
	dr, dp := dy, onnx.Value("")
	if r < hd {
		parts := g.Split(dy, 3, int64(r), int64(hd-r))
		dr, dp = parts[0], parts[1]
	}
	h := g.Split(dr, 3, int64(r/2), int64(r/2))
	rotT := g.Concat(3, h[1], g.Neg(h[0]))
	dx := g.Add(g.Mul(dr, cos), g.Mul(rotT, sin))
	if dp != "" {
		dx = g.Concat(3, dx, dp)
	}
	return dx
}

// layerBackward returns d(layer input) given d(layer output); needDx false
// skips the input gradient of the lowest trained layer.
func (t *tg) layerBackward(a *layerActs, dy onnx.Value, l int, shape, cos, sin onnx.Value, needDx bool) onnx.Value {
	g, c := t.g, t.c
	pre := fmt.Sprintf("gpt_neox.layers.%d.", l)
	// MLP.
	dgelu := t.linearBackward(t.flat(a.gelu), dy, pre+"mlp.dense_4h_to_h", true)
	du := t.geluBackward(t.flat(a.u), dgelu)
	dln2 := t.linearBackward(t.flat(a.ln2.out), du, pre+"mlp.dense_h_to_4h", true)
	dmlpIn := t.lnBackward(a.ln2, dln2, pre+"post_attention_layernorm")
	// Residuals: parallel y = x + attn + mlp(x); sequential h = x + attn,
	// y = h + mlp(h).
	dattn := dy
	dres := g.Add(dy, dmlpIn)
	if !c.ParallelResidual {
		dattn = dres
	}
	// Attention.
	hd := c.HeadDim()
	dctx := t.linearBackward(t.flat(a.ctx), dattn, pre+"attention.dense", true) // (N,D)
	bsh := g.Concat(0, shape, g.ConstI64(int64(c.NumHeads), int64(hd)))
	dctx4 := g.Transpose(g.ReshapeTo(dctx, bsh), 0, 2, 1, 3)           // (B,H,S,hd)
	dp := g.MatMul(dctx4, g.Transpose(a.v, 0, 1, 3, 2))                // (B,H,S,S)
	dv := g.MatMul(g.Transpose(a.p, 0, 1, 3, 2), dctx4)                // (B,H,S,hd)
	ds := g.Mul(a.p, g.Sub(dp, g.ReduceSum(g.Mul(dp, a.p), true, -1))) // softmax backward
	scale := g.ScalarF32(float32(1 / math.Sqrt(float64(hd))))
	dq := g.Mul(t.rotaryBackward(g.MatMul(ds, a.k), cos, sin), scale)            // q was scaled after rotation
	dk := t.rotaryBackward(g.MatMul(g.Transpose(ds, 0, 1, 3, 2), a.q), cos, sin) // a.q is already scaled
	dqkv := g.Concat(3, dq, dk, dv)                                              // (B,H,S,3hd)
	dqkv = g.Reshape(g.Transpose(dqkv, 0, 2, 1, 3), -1, int64(3*c.HiddenSize))   // (N,3D)
	dln1 := t.linearBackward(t.flat(a.ln1.out), dqkv, pre+"attention.query_key_value", true)
	dx1 := t.lnBackward(a.ln1, dln1, pre+"input_layernorm")
	if !needDx {
		return ""
	}
	// Parallel: dx = dy + dmlpIn + dx1. Sequential: dh = dy + dmlpIn, dx = dh + dx1.
	return g.Add(dres, dx1)
}

// crossEntropy is the CE head: loss = Σ w·(logsumexp(z) − z[label]) / Σ w and
// dlogits = (softmax(z) − onehot(label)) · w / Σ w.
func (t *tg) crossEntropy(logits onnx.Value) (loss, dlogits onnx.Value) {
	g := t.g
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

// logProbHead: with z = logits/T, p = softmax(z): logprob = log p[token],
// entropy = −Σ p log p, value = h·wᵥᵀ + bᵥ. Its loss is Σ cₗ·logprob + cₑ·entropy
// + cᵥ·value; dz = cₗ(onehot − p) − cₑ·p(log p + H), dlogits = dz/T.
func (t *tg) logProbHead(logits, hidden, shape onnx.Value) (dlogits, dhidden onnx.Value, outputs []string) {
	g := t.g
	temp := onnx.Value(TemperatureInput)
	z := g.Div(logits, temp)
	lsm := g.Op("LogSoftmax", []onnx.Value{z}, onnx.AttrInt("axis", -1)) // (N,V)
	p := g.Exp(lsm)
	tokens := g.Reshape(onnx.Value(TokensInput), -1, 1)
	lp := g.Op("GatherElements", []onnx.Value{lsm, tokens}, onnx.AttrInt("axis", 1)) // (N,1)
	ent := g.Neg(g.ReduceSum(g.Mul(p, lsm), true, 1))                                // (N,1)
	val := g.Gemm(hidden, t.p(ValueHeadWeight), t.p(ValueHeadBias), false, true)     // (N,1)
	for _, o := range []struct {
		v    onnx.Value
		name string
	}{{lp, LogProbsOutput}, {ent, EntropyOutput}, {val, ValuesOutput}} {
		g.Output(g.ReshapeTo(o.v, shape), o.name, onnx.Float, "batch", "seq")
		outputs = append(outputs, o.name)
	}
	cl := g.Reshape(onnx.Value(LogProbsCotangent), -1, 1)
	ce := g.Reshape(onnx.Value(EntropyCotangent), -1, 1)
	cv := g.Reshape(onnx.Value(ValuesCotangent), -1, 1)
	loss := g.ReduceSum(g.Add(g.Add(g.Mul(cl, lp), g.Mul(ce, ent)), g.Mul(cv, val)), false, 0, 1)
	g.Output(g.Reshape(loss, 1), LossOutput, onnx.Float, 1)
	outputs = append([]string{LossOutput}, outputs...)
	// −p·(cₗ + cₑ(log p + H)), then cₗ added at each token.
	dz := addAt(g, g.Neg(g.Mul(p, g.Add(cl, g.Mul(ce, g.Add(lsm, ent))))), tokens, cl)
	dlogits = g.Div(dz, temp)
	t.addGrad(ValueHeadWeight, g.Gemm(cv, hidden, "", true, false)) // (1,D)
	t.addGrad(ValueHeadBias, g.ReduceSum(cv, false, 0))
	dhidden = g.MatMul(cv, t.p(ValueHeadWeight)) // (N,D)
	return dlogits, dhidden, outputs
}
