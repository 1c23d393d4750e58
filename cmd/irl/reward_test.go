package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"irl/rewardhead"
	"irl/safetensors"
)

// rwtRun runs `irl reward ARGS...` and returns what it printed.
func rwtRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := rwtRunErr(t, args...)
	return out, err
}

// rwtRunErr runs `irl reward ARGS...` and returns what it printed on its
// output and on its error stream.
func rwtRunErr(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw bytes.Buffer
	cmd := rewardCommand()
	prepare(cmd) // the rules every command follows, as newApp applies them
	app := &cli.App{Name: "irl", Commands: []*cli.Command{cmd}, Writer: &out, ErrWriter: &errw}
	err = app.Run(append([]string{"irl", "reward"}, args...))
	return out.String(), errw.String(), err
}

func rwtMeta(layer string) map[string]string {
	return map[string]string{"model": "synthetic", "layer": layer, "pool": "last", "max_length": "64"}
}

// rwtFeatures writes n rows of standard normal noise shifted by sign·shift
// along w, with a row tensor numbering them from firstRow.
func rwtFeatures(t *testing.T, path string, rng *rand.Rand, w []float64, n int, sign, shift float64, meta map[string]string) {
	t.Helper()
	d := len(w)
	x := make([]float32, n*d)
	rows := make([]int64, n)
	for i := 0; i < n; i++ {
		rows[i] = int64(i)
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(rng.NormFloat64() + sign*shift*w[j])
		}
	}
	err := safetensors.WriteFile(path, []safetensors.Tensor{
		safetensors.FromFloat32("features", []int{n, d}, x),
		safetensors.FromInt64("row", []int{n}, rows),
	}, meta)
	if err != nil {
		t.Fatal(err)
	}
}

func rwtDecode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, s)
	}
	return m
}

func rwtExists(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", p, err)
		}
	}
}

// TestRewardCLI runs every reward subcommand end to end on synthetic
// features with a planted reward direction.
func TestRewardCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	const d = 16
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float64, d)
	var nn float64
	for j := range w {
		w[j] = rng.NormFloat64()
		nn += w[j] * w[j]
	}
	for j := range w {
		w[j] /= math.Sqrt(nn)
	}
	rwtFeatures(t, p("pos.safetensors"), rng, w, 400, 1, 2, rwtMeta("3"))
	rwtFeatures(t, p("neg.safetensors"), rng, w, 300, -1, 2, rwtMeta("3"))

	out, err := rwtRun(t, "train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("run"))
	if err != nil {
		t.Fatal(err)
	}
	if m := rwtDecode(t, out); m["epochs"] != 60.0 || m["selected_epoch"] != 60.0 {
		t.Errorf("train summary %v", m)
	}
	rwtExists(t, p("run/epoch-001.json"), p("run/epoch-060.json"), p("run/head.json"), p("run/train.jsonl"))
	log, _ := os.ReadFile(p("run/train.jsonl"))
	if lines := strings.Split(strings.TrimSpace(string(log)), "\n"); len(lines) != 60 || !strings.Contains(lines[0], `"margin"`) {
		t.Errorf("train.jsonl has %d lines: %.200s", len(lines), log)
	}
	if _, err := rwtRun(t, "train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("run")); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("second run into the same folder: %v", err)
	}

	// A ground-truth probe, and its rewards as ground-truth files.
	if _, err := rwtRun(t, "probe", "--train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("probe.json")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"pos", "neg"} {
		if _, err := rwtRun(t, "probe", "--head", p("probe.json"), "--features", p(c+".safetensors"), "--out", p("gt-"+c+".safetensors")); err != nil {
			t.Fatal(err)
		}
	}

	out, err = rwtRun(t, "eval", "--head", p("run/head.json"), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"),
		"--gt-pos", p("gt-pos.safetensors"), "--gt-neg", p("gt-neg.safetensors"), "--scores-out", p("scores.safetensors"), "--plots", p("plots"))
	if err != nil {
		t.Fatal(err)
	}
	m := rwtDecode(t, out)
	for _, k := range []string{"accuracy", "precision", "recall", "f1", "specificity", "separation", "cohens_d", "n_pos", "n_neg", "kendall_tau", "spearman", "pearson", "agreement"} {
		if _, ok := m[k]; !ok {
			t.Errorf("eval output lacks %q", k)
		}
	}
	if acc := m["accuracy"].(float64); acc < 0.95 {
		t.Errorf("accuracy %v on classes ±2 apart", acc)
	}
	if tau := m["kendall_tau"].(float64); tau < 0.7 {
		t.Errorf("Kendall τ with the probe %v", tau)
	}
	sf, err := safetensors.ReadFile(p("scores.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := sf.Get("pos_reward"); err != nil || pr.CheckShape(400) != nil {
		t.Errorf("pos_reward: %v", err)
	}
	rwtExists(t, p("plots/reward_distributions.png"), p("plots/confusion.png"), p("plots/scatter_gt.png"), p("plots/figure1.png"))

	analyses := [][]string{
		{"noise", "--head", p("run/head.json"), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("an-noise"), "--sigmas", "0,0.5,1", "--repeats", "3"},
		{"ratio", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--gt-pos", p("gt-pos.safetensors"), "--gt-neg", p("gt-neg.safetensors"), "--out", p("an-ratio"), "--fractions", "0.25,1", "--repeats", "1", "--epochs", "20"},
		{"epochs", "--heads", p("run"), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("an-epochs")},
		{"perturb", "--head", p("run/head.json"), "--original", p("neg.safetensors"), "--probe", "toward-non-toxic=" + p("neg2.safetensors"), "--out", p("an-perturb")},
	}
	// The perturbation: the toxic rows moved halfway toward the non-toxic mean.
	rwtShifted(t, p("neg.safetensors"), p("neg2.safetensors"), w, 2)
	summaries := map[string]any{}
	for _, a := range analyses {
		out, err := rwtRun(t, append([]string{"analyze"}, a...)...)
		if err != nil {
			t.Fatalf("analyze %s: %v", a[0], err)
		}
		printed := rwtDecode(t, out)
		res := printed["result"].(string)
		rwtExists(t, res)
		summaries[a[0]] = printed["summary"]
	}
	rwtAnalyzeSummaries(t, summaries)
	rwtExists(t, p("an-noise/noise_scores.png"), p("an-noise/noise_weights.png"), p("an-ratio/ratio.png"),
		p("an-epochs/epochs_metrics.png"), p("an-epochs/epochs_rewards.png"), p("an-epochs/ensemble.json"), p("an-perturb/perturb_deltas.png"))
	// A folder that holds results is refused, named, unless --overwrite,
	// which replaces it whole.
	again := append([]string{"analyze"}, analyses[0]...)
	if _, err := rwtRun(t, again...); err == nil || !strings.Contains(err.Error(), "--overwrite") || !strings.Contains(err.Error(), "an-noise") {
		t.Errorf("analyze noise into a used folder: %v", err)
	}
	writeFile(t, p("an-noise/stale.txt"), "old")
	if _, err := rwtRun(t, append(again, "--overwrite")...); err != nil {
		t.Errorf("analyze noise --overwrite: %v", err)
	}
	if _, err := os.Stat(p("an-noise/stale.txt")); err == nil {
		t.Error("--overwrite kept a file of the folder it replaced")
	}
	var pert struct {
		Probes []struct {
			MeanDelta float64 `json:"mean_delta"`
			FracUp    float64 `json:"frac_up"`
		} `json:"probes"`
	}
	b, _ := os.ReadFile(p("an-perturb/perturb.json"))
	if err := json.Unmarshal(b, &pert); err != nil || len(pert.Probes) != 1 || pert.Probes[0].MeanDelta <= 0 || pert.Probes[0].FracUp != 1 {
		t.Errorf("moving toxic rows toward non-toxic should raise every reward: %v %+v", err, pert)
	}

	// Apprenticeship learning: the expert against the baseline as the only
	// candidate recovers the direction of the class means' difference.
	out, err = rwtRun(t, "apprentice", "--expert", p("pos.safetensors"), "--policy", p("neg.safetensors"), "--out", p("app.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := rewardhead.ReadHead(p("app.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cos float64
	for j := range w {
		cos += w[j] * h.W[j]
	}
	if cos < 0.95 {
		t.Errorf("apprentice w has cosine %v with the planted direction", cos)
	}
	fixedMargin := rwtDecode(t, out)["margin"].(float64)

	// Best-of-2 reranking of (non-toxic, toxic) sample pairs: under a good w
	// the kept samples are mostly the expert's own, so the margin shrinks.
	rwtInterleave(t, p("pos.safetensors"), p("neg.safetensors"), p("samples.safetensors"), 300)
	out, err = rwtRun(t, "apprentice", "--expert", p("pos.safetensors"), "--policy", p("neg.safetensors"), "--out", p("app2.json"),
		"--samples", p("samples.safetensors"), "--samples-per-prompt", "2")
	if err != nil {
		t.Fatal(err)
	}
	if m := rwtDecode(t, out)["final_margin"].(float64); m >= fixedMargin/2 {
		t.Errorf("best-of-n margin %v, fixed-set margin %v", m, fixedMargin)
	}
	if _, err := rwtRun(t, "apprentice", "--expert", p("pos.safetensors"), "--policy", p("neg.safetensors"), "--out", p("app3.json"),
		"--samples", p("samples.safetensors"), "--samples-per-prompt", "7"); err == nil || !strings.Contains(err.Error(), "prompts of 7") {
		t.Errorf("samples not divisible into prompts: %v", err)
	}
}

// rwtInterleave writes the first n rows of a and b alternately, each as
// its own trajectory (row ids 0 … 2n−1).
func rwtInterleave(t *testing.T, a, b, dst string, n int) {
	t.Helper()
	fa, err := rewardhead.LoadFeatures(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := rewardhead.LoadFeatures(b)
	if err != nil {
		t.Fatal(err)
	}
	d := fa.D
	x := make([]float32, 0, 2*n*d)
	rows := make([]int64, 2*n)
	for i := 0; i < n; i++ {
		x = append(x, fa.Row(i)...)
		x = append(x, fb.Row(i)...)
		rows[2*i], rows[2*i+1] = int64(2*i), int64(2*i+1)
	}
	if err := safetensors.WriteFile(dst, []safetensors.Tensor{
		safetensors.FromFloat32("features", []int{2 * n, d}, x),
		safetensors.FromInt64("row", []int{2 * n}, rows),
	}, fa.Meta); err != nil {
		t.Fatal(err)
	}
}

// rwtShifted copies the features at src to dst with every row moved by
// +shift along w (halfway from −2w toward +2w when shift is 2).
func rwtShifted(t *testing.T, src, dst string, w []float64, shift float64) {
	t.Helper()
	f, err := rewardhead.LoadFeatures(src)
	if err != nil {
		t.Fatal(err)
	}
	x := append([]float32(nil), f.X...)
	for i := 0; i < f.N; i++ {
		for j := range w {
			x[i*f.D+j] += float32(shift * w[j])
		}
	}
	if err := safetensors.WriteFile(dst, []safetensors.Tensor{
		safetensors.FromFloat32("features", []int{f.N, f.D}, x),
		safetensors.FromInt64("row", []int{f.N}, f.Rows),
	}, f.Meta); err != nil {
		t.Fatal(err)
	}
}

func TestRewardCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	rng := rand.New(rand.NewPCG(3, 4))
	w := []float64{1, 0, 0, 0}
	rwtFeatures(t, p("pos.safetensors"), rng, w, 30, 1, 1, rwtMeta("3"))
	rwtFeatures(t, p("neg.safetensors"), rng, w, 30, -1, 1, rwtMeta("3"))
	rwtFeatures(t, p("layer5.safetensors"), rng, w, 30, -1, 1, rwtMeta("5"))
	rwtFeatures(t, p("wide.safetensors"), rng, []float64{1, 0, 0, 0, 0}, 30, -1, 1, rwtMeta("3"))
	nan := []float32{1, 2, 3, 4, 5, 6, float32(math.NaN()), 8}
	if err := safetensors.WriteFile(p("nan.safetensors"), []safetensors.Tensor{safetensors.FromFloat32("features", []int{2, 4}, nan)}, rwtMeta("3")); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(p("empty.safetensors"), []safetensors.Tensor{safetensors.FromFloat32("features", []int{0, 4}, nil)}, rwtMeta("3")); err != nil {
		t.Fatal(err)
	}
	if _, err := rwtRun(t, "train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("run"), "--epochs", "3"); err != nil {
		t.Fatal(err)
	}
	head := p("run/head.json")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"train", "--pos", p("pos.safetensors"), "--neg", p("wide.safetensors"), "--out", p("x")}, []string{"dimension 4 vs 5"}},
		{[]string{"train", "--pos", p("pos.safetensors"), "--neg", p("nan.safetensors"), "--out", p("x")}, []string{"nan.safetensors", "row 1", "NaN"}},
		{[]string{"train", "--pos", p("empty.safetensors"), "--neg", p("neg.safetensors"), "--out", p("x")}, []string{"empty.safetensors", "no rows"}},
		{[]string{"train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("x"), "--loss", "squared"}, []string{`unknown loss "squared"`}},
		{[]string{"eval", "--head", head, "--pos", p("layer5.safetensors"), "--neg", p("layer5.safetensors")}, []string{"head.json was trained on", `layer="3" vs "5"`, "--ignore-metadata"}},
		{[]string{"eval", "--head", head, "--pos", p("wide.safetensors"), "--neg", p("wide.safetensors"), "--ignore-metadata"}, []string{"dimension 4", "dimension 5"}},
		{[]string{"eval", "--head", head, "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--gt-pos", p("pos.safetensors"), "--gt-neg", p("neg.safetensors")}, []string{"pos.safetensors", `no tensor "reward"`}},
		{[]string{"eval", "--head", head, "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--threshold", "median"}, []string{`threshold "median"`}},
		{[]string{"probe", "--out", p("x.json")}, []string{"--train"}},
	}
	for _, c := range cases {
		_, err := rwtRun(t, c.args...)
		for _, want := range c.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v, want it to contain %q", strings.Join(c.args[:1], " "), err, want)
			}
		}
	}
	// --ignore-metadata lets a head score features from another layer.
	if _, err := rwtRun(t, "eval", "--head", head, "--pos", p("layer5.safetensors"), "--neg", p("layer5.safetensors"), "--ignore-metadata"); err != nil {
		t.Errorf("--ignore-metadata: %v", err)
	}
	// A ground-truth file of the wrong length names both files.
	if err := safetensors.WriteFile(p("gt-short.safetensors"), []safetensors.Tensor{safetensors.FromFloat32("reward", []int{3}, []float32{1, 2, 3})}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := rwtRun(t, "eval", "--head", head, "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--gt-pos", p("gt-short.safetensors"), "--gt-neg", p("gt-short.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "gt-short.safetensors") || !strings.Contains(err.Error(), "want [30]") {
		t.Errorf("short ground truth: %v", err)
	}
}

// rwtAnalyzeSummaries checks the summaries the analyses printed beside
// their result files, on TestRewardCLI's data: classes ±2 apart along w.
func rwtAnalyzeSummaries(t *testing.T, s map[string]any) {
	t.Helper()
	b, _ := json.Marshal(s)
	var got struct {
		Noise struct {
			Scores, Weights []map[string]*float64
		}
		Ratio struct {
			AddToxic    []map[string]*float64 `json:"add_toxic"`
			AddNonToxic []map[string]*float64 `json:"add_non_toxic"`
		}
		Epochs struct {
			Heads  int
			Spread map[string]struct {
				Mean, Std, Min, Max *float64
			}
			Ensemble map[string]*float64
		}
		Perturb []struct {
			Probe     string
			MeanDelta *float64 `json:"mean_delta"`
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("summaries %s: %v", b, err)
	}
	// The noise: σ = 0 first, then the largest σ, 1, where accuracy drops.
	for name, pts := range map[string][]map[string]*float64{"scores": got.Noise.Scores, "weights": got.Noise.Weights} {
		if len(pts) != 2 || pts[0]["sigma"] == nil || *pts[0]["sigma"] != 0 || pts[1]["sigma"] == nil || *pts[1]["sigma"] != 1 {
			t.Errorf("noise on %s: summary %s", name, b)
			continue
		}
		for _, k := range []string{"accuracy", "precision", "recall", "f1", "separation"} {
			if pts[0][k] == nil || pts[1][k] == nil {
				t.Errorf("noise on %s: no %s at both ends", name, k)
			}
		}
		if *pts[0]["accuracy"] < 0.95 || *pts[1]["accuracy"] >= *pts[0]["accuracy"] {
			t.Errorf("noise on %s: accuracy %v at σ 0, %v at σ 1", name, *pts[0]["accuracy"], *pts[1]["accuracy"])
		}
	}
	// The ratio: a quarter of 300 toxic rows (75), then all; a quarter of
	// 400 non-toxic rows (100), then all; with ground truth, Kendall τ.
	for _, c := range []struct {
		name string
		pts  []map[string]*float64
		n    []float64
	}{{"add_toxic", got.Ratio.AddToxic, []float64{75, 300}}, {"add_non_toxic", got.Ratio.AddNonToxic, []float64{100, 400}}} {
		if len(c.pts) != 2 {
			t.Errorf("ratio %s: summary %s", c.name, b)
			continue
		}
		for k, pt := range c.pts {
			if pt["n_varied"] == nil || *pt["n_varied"] != c.n[k] {
				t.Errorf("ratio %s point %d: n_varied %v, want %v", c.name, k, pt["n_varied"], c.n[k])
			}
			for _, m := range []string{"precision", "recall", "separation", "kendall_tau"} {
				if pt[m] == nil {
					t.Errorf("ratio %s point %d: no %s", c.name, k, m)
				}
			}
		}
	}
	if e := got.Epochs; e.Heads != 60 || e.Ensemble["accuracy"] == nil || e.Ensemble["f1"] == nil {
		t.Errorf("epochs summary %s", b)
	} else if a := e.Spread["accuracy"]; a.Mean == nil || a.Min == nil || a.Max == nil || *a.Min > *a.Mean || *a.Mean > *a.Max {
		t.Errorf("epochs accuracy spread %s", b)
	}
	if len(got.Perturb) != 1 || got.Perturb[0].Probe != "toward-non-toxic" || got.Perturb[0].MeanDelta == nil || *got.Perturb[0].MeanDelta <= 0 {
		t.Errorf("perturb summary %s", b)
	}
}

// TestRewardEvalOutputs: --scores-out makes its folder, and a threshold
// that puts every row in one class is warned about on stderr, whatever its
// rule, while a threshold that splits the rows is not.
func TestRewardEvalOutputs(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	rng := rand.New(rand.NewPCG(5, 6))
	w := []float64{1, 0, 0}
	rwtFeatures(t, p("pos.safetensors"), rng, w, 40, 1, 2, rwtMeta("3"))
	rwtFeatures(t, p("neg.safetensors"), rng, w, 30, -1, 2, rwtMeta("3"))
	pos, err := rewardhead.LoadFeatures(p("pos.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	// A good head, and the same head reversed: it ranks toxic rows above
	// non-toxic ones, so best-f1 can do no better than calling all toxic.
	for name, sign := range map[string]float64{"good.json": 1, "reversed.json": -1} {
		h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: []float64{sign, 0, 0}, Features: pos.Info()}
		if err := rewardhead.WriteHead(p(name), h); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(head string, extra ...string) (map[string]any, string) {
		t.Helper()
		args := append([]string{"eval", "--head", p(head), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors")}, extra...)
		out, stderr, err := rwtRunErr(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
		return rwtDecode(t, out), stderr
	}

	scores := p("not/yet/there/scores.safetensors")
	if _, stderr := eval("good.json", "--scores-out", scores); stderr != "" {
		t.Errorf("good head at threshold 0 warned: %s", stderr)
	}
	sf, err := safetensors.ReadFile(scores)
	if err != nil {
		t.Fatalf("--scores-out into a missing folder: %v", err)
	}
	if nr, err := sf.Get("neg_reward"); err != nil || nr.CheckShape(30) != nil {
		t.Errorf("neg_reward: %v", err)
	}

	for _, c := range []struct {
		head, threshold, class string
	}{
		{"reversed.json", "best-f1", "all 70 rows toxic"},
		{"good.json", "100", "all 70 rows toxic"},
		{"good.json", "-100", "all 70 rows non-toxic"},
	} {
		m, stderr := eval(c.head, "--threshold", c.threshold)
		if !strings.Contains(stderr, "warning:") || !strings.Contains(stderr, c.class) {
			t.Errorf("%s at --threshold %s (confusion %v): stderr %q, want a warning saying %q", c.head, c.threshold, m["confusion"], stderr, c.class)
		}
		if _, ok := m["accuracy"]; !ok {
			t.Errorf("%s at --threshold %s: the warning replaced the metrics", c.head, c.threshold)
		}
	}
}

// The same file as both classes gets a warning.
func TestRewardSameFileWarning(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 5))
	f := filepath.Join(dir, "f.safetensors")
	rwtFeatures(t, f, rng, []float64{1, 0, 0}, 20, 1, 1, rwtMeta("3"))
	_, stderr, err := rwtRunErr(t, "train", "--pos", f, "--neg", f, "--out", filepath.Join(dir, "h"), "--epochs", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "given as both") {
		t.Errorf("no warning: %q", stderr)
	}
}
