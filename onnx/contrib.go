package onnx

import (
	"sort"

	ort "github.com/yalue/onnxruntime_go"

	"irl/onnx/onnxpb"
)

// MSDomain is ONNX Runtime's contrib operator domain. Its operators (fused
// attention, skip layer norm, bias GELU, rotary embedding) run only on ONNX
// Runtime builds with contrib ops, which the released CPU and CUDA libraries
// are; a graph that uses them names the domain in its opset imports.
const MSDomain = "com.microsoft"

// msOpset is the version of MSDomain that ONNX Runtime registers its contrib
// kernels under.
const msOpset = 1

// opsetImports lists the default domain at Opset and every other domain the
// graph's nodes use, in a fixed order so that serialised graphs are stable.
func (g *Graph) opsetImports() []*onnxpb.OperatorSetIdProto {
	imports := []*onnxpb.OperatorSetIdProto{{Domain: "", Version: Opset}}
	domains := make([]string, 0, len(g.domains))
	for d := range g.domains {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		imports = append(imports, &onnxpb.OperatorSetIdProto{Domain: d, Version: g.domains[d]})
	}
	return imports
}

// UsesDomain tells whether a node of the graph is in domain.
func (g *Graph) UsesDomain(domain string) bool {
	_, ok := g.domains[domain]
	return ok
}

// OpIn adds a node of operator op from domain ("" for the default one; at
// version msOpset for MSDomain, 1 for others) and returns its outputs: one per entry
// of want, "" where want is false, which leaves that optional output unasked
// (contrib kernels skip work for outputs nobody reads). An empty Value in
// inputs is an omitted optional input.
func (g *Graph) OpIn(domain, op string, want []bool, inputs []Value, attrs ...Attr) []Value {
	if domain != "" { // the default domain is imported at Opset already
		if g.domains == nil {
			g.domains = map[string]int64{}
		}
		version := int64(1)
		if domain == MSDomain {
			version = msOpset
		}
		g.domains[domain] = version
	}
	node := &onnxpb.NodeProto{OpType: op, Domain: domain, Attribute: attrs}
	// Trailing omitted inputs are left out altogether.
	last := len(inputs)
	for last > 0 && inputs[last-1] == "" {
		last--
	}
	for _, in := range inputs[:last] {
		node.Input = append(node.Input, string(in))
	}
	// Unwanted outputs keep their places, with empty names.
	outs := make([]Value, len(want))
	for i := range want {
		if want[i] {
			outs[i] = Value(g.fresh(op))
		}
		node.Output = append(node.Output, string(outs[i]))
	}
	if len(node.Output) == 0 || node.Output[0] == "" {
		node.Name = g.fresh(op)
	} else {
		node.Name = node.Output[0]
	}
	g.nodes = append(g.nodes, node)
	return outs
}

// SkipLayerNorm is ONNX Runtime's SkipLayerNormalization: layer norm over
// the last axis of x + skip + bias (bias "" for none, else [D]), with gamma
// and beta [D]. With wantSum it also returns x + skip + bias, which the
// kernel computes anyway: the residual stream of a transformer block, so
// that one kernel does the residual addition and the next norm. skip is x's
// shape (B,S,D) or (S,D) or (D).
func (g *Graph) SkipLayerNorm(x, skip, gamma, beta, bias Value, eps float32, wantSum bool) (out, sum Value) {
	outs := g.OpIn(MSDomain, "SkipLayerNormalization", []bool{true, false, false, wantSum},
		[]Value{x, skip, gamma, beta, bias}, AttrFloat("epsilon", eps))
	return outs[0], outs[3]
}

// BiasGelu is ONNX Runtime's BiasGelu: the exact (erf) GELU of x + bias, for
// bias [D] along x's last axis. It is not FastGelu, which approximates GELU
// with tanh.
func (g *Graph) BiasGelu(x, bias Value) Value {
	return g.OpIn(MSDomain, "BiasGelu", []bool{true}, []Value{x, bias})[0]
}

// GeluMS is ONNX Runtime's contrib Gelu: the exact (erf) GELU, one kernel.
func (g *Graph) GeluMS(x Value) Value {
	return g.OpIn(MSDomain, "Gelu", []bool{true}, []Value{x})[0]
}

// RotaryOptions configure RotaryEmbedding.
type RotaryOptions struct {
	// NumHeads splits a 3-D input (B,S,NumHeads·hd); 0 for a 4-D input
	// (B,N,S,hd), which names its heads itself.
	NumHeads int
	// RotaryDim rotates only the first RotaryDim dims of each head (partial
	// rotary, GPT-NeoX's rotary_pct) and passes the rest through; 0 means
	// all of them. The cos and sin caches are then [positions, RotaryDim/2].
	RotaryDim int
	// Interleaved rotates pairs (x0,x1), (x2,x3), …; false rotates the two
	// halves of the rotated dims against each other, as GPT-NeoX's
	// rotate_half does.
	Interleaved bool
}

// RotaryEmbedding is ONNX Runtime's RotaryEmbedding: x (B,S,N·hd) or
// (B,N,S,hd) rotated at positions pos (B,S) int64, with cos and sin caches
// [positions, R/2] (each frequency once, not repeated as transformers lays
// its tables out).
func (g *Graph) RotaryEmbedding(x, pos, cos, sin Value, o RotaryOptions) Value {
	attrs := []Attr{AttrInt("interleaved", boolInt(o.Interleaved))}
	if o.NumHeads > 0 {
		attrs = append(attrs, AttrInt("num_heads", int64(o.NumHeads)))
	}
	if o.RotaryDim > 0 {
		attrs = append(attrs, AttrInt("rotary_embedding_dim", int64(o.RotaryDim)))
	}
	return g.OpIn(MSDomain, "RotaryEmbedding", []bool{true}, []Value{x, pos, cos, sin}, attrs...)[0]
}

// GQAInputs are GroupQueryAttention's inputs; leave out ("") what is not
// used.
type GQAInputs struct {
	// Query is (B,S,N·hd), or Q, K and V packed as (B,S,(N+2·Nkv)·hd) with
	// Key and Value left out.
	Query, Key, Value Value
	// PastKey and PastValue are the cache (B,Nkv,L,hd). When they are the
	// very buffers bound as the present outputs, the kernel writes the new
	// keys and values into them at each row's own offset and copies nothing:
	// L is then the cache's capacity.
	PastKey, PastValue Value
	// SeqLensK is int32 (B): each row's total length (past and new) minus
	// one. TotalSeqLen is an int32 scalar, the longest total length.
	SeqLensK, TotalSeqLen Value
	// Cos and Sin are [positions, R/2] caches for DoRotary.
	Cos, Sin Value
	// PositionIDs (B,S) int64 overrides the positions DoRotary uses after a
	// prompt; on a prompt the kernel takes only the first one and counts up.
	PositionIDs Value
	// AttentionBias is added to the scores, (B or 1, N or 1, S, total).
	AttentionBias Value
}

// GQAOptions are GroupQueryAttention's attributes.
type GQAOptions struct {
	NumHeads, KVNumHeads int
	// Scale multiplies the scores; 0 means 1/√hd.
	Scale float32
	// DoRotary applies rotary embedding to queries and keys inside the
	// kernel, at positions from SeqLensK (or PositionIDs).
	DoRotary, RotaryInterleaved bool
}

// GroupQueryAttention is ONNX Runtime's GroupQueryAttention: causal
// multi-head attention with a key/value cache, rotary embedding built in,
// and rows of different lengths given by SeqLensK. It returns the output
// (B,S,N·hd) and the present keys and values (B,Nkv,L,hd), which the
// schema requires even of a graph that has no use for them.
func (g *Graph) GroupQueryAttention(in GQAInputs, o GQAOptions) (out, presentK, presentV Value) {
	attrs := []Attr{
		AttrInt("num_heads", int64(o.NumHeads)),
		AttrInt("kv_num_heads", int64(o.KVNumHeads)),
		AttrInt("do_rotary", boolInt(o.DoRotary)),
		AttrInt("rotary_interleaved", boolInt(o.RotaryInterleaved)),
	}
	if o.Scale != 0 {
		attrs = append(attrs, AttrFloat("scale", o.Scale))
	}
	outs := g.OpIn(MSDomain, "GroupQueryAttention", []bool{true, true, true}, []Value{
		in.Query, in.Key, in.Value, in.PastKey, in.PastValue, in.SeqLensK, in.TotalSeqLen,
		in.Cos, in.Sin, in.PositionIDs, in.AttentionBias,
	}, attrs...)
	return outs[0], outs[1], outs[2]
}

// MHAInputs are MultiHeadAttention's inputs; leave out ("") what is not
// used.
type MHAInputs struct {
	// Query, Key and Value are (B,S,D), (B,L,D), (B,L,Dv).
	Query, Key, Value Value
	// Bias, [D+D+Dv], is added to the three projections.
	Bias Value
	// KeyPaddingMask is int32 (B,L): 0 for padding.
	KeyPaddingMask Value
	// AttentionBias is added to the scores, (B or 1, N or 1, S, total).
	AttentionBias Value
	// PastKey and PastValue (B,N,P,hd) come before the new keys and values.
	PastKey, PastValue Value
}

// MHAOptions are MultiHeadAttention's attributes.
type MHAOptions struct {
	NumHeads int
	// Unidirectional masks each query's future keys (causal attention).
	Unidirectional bool
	// Scale multiplies the scores; 0 means 1/√hd.
	Scale float32
	// MaskFilterValue is the score given to masked keys; 0 means the
	// kernel's default, -10000.
	MaskFilterValue float32
}

// MultiHeadAttention is ONNX Runtime's MultiHeadAttention. With wantPresent
// it also returns the keys and values of past and new tokens (B,N,P+L,hd).
func (g *Graph) MultiHeadAttention(in MHAInputs, o MHAOptions, wantPresent bool) (out, presentK, presentV Value) {
	attrs := []Attr{AttrInt("num_heads", int64(o.NumHeads)), AttrInt("unidirectional", boolInt(o.Unidirectional))}
	if o.Scale != 0 {
		attrs = append(attrs, AttrFloat("scale", o.Scale))
	}
	if o.MaskFilterValue != 0 {
		attrs = append(attrs, AttrFloat("mask_filter_value", o.MaskFilterValue))
	}
	outs := g.OpIn(MSDomain, "MultiHeadAttention", []bool{true, wantPresent, wantPresent}, []Value{
		in.Query, in.Key, in.Value, in.Bias, in.KeyPaddingMask, in.AttentionBias, in.PastKey, in.PastValue,
	}, attrs...)
	return outs[0], outs[1], outs[2]
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// TensorI32 wraps Go data as an int32 input tensor without copying, such as
// GroupQueryAttention's sequence lengths.
func TensorI32(data []int32, shape ...int64) (*ort.Tensor[int32], error) {
	return ort.NewTensor(ort.NewShape(shape...), data)
}
