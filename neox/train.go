package neox

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

// TrainOptions configures a training graph.
type TrainOptions struct {
	Loss LossKind
	// UnfrozenLayers is how many top layers get gradients, with the final
	// layer norm and the output head (and the value head). Negative, or at
	// least NumLayers, trains everything, embeddings included. No backward is
	// built below the lowest unfrozen layer, unless TrainEmbeddings.
	UnfrozenLayers int
	// TrainEmbeddings also trains the input embeddings
	// (gpt_neox.embed_in.weight) when UnfrozenLayers leaves layers frozen,
	// as TRLx's fork at 126c8f0 does (its freeze_bottom_causal_layers
	// freezes the lower blocks only). The backward then goes on through
	// the frozen layers down to the embedding, computing each one's d(x)
	// and none of its parameters' gradients. With every layer unfrozen the
	// embeddings train anyway.
	TrainEmbeddings bool
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
	return buildTrain(c, o, (*builder).lossHead)
}

// buildTrain builds a training graph with the loss head that head builds,
// so that a test can build one on other heads and compare.
func buildTrain(c Config, o TrainOptions, head headFunc) (*TrainGraph, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := onnx.NewGraph("gpt_neox_train")
	b := newBuilder(g, c, nil)
	// Activations stay flat (N,·) throughout: no reshapes around each dense
	// layer in the forward, no flattening again in the backward.
	b.flatActs = true
	L := c.NumLayers
	lowest := 0
	if o.UnfrozenLayers >= 0 && o.UnfrozenLayers < L {
		lowest = L - o.UnfrozenLayers
	}
	// The embeddings' gradient needs d(x) at the bottom of the stack: the
	// backward runs through every layer then, those below lowest frozen.
	trainEmb := lowest == 0 || o.TrainEmbeddings

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
		return nil, fmt.Errorf("neox: unknown loss %d", o.Loss)
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
	shape := g.Shape(ids) // [B,S]
	b.bs = shape
	x := b.embedFlat(ids) // (N,D)
	bias := b.maskBias(ids, mask)
	cos, sin := b.rotary(pos)
	acts := make([]*layerActs, L)
	for l := 0; l < L; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		acts[l] = &layerActs{}
		x, _, _ = b.layer(x, l, bias, cos, sin, "", "", acts[l])
	}
	g.Scope = "head"
	var fln *lnActs
	hidden := b.layerNorm(x, "gpt_neox.final_layer_norm", &fln) // (N,D)
	h := head(b, o.Loss, hidden, shape)
	tgraph.Outputs = append(tgraph.Outputs, h.outputs...)

	// Backward. dlogits = dz ⊙ rowScale (N,V) is never formed: the row
	// factor goes on the (N,D) side, dW = dzᵀ·(rowScale ⊙ hidden) and
	// d(hidden) = rowScale ⊙ (dz·W).
	outW := b.outName()
	hs := hidden
	if h.rowScale != "" {
		hs = g.Mul(hidden, h.rowScale)
	}
	b.addGrad(outW, g.Gemm(h.dz, hs, "", true, false)) // (V,D)
	dh := g.MatMul(h.dz, b.weight(outW))               // (N,D)
	if h.rowScale != "" {
		dh = g.Mul(dh, h.rowScale)
	}
	if h.dhidden != "" {
		dh = g.Add(dh, h.dhidden)
	}
	dx := b.layerNormBackward(fln, dh, "gpt_neox.final_layer_norm")
	bottom := lowest
	if trainEmb {
		bottom = 0
	}
	for l := L - 1; l >= bottom; l-- {
		g.Scope = fmt.Sprintf("layer%d_back", l)
		b.frozen = l < lowest
		dx = b.layerBackward(acts[l], dx, l, cos, sin, l > lowest || trainEmb)
	}
	b.frozen = false
	g.Scope = ""
	if trainEmb {
		// dE[v] = Σ over positions with id v of dx: a scatter-add into zeros.
		zeros := g.Op("ConstantOfShape", []onnx.Value{g.ConstI64(Dims64(b.shape("gpt_neox.embed_in.weight"))...)}, zeroF32Attr()) // (V,D)
		idx := g.Reshape(ids, -1, 1)
		b.addGrad("gpt_neox.embed_in.weight", g.Op("ScatterND", []onnx.Value{zeros, idx, dx}, onnx.AttrString("reduction", "add")))
	}

	// Every gradient has its parameter's shape already (a Gemm's (out,in), a
	// ReduceSum's (out), the scatter's (V,D)), so none is reshaped.
	for _, s := range tgraph.Params {
		d, ok := b.grads[s.Name]
		if !ok {
			continue
		}
		dims := make([]any, len(s.Shape))
		for i, v := range s.Shape {
			dims[i] = v
		}
		g.Output(d, GradName(s.Name), onnx.Float, dims...)
		tgraph.Trainable = append(tgraph.Trainable, s.Name)
		tgraph.Outputs = append(tgraph.Outputs, GradName(s.Name))
	}
	return tgraph, nil
}
