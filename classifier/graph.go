package classifier

import (
	"fmt"
	"math"

	"irl/onnx"
)

// Graph input and output names, as transformers' ONNX exports name them.
const (
	InputIDs      = "input_ids"      // I64 [B,S]
	AttentionMask = "attention_mask" // I64 [B,S], 1 on real tokens
	TokenTypeIDs  = "token_type_ids" // I64 [B,S]; only in some exported files, fed zeros
	LogitsOutput  = "logits"         // F32 [B,L]
)

// maskedScore is added to the attention scores of padding keys. It is finite
// so that a row with every key masked gets a uniform softmax, not NaN, and
// small enough that exp of it underflows to exactly 0 beside any real score.
const maskedScore = -1e9

// BuildGraph builds the classifier's inference graph with m's weights as
// initializers: inputs InputIDs and AttentionMask, output LogitsOutput. The
// graph refers to the weights' memory without copying it, so m must not
// change until the graph is serialised or its session created. Write it with
// Graph.WriteFile for a standalone .onnx file.
func BuildGraph(m *Model) (*onnx.Graph, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := m.Config
	b := &builder{g: onnx.NewGraph("roberta_classifier"), m: m, weights: map[string]onnx.Value{}}
	g := b.g
	ids := g.Input(InputIDs, onnx.Int64, "batch", "seq")
	mask := g.Input(AttentionMask, onnx.Int64, "batch", "seq")

	// Activations stay 2-D, [B·S, D], so every projection is one Gemm on
	// the checkpoint's weight; only attention needs the [B,H,S,hd] view.
	seq := g.Slice(g.Shape(ids), []int64{1}, []int64{2}, []int64{0}) // [1]: S
	b.tokens = g.Concat(0, g.ConstI64(-1), seq, g.ConstI64(int64(c.NumHeads), int64(c.HeadDim())))
	b.rows = g.Concat(0, g.ConstI64(-1), seq, g.ConstI64(int64(c.HiddenSize)))

	g.Scope = "embeddings"
	x := b.embed(ids)
	// (B,1,1,S): every query of a row sees that row's real keys only.
	bias := g.Where(g.Cast(g.Unsqueeze(mask, 1, 2), onnx.Bool), g.ScalarF32(0), g.ScalarF32(maskedScore))
	for l := 0; l < c.NumLayers; l++ {
		g.Scope = fmt.Sprintf("layer%d", l)
		if l < c.NumLayers-1 {
			x = b.layer(x, x, l, b.tokens, bias)
			continue
		}
		// The head reads only the first token, and in the last layer no
		// other token's output feeds anything: its queries, attention
		// output and feed-forward run on the first token of each row alone
		// (keys and values still come from every token). For roberta-base
		// this skips about a twelfth of the work.
		first := g.Gather(g.ReshapeTo(x, b.rows), g.ScalarI64(0), 1) // (B,D)
		x = b.layer(first, x, l, g.ConstI64(-1, 1, int64(c.NumHeads), int64(c.HeadDim())), bias)
	}
	g.Scope = "classifier"
	h := g.Op("Tanh", []onnx.Value{b.dense(x, "classifier.dense")})
	logits := b.dense(h, "classifier.out_proj")
	g.Scope = ""
	g.Output(logits, LogitsOutput, onnx.Float, "batch", c.NumLabels())
	return g, nil
}

// builder holds the state shared by the pieces of one graph.
type builder struct {
	g *onnx.Graph
	m *Model
	// weights maps checkpoint names to initializers, made on first use.
	weights map[string]onnx.Value
	// tokens reshapes (B·S, D) to (B,S,H,hd); rows reshapes it to (B,S,D).
	tokens, rows onnx.Value
}

// weight is a checkpoint tensor as an initializer, in the checkpoint's layout.
func (b *builder) weight(name string) onnx.Value {
	if v, ok := b.weights[name]; ok {
		return v
	}
	t := b.m.Params[name]
	if t == nil {
		panic("classifier: no tensor " + name) // Validate ran: a bug here
	}
	v := b.g.Initializer(name, t.Shape, t.Data)
	b.weights[name] = v
	return v
}

// dense is x·Wᵀ + bias for x (N,in) and the checkpoint's prefix.weight
// [out,in] and prefix.bias. Gemm reads W transposed in place, so no
// transposed copy of any weight is made and ONNX Runtime prepacks W once.
func (b *builder) dense(x onnx.Value, prefix string) onnx.Value {
	return b.g.Gemm(x, b.weight(prefix+".weight"), b.weight(prefix+".bias"), false, true)
}

func (b *builder) layerNorm(x onnx.Value, prefix string) onnx.Value {
	return b.g.LayerNorm(x, b.weight(prefix+".weight"), b.weight(prefix+".bias"), float32(b.m.Config.LayerNormEps))
}

// embed is RoBERTa's embedding layer for ids (B,S): word, token type 0 and
// position embeddings summed and normalised, (B·S, D).
//
// RoBERTa numbers positions from the ids, not from the attention mask
// (transformers' create_position_ids_from_input_ids): a non-pad token's
// position is pad plus its count among the row's non-pad tokens so far,
// itself included; a pad token's is pad, whose row the table keeps for it.
func (b *builder) embed(ids onnx.Value) onnx.Value {
	g := b.g
	pad := int64(b.m.Config.PadTokenID)
	real := g.Cast(g.Op("Not", []onnx.Value{g.Op("Equal", []onnx.Value{ids, g.ScalarI64(pad)})}), onnx.Int64)
	count := g.Op("CumSum", []onnx.Value{real, g.ScalarI64(1)})
	pos := g.Add(g.Mul(count, real), g.ScalarI64(pad))

	e := "roberta.embeddings."
	word := g.Gather(b.weight(e+"word_embeddings.weight"), g.Reshape(ids, -1), 0) // (B·S, D)
	// Token type ids are all 0 for RoBERTa: one row, broadcast.
	tt := g.Gather(b.weight(e+"token_type_embeddings.weight"), g.ScalarI64(0), 0) // (D)
	posEmb := g.Gather(b.weight(e+"position_embeddings.weight"), g.Reshape(pos, -1), 0)
	// transformers' order: (word + token type) + position.
	return b.layerNorm(g.Add(g.Add(word, tt), posEmb), e+"LayerNorm")
}

// layer is one post-LN encoder layer. xq (Nq, D) holds the tokens whose
// outputs are wanted, laid out as (B,Sq,·) by qShape; xkv (B·S, D) holds
// every token, which the queries attend to under bias (B,1,1,S).
func (b *builder) layer(xq, xkv onnx.Value, l int, qShape, bias onnx.Value) onnx.Value {
	g := b.g
	p := fmt.Sprintf("roberta.encoder.layer.%d.", l)
	attn := b.attention(xq, xkv, p+"attention.", qShape, bias)
	h := b.layerNorm(g.Add(attn, xq), p+"attention.output.LayerNorm")
	u := g.GELU(b.dense(h, p+"intermediate.dense"))
	return b.layerNorm(g.Add(b.dense(u, p+"output.dense"), h), p+"output.LayerNorm")
}

// attention is scaled dot-product self-attention with separate q, k, v
// projections, followed by the output projection: (Nq, D).
func (b *builder) attention(xq, xkv onnx.Value, p string, qShape, bias onnx.Value) onnx.Value {
	c := b.m.Config
	g := b.g
	heads := func(x, shape onnx.Value, perm ...int64) onnx.Value {
		return g.Transpose(g.ReshapeTo(x, shape), perm...)
	}
	// Scaling q rather than the scores costs S/hd times less, and is exact
	// when hd is a power of 4 (1/8 for roberta-base's 64).
	scale := g.ScalarF32(float32(1 / math.Sqrt(float64(c.HeadDim()))))
	q := heads(g.Mul(b.dense(xq, p+"self.query"), scale), qShape, 0, 2, 1, 3) // (B,H,Sq,hd)
	k := heads(b.dense(xkv, p+"self.key"), b.tokens, 0, 2, 3, 1)              // (B,H,hd,S)
	v := heads(b.dense(xkv, p+"self.value"), b.tokens, 0, 2, 1, 3)            // (B,H,S,hd)
	probs := g.Softmax(g.Add(g.MatMul(q, k), bias), -1)                       // (B,H,Sq,S)
	var ctx onnx.Value                                                        // (B,H,Sq,hd)
	if qShape == b.tokens {
		ctx = g.MatMul(probs, v)
	} else {
		// One query a row (the last layer's first token): MatMul's
		// one-row kernel sums over the keys in vector lanes grouped by S,
		// so the context would depend on the padding; a running sum over
		// the keys does not.
		terms := g.Mul(g.Transpose(probs, 0, 1, 3, 2), v) // (B,H,S,hd)
		ctx = g.Slice(g.Op("CumSum", []onnx.Value{terms, g.ScalarI64(2)}), []int64{-1}, []int64{math.MaxInt64}, []int64{2})
	}
	ctx = g.Transpose(ctx, 0, 2, 1, 3) // (B,Sq,H,hd)
	return b.dense(g.Reshape(ctx, -1, int64(c.HiddenSize)), p+"output.dense")
}
