package sft

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
	"irl/optim"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func tinyModel(t *testing.T) *neox.Model {
	t.Helper()
	m, err := neox.Init(neox.Config{VocabSize: 24, HiddenSize: 32, NumLayers: 2, NumHeads: 4, IntermediateSize: 64,
		MaxPositions: 64, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.02}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// toyCorpus: each example counts up from a random start, modulo 20, after a
// 3-token prompt of noise; the continuation is fully predictable.
func toyCorpus(n int) []Example {
	var ex []Example
	for i := 0; i < n; i++ {
		start := int64((i * 7) % 20)
		ids := []int64{20 + int64(i%4), 20 + int64((i/4)%4), 23}
		for j := 0; j < 13; j++ {
			ids = append(ids, (start+int64(j))%20)
		}
		ex = append(ex, Example{IDs: ids, Prompt: 3})
	}
	return ex
}

func config(out string) Config {
	return Config{Out: out, Epochs: 10, BatchSize: 8,
		Schedule: optim.ScheduleConfig{Kind: "cosine", Peak: 1e-2, Min: 1e-3, Warmup: 2},
		AdamW:    optim.AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01}, MaxGradNorm: 1,
		Seed: 42, EvalFraction: 0.2, UnfrozenLayers: -1, Session: onnx.Options{Threads: 1}}
}

// SFT on the toy corpus lowers the held-out loss from about ln 24 ≈ 3.2 to
// below 0.5.
func TestSFTLearnsToyCorpus(t *testing.T) {
	m := tinyModel(t)
	res, err := Run(m, toyCorpus(40), config(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first loss %.3f, last %.3f, eval %.3f over %d steps", res.FirstLoss, res.LastLoss, res.EvalLoss, res.Steps)
	if res.FirstLoss < 2.5 || res.EvalLoss > 0.5 {
		t.Errorf("loss went from %.3f to eval %.3f; want from ≈3.2 to < 0.5", res.FirstLoss, res.EvalLoss)
	}
	// The checkpoint is a Hugging Face folder holding the trained weights.
	back, err := neox.Load(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	w := "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
	if back.Params[w].Data[3] != m.Params[w].Data[3] {
		t.Error("checkpoint weights differ from the trained model")
	}
}

func readMetrics(t *testing.T, path string) []Metrics {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []Metrics
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// Stopping after 7 steps (mid-epoch) and resuming gives exactly the losses
// of an uninterrupted run, on CPU's Go path and on the device path (weights,
// gradients and AdamW's moments in ONNX Runtime's memory, as on CUDA).
func TestResumeIsExact(t *testing.T) {
	for _, resident := range []bool{false, true} {
		name := "views"
		if resident {
			name = "resident"
		}
		t.Run(name, func(t *testing.T) { resumeIsExact(t, resident) })
	}
}

func resumeIsExact(t *testing.T, resident bool) {
	data := toyCorpus(40)
	a := config(t.TempDir())
	a.Epochs, a.resident = 3, resident
	ra, err := Run(tinyModel(t), data, a)
	if err != nil {
		t.Fatal(err)
	}
	b := config(t.TempDir())
	b.Epochs, b.MaxSteps, b.SaveEvery, b.resident = 3, 7, 7, resident
	if _, err := Run(tinyModel(t), data, b); err != nil {
		t.Fatal(err)
	}
	b.MaxSteps, b.Resume = 0, true
	rb, err := Run(tinyModel(t), data, b)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Steps != rb.Steps || ra.LastLoss != rb.LastLoss || ra.EvalLoss != rb.EvalLoss {
		t.Errorf("uninterrupted: %d steps, loss %v, eval %v; resumed: %d, %v, %v", ra.Steps, ra.LastLoss, ra.EvalLoss, rb.Steps, rb.LastLoss, rb.EvalLoss)
	}
	ma, mb := readMetrics(t, filepath.Join(a.Out, "metrics.jsonl")), readMetrics(t, filepath.Join(b.Out, "metrics.jsonl"))
	if len(ma) != len(mb) {
		t.Fatalf("%d metric lines vs %d", len(ma), len(mb))
	}
	for i := range ma {
		x, y := ma[i], mb[i]
		same := x.Step == y.Step && eq(x.Loss, y.Loss) && eq(x.EvalLoss, y.EvalLoss) && eq(x.GradNorm, y.GradNorm) && x.LR == y.LR
		if !same {
			t.Errorf("metric line %d: %+v vs %+v", i, x, y)
		}
	}
}

// The device path (the AdamW graph over resident tensors) trains as the Go
// path does, within float32 rounding, and each resumes the other's
// checkpoints: their optimiser states are one format.
func TestResidentMatchesViews(t *testing.T) {
	data := toyCorpus(40)
	run := func(resident bool, out string, maxSteps int, resume bool) (Result, *neox.Model) {
		cfg := config(out)
		cfg.Epochs, cfg.MaxSteps, cfg.Resume, cfg.resident = 2, maxSteps, resume, resident
		cfg.SaveEvery = maxSteps
		m := tinyModel(t)
		res, err := Run(m, data, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res, m
	}
	host, hm := run(false, t.TempDir(), 0, false)
	dev, dm := run(true, t.TempDir(), 0, false)
	mixed := t.TempDir()
	run(false, mixed, 5, false)
	cross, cm := run(true, mixed, 0, true)
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-4*math.Max(1, math.Abs(a)) }
	for _, c := range []struct {
		name string
		r    Result
		m    *neox.Model
	}{{"resident", dev, dm}, {"views, then resumed resident", cross, cm}} {
		if c.r.Steps != host.Steps || !close(c.r.LastLoss, host.LastLoss) || !close(c.r.EvalLoss, host.EvalLoss) {
			t.Errorf("%s: %d steps, loss %v, eval %v; views: %d, %v, %v", c.name, c.r.Steps, c.r.LastLoss, c.r.EvalLoss, host.Steps, host.LastLoss, host.EvalLoss)
		}
		worst := 0.0
		for name, p := range hm.Params {
			for i, x := range p.Data {
				worst = math.Max(worst, math.Abs(float64(c.m.Params[name].Data[i]-x)))
			}
		}
		if worst > 1e-4 {
			t.Errorf("%s: final weights differ from the views' by up to %.3g", c.name, worst)
		}
		t.Logf("%s: loss %v (views %v), weights within %.3g", c.name, c.r.LastLoss, host.LastLoss, worst)
	}
}

func eq(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b || (math.IsNaN(*a) && math.IsNaN(*b))
}

func TestBadInput(t *testing.T) {
	m := tinyModel(t)
	if _, err := Run(m, nil, config(t.TempDir())); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty dataset: %v", err)
	}
	long := Example{IDs: make([]int64, 65)}
	if _, err := Run(m, []Example{long}, config(t.TempDir())); err == nil || !strings.Contains(err.Error(), "max_position_embeddings") {
		t.Errorf("long example: %v", err)
	}
	if _, err := Run(m, []Example{{IDs: []int64{1, 99}}}, config(t.TempDir())); err == nil || !strings.Contains(err.Error(), "99") {
		t.Errorf("out-of-vocabulary id: %v", err)
	}
	// A resume with no checkpoint yet starts the run anew (package
	// checkpoint: a run killed before its first checkpoint).
	c := config(t.TempDir())
	c.Resume = true
	if res, err := Run(m, toyCorpus(4), c); err != nil || res.Steps == 0 {
		t.Errorf("resume without a checkpoint: %v, %d steps", err, res.Steps)
	}
}

// A run killed after its last checkpoint logged steps that the resumed run
// replays: the log is cut back, so each step appears once and the whole log
// equals an uninterrupted run's.
func TestResumeAfterKillKeepsOneLog(t *testing.T) {
	data := toyCorpus(40)
	a := config(t.TempDir())
	a.Epochs = 2
	if _, err := Run(tinyModel(t), data, a); err != nil {
		t.Fatal(err)
	}
	b := config(t.TempDir())
	b.Epochs, b.MaxSteps, b.SaveEvery = 2, 6, 4
	if _, err := Run(tinyModel(t), data, b); err != nil {
		t.Fatal(err)
	}
	// As if killed after step 6 before its checkpoint: only step 4's remains.
	os.RemoveAll(filepath.Join(b.Out, "checkpoint-000006"))
	os.WriteFile(filepath.Join(b.Out, "last-checkpoint"), []byte("checkpoint-000004\n"), 0o644)
	b.MaxSteps, b.Resume = 0, true
	if _, err := Run(tinyModel(t), data, b); err != nil {
		t.Fatal(err)
	}
	ma, mb := readMetrics(t, filepath.Join(a.Out, "metrics.jsonl")), readMetrics(t, filepath.Join(b.Out, "metrics.jsonl"))
	if len(ma) != len(mb) {
		t.Fatalf("%d metric lines, uninterrupted %d", len(mb), len(ma))
	}
	for i := range ma {
		if ma[i].Step != mb[i].Step || !eq(ma[i].Loss, mb[i].Loss) || !eq(ma[i].EvalLoss, mb[i].EvalLoss) {
			t.Errorf("line %d: %+v vs %+v", i, mb[i], ma[i])
		}
	}
}

// Resuming under other settings is refused with the differences listed; a
// new run into a used folder needs Overwrite.
func TestResumeRefusesChangedSettings(t *testing.T) {
	data := toyCorpus(20)
	c := config(t.TempDir())
	c.Epochs, c.MaxSteps = 2, 2
	if _, err := Run(tinyModel(t), data, c); err != nil {
		t.Fatal(err)
	}
	c.Resume, c.MaxSteps = true, 0
	c.BatchSize, c.Schedule.Peak, c.Epochs = 4, 5e-3, 3
	_, err := Run(tinyModel(t), data, c)
	for _, want := range []string{"batch_size: 8 then, 4 now", "lr: 0.01 then, 0.005 now", "epochs: 2 then, 3 now"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("changed settings: %v; want %q", err, want)
		}
	}
	c = config(c.Out)
	if _, err := Run(tinyModel(t), data, c); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("new run into a used folder: %v", err)
	}
	c.Overwrite, c.Epochs, c.SaveTotalLimit, c.KeepBest = true, 3, 1, true
	res, err := Run(tinyModel(t), data, c)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(c.Out)
	var ckpts []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "checkpoint-") {
			ckpts = append(ckpts, e.Name())
		}
	}
	if res.Best == "" || len(ckpts) > 2 || !strings.HasSuffix(res.Dir, ckpts[len(ckpts)-1]) {
		t.Errorf("kept %v, best %q, last %q", ckpts, res.Best, res.Dir)
	}
	if _, err := os.Stat(res.Best); err != nil {
		t.Errorf("best checkpoint pruned: %v", err)
	}
}

// Every checkpoint records the starting model's fingerprint, the model's
// own in memory when the caller gives none, and a resume from another
// model (another init seed, the same shape) is refused by it.
func TestResumeRefusesAnotherModel(t *testing.T) {
	data := toyCorpus(20)
	c := config(t.TempDir())
	c.Epochs, c.MaxSteps = 2, 2
	if _, err := Run(tinyModel(t), data, c); err != nil {
		t.Fatal(err)
	}
	last, err := checkpoint.Last(c.Out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.ReadState(last)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tinyModel(t).Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Settings["model_fingerprint"]; got != want {
		t.Fatalf("the checkpoint records model_fingerprint %v, want %s", got, want)
	}
	other, err := neox.Init(tinyModel(t).Config, 2)
	if err != nil {
		t.Fatal(err)
	}
	c.Resume, c.MaxSteps = true, 0
	if _, err := Run(other, data, c); err == nil || !strings.Contains(err.Error(), "model_fingerprint: ") {
		t.Errorf("resumed from another model: %v", err)
	}
}
