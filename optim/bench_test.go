package optim

import (
	"fmt"
	"testing"
)

// pythia70m lists the parameter tensors of pythia-70m (70.4M values).
func pythia70m() []*Param {
	const d, v, f, layers = 512, 50304, 2048, 6
	var ps []*Param
	add := func(name string, noDecay bool, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		ps = append(ps, &Param{Name: name, Shape: shape, Data: make([]float32, n), Grad: make([]float32, n), NoDecay: noDecay})
	}
	add("embed_in.weight", false, v, d)
	for l := range layers {
		pre := fmt.Sprintf("layers.%d.", l)
		add(pre+"input_layernorm.weight", true, d)
		add(pre+"input_layernorm.bias", true, d)
		add(pre+"post_attention_layernorm.weight", true, d)
		add(pre+"post_attention_layernorm.bias", true, d)
		add(pre+"attention.query_key_value.weight", false, 3*d, d)
		add(pre+"attention.query_key_value.bias", true, 3*d)
		add(pre+"attention.dense.weight", false, d, d)
		add(pre+"attention.dense.bias", true, d)
		add(pre+"mlp.dense_h_to_4h.weight", false, f, d)
		add(pre+"mlp.dense_h_to_4h.bias", true, f)
		add(pre+"mlp.dense_4h_to_h.weight", false, d, f)
		add(pre+"mlp.dense_4h_to_h.bias", true, d)
	}
	add("final_layer_norm.weight", true, d)
	add("final_layer_norm.bias", true, d)
	add("embed_out.weight", false, v, d)
	for i, p := range ps {
		for j := range p.Data {
			p.Data[j] = float32(j%97) * 0.01
			p.Grad[j] = float32((i+j)%89-44) * 1e-3
		}
	}
	return ps
}

// BenchmarkAdamWStep70M times one AdamW step over pythia-70m's parameters.
//
//	go test -run '^$' -bench AdamW ./optim/
func BenchmarkAdamWStep70M(b *testing.B) {
	ps := pythia70m()
	n := 0
	for _, p := range ps {
		n += len(p.Data)
	}
	o, err := NewAdamW(ps, DefaultAdamW())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		o.Step(1e-4)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}

// BenchmarkClipGradNorm70M times the global-norm clip over pythia-70m's
// gradients.
func BenchmarkClipGradNorm70M(b *testing.B) {
	ps := pythia70m()
	n := 0
	for _, p := range ps {
		n += len(p.Data)
	}
	b.ResetTimer()
	for b.Loop() {
		ClipGradNorm(ps, 1e9)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
}
