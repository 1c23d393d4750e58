package toy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
	"irl/rewardhead"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Classification and counting by hand.
func TestCountByHand(t *testing.T) {
	toxic, non := set([]string{"nasty", "vile"}), set([]string{"kind", "warm-hearted"})
	if a := Adjective(" Nasty. extra"); a != "nasty" {
		t.Errorf("adjective %q", a)
	}
	if a := Adjective(" warm-hearted."); a != "warm-hearted" {
		t.Errorf("adjective %q", a)
	}
	if a := Adjective(" ."); a != "" {
		t.Errorf("adjective %q", a)
	}
	responses := []string{" kind.", " kind.", " nasty.", " vile!", " vile.", " blue.", " teal", " kind", " ."}
	got := Count(responses, toxic, non)
	want := Counts{TotalToxic: 3, UniqueToxic: 2, TotalNonToxic: 3, UniqueNonToxic: 1, TotalUnknown: 3, UniqueUnknown: 3}
	if got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if Classify("kind", toxic, non) != "non-toxic" || Classify("vile", toxic, non) != "toxic" || Classify("x", toxic, non) != "unknown" {
		t.Error("classify")
	}
}

// The dataset is the paper's balanced set: every prompt once with each
// class, 500 samples.
func TestDataset(t *testing.T) {
	w, err := LoadWords()
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Entities) != 250 || len(w.GoodOOD) == 0 || len(w.BadOOD) == 0 {
		t.Fatalf("words: %d entities, %d+%d OOD", len(w.Entities), len(w.GoodOOD), len(w.BadOOD))
	}
	d := BuildDataset(w.Entities, w.Good, w.Bad, 1)
	if len(d.Samples) != 500 {
		t.Fatalf("%d samples", len(d.Samples))
	}
	good, bad := set(w.Good), set(w.Bad)
	for i := 0; i < len(d.Samples); i += 2 {
		a, b := d.Samples[i], d.Samples[i+1]
		if a.Prompt != b.Prompt || !a.Toxic || b.Toxic || !bad[a.Adjective] || !good[b.Adjective] {
			t.Fatalf("pair %d: %+v %+v", i/2, a, b)
		}
	}
	ood := set(w.GoodOOD, w.BadOOD)
	for _, s := range d.Samples {
		if ood[s.Adjective] {
			t.Fatalf("an out-of-distribution adjective in the dataset: %q", s.Adjective)
		}
	}
}

// The word lists have the paper's counts (Appendix C, Table 3: 28 toxic and
// 50 non-toxic adjectives in training), and no word is in two lists.
func TestWordCounts(t *testing.T) {
	w, err := LoadWords()
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Bad) != 28 || len(w.Good) != 50 {
		t.Errorf("%d toxic and %d non-toxic training adjectives, want 28 and 50", len(w.Bad), len(w.Good))
	}
	seen := map[string]bool{}
	for _, l := range [][]string{w.Good, w.Bad, w.GoodOOD, w.BadOOD} {
		for _, a := range l {
			if seen[a] {
				t.Errorf("%q is in two lists (or twice in one)", a)
			}
			seen[a] = true
		}
	}
}

// The τ ceiling and the separator's τ by hand: 2 + 2 samples, the classes
// tied in the noiseless values. τ-b = (C − D) / √((n₀ − n₁)(n₀ − n₂)) with
// n₀ = 6 pairs, C = 4 (the between-class pairs), D = 0, n₁ = 2 tied pairs in
// the lexicon, n₂ = 0: 4/√24. A tie-free perfect separator: 4/6.
func TestTauCeilingByHand(t *testing.T) {
	got := TauCeiling([]float64{0.5, 0.5}, []float64{-0.5, -0.5}, []float64{0.6, 0.4}, []float64{-0.4, -0.65})
	if want := 4 / math.Sqrt(24); math.Abs(got-want) > 1e-12 {
		t.Errorf("TauCeiling %v, want %v", got, want)
	}
	if got, want := TauSeparator(2, 2), 4.0/6; math.Abs(got-want) > 1e-12 {
		t.Errorf("TauSeparator %v, want %v", got, want)
	}
	// On the demo's sizes the separator's τ is 250·250 / (500·499/2).
	if got := TauSeparator(250, 250); math.Abs(got-62500.0/124750) > 1e-12 {
		t.Errorf("TauSeparator(250, 250) = %v", got)
	}
}

// Unknown settings are refused before anything is written.
func TestConfigChoices(t *testing.T) {
	for _, c := range []Config{{Rollouts: "greedy"}, {NoiseScale: "percent"}} {
		c.Out = t.TempDir()
		if _, err := Run(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// A short version of the whole demo: every file and key is there and every
// number is finite. It asserts nothing about how good the numbers are.
func TestQuickDemo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	var log strings.Builder
	res, err := Run(Config{Out: out, Quick: true, Session: onnx.Options{Threads: 2}, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	// The stages that train show bars after their stage's line; Quiet
	// keeps the lines alone.
	for _, s := range []string{"[toy] stage 2/9 sft …", "sft loss", "[toy] stage 4/9 rlhf …", "rlhf step", "100%"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("the progress lacks %q:\n%s", s, log.String())
		}
	}
	if (&run{cfg: Config{Progress: &log, Quiet: true}}).bars() != nil {
		t.Error("Quiet keeps the bars")
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"table1":               {"precision", "recall", "kendall_tau", "separation", "threshold", "tau_ceiling", "tau_separator"},
		"table1_paper_feature": {"separation"},
		"table3":               {"total_toxic", "unique_toxic", "total_non_toxic", "unique_non_toxic", "total_unknown", "unique_unknown"},
		"table4":               {"total_toxic", "unique_toxic", "total_non_toxic", "unique_non_toxic", "total_unknown", "unique_unknown"},
		"seconds":              append([]string{"total"}, Stages...),
		"paper":                {"table1", "table3", "table4"},
	}
	if len(rep) != len(want) {
		t.Errorf("report.json has keys %v, want exactly %v", keys(rep), keys(want))
	}
	for k, sub := range want {
		for _, s := range sub {
			v, ok := rep[k][s]
			if !ok {
				t.Errorf("report.json: no %s.%s", k, s)
				continue
			}
			if x, isNum := v.(float64); isNum && (math.IsNaN(x) || math.IsInf(x, 0)) {
				t.Errorf("report.json: %s.%s = %v", k, s, x)
			}
		}
	}
	for _, f := range []string{"report.md", "data/dataset.jsonl", "data/prompts.jsonl", "data/tokenizer.json", "generations/baseline.jsonl", "generations/rlhf.jsonl",
		"heads/head.json", "heads/epoch-001.json", "eval/pos.safetensors", "eval/neg.safetensors", "eval/gt-pos.safetensors",
		"eval/gt-neg.safetensors", "rlhf/final/model.onnx", "analyses/ratio/ratio.json", "analyses/noise/noise.json",
		"analyses/noise-ood/noise.json", "analyses/epochs/epochs.json", "plots/confusion.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	// The demo's rows carry their text where every command looks by
	// default (--text-field text), so they feed irl features as they are.
	for _, f := range []string{"data/dataset.jsonl", "generations/rlhf.jsonl"} {
		b, _ := os.ReadFile(filepath.Join(out, f))
		var row map[string]any
		json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &row)
		if _, ok := row["text"].(string); !ok {
			t.Errorf("%s: first row %v has no text", f, row)
		}
	}
	// The two noise analyses say which rows they were measured on, so their
	// plots' titles differ.
	var noiseData []string
	for _, d := range []string{"noise", "noise-ood"} {
		var nr struct{ Data string }
		b, _ := os.ReadFile(filepath.Join(out, "analyses", d, "noise.json"))
		json.Unmarshal(b, &nr)
		noiseData = append(noiseData, nr.Data)
	}
	if noiseData[0] == "" || noiseData[0] == noiseData[1] {
		t.Errorf("the noise analyses' data: %q", noiseData)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, s := range []string{"Table 1", "Table 3", "Table 4", "variants", "Figure 2", "Time per stage", "background corpus", "What the head reads",
		"the paper's feature choice", "τ ceiling", "temperature 1.4, top-p 0.95, as the paper samples", "σ in reward units"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	// Every checkpoint (pretrain, sft, rlhf) records its starting model;
	// RLHF's is the SFT model RLHF started from.
	checkFingerprints(t, out)
	sftLast, err := checkpoint.Last(filepath.Join(out, "sft"))
	if err != nil {
		t.Fatal(err)
	}
	sftModel, err := neox.Open(sftLast)
	if err != nil {
		t.Fatal(err)
	}
	rlhfLast, err := checkpoint.Last(filepath.Join(out, "rlhf"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := checkpoint.ReadState(rlhfLast); err != nil || st.Settings["model_fingerprint"] != sftModel.Fingerprint {
		t.Errorf("rlhf's checkpoint: %v; want model_fingerprint %s", err, sftModel.Fingerprint)
	}
	// The evaluation's files give Table 1 again.
	h, err := rewardhead.ReadHead(filepath.Join(out, "heads", "head.json"))
	if err != nil {
		t.Fatal(err)
	}
	pos, neg, err := rewardhead.LoadPair(filepath.Join(out, "eval", "pos.safetensors"), filepath.Join(out, "eval", "neg.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	gp, gn, err := rewardhead.LoadGroundTruth(filepath.Join(out, "eval", "gt-pos.safetensors"), filepath.Join(out, "eval", "gt-neg.safetensors"), pos, neg)
	if err != nil {
		t.Fatal(err)
	}
	r := rewardhead.Evaluate(h.Score(pos), h.Score(neg), gp, gn, zero)
	t1 := res.Seeds[0].Table1
	if r.Precision.X != t1.Precision || r.Recall.X != t1.Recall || r.Separation.X != t1.Separation || r.KendallTau.X != t1.KendallTau {
		t.Errorf("the files give %v %v %v %v; the report %+v", r.Precision.X, r.Recall.X, r.Separation.X, r.KendallTau.X, t1)
	}
}

// checkFingerprints fails unless every trainer_state.json under dir (there
// must be some) records a model_fingerprint.
func checkFingerprints(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != checkpoint.StateFile {
			return err
		}
		n++
		st, err := checkpoint.ReadState(filepath.Dir(path))
		if err != nil {
			return err
		}
		if fp, _ := st.Settings["model_fingerprint"].(string); !strings.HasPrefix(fp, "sha256:") {
			t.Errorf("%s: model_fingerprint %v", path, st.Settings["model_fingerprint"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no %s under %s", checkpoint.StateFile, dir)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
