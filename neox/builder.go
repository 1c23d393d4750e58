package neox

import "irl/onnx"

// builder builds one graph: an inference or decode graph, whose weights
// are initializers taken from a model, or a training graph, whose weights
// are inputs declared up front and which collects parameter gradients. Its
// methods lie by topic: the standard blocks, each forward beside its
// backward (blocks.go), the fused blocks (fused.go), the heads on the final
// hidden state (heads.go) and pooling (pool.go), from which forward.go,
// train.go and decode.go assemble the graphs.
type builder struct {
	g *onnx.Graph
	c Config
	// m supplies initializers; nil when every weight is declared in weights.
	m *Model
	// weights maps parameter names to graph values: initializers made on
	// first use, or graph inputs that a training graph declares up front.
	weights map[string]onnx.Value
	// grads maps parameter names to their gradients (training graphs).
	grads map[string]onnx.Value
	// frozen makes the backward blocks compute only the gradient of their
	// input, building no node for their parameters' gradients: the
	// backward through frozen layers down to trainable embeddings
	// (TrainOptions.TrainEmbeddings). The graph keeps every node it is
	// given (onnx.Graph prunes nothing), so the skipped gradients must
	// never be built rather than be built and left unused.
	frozen bool
	shapes map[string][]int
	// flatActs tells that activations are flat (N,·) from the embedding on,
	// as a training graph keeps them: dense is then one Gemm, flat adds no
	// node, and attention views its projections per head with headShape.
	flatActs bool
	// bs is [B,S], the batch's shape, which headShape needs with flatActs.
	bs onnx.Value
	// headShapes caches headShape's [B,S,H,w] by w: one Concat per graph
	// and width rather than one per layer.
	headShapes map[int]onnx.Value
	// onesV is a column of V ones (V,1), made once for rowSum.
	onesV onnx.Value
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
		panic("neox: no parameter " + name)
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

// addGrad accumulates a parameter's gradient: a parameter can receive
// several (tied embeddings: the input lookup and the output head). The
// backward blocks call it only when !b.frozen.
func (b *builder) addGrad(name string, d onnx.Value) {
	if b.frozen {
		panic("neox: a gradient of " + name + " built in a frozen layer's backward")
	}
	if old, ok := b.grads[name]; ok {
		d = b.g.Add(old, d)
	}
	b.grads[name] = d
}

// flat views an activation (B,S,W) as (N,W), as the backward and the heads
// work; with flatActs it is (N,W) already, and no node is added.
func (b *builder) flat(v onnx.Value) onnx.Value {
	if b.flatActs {
		return v
	}
	return b.g.Op("Flatten", []onnx.Value{v}, onnx.AttrInt("axis", 2))
}

// headShape is [B,S,H,w], to view a flat (N,H·w) activation per head, built
// once per graph and width (flatActs graphs only).
func (b *builder) headShape(w int) onnx.Value {
	if v, ok := b.headShapes[w]; ok {
		return v
	}
	if b.headShapes == nil {
		b.headShapes = map[int]onnx.Value{}
	}
	v := b.g.Concat(0, b.bs, b.g.ConstI64(int64(b.c.NumHeads), int64(w)))
	b.headShapes[w] = v
	return v
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
		panic("neox: no parameter " + name)
	}
	return sh
}

// cacheWrite writes a decode step's keys and values into a capacity-sized
// cache: the past rows picked by rows, with the T new tokens at P…P+T−1.
type cacheWrite struct {
	g     *onnx.Graph
	rows  onnx.Value // (B) I64
	index onnx.Value // (B,H,T,hd) I64: P+t at every [b,h,t,·]
	total onnx.Value // [P+T]
}

func newCacheWrite(g *onnx.Graph, c Config, ids, mask, rows onnx.Value) *cacheWrite {
	shape := g.Shape(ids)                                                   // [B,T]
	t := g.Gather(shape, g.ScalarI64(1), 0)                                 // T
	total := g.Slice(g.Shape(mask), []int64{1}, []int64{2}, []int64{0})     // [P+T]
	k := g.Squeeze(total, 0)                                                // P+T
	at := g.Op("Range", []onnx.Value{g.Sub(k, t), k, g.ScalarI64(1)})       // (T)
	dims := g.Concat(0, g.Slice(shape, []int64{0}, []int64{1}, []int64{0}), // [B,H,T,hd]
		g.ConstI64(int64(c.NumHeads)), g.Slice(shape, []int64{1}, []int64{2}, []int64{0}), g.ConstI64(int64(c.HeadDim())))
	index := g.Op("Expand", []onnx.Value{g.Reshape(at, 1, 1, -1, 1), dims})
	return &cacheWrite{g: g, rows: rows, index: index, total: total}
}

// write returns the cache after the step: the past (B0,H,C,hd) at the
// picked rows with the new keys or values (B,H,T,hd) written in.
func (w *cacheWrite) write(past, x onnx.Value) onnx.Value {
	g := w.g
	return g.Op("ScatterElements", []onnx.Value{g.Gather(past, w.rows, 0), w.index, x}, onnx.AttrInt("axis", 2))
}

// read is the cache's first P+T tokens, what the step's attention sees.
func (w *cacheWrite) read(cache onnx.Value) onnx.Value {
	g := w.g
	return g.Op("Slice", []onnx.Value{cache, g.ConstI64(0), w.total, g.ConstI64(2)})
}
