package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"irl/rewardhead"
)

// irlRunErr runs irl with args, as the binary does, and returns what it
// printed on its output and its error stream.
func irlRunErr(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errw
	err = app.Run(append([]string{"irl"}, args...))
	return out.String(), errw.String(), err
}

// A folder given with a trailing slash is the same folder: new, empty, used
// with --overwrite, for every command that writes a folder.
func TestTrailingSlashFolders(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	rng := rand.New(rand.NewPCG(7, 8))
	w := []float64{1, 0, 0}
	rwtFeatures(t, p("pos.safetensors"), rng, w, 40, 1, 2, rwtMeta("3"))
	rwtFeatures(t, p("neg.safetensors"), rng, w, 30, -1, 2, rwtMeta("3"))
	if _, err := irlRun(t, "reward", "train", "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"), "--out", p("heads")+"/", "--epochs", "3"); err != nil {
		t.Fatal(err)
	}
	eval := []string{"reward", "eval", "--head", p("heads/head.json"), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors")}
	// New, then empty, then used with --overwrite.
	if _, err := irlRun(t, append(eval, "--plots", p("plots")+"/")...); err != nil {
		t.Fatalf("--plots into a new folder with a slash: %v", err)
	}
	rwtExists(t, p("plots/reward_distributions.png"))
	os.MkdirAll(p("empty"), 0o755)
	if _, err := irlRun(t, append(eval, "--plots", p("empty")+"/")...); err != nil {
		t.Fatalf("--plots into an empty folder with a slash: %v", err)
	}
	rwtExists(t, p("empty/reward_distributions.png"))
	if _, err := irlRun(t, append(eval, "--plots", p("plots")+"/", "--overwrite")...); err != nil {
		t.Fatalf("--plots --overwrite with a slash: %v", err)
	}
	if _, err := irlRun(t, "reward", "analyze", "noise", "--head", p("heads/head.json"), "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"),
		"--out", p("nz")+"/", "--sigmas", "0,1", "--repeats", "1"); err != nil {
		t.Fatalf("analyze noise --out nz/: %v", err)
	}
	rwtExists(t, p("nz/noise_scores.png"))
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	model := "../../testdata/tiny-neox-parallel"
	in := writeFile(t, p("in.jsonl"), "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5]}\n")
	for _, extra := range [][]string{nil, {"--overwrite"}} {
		args := append([]string{"features", "--model", model, "--input", in, "--out", p("fnpy") + "/", "--format", "npy", "--quiet"}, extra...)
		if err := run(t, args...); err != nil {
			t.Fatalf("features --format npy --out fnpy/ %v: %v", extra, err)
		}
	}
	rwtExists(t, p("fnpy/features.npy"))
}

// A head trained on last:K features (as the demo's is) scores rows as
// features + head do.
func TestHeadOfLastKFeatures(t *testing.T) {
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	model := p("m")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "2", "--hidden-size", "32", "--heads", "4",
		"--seed", "3", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("rows.jsonl"), strings.Join([]string{
		`{"prompt": "Say something", "text": "You are kind."}`,
		`{"prompt": "Again", "text": "A warm and vile day"}`,
		`{"prompt": "Once more", "text": "Blue skies over the sea"}`,
	}, "\n")+"\n")
	if err := run(t, "features", "--model", model, "--input", p("rows.jsonl"), "--prompt-field", "prompt", "--pool", "last:2",
		"--out", p("f.safetensors"), "--quiet", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	f, err := rewardhead.LoadFeatures(p("f.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Info().Pool != "last:2" {
		t.Fatalf("pool %q", f.Info().Pool)
	}
	h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: make([]float64, f.D), B: 0.25, Features: f.Info()}
	for j := range h.W {
		h.W[j] = math.Cos(float64(j))
	}
	if err := rewardhead.WriteHead(p("head.json"), h); err != nil {
		t.Fatal(err)
	}
	if _, err := irlRun(t, "score", "--reward", "head:"+p("head.json"), "--input", p("rows.jsonl"), "--prompt-field", "prompt",
		"--out", p("s.safetensors"), "--quiet", "--threads", "1"); err != nil {
		t.Fatalf("score a last:2 head: %v", err)
	}
	got, _, _ := readRewards(t, p("s.safetensors"))
	want := h.Score(f)
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-5*math.Max(1, math.Abs(want[i])) {
			t.Errorf("row %d: score %v, features + head %v", i, got[i], want[i])
		}
	}
}

// A run folder and its last-checkpoint file stand for the run's model; a
// hub id says it is not fetched.
func TestModelFromRunFolder(t *testing.T) {
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "1", "--hidden-size", "32", "--heads", "2",
		"--seed", "3", "--out", p("m"), "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("data.jsonl"), "{\"text\": \"hello there friend\"}\n{\"text\": \"a kind word\"}\n{\"text\": \"the sea is blue\"}\n")
	if err := run(t, "sft", "--model", p("m"), "--input", p("data.jsonl"), "--out", p("run"), "--epochs", "1", "--batch-size", "2",
		"--eval-fraction", "0", "--quiet", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	rwtExists(t, p("run/final/config.json"), p("run/final/model.safetensors"), p("run/final/tokenizer.json"))
	// A run killed before its first checkpoint is resumed by starting it
	// again, and sft says so.
	os.MkdirAll(p("killed"), 0o755)
	writeFile(t, p("killed/metrics.jsonl"), `{"step":1,"loss":10}`+"\n")
	_, stderr, err := irlRunErr(t, "sft", "--model", p("m"), "--input", p("data.jsonl"), "--out", p("killed"), "--epochs", "1", "--batch-size", "2",
		"--eval-fraction", "0", "--quiet", "--threads", "1", "--resume")
	if err != nil || !strings.Contains(stderr, "started the run anew") {
		t.Errorf("sft --resume without a checkpoint: %v; stderr %q", err, stderr)
	}
	for _, model := range []string{p("run"), p("run/last-checkpoint"), p("run") + "/"} {
		_, stderr, err := irlRunErr(t, "generate", "--model", model, "--prompt-ids", "1,2", "--max-new-tokens", "2", "--greedy", "--quiet")
		if err != nil {
			t.Errorf("--model %s: %v", model, err)
		}
		if !strings.Contains(stderr, "using ") {
			t.Errorf("--model %s: stderr %q does not say which model it used", model, stderr)
		}
	}
	_, _, err = irlRunErr(t, "generate", "--model", "EleutherAI/pythia-70m", "--prompt-ids", "1,2")
	if err == nil || !strings.Contains(err.Error(), "hub") || !strings.Contains(err.Error(), "huggingface-cli download EleutherAI/pythia-70m") {
		t.Errorf("a hub id: %v", err)
	}
}

// score --format jsonl|csv writes the input's rows with their scores: the
// same numbers as the safetensors file, and a classifier's prob and logits.
func TestScoreRowsFormats(t *testing.T) {
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	tox, non := scoreLists(t, tmp)
	writeFile(t, p("in.jsonl"), strings.Join([]string{
		`{"prompt": "Say", "text": "You are kind.", "topic": "a"}`,
		`{"prompt": "Again", "text": "vile, \"nasty\", day", "topic": "b", "n": 3}`,
	}, "\n")+"\n")
	lex := []string{"score", "--reward", "lexicon:" + tox + "," + non, "--reward-noise", "0", "--input", p("in.jsonl"), "--prompt-field", "prompt", "--quiet"}
	if _, err := irlRun(t, append(lex, "--out", p("r.safetensors"))...); err != nil {
		t.Fatal(err)
	}
	want, _, _ := readRewards(t, p("r.safetensors"))
	if _, err := irlRun(t, append(lex, "--out", p("r.jsonl"))...); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p("r.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"row":0,"prompt":"Say","text":"You are kind.",`) || !strings.Contains(lines[1], `"n":3`) {
		t.Fatalf("jsonl:\n%s", b)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["reward"].(float64) != float64(want[i]) || m["topic"] == nil {
			t.Errorf("line %d: %v, want reward %v", i, m, want[i])
		}
	}
	if _, err := irlRun(t, append(lex, "--out", p("r.txt"), "--format", "csv")...); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(must(os.ReadFile(p("r.txt"))))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "row,prompt,text,n,topic,reward" || len(recs) != 3 || recs[2][2] != `vile, "nasty", day` || recs[2][3] != "3" || recs[1][3] != "" {
		t.Errorf("csv: %q", recs)
	}
	if recs[1][5] != strconv.FormatFloat(float64(want[0]), 'g', -1, 64) {
		t.Errorf("csv reward %q, want %v", recs[1][5], want[0])
	}
	// A column the output would replace is refused.
	writeFile(t, p("clash.jsonl"), `{"text": "kind", "reward": 1}`+"\n")
	if _, err := irlRun(t, "score", "--reward", "lexicon:"+tox+","+non, "--input", p("clash.jsonl"), "--out", p("c.jsonl"), "--quiet"); err == nil || !strings.Contains(err.Error(), `"reward"`) {
		t.Errorf("a reward column in the input: %v", err)
	}

	// A classifier: prob and a logit per label.
	in := p("ids.jsonl")
	logits := classifierRows(t, in)
	if _, err := irlRun(t, "score", "--reward", "classifier:"+classifierDir, "--input", in, "--out", p("c.csv"), "--quiet", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(bytes.NewReader(must(os.ReadFile(p("c.csv"))))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "row,input_ids,reward,prob,logit_neutral,logit_toxic" || len(recs) != len(logits)/2+1 {
		t.Fatalf("classifier csv header %q, %d lines", recs[0], len(recs))
	}
	for k := 1; k < len(recs); k++ {
		l0, _ := strconv.ParseFloat(recs[k][4], 64)
		l1, _ := strconv.ParseFloat(recs[k][5], 64)
		if math.Abs(l0-float64(logits[2*(k-1)])) > 1e-4 || math.Abs(l1-float64(logits[2*(k-1)+1])) > 1e-4 {
			t.Errorf("row %d: logits %v %v, want %v", k-1, l0, l1, logits[2*(k-1):2*k])
		}
		if !strings.HasPrefix(recs[k][1], "[") {
			t.Errorf("row %d: input_ids %q", k-1, recs[k][1])
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// tokenize reads another text column, and CSV, as every command reads rows,
// with the ids of the JSON lines path.
func TestTokenizeFieldsAndFormats(t *testing.T) {
	tok := "../../testdata/roberta-bpe/tokenizer.json"
	dir := t.TempDir()
	plain := writeFile(t, filepath.Join(dir, "plain.jsonl"), `{"text": "The weather is pleasant."}`+"\n"+`{"text": "Hi"}`+"\n")
	want, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", plain, "--add-special-tokens")
	if err != nil {
		t.Fatal(err)
	}
	nested := writeFile(t, filepath.Join(dir, "nested.jsonl"), `{"c": {"body": "The weather is pleasant."}}`+"\n"+`{"c": {"body": "Hi"}}`+"\n")
	csvIn := writeFile(t, filepath.Join(dir, "rows.dat"), "id,body\n1,The weather is pleasant.\n2,Hi\n")
	for _, args := range [][]string{
		{"--input", nested, "--text-field", "c.body"},
		{"--input", csvIn, "--input-format", "csv", "--text-field", "body"},
	} {
		got, err := irlRun(t, append([]string{"tokenize", "--tokenizer", tok, "--add-special-tokens"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if got != want {
			t.Errorf("%v: %q, want %q", args, got, want)
		}
	}
	// A missing column is a bad row; --skip-bad keeps the line numbers.
	gappy := writeFile(t, filepath.Join(dir, "gappy.jsonl"), `{"body": "Hi"}`+"\n"+`{"other": 1}`+"\n"+`{"body": "Hi"}`+"\n")
	if _, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", gappy, "--text-field", "body"); err == nil || !strings.Contains(err.Error(), "gappy.jsonl:2") {
		t.Errorf("a missing field: %v", err)
	}
	got, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", gappy, "--text-field", "body", "--skip-bad")
	if err != nil {
		t.Fatal(err)
	}
	if got != `{"line":1,"ids":[17254]}`+"\n"+`{"line":3,"ids":[17254]}`+"\n" {
		t.Errorf("--skip-bad: %q", got)
	}
}

// Help says each thing once and truly: usage lines name flags by their own
// names (not an alias), no flag shows two defaults, and every command that
// reads rows takes --input-format.
func TestHelpTextIsTrue(t *testing.T) {
	flagName := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string(nil), path...), c.Name)
			walk(p, c.Subcommands)
			if len(c.Subcommands) > 0 {
				continue
			}
			primary, alias := map[string]bool{}, map[string]string{}
			for _, f := range c.Flags {
				n := f.Names()
				primary[n[0]] = true
				for _, a := range n[1:] {
					alias[a] = n[0]
				}
				if n[0] == "input" && strings.Contains(f.String(), "JSON lines") {
					has := false
					for _, g := range c.Flags {
						has = has || g.Names()[0] == "input-format"
					}
					if !has {
						t.Errorf("irl %s reads rows but has no --input-format", strings.Join(p, " "))
					}
				}
			}
			for _, m := range flagName.FindAllStringSubmatch(c.UsageText, -1) {
				if to, ok := alias[m[1]]; ok && !primary[m[1]] {
					t.Errorf("irl %s: the usage line says --%s, an old name of --%s", strings.Join(p, " "), m[1], to)
				}
			}
			out, _, err := irlRunErr(t, append(p, "--help")...)
			if err != nil {
				t.Fatalf("%v --help: %v", p, err)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Count(line, "(default:") > 1 {
					t.Errorf("irl %s: two defaults: %s", strings.Join(p, " "), strings.TrimSpace(line))
				}
			}
		}
	}
	walk(nil, newApp().Commands)
}

// The libraries name their settings by key; the CLI says them as its
// flags, and the YAML experiments as their keys.
func TestErrorsSpeakFlags(t *testing.T) {
	dir := t.TempDir()
	model := "../../testdata/tiny-neox-parallel"
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), "{\"input_ids\": [1, 2, 3]}\n")
	err := run(t, "features", "--model", model, "--input", rows, "--out", filepath.Join(dir, "f.safetensors"), "--max-length", "100000", "--quiet")
	if err == nil || !strings.Contains(err.Error(), "--max-length 100000") || strings.Contains(err.Error(), "max_length") {
		t.Errorf("features past the model's positions: %v", err)
	}
	err = run(t, "ppo", "--model", model, "--input", rows, "--reward", "lexicon:a,b", "--out", filepath.Join(dir, "run"), "--num-rollouts", "0", "--cliprange-value", "-1")
	if err == nil || !strings.Contains(err.Error(), "--num-rollouts 0 must be positive") || !strings.Contains(err.Error(), "--cliprange-value -1") {
		t.Errorf("ppo settings: %v", err)
	}
}
