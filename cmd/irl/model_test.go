package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
	"irl/safetensors"
)

func maxRelErr(t *testing.T, got, want *safetensors.Tensor) float64 {
	t.Helper()
	g, err := got.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(w) {
		t.Fatalf("%s: %d values, want %d", got.Name, len(g), len(w))
	}
	var scale, worst float64
	for i := range w {
		scale = math.Max(scale, math.Abs(float64(w[i])))
		worst = math.Max(worst, math.Abs(float64(g[i]-w[i])))
	}
	return worst / scale
}

// model forward and model grad through the CLI, against transformers.
func TestModelForwardAndGradCommands(t *testing.T) {
	tmp := t.TempDir()
	dir := "../../testdata/tiny-neox-parallel"
	ref, err := safetensors.ReadFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 has no padding: its logits compare everywhere.
	ids, _ := ref.Get("input_ids")
	row0 := safetensors.Tensor{Name: "input_ids", DType: ids.DType, Shape: []int{1, ids.Shape[1]}, Data: ids.Data[:8*ids.Shape[1]]}
	in := filepath.Join(tmp, "in.safetensors")
	if err := safetensors.WriteFile(in, []safetensors.Tensor{row0, safetensors.FromFloat32("ignored", []int{1}, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	fwd := filepath.Join(tmp, "fwd.safetensors")
	if err := run(t, "model", "forward", "--model", dir, "--inputs", in, "--out", fwd); err != nil {
		t.Fatal(err)
	}
	out, err := safetensors.ReadFile(fwd)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := out.Get("logits")
	want, _ := ref.Get("logits")
	w := *want
	w.Shape = got.Shape
	w.Data = want.Data[:len(got.Data)]
	if e := maxRelErr(t, got, &w); e > 1e-4 {
		t.Errorf("logits off by %.2g of their largest magnitude", e)
	}
	for _, n := range []string{"hidden_states.0", "hidden_states.1", "hidden_states.2"} {
		if !out.Has(n) {
			t.Errorf("no %s in forward output", n)
		}
	}

	grad := filepath.Join(tmp, "grad.safetensors")
	if err := run(t, "model", "grad", "--model", dir, "--inputs", in, "--out", grad); err != nil {
		t.Fatal(err)
	}
	g, err := safetensors.ReadFile(grad)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range g.Names() {
		refName := name
		if name == "grad.embed_out.weight" {
			refName = "grad.lm_head.weight"
		}
		gt, _ := g.Get(name)
		rt, err := ref.Get(refName)
		if err != nil {
			t.Fatalf("%s has no reference: %v", name, err)
		}
		if e := maxRelErr(t, gt, rt); e > 1e-3 {
			t.Errorf("%s off by %.2g relative", name, e)
		}
	}
	if len(g.Names()) != 29 {
		t.Errorf("%d tensors, want loss and 28 gradients", len(g.Names()))
	}

	// Bad input names the file and the tensor.
	bad := filepath.Join(tmp, "bad.safetensors")
	safetensors.WriteFile(bad, []safetensors.Tensor{safetensors.FromInt64("input_ids", []int{1, 2}, []int64{1, 9999})}, nil)
	if err := run(t, "model", "forward", "--model", dir, "--inputs", bad, "--out", fwd); err == nil || !strings.Contains(err.Error(), "bad.safetensors") || !strings.Contains(err.Error(), "input_ids") {
		t.Errorf("out-of-vocabulary error: %v", err)
	}
	safetensors.WriteFile(bad, []safetensors.Tensor{safetensors.FromInt64("ids", []int{1, 2}, []int64{1, 2})}, nil)
	if err := run(t, "model", "forward", "--model", dir, "--inputs", bad, "--out", fwd); err == nil || !strings.Contains(err.Error(), `"input_ids"`) {
		t.Errorf("missing tensor error: %v", err)
	}
	if err := run(t, "model", "forward", "--model", dir, "--inputs", in, "--out", fwd, "--device", "cuda"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "cuda") {
		t.Errorf("--device cuda without a CUDA provider: %v", err)
	}
}

// model init refuses a folder that holds files unless --overwrite, which
// replaces the whole folder; the tokenizer's EOS becomes the model's.
func TestModelInitFolderRules(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	args := []string{"model", "init", "--shape", "pythia-70m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--vocab-size", "50304", "--out", dir, "--tokenizer", filepath.Join("..", "..", "testdata", "gpt2-bpe", "tokenizer.json")}
	if err := run(t, args...); err != nil {
		t.Fatal(err)
	}
	cfg, err := neox.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EOSTokenID != 50256 {
		t.Errorf("EOS %d, want GPT-2's 50256", cfg.EOSTokenID)
	}
	os.WriteFile(filepath.Join(dir, "optimizer.safetensors"), []byte("old"), 0o644)
	if err := run(t, args...); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("second init into the folder: %v", err)
	}
	if err := run(t, append(args, "--overwrite", "--eos-token-id", "7")...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "optimizer.safetensors")); !os.IsNotExist(err) {
		t.Error("--overwrite left an old optimizer file beside the new weights")
	}
	if cfg, _ := neox.LoadConfig(filepath.Join(dir, "config.json")); cfg.EOSTokenID != 7 {
		t.Errorf("--eos-token-id: %d", cfg.EOSTokenID)
	}
}
