package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"irl/atomicfile"
	"irl/experiments/toy"
	"irl/features"
	"irl/neox"
	"irl/onnx"
	"irl/reward"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if world.dir != "" {
		os.RemoveAll(world.dir)
	}
	os.Exit(code)
}

var session = onnx.Options{Threads: 2}

// The toy world's SFT and RLHF models, built once by the toy experiment
// (its full run: the quick one's RLHF is too short to move the policy).
var world struct {
	once     sync.Once
	dir      string
	err      error
	sft, rl  string
	prompts  string
	tox, non []string
}

func toyWorld(t *testing.T) {
	t.Helper()
	world.once.Do(func() {
		dir, err := os.MkdirTemp("", "audit-toy-")
		if err != nil {
			world.err = err
			return
		}
		world.dir = dir
		if _, err := toy.Run(toy.Config{Out: filepath.Join(dir, "toy"), Session: session, Quiet: true}); err != nil {
			world.err = err
			return
		}
		world.sft, world.rl = filepath.Join(dir, "toy", "sft", "final"), filepath.Join(dir, "toy", "rlhf", "final")
		w, err := toy.LoadWords()
		if err != nil {
			world.err = err
			return
		}
		var b strings.Builder
		for _, e := range w.Entities {
			j, _ := json.Marshal(map[string]string{"prompt": toy.Prompt(e)})
			b.Write(append(j, '\n'))
		}
		world.prompts = filepath.Join(dir, "prompts.jsonl")
		world.err = atomicfile.WriteBytes(world.prompts, []byte(b.String()))
		world.tox, world.non = w.Bad, w.Good
	})
	if world.err != nil {
		t.Fatal(world.err)
	}
}

// The audit of the toy's RLHF model against its SFT model, with its
// defaults (four sampled continuations a prompt from each model), finds the
// lexicon: the training toxic adjectives among the most penalised words,
// the non-toxic ones among the most rewarded; it ranks the tuned model's
// texts above the base model's on held-out prompts, and its label-shuffle
// control falls to chance.
func TestToyAudit(t *testing.T) {
	toyWorld(t)
	out := filepath.Join(t.TempDir(), "audit")
	var log strings.Builder
	rep, err := Run(Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Out: out, Session: session, Progress: &log, Quiet: true, Seed: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Log(log.String())
	t.Logf("separation %.3f [%.3f, %.3f]; shuffles %v; features %s at %d",
		rep.HeldOut.Separation, rep.HeldOut.SeparationLow, rep.HeldOut.SeparationHigh, rep.Shuffle.Each, rep.Features.Pool, rep.Features.Layer)
	// The bars. Measured on today's toy world (make demo's) at
	// seeds 0–5: toxic 0.85–0.93 (0.89 at seed 1), non-toxic 0.94–0.96,
	// held-out pair accuracy 0.933–0.973, shuffle 0.46–0.55. Chance for
	// the word shares is about 0.35.
	toyBars(t, "models", rep, out, 0.8)
	// report.json has the interface's keys.
	var j map[string]any
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	words := j["words"].(map[string]any)
	for _, k := range []string{"rewarded", "penalised"} {
		if l := words[k].([]any); len(l) < 30 {
			t.Errorf("words.%s has %d entries, want ≥ 30", k, len(l))
		} else if e := l[0].(map[string]any); e["word"] == nil || e["score"] == nil {
			t.Errorf("words.%s[0] = %v, want word and score", k, e)
		}
	}
	held := j["heldout"].(map[string]any)
	for _, k := range []string{"pair_accuracy", "pair_accuracy_low", "pair_accuracy_high", "separation", "separation_low", "separation_high"} {
		if _, ok := held[k].(float64); !ok {
			t.Errorf("heldout.%s missing", k)
		}
	}
	if _, ok := j["shuffle_control"].(map[string]any)["pair_accuracy"].(float64); !ok {
		t.Error("shuffle_control.pair_accuracy missing")
	}
	if h, _ := j["head"].(string); h == "" {
		t.Error("head missing")
	} else if _, err := rewardhead.ReadHead(h); err != nil {
		t.Error(err)
	}
	f := j["features"].(map[string]any)
	if _, ok := f["layer"].(float64); !ok || f["pooling"] == nil {
		t.Errorf("features = %v, want layer and pooling", f)
	}
	// Each text read token by token gives the head's score of it at the
	// pooled position.
	ex := append(append([]Example(nil), rep.Examples.Highest...), rep.Examples.Lowest...)
	if len(rep.Examples.Tokens) != len(ex) {
		t.Fatalf("%d token readings for %d examples", len(rep.Examples.Tokens), len(ex))
	}
	for i, at := range rep.Examples.Tokens {
		if d := at.Score - ex[i].Score; d > 1e-4 || d < -1e-4 {
			t.Errorf("example %d: token reading %.5f, head score %.5f", i, at.Score, ex[i].Score)
		}
	}
	if md, err := os.ReadFile(filepath.Join(out, "report.md")); err != nil || !strings.Contains(string(md), "most penalised") {
		t.Errorf("report.md: %v", err)
	}
	// report.html is there; without a ground truth, report.json has no
	// "direction".
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Error(err)
	}
	if _, ok := j["direction"]; ok || rep.Direction != nil {
		t.Error(`report.json has "direction" without --gt`)
	}
	// A second run into the folder is refused without Overwrite.
	if _, err := Run(Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Out: out, Session: session}); err == nil || !strings.Contains(err.Error(), "overwrite") {
		t.Errorf("a second run into a full folder: %v, want a refusal naming --overwrite", err)
	}
	toyDirection(t, out)
	toyOutputs(t, out)
}

// toyOutputs audits the same texts as a black box: the demonstrations of
// the audit in out written as two files of outputs, --pos and --neg, with
// the SFT model as --encoder. The bars are the models' audit's.
func toyOutputs(t *testing.T, out string) {
	b, err := os.ReadFile(filepath.Join(out, "demonstrations", "demonstrations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var pos, neg strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d demo
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		row, _ := json.Marshal(map[string]string{"prompt": d.Prompt, "text": d.Text})
		if d.Source == "tuned" {
			pos.Write(append(row, '\n'))
		} else {
			neg.Write(append(row, '\n'))
		}
	}
	dir := t.TempDir()
	pp, np := filepath.Join(dir, "tuned.jsonl"), filepath.Join(dir, "base.jsonl")
	for p, s := range map[string]string{pp: pos.String(), np: neg.String()} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := filepath.Join(dir, "audit")
	rep, err := Run(Config{Pos: pp, Neg: np, Encoder: world.sft, Out: o, Session: session, Quiet: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	toyBars(t, "outputs", rep, o, 0.8)
	if rep.Demonstrations.Sampled || rep.Model != "" || rep.Pos != pp {
		t.Errorf("outputs: report names model %q, pos %q, sampled %v", rep.Model, rep.Pos, rep.Demonstrations.Sampled)
	}
}

// toyDirection scores the demonstrations of the audit in out with the toy's
// own ground truth, the lexicon reward its RLHF model was trained on
// (Algorithm 2 without noise: +0.5 a non-toxic adjective, −0.5 a toxic
// one), and audits again with it as --gt.
func toyDirection(t *testing.T, out string) {
	dir := t.TempDir()
	w, err := toy.LoadWords()
	if err != nil {
		t.Fatal(err)
	}
	tp, np, err := w.WriteLexicon(dir)
	if err != nil {
		t.Fatal(err)
	}
	lex, err := reward.LoadLexicon(tp, np, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "demonstrations", "demonstrations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// partial.jsonl lacks every row of the text of the last
	// demonstration, first met at line missing.
	var gt, partial strings.Builder
	seen := map[string]bool{}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var ds []demo
	for _, l := range lines {
		var d demo
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	left, missing := ds[len(ds)-1].Text, 0
	for i, d := range ds {
		row, _ := json.Marshal(map[string]any{"prompt": d.Prompt, "text": d.Text, "reward": lex.Base(d.Text)})
		if k := d.Prompt + "\x00" + d.Text; !seen[k] {
			seen[k] = true
			gt.Write(append(row, '\n'))
		}
		if d.Text != left {
			partial.Write(append(row, '\n'))
		} else if missing == 0 {
			missing = i + 1
		}
	}
	gtPath := filepath.Join(dir, "gt.jsonl")
	partialPath := filepath.Join(dir, "partial.jsonl")
	for p, s := range map[string]string{gtPath: gt.String(), partialPath: partial.String()} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log strings.Builder
	rep, err := Run(Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Out: filepath.Join(dir, "audit"), Session: session, Progress: &log, Quiet: true, Seed: 1, GT: gtPath})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	d := rep.Direction
	if d == nil {
		t.Fatal("no direction with --gt")
	}
	t.Logf("direction: cosine %.3f (chance ±%.3f, %d dims), probe held-out pair accuracy %.3f, probe Pearson %v, head Pearson %v; classes %d / %d; the lexicon's own pair accuracy %.3f, text pairs %.3f",
		d.Cosine, d.Chance, d.Dimensions, d.ProbePairAccuracy, deref(d.ProbePearson), deref(d.HeadPearson), d.TrainHigh, d.TrainLow, d.GTPairAccuracy, d.GTTextPairAccuracy)
	// The ground truth's own held-out figures, counted here from the
	// demonstrations and the lexicon: per held-out prompt, the mean
	// score of each side's texts, and every pair of a tuned and a base
	// text.
	side := map[int]map[string][]float64{}
	for _, x := range ds {
		if !x.Train {
			if side[x.Group] == nil {
				side[x.Group] = map[string][]float64{}
			}
			side[x.Group][x.Source] = append(side[x.Group][x.Source], lex.Base(x.Text))
		}
	}
	order := func(p, q float64) float64 {
		switch {
		case p > q:
			return 1
		case p == q:
			return 0.5
		}
		return 0
	}
	var promptSum, pairSum float64
	var prompts, pairs int
	for _, s := range side {
		avg := func(xs []float64) float64 {
			var m float64
			for _, x := range xs {
				m += x / float64(len(xs))
			}
			return m
		}
		promptSum += order(avg(s["tuned"]), avg(s["base"]))
		prompts++
		for _, p := range s["tuned"] {
			for _, q := range s["base"] {
				pairSum += order(p, q)
				pairs++
			}
		}
	}
	if want := promptSum / float64(prompts); math.Abs(d.GTPairAccuracy-want) > 1e-9 {
		t.Errorf("the ground truth's own pair accuracy %.4f, counted here %.4f", d.GTPairAccuracy, want)
	}
	if want := pairSum / float64(pairs); math.Abs(d.GTTextPairAccuracy-want) > 1e-9 {
		t.Errorf("the ground truth's own text pair accuracy %.4f, counted here %.4f", d.GTTextPairAccuracy, want)
	}
	// Measured at seed 1: cosine 0.915, where two random directions of
	// the 64 dimensions give ±0.125, so 0.7 is far from chance with room
	// for another toy run; the probe's held-out pair accuracy 0.920, and
	// its Pearson correlation with the lexicon 0.914 (the head's 0.845).
	if d.Cosine < 0.7 {
		t.Errorf("cosine %.3f between the head and the ground-truth probe, want ≥ 0.7", d.Cosine)
	}
	if d.ProbePairAccuracy < 0.8 {
		t.Errorf("the probe's held-out pair accuracy %.3f, want ≥ 0.8", d.ProbePairAccuracy)
	}
	if d.ProbePearson == nil || *d.ProbePearson < 0.8 {
		t.Errorf("the probe's correlation with the ground truth %v, want ≥ 0.8", deref(d.ProbePearson))
	}
	var j map[string]any
	if b, err = os.ReadFile(filepath.Join(dir, "audit", "report.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	dj, _ := j["direction"].(map[string]any)
	for _, k := range []string{"cosine", "probe_pair_accuracy", "probe_pearson"} {
		if _, ok := dj[k].(float64); !ok {
			t.Errorf("report.json direction.%s missing", k)
		}
	}
	// A ground truth lacking a text: the error names the file and the
	// demonstration's line, and comes before the long stages.
	_, err = Run(Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Out: filepath.Join(dir, "partial"), Session: session, Seed: 1, GT: partialPath})
	want := fmt.Sprintf("line %d of demonstrations/demonstrations.jsonl", missing)
	if err == nil || !strings.Contains(err.Error(), partialPath) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "demonstrations:") {
		t.Errorf("--gt without the text %q: %v, want an error in the demonstrations stage naming %s and %q", left, err, partialPath, want)
	}
}

func deref(x *float64) any {
	if x == nil {
		return "undefined"
	}
	return *x
}

// Bad input is refused with a clear error, before the output folder is
// made.
func TestBadInput(t *testing.T) {
	toyWorld(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A base model with another tokenizer: the SFT model's folder with
	// GPT-2's tokenizer.
	other := filepath.Join(dir, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors"} {
		if err := atomicfile.Copy(filepath.Join(world.sft, f), filepath.Join(other, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := atomicfile.Copy(filepath.Join("..", "testdata", "gpt2-bpe", "tokenizer.json"), filepath.Join(other, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	empty := write("empty.jsonl", "")
	one := write("one.jsonl", `{"prompt": "The cat is", "text": " kind."}`+"\n")
	var four strings.Builder
	for i := 0; i < 4; i++ {
		four.WriteString(`{"prompt": "The cat is", "text": " nasty."}` + "\n")
	}
	neg := write("neg.jsonl", four.String())
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"different tokenizers", Config{Model: world.rl, Base: other, Prompts: world.prompts}, "different tokenizers"},
		{"no prompts", Config{Model: world.rl, Base: world.sft, Prompts: empty}, "no rows"},
		{"one --pos text", Config{Pos: one, Neg: neg, Encoder: world.sft}, "holds 1 texts"},
		{"--pos without --neg", Config{Pos: one, Encoder: world.sft}, "give both"},
		{"--pos without --encoder", Config{Pos: one, Neg: neg}, "--encoder"},
		{"models and outputs", Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Pos: one, Neg: neg}, "not both"},
	} {
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
		c.cfg.Out, c.cfg.Session = out, session
		_, err := Run(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: the output folder was made (%v); bad input must leave nothing", c.name, err)
		}
	}
}

// With mean pooling, the tokens' shares sum to the head's score of the
// text, as the features pipeline computes it.
func TestAttributionsSumWithMeanPooling(t *testing.T) {
	toyWorld(t)
	src, err := neox.Open(world.sft)
	if err != nil {
		t.Fatal(err)
	}
	rs := []rows.Row{{Index: 0, Line: 1, Prompt: "The cat is", Text: " kind."}, {Index: 1, Line: 2, Prompt: "The dog is", Text: " nasty and vile."}}
	for _, layer := range []int{0, -1} {
		p, err := features.NewPipeline(features.PipelineOptions{Model: src, Layer: layer, Pool: neox.PoolMean, Session: session})
		if err != nil {
			t.Fatal(err)
		}
		f, err := rowFeatures(p, "fixture", rs)
		p.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		h := &rewardhead.Head{W: make([]float64, f.D), B: 0.25}
		for j := range h.W {
			h.W[j] = math.Sin(float64(j + 1))
		}
		want := h.Score(f)
		tok, err := tokenizer.Load(src.TokenizerPath(""))
		if err != nil {
			t.Fatal(err)
		}
		at, err := Attribute(src, tok, session, layer, neox.PoolMean, h, rs)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range at {
			var sum float64
			for _, x := range a.Tokens {
				sum += x.Value
			}
			if !a.Sums || math.Abs(sum-want[i]) > 1e-4*math.Max(1, math.Abs(want[i])) || math.Abs(a.Score-sum) > 1e-9 {
				t.Errorf("layer %d, text %d: tokens sum to %.6f (score %.6f), the head scores the pooled features %.6f", layer, i, sum, a.Score, want[i])
			}
		}
	}
}

// The feature choices are the toy experiment's.
func TestVariantsAreToys(t *testing.T) {
	if fmt.Sprint(Variants) != fmt.Sprint(toy.Variants) {
		t.Errorf("audit.Variants %v, toy.Variants %v", Variants, toy.Variants)
	}
	vs := []VariantResult{{TrainPairAccuracy: 0.8}, {TrainPairAccuracy: 0.9}, {TrainPairAccuracy: 0.9}}
	if i := ChooseVariant(vs); i != 1 || !vs[1].Chosen || vs[2].Chosen {
		t.Errorf("ChooseVariant chose %d (%v), want 1, the first of the best", i, vs)
	}
}

// Vocabulary words are whole words: letters, inner hyphens allowed.
func TestIsWord(t *testing.T) {
	for w, want := range map[string]bool{"kind": true, "nasty-minded": true, "don't": true, "-x": false, "x-": false, "a--b": false, "ab1": false, "Ġab": false} {
		if got := isWord(w); got != want {
			t.Errorf("isWord(%q) = %v, want %v", w, got, want)
		}
	}
}

// TestAuditResumes: an audit stopped after a stage, run again with the same
// inputs, keeps the finished stages and writes the report an uninterrupted
// audit writes; other inputs in the folder need --overwrite.
func TestAuditResumes(t *testing.T) {
	toyWorld(t)
	cfg := Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Session: session, Quiet: true, Seed: 2, Epochs: 40}
	whole := cfg
	whole.Out = filepath.Join(t.TempDir(), "audit")
	if _, err := Run(whole); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []string{"demonstrations", "irl"} {
		part := cfg
		part.Out = filepath.Join(t.TempDir(), "audit")
		part.StopAfter = stop
		if _, err := Run(part); !errors.Is(err, errStopped) {
			t.Fatalf("stop after %s: %v", stop, err)
		}
		var log strings.Builder
		part.StopAfter, part.Progress = "", &log
		if _, err := Run(part); err != nil {
			t.Fatalf("resume after %s: %v\n%s", stop, err, log.String())
		}
		if !strings.Contains(log.String(), stop+": done by an earlier run of this audit, kept") {
			t.Errorf("resume after %s did not keep the stage:\n%s", stop, log.String())
		}
		if strings.Contains(log.String(), "stage 1/5 demonstrations …") {
			t.Errorf("resume after %s generated the demonstrations again:\n%s", stop, log.String())
		}
		want, got := reportWithoutTimes(t, whole.Out), reportWithoutTimes(t, part.Out)
		if got != want {
			t.Errorf("resumed after %s: report.json differs from the uninterrupted audit's", stop)
		}
		// Another seed is another audit: the folder is not resumed.
		other := part
		other.Seed = 3
		if _, err := Run(other); err == nil || !strings.Contains(err.Error(), "overwrite") {
			t.Errorf("another audit into the folder: %v", err)
		}
	}
}

// reportWithoutTimes is report.json without its stage timings.
func reportWithoutTimes(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "seconds")
	delete(m, "head") // the folder's path
	out, _ := json.Marshal(m)
	return strings.ReplaceAll(string(out), filepath.Dir(dir), "")
}

// wordShares reads an audit's words.jsonl and gives the share of the toy
// world's training toxic adjectives among the K most penalised words in
// range (K the adjectives the tokenizer keeps whole), and of the non-toxic
// ones among the most rewarded.
func wordShares(t *testing.T, out string) (pt, pn float64, kt, kn int) {
	t.Helper()
	var ranked []string // every word in range, best first, as words.jsonl has them
	inVocab := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(out, "words.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var w WordScore
		if err := json.Unmarshal([]byte(l), &w); err != nil {
			t.Fatal(err)
		}
		inVocab[w.Word] = true
		if w.InRange {
			ranked = append(ranked, w.Word)
		}
	}
	// A word the tokenizer splits ("nasty-minded") is no whole word.
	share := func(words, among []string) (float64, int) {
		set := map[string]bool{}
		for _, w := range among {
			set[w] = true
		}
		n, k := 0, 0
		for _, w := range words {
			if inVocab[w] {
				k++
				if set[w] {
					n++
				}
			}
		}
		return float64(n) / float64(k), k
	}
	_, kt = share(world.tox, nil)
	_, kn = share(world.non, nil)
	pt, _ = share(world.tox, ranked[max(0, len(ranked)-kt):])
	pn, _ = share(world.non, ranked[:min(kn, len(ranked))])
	return pt, pn, kt, kn
}

// With greedy demonstrations (one continuation a prompt from each model,
// the models' modes) the held-out pairs are ordered as well, but the word
// lists see only the words the modes use: the greedy texts hold 37 of the
// 50 non-toxic adjectives (the tuned model's 17, the base model's 36), and
// a word no demonstration contains is not ranked. So the non-toxic share is
// capped near 0.74 (measured 0.70, toxic 0.81, held out 0.929 at seed 1);
// that is why sampling is the default.
func TestToyAuditGreedy(t *testing.T) {
	toyWorld(t)
	out := filepath.Join(t.TempDir(), "audit")
	rep, err := Run(Config{Model: world.rl, Base: world.sft, Prompts: world.prompts, Out: out, Session: session, Quiet: true, Seed: 1, Greedy: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Demonstrations.Texts != 2*rep.Demonstrations.Prompts || rep.Demonstrations.Sampled {
		t.Errorf("greedy: %d texts after %d prompts (sampled %v), want one a model", rep.Demonstrations.Texts, rep.Demonstrations.Prompts, rep.Demonstrations.Sampled)
	}
	// With one text a side, the two pair accuracies are one figure.
	if rep.HeldOut.PairAccuracy != rep.HeldOut.TextPairAccuracy || rep.HeldOut.PairedPrompts != rep.HeldOut.TextPairs {
		t.Errorf("greedy: pair accuracy %.4f over %d, text pair accuracy %.4f over %d: want the same", rep.HeldOut.PairAccuracy, rep.HeldOut.PairedPrompts, rep.HeldOut.TextPairAccuracy, rep.HeldOut.TextPairs)
	}
	toyBars(t, "greedy", rep, out, 0.6)
}

// toyBars checks an audit of the toy world in out: at least words of the
// K training toxic adjectives among its K most penalised words and of the
// non-toxic ones among its most rewarded, held-out pair accuracy ≥ 0.9,
// and a shuffle control within 0.4–0.6.
func toyBars(t *testing.T, what string, rep *Report, out string, words float64) {
	t.Helper()
	pt, pn, kt, kn := wordShares(t, out)
	t.Logf("%s: %d texts, %d words in range; toxic among the %d most penalised %.2f, non-toxic among the %d most rewarded %.2f; held-out pair accuracy %.3f [%.3f, %.3f] over %d prompts (text pairs %.3f); shuffle %.3f",
		what, rep.Demonstrations.Texts, rep.Words.InRange, kt, pt, kn, pn, rep.HeldOut.PairAccuracy, rep.HeldOut.PairAccuracyLow, rep.HeldOut.PairAccuracyHigh, rep.HeldOut.PairedPrompts,
		rep.HeldOut.TextPairAccuracy, rep.Shuffle.PairAccuracy)
	if pt < words {
		t.Errorf("%s: %.2f of the training toxic adjectives among the %d most penalised words, want ≥ %g", what, pt, kt, words)
	}
	if pn < words {
		t.Errorf("%s: %.2f of the training non-toxic adjectives among the %d most rewarded words, want ≥ %g", what, pn, kn, words)
	}
	if rep.HeldOut.PairAccuracy < 0.9 {
		t.Errorf("%s: held-out pair accuracy %.3f, want ≥ 0.9", what, rep.HeldOut.PairAccuracy)
	}
	if p := rep.Shuffle.PairAccuracy; p < 0.4 || p > 0.6 {
		t.Errorf("%s: shuffle control %.3f, want within 0.4–0.6", what, p)
	}
}
