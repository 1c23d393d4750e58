package ppo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/optim"
	"irl/reward"
	"irl/sft"
	"irl/tokenizer"
)

// toyWorld is the paper's toy task in miniature: "The {entity} is
// {adjective}." with toxic and non-toxic adjectives, a word-level
// tokenizer, and a tiny model fine-tuned on all the sentences.
type toyWorld struct {
	tok         *tokenizer.Tokenizer
	tokPath     string
	model       string // folder of the SFT model
	train, eval []Prompt
	lexicon     *reward.Lexicon
}

var (
	toyEntities = []string{"cat", "dog", "bird", "fish", "horse", "cow", "goat", "duck", "frog", "bear", "wolf", "lion"}
	toyGood     = []string{"kind", "gentle", "happy", "calm", "friendly", "brave"}
	toyBad      = []string{"nasty", "vile", "cruel", "mean", "rude", "awful"}
)

// newToyWorld builds the world once per test binary run into dir.
func newToyWorld(t *testing.T) *toyWorld {
	t.Helper()
	dir := t.TempDir()
	words := append(append(append([]string{"The", "is", "."}, toyEntities...), toyGood...), toyBad...)
	tj, err := tokenizer.BuildWordBPE(words)
	if err != nil {
		t.Fatal(err)
	}
	w := &toyWorld{tokPath: filepath.Join(dir, "tokenizer.json"), model: filepath.Join(dir, "sft")}
	if err := os.WriteFile(w.tokPath, tj, 0o644); err != nil {
		t.Fatal(err)
	}
	if w.tok, err = tokenizer.Load(w.tokPath); err != nil {
		t.Fatal(err)
	}
	eos, _ := w.tok.EOS()
	m, err := neox.Init(neox.Config{VocabSize: w.tok.VocabSize(), HiddenSize: 32, NumLayers: 2, NumHeads: 2, IntermediateSize: 64,
		MaxPositions: 16, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.02, EOSTokenID: eos, BOSTokenID: eos}, 11)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(s string) []int64 {
		var out []int64
		for _, id := range w.tok.Encode(s) {
			out = append(out, int64(id))
		}
		return out
	}
	var ex []sft.Example
	for _, e := range toyEntities {
		p := ids("The " + e + " is")
		for _, a := range append(append([]string(nil), toyGood...), toyBad...) {
			full := append(append(append([]int64(nil), p...), ids(" "+a+".")...), int64(eos))
			ex = append(ex, sft.Example{IDs: full, Prompt: len(p)})
		}
	}
	_, err = sft.Run(m, ex, sft.Config{Out: filepath.Join(dir, "sftrun"), Epochs: 12, BatchSize: 16,
		Schedule: optim.ScheduleConfig{Kind: "cosine", Peak: 1e-2, Min: 1e-3, Warmup: 5},
		AdamW:    optim.AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8}, MaxGradNorm: 1, Seed: 1,
		UnfrozenLayers: -1, Session: onnx.Options{Threads: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(w.model); err != nil {
		t.Fatal(err)
	}
	for i, e := range toyEntities {
		p := Prompt{IDs: ids("The " + e + " is"), Text: "The " + e + " is", Row: i}
		if i%4 == 3 {
			w.eval = append(w.eval, p)
		} else {
			w.train = append(w.train, p)
		}
	}
	tox, non := filepath.Join(dir, "toxic.txt"), filepath.Join(dir, "nontoxic.txt")
	os.WriteFile(tox, []byte(strings.Join(toyBad, "\n")), 0o644)
	os.WriteFile(non, []byte(strings.Join(toyGood, "\n")), 0o644)
	if w.lexicon, err = reward.LoadLexicon(tox, non, 0.2, 3); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *toyWorld) load(t *testing.T) *neox.Model {
	m, err := neox.Load(w.model)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func toyConfig() Config {
	c := Defaults()
	c.NumRollouts, c.ChunkSize, c.BatchSize, c.PPOEpochs = 32, 16, 16, 2
	c.MaxNewTokens, c.SeqLength, c.TopK = 4, 12, 0
	c.LR, c.MinLR, c.Betas = 2e-3, 2e-3, [2]float64{0.9, 0.95}
	c.InitKLCoef, c.Target = 0.02, 0
	c.TotalSteps, c.EvalInterval, c.CheckpointInterval = 40, 10, 10
	c.UnfrozenLayers, c.EntCoef, c.Seed = -1, 0.005, 9
	return c
}
