package neox

import (
	"fmt"

	"irl/onnx"
)

// ForwardOptions chooses what a forward graph computes.
type ForwardOptions struct {
	// Hidden lists the hidden-state indices (0…NumLayers) to output.
	Hidden []int
	// Logits adds the logits output.
	Logits bool
	// Pool, if set, replaces each hidden-state output by its pooled rows,
	// F32 [B,D], named HiddenOutput(i); see Pooling.
	Pool Pooling
	// Pools, instead of Pool, pools each hidden-state output each of these
	// ways, concatenated in order: F32 [B, len(Pools)·D], named
	// HiddenOutput(i). One pass then gives every feature choice of the
	// layers it computes.
	Pools []Pooling
	// LogProbs adds the inputs TokensInput (I64 [B,S]) and TemperatureInput
	// (F32 [1]) and the outputs LogProbsOutput and EntropyOutput, F32
	// [B,S]: at each position, log p(token) and the entropy under
	// softmax(logits/T), computed in the graph as the training graph's
	// LogProb head computes them, so no [B,S,V] logits leave ONNX Runtime.
	LogProbs bool
	// Values adds ValuesOutput, F32 [B,S]: the value head (ValueHeadWeight,
	// ValueHeadBias, which the model must hold) on the last hidden state.
	Values bool
	// ParamInputs makes the weights graph inputs, as in a training graph,
	// instead of initializers that ONNX Runtime copies when the session
	// opens: a session then reads them at every run, from where the
	// sessions that update them keep them, so it sees every optimiser
	// update (PPO's rollouts need that).
	ParamInputs bool
	// Standard builds the graph from standard ONNX operators only, for
	// runtimes without ONNX Runtime's contrib operators (com.microsoft). By
	// default the graph uses ONNX Runtime's fused kernels where Fused
	// allows them, which are faster and treat each row as one run of real
	// tokens (FusedFits); a batch that is not so needs a standard graph.
	Standard bool
	// Device is where the graph's session will run: the fused kernels run
	// on CPU only (see Fused).
	Device onnx.Device
}

// Poolings is the poolings each hidden-state output takes: Pools, or Pool
// alone; none for whole hidden states.
func (o ForwardOptions) Poolings() []Pooling {
	if len(o.Pools) > 0 {
		return o.Pools
	}
	if o.Pool != NoPool {
		return []Pooling{o.Pool}
	}
	return nil
}

// ForwardGraph is a built forward graph with its input and output names.
type ForwardGraph struct {
	Graph   *onnx.Graph
	Inputs  []string
	Outputs []string
	// Params lists the parameter inputs, in Inputs' order, when the graph
	// was built with ParamInputs.
	Params []ParamSpec
	// Fused tells that the graph uses ONNX Runtime's fused kernels: it then
	// takes only batches for which FusedFits holds.
	Fused bool
}

// BuildForward builds the inference graph with the weights as initializers.
// Only the layers that the requested outputs need are built: asking for
// hidden state k < NumLayers alone computes k layers, no final norm, no logits.
func BuildForward(m *Model, o ForwardOptions) (*ForwardGraph, error) {
	c := m.Config
	if len(o.Hidden) == 0 && !o.Logits && !o.LogProbs && !o.Values {
		return nil, fmt.Errorf("neox: forward graph with no outputs")
	}
	if o.Pool != NoPool && len(o.Pools) > 0 {
		return nil, fmt.Errorf("neox: give Pool or Pools, not both")
	}
	if (o.Logits || o.LogProbs || o.Values) && len(o.Poolings()) > 0 {
		return nil, fmt.Errorf("neox: pooling applies to hidden states only, not logits")
	}
	if o.Values && (m.Params[ValueHeadWeight] == nil || m.Params[ValueHeadBias] == nil) {
		return nil, fmt.Errorf("neox: the model has no value head (%s, %s)", ValueHeadWeight, ValueHeadBias)
	}
	want := map[int]bool{}
	depth := 0
	for _, h := range o.Hidden {
		if h < 0 || h > c.NumLayers {
			return nil, fmt.Errorf("neox: hidden state %d out of range 0…%d", h, c.NumLayers)
		}
		want[h] = true
		depth = max(depth, h)
	}
	if o.Logits || o.LogProbs || o.Values {
		depth = c.NumLayers
	}
	b := newBuilder(onnx.NewGraph("gpt_neox"), c, m)
	g := b.g
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	mask := g.Input(AttentionMask, onnx.Int64, "batch", "seq")
	pos := g.Input(PositionIDs, onnx.Int64, "batch", "seq")
	fg := &ForwardGraph{Graph: g, Inputs: []string{InputIDs, AttentionMask, PositionIDs}}
	var tail []string // inputs after the parameters
	if o.LogProbs {
		g.Input(TokensInput, onnx.Int64, "batch", "seq")
		g.Input(TemperatureInput, onnx.Float, 1)
		tail = []string{TokensInput, TemperatureInput}
	}
	if o.ParamInputs {
		fg.Params = b.declareParams(m)
		for _, s := range fg.Params {
			fg.Inputs = append(fg.Inputs, s.Name)
		}
	}
	fg.Inputs = append(fg.Inputs, tail...)
	if Fused(c, o.Standard, o.Device) {
		fg.Fused = true
		b.fusedForward(fg, o, ids, mask, want, depth)
		return fg, nil
	}

	emit := func(i int, x onnx.Value) {
		name := HiddenOutput(i)
		if pools := o.Poolings(); len(pools) == 0 {
			g.Output(x, name, onnx.Float, "batch", "seq", c.HiddenSize)
		} else {
			g.Output(b.pools(x, mask, pools), name, onnx.Float, "batch", len(pools)*c.HiddenSize)
		}
		fg.Outputs = append(fg.Outputs, name)
	}

	x := g.Gather(b.weight("gpt_neox.embed_in.weight"), ids, 0) // (B,S,D)
	if want[0] {
		emit(0, x)
	}
	if depth > 0 {
		bias := b.maskBias(ids, mask)
		cos, sin := b.rotary(pos)
		for l := 0; l < depth && l < c.NumLayers; l++ {
			g.Scope = fmt.Sprintf("layer%d", l)
			x, _, _ = b.layer(x, l, bias, cos, sin, "", "", nil)
			if l+1 < c.NumLayers && want[l+1] {
				emit(l+1, x)
			}
		}
		g.Scope = ""
		if depth == c.NumLayers {
			x = b.layerNorm(x, "gpt_neox.final_layer_norm", nil)
			if want[c.NumLayers] {
				emit(c.NumLayers, x)
			}
		}
	}
	b.forwardHeads(fg, o, x, ids)
	return fg, nil
}

// fusedForward builds the inference graph's body on the fused blocks.
//
// GroupQueryAttention wants each row's tokens at its start. A row whose real
// tokens form one run anywhere (left or right padding, or both) is rotated in
// the graph so that its run starts at 0: its positions are then 0…len−1, as
// the mask's cumulative count gives them, and the kernel masks the padding
// after len by sequence length alone, with no [B,1,S,S] mask. Outputs per
// position are rotated back; pooled ones need not be. FusedFits tells which
// batches this graph takes.
func (b *builder) fusedForward(fg *ForwardGraph, o ForwardOptions, ids, mask onnx.Value, want map[int]bool, depth int) {
	c := b.c
	g := b.g
	s := g.Gather(g.Shape(ids), g.ScalarI64(1), 0) // scalar S
	r := g.Unsqueeze(g.Op("Range", []onnx.Value{g.ScalarI64(0), s, g.ScalarI64(1)}), 0)
	first := g.Op("ArgMax", []onnx.Value{mask}, onnx.AttrInt("axis", 1), onnx.AttrInt("keepdims", 1)) // (B,1): where each row's run starts
	mod := func(v onnx.Value) onnx.Value { return g.Op("Mod", []onnx.Value{v, s}) }
	fwd := mod(g.Add(r, first))            // (B,S): rotated position j holds original j + first
	back := mod(g.Sub(g.Add(r, s), first)) // (B,S): original j is at rotated j − first
	gatherRows := func(x onnx.Value) onnx.Value {
		return g.Op("GatherElements", []onnx.Value{x, fwd}, onnx.AttrInt("axis", 1))
	}
	idsR, maskR := gatherRows(ids), gatherRows(mask)
	// unrotate gathers the flat rows x (N,W) back into (B,S,W), each where
	// the caller's batch has it.
	var flatIdx onnx.Value
	unrotate := func(x onnx.Value) onnx.Value {
		if flatIdx == "" {
			rowStart := g.Mul(g.Unsqueeze(g.Op("Range", []onnx.Value{g.ScalarI64(0), g.Gather(g.Shape(ids), g.ScalarI64(0), 0), g.ScalarI64(1)}), 1), s)
			flatIdx = g.Add(back, rowStart) // (B,S)
		}
		return g.Gather(x, flatIdx, 0)
	}
	var bsd onnx.Value // (B,S,D), for pooling
	emit := func(i int, x onnx.Value) {
		name := HiddenOutput(i)
		if pools := o.Poolings(); len(pools) == 0 {
			g.Output(unrotate(x), name, onnx.Float, "batch", "seq", c.HiddenSize)
		} else {
			if bsd == "" {
				bsd = g.Concat(0, g.Shape(ids), g.ConstI64(int64(c.HiddenSize)))
			}
			g.Output(b.pools(g.ReshapeTo(x, bsd), maskR, pools), name, onnx.Float, "batch", len(pools)*c.HiddenSize)
		}
		fg.Outputs = append(fg.Outputs, name)
	}

	x := b.embedFlat(idsR) // (N,D)
	if want[0] {
		emit(0, x)
	}
	if depth > 0 {
		lens := g.Op("Max", []onnx.Value{g.ReduceSum(mask, false, 1), g.ScalarI64(1)}) // (B)
		ai := &attnInputs{
			seqLensK: g.Cast(g.Sub(lens, g.ScalarI64(1)), onnx.Int32),
			total:    g.Cast(g.Unsqueeze(s, 0), onnx.Int32),
		}
		b.fusedShapes(ids, ai)
		ai.cos, ai.sin = b.fusedRotary()
		ai.pos = g.ConstI64(0) // every rotated row starts at position 0
		final := depth == c.NumLayers
		ln := onnx.Value("")
		for l := 0; l < depth; l++ {
			g.Scope = fmt.Sprintf("layer%d", l)
			x, ln, _, _ = b.fusedLayer(x, ln, l, ai, nextNorm(l, depth, c.NumLayers, final))
			if l+1 < c.NumLayers && want[l+1] {
				emit(l+1, x)
			}
		}
		g.Scope = ""
		if final {
			x = ln
			if want[c.NumLayers] {
				emit(c.NumLayers, x)
			}
		}
	}
	if o.Logits || o.LogProbs || o.Values {
		b.forwardHeads(fg, o, unrotate(x), ids)
	}
}

// forwardHeads adds the outputs computed from the final hidden state x
// (B,S,D): logits, and the per-token log-probs, entropies and values.
func (b *builder) forwardHeads(fg *ForwardGraph, o ForwardOptions, x, ids onnx.Value) {
	g := b.g
	c := b.c
	if o.Logits {
		g.Output(b.dense(x, b.outName(), ""), LogitsOutput, onnx.Float, "batch", "seq", c.VocabSize)
		fg.Outputs = append(fg.Outputs, LogitsOutput)
	}
	if o.LogProbs || o.Values {
		// Per-token outputs from the flat hidden state, through the same head
		// functions as the training graph.
		shape := g.Shape(ids)
		hidden := b.flat(x) // (N,D)
		emitBS := func(v onnx.Value, name string) {
			g.Output(g.ReshapeTo(v, shape), name, onnx.Float, "batch", "seq")
			fg.Outputs = append(fg.Outputs, name)
		}
		if o.LogProbs {
			t := b.tokenLogProbs(hidden)
			emitBS(t.lp, LogProbsOutput)
			emitBS(t.ent, EntropyOutput)
		}
		if o.Values {
			emitBS(b.value(hidden), ValuesOutput)
		}
	}
}
