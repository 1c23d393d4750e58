package policy

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/optim"
)

// The bound paths (IoBinding, tensors over Go memory, a parameter store)
// against plain onnxruntime_go runs of the very same graphs: the same
// arithmetic, so the same bits.

// plainRun runs g in an onnx.Session with inputs names ← vals and returns
// the float32 outputs named in outs (int64 outputs as float32 of their
// values), every output ONNX Runtime-allocated.
func plainRun(t *testing.T, g *onnx.Graph, names []string, vals []onnx.ORTValue, outs []string) map[string][]float32 {
	t.Helper()
	s, err := onnx.NewGraphSession(g, names, outs, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	res, err := s.Run(vals...)
	if err != nil {
		t.Fatal(err)
	}
	defer onnx.DestroyAll(res...)
	got := map[string][]float32{}
	for i, name := range outs {
		if d, _, err := onnx.Float32Data(res[i]); err == nil {
			got[name] = append([]float32(nil), d...)
			continue
		}
		d, _, err := onnx.Int64Data(res[i])
		if err != nil {
			t.Fatalf("output %s: %v", name, err)
		}
		for _, x := range d {
			got[name] = append(got[name], float32(x))
		}
	}
	return got
}

// plainInputs builds onnxruntime_go tensors over Go data; the caller
// destroys them.
type plainInputs struct {
	names []string
	vals  []onnx.ORTValue
}

func (p *plainInputs) i64(t *testing.T, name string, data []int64, shape ...int64) {
	t.Helper()
	v, err := onnx.TensorI64(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	p.names, p.vals = append(p.names, name), append(p.vals, v)
}

func (p *plainInputs) f32(t *testing.T, name string, data []float32, shape ...int64) {
	t.Helper()
	v, err := onnx.TensorF32(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	p.names, p.vals = append(p.names, name), append(p.vals, v)
}

func (p *plainInputs) params(t *testing.T, m *neox.Model, specs []neox.ParamSpec) {
	t.Helper()
	for _, s := range specs {
		p.f32(t, s.Name, m.Params[s.Name].Data, neox.Dims64(s.Shape)...)
	}
}

func (p *plainInputs) destroy() { onnx.DestroyAll(p.vals...) }

// sameBits fails unless got and want hold the same float32 bits.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, the plain run gives %v", what, i, got[i], want[i])
		}
	}
}

// A Runner's bound run equals a plain run of its graph, for logits and
// hidden states, pooled features, and log-probs and values read from a
// parameter store, on the fused and the standard graphs.
func TestBoundRunnerMatchesPlain(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	c := m.Config
	if _, ok := m.Params[neox.ValueHeadWeight]; !ok {
		m.Params[neox.ValueHeadWeight] = &neox.Param{Shape: []int{1, c.HiddenSize}, Data: make([]float32, c.HiddenSize)}
		m.Params[neox.ValueHeadBias] = &neox.Param{Shape: []int{1}, Data: []float32{0.25}}
		for i := range m.Params[neox.ValueHeadWeight].Data {
			m.Params[neox.ValueHeadWeight].Data[i] = float32(i%5) * 0.1
		}
	}
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	tokens := make([]int64, len(ids))
	for i := range tokens {
		tokens[i] = int64(i*7) % int64(c.VocabSize)
	}
	for _, path := range paths {
		for _, fo := range []neox.ForwardOptions{
			{Hidden: []int{0, c.NumLayers}, Logits: true},
			{Hidden: []int{c.NumLayers}, Pool: neox.PoolLast},
			{LogProbs: true, Values: true, ParamInputs: true},
		} {
			fo.Standard = path.standard
			r, err := NewRunner(m, fo, onnx.Options{Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			bt := &neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask}
			var got map[string]Output
			if fo.LogProbs {
				got, err = r.ForwardTokens(bt, tokens, 0.7)
			} else {
				got, err = r.Forward(bt)
			}
			if err != nil {
				t.Fatal(err)
			}
			var in plainInputs
			B, S := int64(ref.b), int64(ref.s)
			in.i64(t, neox.InputIDs, bt.InputIDs, B, S)
			in.i64(t, neox.AttentionMask, bt.AttentionMask, B, S)
			in.i64(t, neox.PositionIDs, bt.PositionIDs, B, S)
			in.params(t, m, r.graph.Params)
			if fo.LogProbs {
				in.i64(t, neox.TokensInput, tokens, B, S)
				in.f32(t, neox.TemperatureInput, []float32{0.7}, 1)
			}
			want := plainRun(t, r.graph.Graph, in.names, in.vals, r.graph.Outputs)
			in.destroy()
			for _, name := range r.graph.Outputs {
				sameBits(t, path.name+" "+name, got[name].Data, want[name])
			}
			r.Destroy()
		}
	}
}

// ppoBatch is a PPO training batch over the fixture's rows.
func ppoBatch(ref reference, ids, mask []int64, vocab int) *TrainBatch {
	n := len(ids)
	tb := &TrainBatch{Batch: neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask},
		Tokens: make([]int64, n), Temperature: 0.9, LossMask: make([]float32, n), OldLogProbs: make([]float32, n),
		OldValues: make([]float32, n), Advantages: make([]float32, n), Returns: make([]float32, n),
		PPOCoefs: [4]float32{0.2, 0.2, 0.5, 0.01}}
	for i := range tb.Tokens {
		tb.Tokens[i] = int64(i*5+3) % int64(vocab)
		tb.LossMask[i] = float32(mask[i])
		tb.OldLogProbs[i] = -3 - float32(i%4)*0.1
		tb.Advantages[i] = float32(i%7)*0.3 - 1
		tb.Returns[i] = float32(i%3) * 0.5
		tb.OldValues[i] = 0.1
	}
	return tb
}

// A Trainer's bound step equals a plain run of its graph: the loss, the
// head's outputs and every gradient, for cross-entropy and PPO.
func TestBoundTrainerMatchesPlain(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-sequential")
	c := m.Config
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	for _, loss := range []neox.LossKind{neox.CrossEntropy, neox.PPO} {
		tr, err := NewTrainer(m, neox.TrainOptions{Loss: loss, UnfrozenLayers: 1}, onnx.Options{Threads: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var tb *TrainBatch
		if loss == neox.PPO {
			tb = ppoBatch(ref, ids, mask, c.VocabSize)
		} else {
			tb = &TrainBatch{Batch: neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask}}
			tb.NextTokenTargets()
		}
		res, err := tr.Step(tb)
		if err != nil {
			t.Fatal(err)
		}
		var in plainInputs
		B, S := int64(ref.b), int64(ref.s)
		in.i64(t, neox.InputIDs, tb.InputIDs, B, S)
		in.i64(t, neox.AttentionMask, tb.AttentionMask, B, S)
		in.i64(t, neox.PositionIDs, tb.PositionIDs, B, S)
		if loss == neox.PPO {
			in.i64(t, neox.TokensInput, tb.Tokens, B, S)
			in.f32(t, neox.TemperatureInput, []float32{tb.Temperature}, 1)
			for _, x := range []struct {
				name string
				v    []float32
			}{{neox.OldLogProbsInput, tb.OldLogProbs}, {neox.OldValuesInput, tb.OldValues}, {neox.AdvantagesInput, tb.Advantages}, {neox.ReturnsInput, tb.Returns}, {neox.LossMaskInput, tb.LossMask}} {
				in.f32(t, x.name, x.v, B, S)
			}
			coefs := tb.PPOCoefs
			in.f32(t, neox.PPOCoefsInput, coefs[:], 4)
		} else {
			in.i64(t, neox.LabelsInput, tb.Labels, B, S)
			in.f32(t, neox.LossMaskInput, tb.LossMask, B, S)
		}
		in.params(t, m, tr.Graph.Params)
		want := plainRun(t, tr.Graph.Graph, in.names, in.vals, tr.Graph.Outputs)
		in.destroy()
		if float32(res.Loss) != want[neox.LossOutput][0] {
			t.Errorf("loss %v, plain run %v", res.Loss, want[neox.LossOutput][0])
		}
		for name, v := range res.Outputs {
			sameBits(t, name, v, want[name])
		}
		if len(tr.Graph.Trainable) == 0 {
			t.Fatal("nothing trainable: the test proves nothing")
		}
		for _, p := range tr.Graph.Trainable {
			sameBits(t, "gradient of "+p, tr.Grad(p), want[neox.GradName(p)])
		}
		tr.Destroy()
	}
}

// The standard decoder's bound steps, its cache carried between them in
// place, equal plain runs of its graph that carry the cache through Go:
// a prefill, steps, and a step that drops a row.
func TestBoundDecoderMatchesPlain(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	c := m.Config
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	pos := neox.PositionsFromMask(mask, ref.b, ref.s)
	d, err := NewDecoder(m, neox.DecodeOptions{}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	const capacity = 10
	kv, err := d.NewKVCache(ref.b, capacity)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Destroy()
	kv.Reset(ref.b)
	h, hd, v := c.NumHeads, c.HeadDim(), c.VocabSize
	// The plain run's cache, in Go: zeros where the bound cache is
	// undefined, which no step reads.
	n := ref.b * h * capacity * hd
	plain := make([][]float32, 2*c.NumLayers)
	for i := range plain {
		plain[i] = make([]float32, n)
	}
	cols := func(x []int64, rows []int, from, to int) []int64 {
		var y []int64
		for _, row := range rows {
			y = append(y, x[row*ref.s+from:row*ref.s+to]...)
		}
		return y
	}
	rows, pastB := []int{0, 1}, ref.b
	for _, st := range []struct {
		from, to int
		keep     []int64 // nil: every row
	}{{0, 6, nil}, {6, 7, nil}, {7, 8, []int64{1}}, {8, 10, nil}} {
		var keep []int
		if st.keep != nil {
			for _, r := range st.keep {
				keep = append(keep, rows[r])
			}
		} else {
			keep = rows
		}
		b := len(keep)
		sel := st.keep
		if sel == nil {
			for r := range keep {
				sel = append(sel, int64(r))
			}
		}
		ti, tm, tp := cols(ids, keep, st.from, st.to), cols(mask, keep, 0, st.to), cols(pos, keep, st.from, st.to)
		t64 := int64(st.to - st.from)
		out := DecodeOutputs{Logits: make([]float32, b*v), LogSumExp: make([]float32, b), ArgMax: make([]int64, b), MaxLogit: make([]float32, b)}
		if err := d.Step(ti, tm, tp, st.to-st.from, st.keep, kv, out); err != nil {
			t.Fatal(err)
		}
		var in plainInputs
		B := int64(b)
		in.i64(t, neox.InputIDs, ti, B, t64)
		in.i64(t, neox.AttentionMask, tm, B, int64(st.to))
		in.i64(t, neox.PositionIDs, tp, B, t64)
		in.i64(t, neox.RowsInput, sel, B)
		for l := 0; l < c.NumLayers; l++ {
			for k, name := range []string{neox.PastKey(l), neox.PastValue(l)} {
				in.f32(t, name, plain[2*l+k][:pastB*h*capacity*hd], int64(pastB), int64(h), capacity, int64(hd))
			}
		}
		want := plainRun(t, d.graph.Graph, in.names, in.vals, d.graph.Outputs)
		in.destroy()
		what := func(name string) string { return name + " after token " + string(rune('0'+st.to)) }
		sameBits(t, what(neox.LogitsOutput), out.Logits, want[neox.LogitsOutput])
		sameBits(t, what(neox.LogSumExpOutput), out.LogSumExp, want[neox.LogSumExpOutput])
		sameBits(t, what(neox.MaxLogitOutput), out.MaxLogit, want[neox.MaxLogitOutput])
		for r, a := range out.ArgMax {
			if float32(a) != want[neox.ArgMaxOutput][r] {
				t.Fatalf("%s: row %d argmax %d, plain run %v", what(neox.ArgMaxOutput), r, a, want[neox.ArgMaxOutput][r])
			}
		}
		for l := 0; l < c.NumLayers; l++ {
			copy(plain[2*l], want[neox.PresentKey(l)])
			copy(plain[2*l+1], want[neox.PresentValue(l)])
		}
		rows, pastB = keep, b
	}
	if kv.B != 1 || kv.P != 10 {
		t.Errorf("the cache holds %d×%d, want 1×10", kv.B, kv.P)
	}
}

// A resident store (the CUDA path, here in CPU memory that is not
// Model.Params') gives what the views give: the same gradients and
// forward outputs, bit for bit, the same greedy generations, and after
// optimiser steps (the AdamW graph against the Go AdamW) the same weights
// within 1e-6, which every session sharing the store reads; its
// checkpoint copy reaches Model.Params.
func TestResidentStoreMatchesViews(t *testing.T) {
	_, ref := loadFixture(t, "tiny-neox-sequential")
	load := func() *neox.Model {
		m, _ := loadFixture(t, "tiny-neox-sequential")
		return m
	}
	hostM, devM := load(), load()
	hostS, err := NewParamStore(hostM, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer hostS.Destroy()
	devS, err := NewResidentParamStore(devM, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer devS.Destroy()
	if hostS.Resident() || !devS.Resident() {
		t.Fatal("store kinds are not what was asked")
	}
	c := hostM.Config
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	type side struct {
		m   *neox.Model
		s   *ParamStore
		tr  *Trainer
		opt *Optimizer
		run *Runner
		gen *Generator
	}
	sides := []*side{{m: hostM, s: hostS}, {m: devM, s: devS}}
	for _, sd := range sides {
		if sd.tr, err = NewTrainer(sd.m, neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: -1}, onnx.Options{Threads: 1}, sd.s); err != nil {
			t.Fatal(err)
		}
		defer sd.tr.Destroy()
		if sd.opt, err = NewOptimizer(sd.tr, optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}); err != nil {
			t.Fatal(err)
		}
		defer sd.opt.Destroy()
		if sd.run, err = NewRunner(sd.m, neox.ForwardOptions{LogProbs: true, Values: true, ParamInputs: true, Standard: true}, onnx.Options{Threads: 1}, sd.s); err != nil {
			t.Fatal(err)
		}
		defer sd.run.Destroy()
		if sd.gen, err = NewGeneratorWith(sd.m, neox.DecodeOptions{ParamInputs: true, Standard: true}, onnx.Options{Threads: 1}, sd.s); err != nil {
			t.Fatal(err)
		}
		defer sd.gen.Destroy()
	}
	grads := func(sd *side, name string) []float32 {
		if g := sd.tr.Grad(name); g != nil {
			return g
		}
		g := make([]float32, neox.Numel(sd.m.Params[name].Shape))
		if err := sd.tr.GradTensor(name).CopyToHost(g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	forward := func(sd *side) map[string]Output {
		bt := &neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask}
		out, err := sd.run.ForwardTokens(bt, ppoBatch(ref, ids, mask, c.VocabSize).Tokens, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Greedy (only the statistics leave the resident decoder) and sampled
	// (the logits copied out at each step).
	generate := func(sd *side) []Generation {
		var all []Generation
		for _, so := range []SampleOptions{{Greedy: true}, {Temperature: 0.8, TopK: 10, TopP: 1}} {
			gens, err := sd.gen.Generate([][]int64{{3, 17, 200, 41}, {9, 9}}, GenerateOptions{MaxNewTokens: 5, Sampling: so, Seed: 3, IgnoreEOS: true})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, gens...)
		}
		return all
	}
	// Before any update: the same arithmetic on the same values.
	hf, df := forward(sides[0]), forward(sides[1])
	for name := range hf {
		sameBits(t, "before: "+name, df[name].Data, hf[name].Data)
	}
	hg, dg := generate(sides[0]), generate(sides[1])
	for i := range hg {
		if !slices.Equal(hg[i].IDs, dg[i].IDs) || !slices.Equal(hg[i].LogProbs, dg[i].LogProbs) {
			t.Fatalf("before: sequence %d: resident %v %v, views %v %v", i, dg[i].IDs, dg[i].LogProbs, hg[i].IDs, hg[i].LogProbs)
		}
	}
	// Three optimiser steps, clipped.
	for step := 0; step < 3; step++ {
		var norms [2]float64
		for _, sd := range sides {
			if _, err := sd.tr.Step(ppoBatch(ref, ids, mask, c.VocabSize)); err != nil {
				t.Fatal(err)
			}
		}
		if step == 0 { // before the Go AdamW's clipping scales its gradients
			for _, name := range sides[0].tr.Graph.Trainable {
				sameBits(t, "gradient of "+name, grads(sides[1], name), grads(sides[0], name))
			}
		}
		for k, sd := range sides {
			if norms[k], err = sd.opt.Step(1e-2, 0.5); err != nil {
				t.Fatal(err)
			}
		}
		if math.Abs(norms[0]-norms[1]) > 1e-12*norms[0] {
			t.Errorf("step %d: gradient norm %v on the resident store, %v on the views", step+1, norms[1], norms[0])
		}
		if step == 0 && !(norms[0] > 0.5) {
			t.Errorf("gradient norm %v: clipping at 0.5 never triggers", norms[0])
		}
	}
	// Every session reads the updated weights: the forward agrees, and
	// differs from before.
	hf2, df2 := forward(sides[0]), forward(sides[1])
	for name := range hf2 {
		if slices.Equal(hf2[name].Data, hf[name].Data) {
			t.Errorf("%s unchanged by three optimiser steps", name)
		}
		diff, scale := maxAbsDiff(df2[name].Data, hf2[name].Data)
		if diff > 1e-5*math.Max(1, scale) {
			t.Errorf("after the steps: %s differs by %.3g between the stores", name, diff)
		}
	}
	if err := devS.CopyToModel(); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for name, p := range hostM.Params {
		for i, x := range p.Data {
			e := math.Abs(float64(devM.Params[name].Data[i]-x)) / math.Max(1, math.Abs(float64(x)))
			worst = math.Max(worst, e)
		}
	}
	if worst > 1e-6 {
		t.Errorf("weights after three steps differ by %.3g (relative) between the AdamW graph and the Go AdamW", worst)
	}
	t.Logf("weights after three steps: max relative difference %.3g", worst)
	// CopyFromModel writes Model.Params back: a restored checkpoint.
	w := devM.Params[c.ParamSpecs()[0].Name].Data
	old := w[0]
	w[0] = 42
	if err := devS.CopyFromModel(); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(w))
	tt, _ := devS.Tensor(c.ParamSpecs()[0].Name)
	if err := tt.CopyToHost(got); err != nil || got[0] != 42 {
		t.Errorf("after CopyFromModel the store holds %v (%v), want 42", got[0], err)
	}
	w[0] = old
}

// A thousand bound training steps, optimiser steps and forwards on a
// resident store leave the objects and the process's size flat.
func TestBoundLoopMemoryFlat(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	store, err := NewResidentParamStore(m, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Destroy()
	tr, err := NewTrainer(m, neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: 1}, onnx.Options{Threads: 1}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Destroy()
	opt, err := NewOptimizer(tr, optim.DefaultAdamW())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Destroy()
	run, err := NewRunner(m, neox.ForwardOptions{LogProbs: true, Values: true, ParamInputs: true}, onnx.Options{Threads: 1}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Destroy()
	tb := ppoBatch(ref, ids, mask, m.Config.VocabSize)
	cycle := func() {
		if _, err := tr.Step(tb); err != nil {
			t.Fatal(err)
		}
		if _, err := opt.Step(1e-4, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := run.ForwardTokens(&neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask}, tb.Tokens, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ {
		cycle()
	}
	runtime.GC()
	objects, before := onnx.LiveObjects(), rss(t)
	for i := 0; i < 1000; i++ {
		cycle()
	}
	runtime.GC()
	after := rss(t)
	if got := onnx.LiveObjects(); got != objects {
		t.Errorf("%d ONNX Runtime objects held after 1000 cycles, %d before", got, objects)
	}
	t.Logf("RSS %d KiB -> %d KiB over 1000 cycles", before, after)
	if after-before > 8<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB over 1000 cycles", before, after)
	}
}
