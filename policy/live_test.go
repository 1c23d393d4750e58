package policy

import (
	"reflect"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// A live generator and runner read the model's memory at every step: after
// an in-place update they give what a freshly built one gives, and before it
// what the copying one gives.
func TestLiveSeesUpdates(t *testing.T) {
	m, _ := loadFixture(t, "tiny-neox-parallel")
	prompts := [][]int64{{3, 17, 200, 41}, {9, 9}}
	o := GenerateOptions{MaxNewTokens: 6, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	store, err := NewParamStore(m, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Destroy()
	live, err := NewLiveGenerator(store)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Destroy()
	run, err := NewRunner(m, neox.ForwardOptions{Hidden: []int{m.Config.NumLayers}, ParamInputs: true}, onnx.Options{Threads: 1}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Destroy()
	generate := func(g *Generator) [][]int64 {
		gens, err := g.Generate(prompts, o)
		if err != nil {
			t.Fatal(err)
		}
		var ids [][]int64
		for _, x := range gens {
			ids = append(ids, x.IDs)
		}
		return ids
	}
	hidden := func() []float32 {
		bt := &neox.Batch{B: 1, S: 3, InputIDs: []int64{5, 6, 7}}
		out, err := run.Forward(bt)
		if err != nil {
			t.Fatal(err)
		}
		return out[neox.HiddenOutput(m.Config.NumLayers)].Data
	}
	before, h0 := generate(live), hidden()
	if want := generate(newGenerator(t, m)); !reflect.DeepEqual(before, want) {
		t.Fatalf("live %v, copying %v", before, want)
	}
	// An optimiser step, in place.
	for _, s := range m.Config.ParamSpecs() {
		d := m.Params[s.Name].Data
		for i := range d {
			d[i] *= 1.5
		}
	}
	after, h1 := generate(live), hidden()
	if want := generate(newGenerator(t, m)); !reflect.DeepEqual(after, want) {
		t.Errorf("after the update: live %v, fresh %v", after, want)
	}
	if reflect.DeepEqual(before, after) || reflect.DeepEqual(h0, h1) {
		t.Error("the update changed nothing: the test proves nothing")
	}
}
