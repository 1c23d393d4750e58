package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"irl/neox"
	"irl/reward"
	"irl/tokenizer"
	"irl/toxeval"
)

// evalModel saves a tiny random GPT-NeoX with a word-level tokenizer.json.
func evalModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "policy")
	tj, err := tokenizer.BuildWordBPE([]string{"the", "cat", "is", "hate", "love", "awful", "kind", "nice", "mean"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse("words", tj)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	m, err := neox.Init(neox.Config{VocabSize: tok.VocabSize(), HiddenSize: 16, NumLayers: 1, NumHeads: 2, IntermediateSize: 32,
		MaxPositions: 64, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.5, EOSTokenID: eos, BOSTokenID: eos}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tokenizer.json"), string(tj))
	return dir
}

// evalLexicon writes the two word lists of a lexicon scorer.
func evalLexicon(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tox := writeFile(t, filepath.Join(dir, "toxic.txt"), "hate\nawful\nmean\n")
	non := writeFile(t, filepath.Join(dir, "nontoxic.txt"), "love\nkind\nnice\n")
	return "lexicon:" + tox + "," + non
}

type evalSummaryFile struct {
	Protocol         toxeval.Protocol     `json:"protocol"`
	Prompts          int                  `json:"prompts"`
	SeedsRequested   int                  `json:"seeds_requested"`
	Runs             []toxeval.SeedResult `json:"runs"`
	Mean, Std        map[string]float64
	Note             string `json:"note"`
	Scorer           string `json:"scorer"`
	ScoreIs          string `json:"score_is"`
	PromptsTruncated int    `json:"prompts_truncated"`
	Split            string `json:"split"`
}

func readEval(t *testing.T, out string) (evalSummaryFile, []toxeval.Sample) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s evalSummaryFile
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "samples.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var samples []toxeval.Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var x toxeval.Sample
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		samples = append(samples, x)
	}
	return s, samples
}

// irl eval toxicity end to end with a lexicon scorer: RealToxicityPrompts
// rows (nested prompt.text, challenging only) under both protocols. Every
// sample's score is the lexicon's noiseless value of its continuation (eval
// adds no noise unless asked), and the summary's figures follow from the
// samples.
func TestEvalToxicityCLI(t *testing.T) {
	model, lex := evalModel(t), evalLexicon(t)
	long := strings.Repeat("the cat is ", 8) + "awful"
	var lines []string
	for i, p := range []string{"the cat is", "a cat is mean", "the cat", long, "is"} {
		b, _ := json.Marshal(map[string]any{"challenging": i != 2, "prompt": map[string]any{"text": p, "toxicity": 0.1}})
		lines = append(lines, string(b))
	}
	prompts := writeFile(t, filepath.Join(t.TempDir(), "rtp.jsonl"), strings.Join(lines, "\n")+"\n")
	l, err := reward.LoadLexicon(strings.Split(strings.TrimPrefix(lex, "lexicon:"), ",")[0], strings.Split(lex, ",")[1], 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"eval", "toxicity", "--model", model, "--scorer", lex, "--input", prompts,
		"--prompt-field", "prompt.text", "--challenging-only", "--threads", "1", "--quiet"}

	out := filepath.Join(t.TempDir(), "rtp")
	if err := run(t, append(base, "--protocol", "rtp", "--seeds", "2", "--batch-size", "16", "--out", out)...); err != nil {
		t.Fatal(err)
	}
	s, samples := readEval(t, out)
	if s.Protocol.Name != "rtp" || s.Prompts != 4 || s.SeedsRequested != 2 || len(s.Runs) != 2 || s.Note != "" || s.Scorer != lex || s.ScoreIs != "the scorer's value" || s.Split != "all" {
		t.Errorf("summary %+v", s)
	}
	if len(samples) != 2*4*25 {
		t.Fatalf("%d samples", len(samples))
	}
	rowsSeen := map[int]bool{}
	maxes := map[[2]int]float64{} // [seed, row] → max
	for _, x := range samples {
		rowsSeen[x.Row] = true
		if x.Score == nil || *x.Score != l.Base(x.Continuation) || x.NewTokens > 20 {
			t.Fatalf("sample %+v: lexicon says %v", x, l.Base(x.Continuation))
		}
		k := [2]int{int(x.Seed), x.Row}
		if m, ok := maxes[k]; !ok || *x.Score > m {
			maxes[k] = *x.Score
		}
	}
	if !reflect.DeepEqual(rowsSeen, map[int]bool{0: true, 1: true, 3: true, 4: true}) {
		t.Errorf("rows %v: row 2 is not challenging", rowsSeen)
	}
	var emt []float64
	for seed := 1; seed <= 2; seed++ {
		sum := 0.0
		for _, row := range []int{0, 1, 3, 4} {
			sum += maxes[[2]int{seed, row}]
		}
		emt = append(emt, sum/4)
		if got := s.Runs[seed-1].Metrics[toxeval.MetricExpectedMax]; math.Abs(got-sum/4) > 1e-12 {
			t.Errorf("seed %d: expected max %v, samples say %v", seed, got, sum/4)
		}
	}
	if m := (emt[0] + emt[1]) / 2; math.Abs(s.Mean[toxeval.MetricExpectedMax]-m) > 1e-12 ||
		math.Abs(s.Std[toxeval.MetricExpectedMax]-math.Abs(emt[0]-emt[1])/math.Sqrt2) > 1e-12 {
		t.Errorf("expected max %v ± %v, samples say %v", s.Mean[toxeval.MetricExpectedMax], s.Std[toxeval.MetricExpectedMax], emt)
	}

	out = filepath.Join(t.TempDir(), "paper")
	if err := run(t, append(base, "--protocol", "paper", "--seeds", "3", "--out", out)...); err != nil {
		t.Fatal(err)
	}
	s, samples = readEval(t, out)
	if s.Protocol.Name != "paper" || len(s.Runs) != 1 || s.SeedsRequested != 3 || !strings.Contains(s.Note, "greedy") || len(samples) != 4 {
		t.Errorf("summary %+v, %d samples", s, len(samples))
	}
	// 64 positions − 50 new tokens: the long prompt (25 tokens) is cut.
	if s.PromptsTruncated != 1 {
		t.Errorf("%d prompts cut", s.PromptsTruncated)
	}
	kept, sum := 0, 0.0
	for _, x := range samples {
		if x.Dropped != (x.Score == nil) || x.Dropped != (len([]rune(strings.TrimSpace(x.Continuation))) <= 2) {
			t.Errorf("sample %+v", x)
		}
		if x.Score != nil {
			kept++
			sum += *x.Score
		}
	}
	if r := s.Runs[0]; r.Scored != kept || r.Dropped != 4-kept || (kept > 0 && math.Abs(r.Metrics[toxeval.MetricMeanToxicity]-sum/float64(kept)) > 1e-12) {
		t.Errorf("run %+v; samples: %d kept, sum %v", r, kept, sum)
	}
	// The output folder is checked before any work.
	if err := run(t, append(base, "--protocol", "paper", "--out", out)...); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("non-empty output folder: %v", err)
	}
}

// Bad settings and inputs stop the command with a message that says why.
func TestEvalToxicityBadInput(t *testing.T) {
	model, lex := evalModel(t), evalLexicon(t)
	dir := t.TempDir()
	prompts := writeFile(t, filepath.Join(dir, "p.jsonl"), `{"prompt": "the cat is"}`+"\n")
	noPrompt := writeFile(t, filepath.Join(dir, "q.csv"), "text,toxic\nthe cat,1\n")
	args := func(extra ...string) []string {
		return append([]string{"eval", "toxicity", "--model", model, "--scorer", lex, "--input", prompts, "--out", filepath.Join(t.TempDir(), "o"), "--quiet"}, extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{args("--protocol", "perspective"), `unknown protocol "perspective"`},
		{args("--seeds", "0"), "--seeds must be at least 1"},
		{args("--batch-size", "0"), "--batch-size must be positive"},
		{args("--split", "test"), `--split "test"`},
		// Flags that do not apply to a continuation scored alone are not
		// eval's.
		{args("--reward-relative", "original"), "reward-relative"},
		{args("--reward-transform", "official-rf2"), "reward-transform"},
		{args("--join", " "), "join"},
		{args("--reward-timeout", "-1s"), "--reward-timeout"},
		{args("--split", "eval"), "both sides need at least one"},
		{args("--input", noPrompt), `no column "prompt"`},
		{args("--challenging-only"), `no row has a "challenging" field`},
		{append(args(), "--scorer", "perspective:api"), `unknown kind "perspective"`},
	} {
		if err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args[len(c.args)-2:], err, c.want)
		}
	}
}

// A scorer that fails stops eval with the scorer's error (not one of
// writing a file) naming the row, and leaves no --out behind, or the old
// one with --overwrite; a scorer that never answers stops it within
// --reward-timeout; one that fails on the end of its input is reported
// after a finished evaluation.
func TestEvalToxicityScorerFailures(t *testing.T) {
	model := evalModel(t)
	dir := t.TempDir()
	prompts := writeFile(t, filepath.Join(dir, "p.jsonl"), `{"prompt": "the cat is"}`+"\n"+`{"prompt": "the cat"}`+"\n")
	script := func(name, body string) string {
		p := writeFile(t, filepath.Join(dir, name), "#!/bin/sh\n"+body)
		os.Chmod(p, 0o755)
		return "cmd:" + p
	}
	dies := script("dies.sh", "read l; echo '{\"reward\": 0.5}'; echo 'model file missing' >&2; exit 2\n")
	silent := script("silent.sh", "while read l; do :; done\n")
	failsAtEnd := script("end.sh", "while read l; do echo '{\"reward\": 0.5}'; done; echo 'cache not saved' >&2; exit 3\n")
	args := func(scorer, out string, extra ...string) []string {
		return append([]string{"eval", "toxicity", "--model", model, "--scorer", scorer, "--input", prompts, "--out", out,
			"--quiet", "--threads", "1", "--protocol", "rtp", "--batch-size", "4"}, extra...)
	}
	out := filepath.Join(dir, "out")
	err := run(t, args(dies, out)...)
	if err == nil || !strings.Contains(err.Error(), "cmd reward") || !strings.Contains(err.Error(), "(row ") || !strings.Contains(err.Error(), "model file missing") || strings.Contains(err.Error(), "writing") {
		t.Errorf("a scorer that dies: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed eval left %s: %v", out, err)
	}
	// With --overwrite, a failure keeps the earlier results.
	old := filepath.Join(dir, "old")
	os.MkdirAll(old, 0o755)
	writeFile(t, filepath.Join(old, "summary.json"), "{}\n")
	if err := run(t, args(dies, old, "--overwrite")...); err == nil {
		t.Error("no error")
	}
	if b, _ := os.ReadFile(filepath.Join(old, "summary.json")); string(b) != "{}\n" {
		t.Errorf("a failed eval replaced the old results: %q", b)
	}
	start := time.Now()
	err = run(t, args(silent, filepath.Join(dir, "s"), "--reward-timeout", "300ms")...)
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") || !strings.Contains(err.Error(), "(row ") {
		t.Errorf("a scorer that never answers: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	var errw bytes.Buffer
	app := newApp()
	app.ErrWriter = &errw
	if err := app.Run(append([]string{"irl"}, args(failsAtEnd, filepath.Join(dir, "e"))...)); err != nil {
		t.Fatal(err)
	}
	if msg := errw.String(); !strings.Contains(msg, "warning") || !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "cache not saved") {
		t.Errorf("the scorer's failure on closing: %q", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "e", "summary.json")); err != nil {
		t.Error(err)
	}
}

// eval toxicity's help lists only the reward flags that apply to it.
func TestEvalToxicityHelp(t *testing.T) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"irl", "eval", "toxicity", "--help"}); err != nil {
		t.Fatal(err)
	}
	h := out.String()
	for _, gone := range []string{"--reward-relative value", "--reward-transform value", "--original-field value", "--join value"} {
		if strings.Contains(h, gone) {
			t.Errorf("eval toxicity --help lists %s, which does not apply", gone)
		}
	}
	for _, w := range []string{"--scorer value", "--reward-label value", "--reward-noise value", "--reward-timeout value", "--out value"} {
		if !strings.Contains(h, w) {
			t.Errorf("eval toxicity --help lacks %s", w)
		}
	}
}

// irl data jigsaw-split on a hand-made raw file with a multi-line quoted
// comment: exactly which comments land in the output, in which order, and
// where each is cut.
func TestDataJigsawSplit(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "train.csv"), `"id","comment_text","toxic","severe_toxic","obscene","threat","insult","identity_hate"
"a1","you utter fool",1,0,0,0,1,0
"a2","Thanks for the fix.",0,0,0,0,0,0
"a3","idiot",1,0,0,0,1,0
"a4","Please see
the talk page, ""here"".",0,0,0,0,0,0
"a5","go away now troll",1,0,0,0,0,0
"a6","ok",0,0,0,0,0,0
"a7","what a stupid edit",1,0,0,0,0,0
"a8","I agree with you.",0,0,0,0,0,0
"a9","shut up",1,0,0,0,0,0
`)
	out := filepath.Join(dir, "long.csv")
	if err := run(t, "data", "jigsaw-split", "--input", in, "--out", out, "--from", "1", "--to", "3"); err != nil {
		t.Fatal(err)
	}
	got, err := toxeval.ReadLong2000(out, "")
	if err != nil {
		t.Fatal(err)
	}
	// Toxic by length: idiot(5) shut up(7) you utter fool(14) go away now troll(17) what a stupid edit(18).
	// Non-toxic: ok(2) I agree with you.(17) Thanks for the fix.(19) Please see\nthe talk page, "here".(33).
	want := []toxeval.Long2000Row{
		{Index: 0, Prompt: "shut", Original: "up", Toxic: true},
		{Index: 1, Prompt: "you utter", Original: "fool", Toxic: true},
		{Index: 2, Prompt: "I agree", Original: "with you.", Toxic: false},
		{Index: 3, Prompt: "Thanks for", Original: "the fix.", Toxic: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	pq := filepath.Join(dir, "long.parquet")
	if err := run(t, "data", "jigsaw-split", "--input", in, "--out", pq, "--from", "2", "--to", "4"); err != nil {
		t.Fatal(err)
	}
	got, err = toxeval.ReadLong2000(pq, "")
	if err != nil || len(got) != 4 || got[3].Prompt != "Please see the" || got[3].Original != `talk page, "here".` {
		t.Errorf("parquet: %+v %v", got, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "2", "--to", "5"}, "the data has 5 toxic and 4 non-toxic"},
		{[]string{"--from", "3", "--to", "3"}, "want 0 <= from < to"},
		{[]string{"--out", filepath.Join(dir, "x.txt")}, "name it .csv"},
	} {
		args := append([]string{"data", "jigsaw-split", "--input", in, "--out", filepath.Join(dir, "y.csv")}, c.args...)
		if err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	noToxic := writeFile(t, filepath.Join(dir, "n.csv"), "comment_text,insult\nhi,0\n")
	if err := run(t, "data", "jigsaw-split", "--input", noToxic, "--out", filepath.Join(dir, "z.csv")); err == nil ||
		!strings.Contains(err.Error(), `missing column "toxic": the file has columns "comment_text", "insult"`) {
		t.Errorf("no toxic column: %v", err)
	}
}
