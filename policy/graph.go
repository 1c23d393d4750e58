package policy

import (
	"fmt"
	"strconv"
	"strings"

	"irl/onnx"
)

// Graph input names. Every graph of this package takes all three, I64 [B,S].
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
)

// LogitsOutput names the logits output, F32 [B,S,V].
const LogitsOutput = "logits"

// HiddenOutput names hidden state i, F32 [B,S,D], in Hugging Face's
// convention: 0 is the embeddings, NumLayers is after the final layer norm.
func HiddenOutput(i int) string { return fmt.Sprintf("hidden_states.%d", i) }

// ForwardOptions chooses what a forward graph computes.
type ForwardOptions struct {
	// Hidden lists the hidden-state indices (0…NumLayers) to output.
	Hidden []int
	// Logits adds the logits output.
	Logits bool
	// Pool, if set, replaces each hidden-state output by its pooled rows,
	// F32 [B,D], named HiddenOutput(i); see Pooling.
	Pool Pooling
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
	// opens: a Runner then reads the model's memory at every run, so it sees
	// every optimiser update (PPO's rollouts need that).
	ParamInputs bool
	// Params, with ParamInputs, is the store a Runner reads the weights
	// from, shared with the sessions that update them (see ParamStore); nil
	// gives the Runner a store of its own. It takes no part in the graph.
	Params *ParamStore
	// Standard builds the graph from standard ONNX operators only, for
	// runtimes without ONNX Runtime's contrib operators (com.microsoft). By
	// default the graph uses ONNX Runtime's fused kernels (fused.go), which
	// are faster and treat each row as one run of real tokens; a Runner
	// takes batches that are not so on a standard graph. Models whose head
	// width the fused attention cannot take are built standard anyway, and
	// so are graphs for CUDA (see NewRunner).
	Standard bool
	// MaxTokens, if positive, makes a Runner run a batch in runs of as many
	// whole rows as hold at most MaxTokens tokens (B·S) each, one row at
	// least: the attention's [rows,H,S,S] scores and the MLP's [tokens,F]
	// activations then stay small enough for the caches, which matters more
	// than the per-run overhead once runs hold a few thousand tokens. Rows
	// are contiguous in every input and output, so runs read and write the
	// batch's buffers in place.
	MaxTokens int
}

// Pooling reduces a hidden state over the sequence.
type Pooling string

// The poolings the forward graph can do.
const (
	NoPool   Pooling = ""
	PoolLast Pooling = "last" // the last real token (mask 1)
	PoolMean Pooling = "mean" // the mean over real tokens
)

// ParsePooling reads "last", "mean" or "last:K": the K-th real token from
// the end (last:1 is last; last:2 the one before, such as the word before a
// sentence's final period).
func ParsePooling(s string) (Pooling, error) {
	p := Pooling(s)
	if p == PoolLast || p == PoolMean {
		return p, nil
	}
	if k, ok := p.FromEnd(); ok {
		if k == 1 {
			return PoolLast, nil
		}
		return p, nil
	}
	return "", fmt.Errorf("unknown pooling %q: want last, mean or last:K (K ≥ 1, counted from the end)", s)
}

// FromEnd is K for "last:K" (1 for "last"), and whether the pooling takes one
// token counted from the end.
func (p Pooling) FromEnd() (int, bool) {
	if p == PoolLast {
		return 1, true
	}
	rest, ok := strings.CutPrefix(string(p), "last:")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	if err != nil || k < 1 || k > 1<<20 {
		return 0, false
	}
	return k, true
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
		return nil, fmt.Errorf("policy: forward graph with no outputs")
	}
	if (o.Logits || o.LogProbs || o.Values) && o.Pool != NoPool {
		return nil, fmt.Errorf("policy: pooling applies to hidden states only, not logits")
	}
	if o.Values && (m.Params[ValueHeadWeight] == nil || m.Params[ValueHeadBias] == nil) {
		return nil, fmt.Errorf("policy: the model has no value head (%s, %s)", ValueHeadWeight, ValueHeadBias)
	}
	want := map[int]bool{}
	depth := 0
	for _, h := range o.Hidden {
		if h < 0 || h > c.NumLayers {
			return nil, fmt.Errorf("policy: hidden state %d out of range 0…%d", h, c.NumLayers)
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
	if !o.Standard && fusedSupport(c) == nil {
		fg.Fused = true
		b.fusedForward(fg, o, ids, mask, want, depth)
		return fg, nil
	}

	emit := func(i int, x onnx.Value) {
		name := HiddenOutput(i)
		switch o.Pool {
		case NoPool:
			g.Output(x, name, onnx.Float, "batch", "seq", c.HiddenSize)
		default:
			g.Output(b.pool(x, mask, o.Pool), name, onnx.Float, "batch", c.HiddenSize)
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
			_, _, lp, ent := b.tokenLogProbs(b.logits(hidden))
			emitBS(lp, LogProbsOutput)
			emitBS(ent, EntropyOutput)
		}
		if o.Values {
			emitBS(b.value(hidden), ValuesOutput)
		}
	}
}

// builder builds one graph from the blocks (blocks.go): an inference or
// decode graph, whose weights are initializers taken from a model, or a
// training graph, whose weights are inputs declared up front and which
// collects parameter gradients.
type builder struct {
	g *onnx.Graph
	c Config
	// m supplies initializers; nil when every weight is declared in weights.
	m *Model
	// weights maps parameter names to graph values: initializers made on
	// first use, or graph inputs that a training graph declares up front.
	weights map[string]onnx.Value
	// grads maps parameter names to their gradients (training graphs).
	grads  map[string]onnx.Value
	shapes map[string][]int
	// negSin is −sin, made once for the rotary backward.
	negSin onnx.Value
	// inputs tells that the weights are graph inputs (declareParams), not
	// initializers.
	inputs bool
	// oneQKV makes the fused attention compute its queries, keys and
	// values in one Gemm and split them, the cheaper way when few tokens run
	// (a decode step); see qkvProjections.
	oneQKV bool
	// cache, when set, makes the attention write each step's keys and
	// values into a capacity-sized cache rather than concatenate them to
	// the past (BuildDecode).
	cache *cacheWrite
}

func newBuilder(g *onnx.Graph, c Config, m *Model) *builder {
	return &builder{g: g, c: c, m: m, weights: map[string]onnx.Value{}, grads: map[string]onnx.Value{}}
}

func (b *builder) outName() string {
	if b.c.TieEmbeddings {
		return "gpt_neox.embed_in.weight"
	}
	return "embed_out.weight"
}

// weight is a parameter as stored in the checkpoint.
func (b *builder) weight(name string) onnx.Value {
	if v, ok := b.weights[name]; ok {
		return v
	}
	if b.m == nil || b.m.Params[name] == nil {
		panic("policy: no parameter " + name)
	}
	p := b.m.Params[name]
	v := b.g.Initializer(name, p.Shape, p.Data)
	b.weights[name] = v
	return v
}

// declareParams makes every parameter of m a graph input (the model's, then
// a value head when m has one) and returns them in input order.
func (b *builder) declareParams(m *Model) []ParamSpec {
	b.inputs = true
	specs := m.Config.ParamSpecs()
	if m.Params[ValueHeadWeight] != nil && m.Params[ValueHeadBias] != nil {
		specs = append(specs, ParamSpec{ValueHeadWeight, m.Params[ValueHeadWeight].Shape}, ParamSpec{ValueHeadBias, m.Params[ValueHeadBias].Shape})
	}
	for _, s := range specs {
		dims := make([]any, len(s.Shape))
		for i, d := range s.Shape {
			dims[i] = d
		}
		b.weights[s.Name] = b.g.Input(s.Name, onnx.Float, dims...)
	}
	return specs
}

// paramTensors wraps the parameters' Go memory as input tensors, without
// copying, in the order of specs.
func paramTensors(m *Model, specs []ParamSpec) ([]onnx.ORTValue, error) {
	var out []onnx.ORTValue
	for _, s := range specs {
		v, err := onnx.TensorF32(m.Params[s.Name].Data, dims64(s.Shape)...)
		if err != nil {
			onnx.DestroyAll(out...)
			return nil, fmt.Errorf("parameter %s: %w", s.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// addGrad accumulates a parameter's gradient: a parameter can receive
// several (tied embeddings: the input lookup and the output head).
func (b *builder) addGrad(name string, d onnx.Value) {
	if old, ok := b.grads[name]; ok {
		d = b.g.Add(old, d)
	}
	b.grads[name] = d
}

// flat views a recorded activation (B,S,W) as (N,W), as the backward works.
func (b *builder) flat(v onnx.Value) onnx.Value {
	return b.g.Op("Flatten", []onnx.Value{v}, onnx.AttrInt("axis", 2))
}

// shape is a parameter's shape, from the configuration.
func (b *builder) shape(name string) []int {
	if b.shapes == nil {
		b.shapes = map[string][]int{}
		for _, s := range b.c.ParamSpecs() {
			b.shapes[s.Name] = s.Shape
		}
	}
	sh, ok := b.shapes[name]
	if !ok {
		panic("policy: no parameter " + name)
	}
	return sh
}

// maskBias is the additive attention bias (B,1,S,S): 0 where query i may see
// key j (j ≤ i and key j is not padding), a large negative number elsewhere.
// A finite value keeps fully masked rows (left padding) free of NaN.
func (b *builder) maskBias(ids, mask onnx.Value) onnx.Value {
	g := b.g
	s := g.Gather(g.Shape(ids), g.ScalarI64(1), 0)                      // scalar S
	r := g.Op("Range", []onnx.Value{g.ScalarI64(0), s, g.ScalarI64(1)}) // (S)
	causal := g.Op("LessOrEqual", []onnx.Value{g.Unsqueeze(r, 0), g.Unsqueeze(r, 1)})
	pad := g.Cast(g.Unsqueeze(mask, 1, 2), onnx.Bool) // (B,1,1,S)
	allowed := g.Op("And", []onnx.Value{causal, pad}) // (B,1,S,S)
	return g.Where(allowed, g.ScalarF32(0), g.ScalarF32(-1e9))
}

// rotary gathers cos and sin (B,1,S,R) for the positions.
func (b *builder) rotary(pos onnx.Value) (cos, sin onnx.Value) {
	c := b.c
	r := c.RotaryDims()
	if r == 0 {
		return "", ""
	}
	ct, st := c.rotaryTables()
	g := b.g
	cosT := g.Initializer("rotary.cos", []int{c.MaxPositions, r}, ct)
	sinT := g.Initializer("rotary.sin", []int{c.MaxPositions, r}, st)
	return g.Unsqueeze(g.Gather(cosT, pos, 0), 1), g.Unsqueeze(g.Gather(sinT, pos, 0), 1)
}

// pool reduces x (B,S,D) to (B,D) over the real tokens of mask (B,S).
func (b *builder) pool(x, mask onnx.Value, how Pooling) onnx.Value {
	g := b.g
	mf := g.Unsqueeze(g.Cast(mask, onnx.Float), 2) // (B,S,1)
	switch how {
	case PoolMean:
		// Where rather than a product with the mask: padding's hidden states
		// are not computed to be finite by every graph (the fused attention
		// leaves them as they fall), and NaN·0 is NaN.
		sum := g.ReduceSum(g.Where(g.Cast(g.Unsqueeze(mask, 2), onnx.Bool), x, g.ScalarF32(0)), false, 1)
		n := g.Op("Max", []onnx.Value{g.ReduceSum(mf, false, 1), g.ScalarF32(1)})
		return g.Div(sum, n)
	default:
		k, ok := how.FromEnd()
		if !ok {
			panic("policy: unknown pooling " + string(how))
		}
		// The last real token is the highest position whose mask is 1; this
		// holds for left and right padding alike. last:K steps K−1 back from
		// it, stopping at position 0 (a right-padded row's first token).
		s := g.Gather(g.Shape(mask), g.ScalarI64(1), 0)
		r := g.Cast(g.Op("Range", []onnx.Value{g.ScalarI64(1), g.Add(s, g.ScalarI64(1)), g.ScalarI64(1)}), onnx.Int64)
		last := g.Sub(g.ReduceMax(g.Mul(mask, r), true, 1), g.ScalarI64(int64(k))) // (B,1)
		last = g.Op("Max", []onnx.Value{last, g.ScalarI64(0)})
		idx := g.Op("Expand", []onnx.Value{g.Unsqueeze(last, 2), g.Concat(0, g.Slice(g.Shape(x), []int64{0}, []int64{1}, []int64{0}), g.ConstI64(1), g.Slice(g.Shape(x), []int64{2}, []int64{3}, []int64{0}))})
		return g.Squeeze(g.Op("GatherElements", []onnx.Value{x, idx}, onnx.AttrInt("axis", 1)), 1)
	}
}
