package onnx

import (
	"math"
	"strings"
	"testing"
)

// runOnce opens a session for g, runs it on ins (in input order) and returns
// every output's data.
func runOnce(t *testing.T, g *Graph, inputs []string, outputs []string, ins ...ORTValue) [][]float32 {
	t.Helper()
	s, err := NewGraphSession(g, inputs, outputs, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	outs, err := s.Run(ins...)
	if err != nil {
		t.Fatal(err)
	}
	defer DestroyAll(outs...)
	res := make([][]float32, len(outs))
	for i, o := range outs {
		d, _, err := Float32Data(o)
		if err != nil {
			t.Fatal(err)
		}
		res[i] = append([]float32(nil), d...)
	}
	return res
}

func mustF32(t *testing.T, data []float32, shape ...int64) ORTValue {
	t.Helper()
	v, err := TensorF32(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func mustI32(t *testing.T, data []int32, shape ...int64) ORTValue {
	t.Helper()
	v, err := TensorI32(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func mustI64(t *testing.T, data []int64, shape ...int64) ORTValue {
	t.Helper()
	v, err := TensorI64(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i])-want[i]))
	}
	if !(worst <= tol) {
		t.Errorf("%s: max abs error %.3g, want ≤ %.0e", what, worst, tol)
	}
}

func layerNormRef(x []float64, gamma, beta []float32, eps float64) []float64 {
	var mean, v float64
	for _, a := range x {
		mean += a
	}
	mean /= float64(len(x))
	for _, a := range x {
		v += (a - mean) * (a - mean)
	}
	v /= float64(len(x))
	out := make([]float64, len(x))
	for i, a := range x {
		out[i] = (a-mean)/math.Sqrt(v+eps)*float64(gamma[i]) + float64(beta[i])
	}
	return out
}

// SkipLayerNorm normalises x + skip + bias and also returns that sum.
func TestSkipLayerNorm(t *testing.T) {
	const n, d = 6, 16
	g := NewGraph("sln")
	x := g.Input("x", Float, 2, 3, d)
	skip := g.Input("skip", Float, 2, 3, d)
	gamma, beta, bias := randomF32(d, 1), randomF32(d, 2), randomF32(d, 3)
	out, sum := g.SkipLayerNorm(x, skip, g.ConstF32([]int{d}, gamma), g.ConstF32([]int{d}, beta), g.ConstF32([]int{d}, bias), 1e-5, true)
	g.Output(out, "out", Float, 2, 3, d)
	g.Output(sum, "sum", Float, 2, 3, d)
	if !g.UsesDomain(MSDomain) {
		t.Fatal("the graph does not record the contrib domain")
	}
	xs, ss := randomF32(n*d, 4), randomF32(n*d, 5)
	res := runOnce(t, g, []string{"x", "skip"}, []string{"out", "sum"}, mustF32(t, xs, 2, 3, d), mustF32(t, ss, 2, 3, d))
	var wantOut, wantSum []float64
	for r := 0; r < n; r++ {
		row := make([]float64, d)
		for k := range row {
			row[k] = float64(xs[r*d+k]) + float64(ss[r*d+k]) + float64(bias[k])
		}
		wantSum = append(wantSum, row...)
		wantOut = append(wantOut, layerNormRef(row, gamma, beta, 1e-5)...)
	}
	closeTo(t, "output", res[0], wantOut, 1e-5)
	closeTo(t, "sum", res[1], wantSum, 1e-6)
}

// BiasGelu is the exact GELU, not the tanh approximation: they differ by
// about 1e-3 near |x| = 2, far above the tolerance.
func TestBiasGeluIsExact(t *testing.T) {
	const n, d = 8, 32
	g := NewGraph("bg")
	x := g.Input("x", Float, n, d)
	bias := randomF32(d, 7)
	g.Output(g.BiasGelu(x, g.ConstF32([]int{d}, bias)), "y", Float, n, d)
	g.Output(g.GeluMS(x), "z", Float, n, d)
	xs := randomF32(n*d, 8)
	for i := range xs {
		xs[i] *= 2
	}
	res := runOnce(t, g, []string{"x"}, []string{"y", "z"}, mustF32(t, xs, n, d))
	gelu := func(u float64) float64 { return 0.5 * u * (1 + math.Erf(u/math.Sqrt2)) }
	want, wantZ := make([]float64, n*d), make([]float64, n*d)
	for i := range want {
		want[i] = gelu(float64(xs[i]) + float64(bias[i%d]))
		wantZ[i] = gelu(float64(xs[i]))
	}
	closeTo(t, "BiasGelu", res[0], want, 2e-6)
	closeTo(t, "Gelu", res[1], wantZ, 2e-6)
}

// rotaryRef rotates one head vector x at position pos the GPT-NeoX way
// (rotate_half over the first r dims), with caches [positions, r/2].
func rotaryRef(x []float64, pos, r int, cos, sin []float32) []float64 {
	y := append([]float64(nil), x...)
	h := r / 2
	for i := 0; i < h; i++ {
		c, s := float64(cos[pos*h+i]), float64(sin[pos*h+i])
		y[i] = x[i]*c - x[i+h]*s
		y[i+h] = x[i+h]*c + x[i]*s
	}
	return y
}

// rotaryCaches are GPT-NeoX's tables [positions, r/2] for base 10000.
func rotaryCaches(positions, r int) (cos, sin []float32) {
	h := r / 2
	cos, sin = make([]float32, positions*h), make([]float32, positions*h)
	for p := 0; p < positions; p++ {
		for i := 0; i < h; i++ {
			a := float64(p) / math.Pow(10000, float64(2*i)/float64(r))
			cos[p*h+i], sin[p*h+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return cos, sin
}

// RotaryEmbedding with rotary_embedding_dim rotates only the first r dims of
// each head, at each token's own position, as GPT-NeoX with rotary_pct < 1.
func TestRotaryEmbeddingPartial(t *testing.T) {
	const b, s, nh, hd, r, maxPos = 2, 3, 2, 16, 4, 32
	cos, sin := rotaryCaches(maxPos, r)
	g := NewGraph("rot")
	x := g.Input("x", Float, b, s, nh*hd)
	pos := g.Input("pos", Int64, b, s)
	y := g.RotaryEmbedding(x, pos, g.ConstF32([]int{maxPos, r / 2}, cos), g.ConstF32([]int{maxPos, r / 2}, sin),
		RotaryOptions{NumHeads: nh, RotaryDim: r})
	g.Output(y, "y", Float, b, s, nh*hd)
	xs := randomF32(b*s*nh*hd, 11)
	ps := []int64{0, 1, 2, 0, 0, 7}
	res := runOnce(t, g, []string{"x", "pos"}, []string{"y"}, mustF32(t, xs, b, s, nh*hd), mustI64(t, ps, b, s))
	var want []float64
	for tok := 0; tok < b*s; tok++ {
		for h := 0; h < nh; h++ {
			off := (tok*nh + h) * hd
			v := make([]float64, hd)
			for k := range v {
				v[k] = float64(xs[off+k])
			}
			want = append(want, rotaryRef(v, int(ps[tok]), r, cos, sin)...)
		}
	}
	closeTo(t, "rotary", res[0], want, 1e-6)
}

// attentionRef is causal attention for one row: query i (at position
// past+i) sees keys 0…past+i, softmax(q·k/√hd)·v, with q and k rotated at
// their positions. q is [s][hd], k and v [past+s][hd].
func attentionRef(q, k, v [][]float64, past int) [][]float64 {
	hd := len(q[0])
	out := make([][]float64, len(q))
	for i := range q {
		n := past + i + 1
		w := make([]float64, n)
		m := math.Inf(-1)
		for j := 0; j < n; j++ {
			for d := 0; d < hd; d++ {
				w[j] += q[i][d] * k[j][d]
			}
			w[j] /= math.Sqrt(float64(hd))
			m = math.Max(m, w[j])
		}
		var z float64
		for j := range w {
			w[j] = math.Exp(w[j] - m)
			z += w[j]
		}
		out[i] = make([]float64, hd)
		for j := range w {
			for d := 0; d < hd; d++ {
				out[i][d] += w[j] / z * v[j][d]
			}
		}
	}
	return out
}

// gqaCase is a small model of the decode graph's attention: per row, per
// head, tokens of q, k, v (before rotary) laid out as packed QKV rows
// [Q heads | K heads | V heads].
type gqaCase struct {
	b, nh, hd, r, maxPos int
	cos, sin             []float32
	// tokens[row] holds every token of the row, each (3·nh·hd) packed.
	tokens [][][]float32
}

func newGQACase(b, nh, hd, r, maxPos, n int) *gqaCase {
	c := &gqaCase{b: b, nh: nh, hd: hd, r: r, maxPos: maxPos}
	c.cos, c.sin = rotaryCaches(maxPos, r)
	for row := 0; row < b; row++ {
		var toks [][]float32
		for j := 0; j < n; j++ {
			toks = append(toks, randomF32(3*nh*hd, uint64(100*row+j+1)))
		}
		c.tokens = append(c.tokens, toks)
	}
	return c
}

// want is the attention output (nh·hd) of row's tokens from..to-1 over the
// row's tokens 0..to-1, at positions 0, 1, ….
func (c *gqaCase) want(row, from, to int) []float64 {
	var out []float64
	per := make([][]float64, to-from)
	for h := 0; h < c.nh; h++ {
		var q, k, v [][]float64
		for j := 0; j < to; j++ {
			part := func(which int) []float64 {
				x := make([]float64, c.hd)
				for d := range x {
					x[d] = float64(c.tokens[row][j][(which*c.nh+h)*c.hd+d])
				}
				return x
			}
			k = append(k, rotaryRef(part(1), j, c.r, c.cos, c.sin))
			v = append(v, part(2))
			if j >= from {
				q = append(q, rotaryRef(part(0), j, c.r, c.cos, c.sin))
			}
		}
		o := attentionRef(q, k, v, from)
		for i := range o {
			per[i] = append(per[i], o[i]...)
		}
	}
	for _, p := range per {
		out = append(out, p...)
	}
	return out
}

// graph is GroupQueryAttention over packed QKV with do_rotary and the cache
// as inputs and outputs.
func (c *gqaCase) graph() *Graph {
	g := NewGraph("gqa")
	qkv := g.Input("qkv", Float, c.b, "s", 3*c.nh*c.hd)
	pk := g.Input("past_key", Float, c.b, c.nh, "cap", c.hd)
	pv := g.Input("past_value", Float, c.b, c.nh, "cap", c.hd)
	sl := g.Input("seqlens_k", Int32, c.b)
	tot := g.Input("total", Int32, 1)
	cos := g.ConstF32([]int{c.maxPos, c.r / 2}, c.cos)
	sin := g.ConstF32([]int{c.maxPos, c.r / 2}, c.sin)
	out, k, v := g.GroupQueryAttention(GQAInputs{Query: qkv, PastKey: pk, PastValue: pv, SeqLensK: sl, TotalSeqLen: tot, Cos: cos, Sin: sin},
		GQAOptions{NumHeads: c.nh, KVNumHeads: c.nh, DoRotary: true})
	g.Output(out, "out", Float, c.b, "s", c.nh*c.hd)
	g.Output(k, "present_key", Float, c.b, c.nh, "cap", c.hd)
	g.Output(v, "present_value", Float, c.b, c.nh, "cap", c.hd)
	return g
}

// GroupQueryAttention on this ONNX Runtime: a right-padded prompt with rows
// of different lengths, then one token per row per step, with the cache
// bound as both past and present so that the kernel writes each row's new
// keys in place at that row's length. Each step's output is causal
// attention with GPT-NeoX's partial rotary over the row's own tokens.
func TestGroupQueryAttentionInPlace(t *testing.T) {
	const b, nh, hd, r, maxPos, capacity, steps = 2, 2, 32, 16, 64, 12, 4
	lens := []int{5, 3}
	prompt := 5
	c := newGQACase(b, nh, hd, r, maxPos, prompt+steps)
	g := c.graph()
	s, err := NewGraphSession(g, []string{"qkv", "past_key", "past_value", "seqlens_k", "total"}, []string{"out", "present_key", "present_value"}, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	keys := make([]float32, b*nh*capacity*hd)
	values := make([]float32, b*nh*capacity*hd)
	cacheK := mustF32(t, keys, b, nh, capacity, hd)
	cacheV := mustF32(t, values, b, nh, capacity, hd)
	w := 3 * nh * hd

	// Prompt: rows right-padded to the longest.
	in := make([]float32, b*prompt*w)
	for row := 0; row < b; row++ {
		for j := 0; j < lens[row]; j++ {
			copy(in[(row*prompt+j)*w:], c.tokens[row][j])
		}
	}
	out := make([]float32, b*prompt*nh*hd)
	err = s.RunInto([]ORTValue{mustF32(t, in, b, int64(prompt), int64(w)), cacheK, cacheV,
		mustI32(t, []int32{int32(lens[0] - 1), int32(lens[1] - 1)}, b), mustI32(t, []int32{int32(prompt)}, 1)},
		[]ORTValue{mustF32(t, out, b, int64(prompt), nh*hd), cacheK, cacheV})
	if err != nil {
		t.Fatal(err)
	}
	for row := 0; row < b; row++ {
		closeTo(t, "prompt row", out[row*prompt*nh*hd:(row*prompt+lens[row])*nh*hd], c.want(row, 0, lens[row]), 1e-5)
	}
	// Steps: each row's next token goes after its own length.
	for step := 0; step < steps; step++ {
		in := make([]float32, b*w)
		sl := make([]int32, b)
		total := 0
		for row := 0; row < b; row++ {
			copy(in[row*w:], c.tokens[row][lens[row]])
			sl[row] = int32(lens[row])
			total = max(total, lens[row]+1)
		}
		out := make([]float32, b*nh*hd)
		err = s.RunInto([]ORTValue{mustF32(t, in, b, 1, int64(w)), cacheK, cacheV, mustI32(t, sl, b), mustI32(t, []int32{int32(total)}, 1)},
			[]ORTValue{mustF32(t, out, b, 1, nh*hd), cacheK, cacheV})
		if err != nil {
			t.Fatal(err)
		}
		for row := 0; row < b; row++ {
			closeTo(t, "step", out[row*nh*hd:(row+1)*nh*hd], c.want(row, lens[row], lens[row]+1), 1e-5)
			lens[row]++
		}
	}
	// The cache holds each row's rotated keys at 0…len-1: written in place.
	for row := 0; row < b; row++ {
		for h := 0; h < nh; h++ {
			for j := 0; j < lens[row]; j++ {
				x := make([]float64, hd)
				for d := range x {
					x[d] = float64(c.tokens[row][j][(nh+h)*hd+d])
				}
				off := ((row*nh+h)*capacity + j) * hd
				closeTo(t, "cached key", keys[off:off+hd], rotaryRef(x, j, r, c.cos, c.sin), 1e-6)
			}
		}
	}
}

// The CPU kernel's limits, which the policy package works around: rotary
// needs head widths that are multiples of 16 and caches of a multiple of 8
// frequencies.
func TestGroupQueryAttentionLimits(t *testing.T) {
	c := newGQACase(1, 1, 16, 4, 8, 2)
	g := c.graph()
	s, err := NewGraphSession(g, []string{"qkv", "past_key", "past_value", "seqlens_k", "total"}, []string{"out", "present_key", "present_value"}, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	in := make([]float32, 2*3*16)
	cache := make([]float32, 2*16)
	_, err = s.Run(mustF32(t, in, 1, 2, 48), mustF32(t, cache, 1, 1, 2, 16), mustF32(t, cache, 1, 1, 2, 16),
		mustI32(t, []int32{1}, 1), mustI32(t, []int32{2}, 1))
	if err == nil || !strings.Contains(err.Error(), "multiple of 8") {
		t.Errorf("4 rotary dims: want the kernel to refuse, got %v", err)
	}
}

// MultiHeadAttention with unidirectional set is causal attention over the
// sequence, heads side by side.
func TestMultiHeadAttentionCausal(t *testing.T) {
	const b, s, nh, hd = 2, 4, 2, 8
	g := NewGraph("mha")
	q := g.Input("q", Float, b, s, nh*hd)
	k := g.Input("k", Float, b, s, nh*hd)
	v := g.Input("v", Float, b, s, nh*hd)
	out, _, _ := g.MultiHeadAttention(MHAInputs{Query: q, Key: k, Value: v}, MHAOptions{NumHeads: nh, Unidirectional: true}, false)
	g.Output(out, "out", Float, b, s, nh*hd)
	qs, ks, vs := randomF32(b*s*nh*hd, 1), randomF32(b*s*nh*hd, 2), randomF32(b*s*nh*hd, 3)
	res := runOnce(t, g, []string{"q", "k", "v"}, []string{"out"},
		mustF32(t, qs, b, s, nh*hd), mustF32(t, ks, b, s, nh*hd), mustF32(t, vs, b, s, nh*hd))
	want := make([]float64, b*s*nh*hd)
	for row := 0; row < b; row++ {
		for h := 0; h < nh; h++ {
			part := func(x []float32) [][]float64 {
				var m [][]float64
				for j := 0; j < s; j++ {
					vec := make([]float64, hd)
					for d := range vec {
						vec[d] = float64(x[((row*s+j)*nh+h)*hd+d])
					}
					m = append(m, vec)
				}
				return m
			}
			o := attentionRef(part(qs), part(ks), part(vs), 0)
			for j := range o {
				copy(want[((row*s+j)*nh+h)*hd:], o[j])
			}
		}
	}
	closeTo(t, "attention", res[0], want, 1e-5)
}
