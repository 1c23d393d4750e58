package policy

import (
	"math"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// The forward graph's per-token log-probs and entropy equal a log-softmax of
// its own logits computed in float64, and the training graph's LogProb head
// gives the same numbers from the same head functions.
func TestForwardLogProbs(t *testing.T) {
	m, err := neox.Init(tinyConfig(true, false, 0.5), 11)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 12)
	cfg := m.Config
	m.Params[neox.ValueHeadWeight] = &neox.Param{Shape: []int{1, cfg.HiddenSize}, Data: make([]float32, cfg.HiddenSize)}
	m.Params[neox.ValueHeadBias] = &neox.Param{Shape: []int{1}, Data: []float32{0.25}}
	for i := range m.Params[neox.ValueHeadWeight].Data {
		m.Params[neox.ValueHeadWeight].Data[i] = float32(i%3) * 0.1
	}
	bt := neox.Batch{B: 2, S: 5, InputIDs: []int64{4, 8, 15, 16, 23, 0, 0, 7, 1, 2}, AttentionMask: []int64{1, 1, 1, 1, 1, 0, 0, 1, 1, 1}}
	tokens := []int64{8, 15, 16, 23, 5, 0, 0, 1, 2, 3}
	const temp = 0.7

	lr, err := NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lr.Destroy()
	b1 := bt
	logits, err := lr.Forward(&b1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(m, neox.ForwardOptions{LogProbs: true, Values: true}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	b2 := bt
	out, err := r.ForwardTokens(&b2, tokens, temp)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.VocabSize
	for i := range tokens {
		if bt.AttentionMask[i] == 0 {
			continue
		}
		z := logits[neox.LogitsOutput].Data[i*v : (i+1)*v]
		zmax := math.Inf(-1)
		for _, x := range z {
			zmax = math.Max(zmax, float64(x)/temp)
		}
		var sum float64
		for _, x := range z {
			sum += math.Exp(float64(x)/temp - zmax)
		}
		lse := zmax + math.Log(sum)
		var ent float64
		for _, x := range z {
			l := float64(x)/temp - lse
			ent -= math.Exp(l) * l
		}
		want := float64(z[tokens[i]])/temp - lse
		if d := math.Abs(float64(out[neox.LogProbsOutput].Data[i]) - want); d > 1e-5 {
			t.Errorf("position %d: log-prob %v, want %v", i, out[neox.LogProbsOutput].Data[i], want)
		}
		if d := math.Abs(float64(out[neox.EntropyOutput].Data[i]) - ent); d > 1e-5 {
			t.Errorf("position %d: entropy %v, want %v", i, out[neox.EntropyOutput].Data[i], ent)
		}
	}
	if len(out[neox.ValuesOutput].Data) != 10 {
		t.Fatalf("values: %v", out[neox.ValuesOutput].Shape)
	}

	tr, err := NewTrainer(m, neox.TrainOptions{Loss: neox.LogProb, UnfrozenLayers: -1}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Destroy()
	tb := &TrainBatch{Batch: bt, Tokens: tokens, Temperature: temp}
	res, err := tr.Step(tb)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for _, name := range []string{neox.LogProbsOutput, neox.EntropyOutput, neox.ValuesOutput} {
		for i := range tokens {
			if bt.AttentionMask[i] != 0 {
				worst = math.Max(worst, math.Abs(float64(res.Outputs[name][i]-out[name].Data[i])))
			}
		}
	}
	t.Logf("forward graph vs training graph: max |Δ| %g", worst)
	if worst > 1e-5 {
		t.Errorf("forward and training graphs differ by %g", worst)
	}

	// The temperature rule: positive, everywhere.
	tb.Temperature = 0
	if _, err := tr.Step(tb); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Errorf("temperature 0 in training: %v", err)
	}
	if _, err := r.ForwardTokens(&b2, tokens, 0); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Errorf("temperature 0 in the forward graph: %v", err)
	}
	if _, err := NewRunner(&neox.Model{Config: cfg, Params: map[string]*neox.Param{}}, neox.ForwardOptions{Values: true}, onnx.Options{}, nil); err == nil {
		t.Error("values without a value head")
	}
}
