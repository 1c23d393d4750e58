package neox

import (
	"fmt"
	"strconv"
	"strings"

	"irl/onnx"
)

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

// pools reduces x (B,S,D) each way of hows, concatenated: (B, len(hows)·D).
func (b *builder) pools(x, mask onnx.Value, hows []Pooling) onnx.Value {
	if len(hows) == 1 {
		return b.pool(x, mask, hows[0])
	}
	outs := make([]onnx.Value, len(hows))
	for i, how := range hows {
		outs[i] = b.pool(x, mask, how)
	}
	return b.g.Concat(1, outs...)
}

// pool reduces x (B,S,D) to (B,D) over the real tokens of mask (B,S).
func (b *builder) pool(x, mask onnx.Value, how Pooling) onnx.Value {
	g := b.g
	switch how {
	case PoolMean:
		// Where rather than a product with the mask: padding's hidden states
		// are not computed to be finite by every graph (the fused attention
		// leaves them as they fall), and NaN·0 is NaN. The sum is a running
		// sum read at the last real token, not a ReduceSum: a running sum
		// adds the tokens one by one in order, so a row's mean does not
		// depend on how much padding its batch gave it (a vectorised
		// ReduceSum groups its terms by the padded length), and a sharded
		// run's features equal the unsharded run's bit for bit.
		masked := g.Where(g.Cast(g.Unsqueeze(mask, 2), onnx.Bool), x, g.ScalarF32(0))
		sum := b.atFromEnd(g.Op("CumSum", []onnx.Value{masked, g.ScalarI64(1)}), mask, 1)
		mf := g.Unsqueeze(g.Cast(mask, onnx.Float), 2) // (B,S,1)
		n := g.Op("Max", []onnx.Value{g.ReduceSum(mf, false, 1), g.ScalarF32(1)})
		return g.Div(sum, n)
	default:
		k, ok := how.FromEnd()
		if !ok {
			panic("neox: unknown pooling " + string(how))
		}
		return b.atFromEnd(x, mask, k)
	}
}

// atFromEnd takes x (B,S,D) at each row's K-th real token from the end
// (B,D). The last real token is the highest position whose mask is 1; this
// holds for left and right padding alike. K−1 steps back from it stop at
// position 0 (a right-padded row's first token).
func (b *builder) atFromEnd(x, mask onnx.Value, k int) onnx.Value {
	g := b.g
	s := g.Gather(g.Shape(mask), g.ScalarI64(1), 0)
	r := g.Cast(g.Op("Range", []onnx.Value{g.ScalarI64(1), g.Add(s, g.ScalarI64(1)), g.ScalarI64(1)}), onnx.Int64)
	last := g.Sub(g.ReduceMax(g.Mul(mask, r), true, 1), g.ScalarI64(int64(k))) // (B,1)
	last = g.Op("Max", []onnx.Value{last, g.ScalarI64(0)})
	idx := g.Op("Expand", []onnx.Value{g.Unsqueeze(last, 2), g.Concat(0, g.Slice(g.Shape(x), []int64{0}, []int64{1}, []int64{0}), g.ConstI64(1), g.Slice(g.Shape(x), []int64{2}, []int64{3}, []int64{0}))})
	return g.Squeeze(g.Op("GatherElements", []onnx.Value{x, idx}, onnx.AttrInt("axis", 1)), 1)
}
