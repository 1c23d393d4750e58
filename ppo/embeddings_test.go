package ppo

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/weights"
)

// train_embeddings: unset, true under the fork only; the settings a resume
// checks record it only where embed_in trains below frozen layers, so runs
// from before the key (embeddings frozen in every mode) resume under
// carper and none, and with every layer trained, and a fork run of theirs
// with frozen layers is refused naming the key. The presets state it.
func TestTrainEmbeddingsSettings(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		compat   string
		set      *bool
		unfrozen int
		want     bool // trainEmbeddings
		recorded bool
	}{
		{"", nil, 4, false, false},
		{CompatNone, nil, 4, false, false},
		{CompatCarper, nil, 4, false, false},
		{CompatFork, nil, 4, true, true},
		{CompatFork, nil, -1, true, false},
		{CompatFork, &no, 4, false, false},
		{CompatCarper, &yes, 4, true, true},
		{CompatNone, &yes, 2, true, true},
	} {
		c := Defaults()
		c.TRLxCompat, c.TrainEmbeddings, c.UnfrozenLayers = tc.compat, tc.set, tc.unfrozen
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.trainEmbeddings(); got != tc.want {
			t.Errorf("%s/%v/%d: train_embeddings %v, want %v", tc.compat, tc.set, tc.unfrozen, got, tc.want)
		}
		if v, ok := c.settings("", 1, 1)["train_embeddings"]; ok != tc.recorded || ok && v != true {
			t.Errorf("%s/%v/%d: settings record train_embeddings = %v (%v), want recorded: %v", tc.compat, tc.set, tc.unfrozen, v, ok, tc.recorded)
		}
		if c.liveEmbeddings(tc.unfrozen) {
			t.Errorf("%s/%d: live embeddings with every layer unfrozen", tc.compat, tc.unfrozen)
		}
	}
	for _, p := range Presets() {
		c, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.TrainEmbeddings == nil || !*c.TrainEmbeddings {
			t.Errorf("preset %s: train_embeddings %v, want stated as true", p, c.TrainEmbeddings)
		}
	}
	// A key spelled in a file reaches the field (a pointer: unset differs
	// from false).
	f := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(f, []byte("trlx_compat: eleuther-126c8f0\ntrain_embeddings: false\n"), 0o644)
	c, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.trainEmbeddings() {
		t.Error("train_embeddings false in a file: the embeddings train")
	}
}

// A fork run with one of the toy model's two layers unfrozen trains
// embed_in (and not layer 0), and its reference reads it live: the
// reference log-probs of phase 2 (the rollouts its mid-phase checkpoint
// saved) are, bit for bit, a fresh forward of the starting model with the
// policy's embed_in at the phase's start (checkpoint 4, the end of phase
// 1), and not the starting model's own. A run killed mid-phase and
// resumed logs what the uninterrupted one logs and ends on its weights.
// Under carper and none, embed_in does not move.
func TestTrainEmbeddingsLoop(t *testing.T) {
	w := newToyWorld(t)
	so := onnx.Options{Threads: 1}
	base := func(mode string) Config {
		cfg := toyConfig()
		cfg.TRLxCompat, cfg.UnfrozenLayers = mode, 1
		cfg.NumRollouts, cfg.ChunkSize, cfg.BatchSize, cfg.PPOEpochs = 16, 8, 8, 2 // 4 steps a phase
		cfg.TotalSteps, cfg.EvalInterval, cfg.CheckpointInterval = 8, 0, 2
		return cfg
	}
	start := w.load(t)
	read := func(dir string) map[string]*weights.Tensor {
		t.Helper()
		f, err := weights.ReadFolder(dir)
		if err != nil {
			t.Fatal(err)
		}
		return f.Tensors
	}

	cfg := base(CompatFork)
	// run runs cfg, checks embed_in trains and the reference reads it
	// live, and returns the run's folder; resident takes the device path
	// (policy and reference stores in ONNX Runtime's memory, AdamW graph).
	tmp := t.TempDir() // the subtests' own go when they end
	run := func(t *testing.T, resident bool) string {
		a := filepath.Join(tmp, fmt.Sprint("a-", resident))
		if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: a, Session: so, resident: resident}); err != nil {
			t.Fatal(err)
		}
		w4 := read(filepath.Join(a, checkpoint.Name(4)))
		if slices.Equal(w4[embedIn].Data, start.Params[embedIn].Data) {
			t.Error("fork: embed_in did not change in phase 1")
		}
		for name, p := range start.Params {
			frozen := strings.HasPrefix(name, "gpt_neox.layers.0.")
			if same := slices.Equal(w4[name].Data, p.Data); same != frozen {
				t.Errorf("fork: %s unchanged %v, want %v", name, same, frozen)
			}
		}

		// Phase 2's rollouts, with the reference log-probs the run computed.
		b, err := os.ReadFile(filepath.Join(a, checkpoint.Name(6), rolloutsFile))
		if err != nil {
			t.Fatal(err)
		}
		var samples []sample
		if err := json.Unmarshal(b, &samples); err != nil {
			t.Fatal(err)
		}
		refForward := func(m *neox.Model) [][]float64 {
			t.Helper()
			r, err := policy.NewRunner(m, neox.ForwardOptions{LogProbs: true, Standard: true}, so, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Destroy()
			spans := spansOf(cfg, samples, int64(m.Config.EOSTokenID))
			s := width(samples, spans)
			out := make([][]float64, len(samples))
			for lo := 0; lo < len(samples); lo += cfg.ChunkSize {
				var idx []int
				for i := lo; i < min(lo+cfg.ChunkSize, len(samples)); i++ {
					idx = append(idx, i)
				}
				bt := layout(samples, idx, s, int64(m.Config.EOSTokenID))
				tok := nextTokens(bt)
				bt = layout(samples, idx, s, int64(m.Config.EOSTokenID))
				o, err := r.ForwardTokens(bt, tok, float32(cfg.Temperature))
				if err != nil {
					t.Fatal(err)
				}
				for row, i := range idx {
					p := len(samples[i].Prompt)
					for k := 0; k < spans[i]; k++ {
						out[i] = append(out[i], float64(o[neox.LogProbsOutput].Data[row*s+p+k-1]))
					}
				}
			}
			return out
		}
		hydra := w.load(t)
		copy(hydra.Params[embedIn].Data, w4[embedIn].Data)
		want, plain := refForward(hydra), refForward(w.load(t))
		differs := false
		for i, sm := range samples {
			if len(sm.RefLogProb) != len(want[i]) {
				t.Fatalf("sample %d: %d reference log-probs, want %d", i, len(sm.RefLogProb), len(want[i]))
			}
			for k := range want[i] {
				if math.Float64bits(sm.RefLogProb[k]) != math.Float64bits(want[i][k]) {
					t.Errorf("sample %d position %d: reference log-prob %v, the live-embeddings forward %v", i, k, sm.RefLogProb[k], want[i][k])
				}
				differs = differs || sm.RefLogProb[k] != plain[i][k]
			}
		}
		if !differs {
			t.Error("phase 2's reference log-probs are the starting model's: the reference does not read embed_in")
		}

		return a
	}
	var a string
	t.Run("views", func(t *testing.T) { a = run(t, false) })
	t.Run("resident", func(t *testing.T) { run(t, true) })
	if t.Failed() {
		return
	}

	// Killed mid-phase (step 6) and resumed.
	rb := filepath.Join(t.TempDir(), "b")
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: rb, Session: so, StopAfter: 6}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: rb, Session: so, Resume: true}); err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, readLines(t, filepath.Join(a, "metrics.jsonl")), readLines(t, filepath.Join(rb, "metrics.jsonl")), false)
	sameFinal(t, a, rb)

	// The checkpoints record the setting, and a resume with the
	// embeddings frozen, as every run from before the key had them, is
	// refused naming it (so, the other way round, is an old fork run's
	// checkpoint under the new default).
	st, err := checkpoint.ReadState(filepath.Join(rb, checkpoint.Name(8)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Settings["train_embeddings"] != true {
		t.Errorf("the checkpoint's settings record train_embeddings %v, want true", st.Settings["train_embeddings"])
	}
	frozen := cfg
	frozen.TrainEmbeddings = new(bool)
	if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, frozen, Options{Out: rb, Session: so, Resume: true}); err == nil || !strings.Contains(err.Error(), "train_embeddings") {
		t.Errorf("resumed with train_embeddings false: %v", err)
	}

	for _, mode := range []string{CompatCarper, CompatNone} {
		cfg := base(mode)
		cfg.TotalSteps = 4
		out := filepath.Join(t.TempDir(), mode)
		if _, err := Run(w.load(t), w.tok, w.train, w.eval, w.lexicon, cfg, Options{Out: out, Session: so}); err != nil {
			t.Fatal(err)
		}
		fin := read(filepath.Join(out, "final"))
		if !slices.Equal(fin[embedIn].Data, start.Params[embedIn].Data) {
			t.Errorf("%s: embed_in changed", mode)
		}
		if slices.Equal(fin["embed_out.weight"].Data, start.Params["embed_out.weight"].Data) {
			t.Errorf("%s: the head did not train", mode)
		}
	}
}
