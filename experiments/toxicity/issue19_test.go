package toxicity

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"irl/neox"
	"irl/onnx"
)

// A PPO stage killed before its first checkpoint starts that run over on
// the next run instead of refusing its non-empty folder. Then, on the same
// folder: every stage shows a bar with its name, and none with Quiet; more
// demonstrations than training prompts stop the prompts stage with the
// keys to change; and a new good head reruns only what it feeds, keeping
// the poor run and every other evaluation.
func TestKilledThenEdited(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	so := onnx.Options{Threads: 2}
	if _, err := Run(mini(t), Options{Out: out, Session: so, StopIn: "rlhf", StopAfter: 1}); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("the killed run: %v", err)
	}
	// StopAfter checkpoints where it stops; a kill before the first
	// checkpoint leaves the run's log and no checkpoint.
	run := filepath.Join(out, "rlhf", "run")
	ents, _ := os.ReadDir(run)
	for _, e := range ents {
		if e.Name() == "last-checkpoint" || strings.HasPrefix(e.Name(), "checkpoint-") {
			os.RemoveAll(filepath.Join(run, e.Name()))
		}
	}
	if _, err := os.Stat(filepath.Join(run, "metrics.jsonl")); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	if _, err := Run(mini(t), Options{Out: out, Session: so, Progress: &log}); err != nil {
		t.Fatal(err)
	}
	for _, bar := range []string{"rlhf step", "demonstrations (expert)", "demonstrations (baseline)", "features", "toxicity sft paper", "toxicity irl-rlhf-poor rtp"} {
		if !regexp.MustCompile(regexp.QuoteMeta(bar) + `[^\r\n|]* 100%`).MatchString(log.String()) {
			t.Errorf("no bar %q:\n%s", bar, log.String())
		}
	}

	c := mini(t)
	c.DemoPrompts = 30
	_, err := Run(c, Options{Out: out, Session: so})
	if err == nil || !strings.Contains(err.Error(), "toxicity: prompts: ") || !strings.Contains(err.Error(), "demo_prompts 30") {
		t.Errorf("30 demonstrations from the miniature's prompts: %v", err)
	}

	stat := func(f string) os.FileInfo {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	kept := []string{"rlhf/run/final/model.safetensors", "demonstrations/expert.jsonl", "irl-rlhf/poor/final/model.safetensors",
		"toxicity/sft-paper/summary.json", "toxicity/rlhf-rtp/summary.json", "toxicity/irl-rlhf-poor-paper/summary.json"}
	made := []string{"irl-rlhf/good/final/model.safetensors", "toxicity/irl-rlhf-good-rtp/summary.json", "report.md"}
	before := map[string]os.FileInfo{}
	for _, f := range append(kept, made...) {
		before[f] = stat(f)
	}
	c = mini(t)
	c.GoodHead = "epoch-2"
	log.Reset()
	res, err := Run(c, Options{Out: out, Session: so, Progress: &log, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Ran, []string{"prompts", "irl-rlhf", "toxicity", "report"}) {
		t.Errorf("ran %v", res.Ran)
	}
	want := []string{"irl-rlhf/poor", "toxicity/sft-paper", "toxicity/sft-rtp", "toxicity/rlhf-paper", "toxicity/rlhf-rtp",
		"toxicity/irl-rlhf-poor-paper", "toxicity/irl-rlhf-poor-rtp"}
	if !reflect.DeepEqual(res.Reused, want) {
		t.Errorf("reused %v, want %v", res.Reused, want)
	}
	for _, f := range kept {
		if !os.SameFile(before[f], stat(f)) {
			t.Errorf("%s was made again", f)
		}
	}
	for _, f := range made {
		if os.SameFile(before[f], stat(f)) {
			t.Errorf("%s was kept", f)
		}
	}
	if strings.Contains(log.String(), "100%") || !strings.Contains(log.String(), "[toxicity] stage 7/9 irl-rlhf done") {
		t.Errorf("quiet:\n%s", log.String())
	}
}

// An init spec that changes makes a new model.
func TestInitSpecChangeRemakesModel(t *testing.T) {
	c := mini(t)
	p := &pipeline{cfg: c, opt: Options{Out: t.TempDir()}, hashes: map[string]string{}, res: &Result{}}
	if _, err := p.model(c.SFTModel, "sft"); err != nil {
		t.Fatal(err)
	}
	c.SFTModel.Init.Layers = 2
	dir, err := p.model(c.SFTModel, "sft")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := neox.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.NumLayers != 2 {
		t.Errorf("after layers: 2 the model has %d layers", pc.NumLayers)
	}
}

// Editing a cmd: program changes the hashes of the stages that use it.
func TestCmdProgramIsHashed(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "score.sh")
	os.WriteFile(prog, []byte("#!/bin/sh\necho 1\n"), 0o755)
	c := mini(t)
	c.Reward = "cmd:" + prog + " --x"
	p := &pipeline{cfg: c, opt: Options{Out: dir}, hashes: map[string]string{}, res: &Result{}}
	a, err := p.hash("features")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prog, []byte("#!/bin/sh\necho 2\n"), 0o755)
	b, err := p.hash("features")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("the features stage's hash does not change when its cmd: program does")
	}
}

// Demonstrations beyond the training prompts are an error naming the keys,
// not rows invented from nothing or a panic.
func TestTooFewPromptsForDemonstrations(t *testing.T) {
	c := mini(t)
	out := t.TempDir()
	p := &pipeline{cfg: c, opt: Options{Out: out}, hashes: map[string]string{}, res: &Result{}}
	os.MkdirAll(p.dir("prompts"), 0o755)
	var rs []promptRow
	for i := range 12 {
		rs = append(rs, promptRow{Row: i, Prompt: "Hello"})
	}
	c.DemoPrompts = 13
	if err := writeJSONL(filepath.Join(p.dir("prompts"), "train.jsonl"), rs[:12:12]); err != nil {
		t.Fatal(err)
	}
	_, err := p.stageDemonstrations()
	if err == nil || !strings.Contains(err.Error(), "demo_prompts") {
		t.Errorf("demonstrations from 12 prompts: %v", err)
	}
}

// Every bad value is reported at once, by its YAML key, before any stage.
func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	body, _ := os.ReadFile("mini.yaml")
	s := strings.NewReplacer("../../testdata", filepath.Join(mustAbs(t, "../../testdata")),
		"rtp: ../../testdata/toxicity/rtp-prompts.jsonl", "rtp: missing-rtp.jsonl").Replace(string(body))
	s = strings.Replace(s, "rtp: "+filepath.Join(mustAbs(t, "../../testdata"), "toxicity/rtp-prompts.jsonl"), "rtp: missing-rtp.jsonl", 1)
	for _, kv := range [][2]string{{"layer: -1", "layer: -99"}, {"seeds: 2", "seeds: 1000000000"}, {"max_prompts: 5", "max_prompts: -1"},
		{"rtp_max_prompts: 4", "rtp_max_prompts: -5"}, {"eval_batch_size: 16", "eval_batch_size: 0"}, {"pool: last", "pool: middle"},
		{"transform: relative-rf2", "transform: squash"}, {"poor_head: rlhf-poor", "poor_head: epoch-9"}, {"loss: margin", "loss: squared"}, {"total_steps: 4", "total_steps: 0"}} {
		if !strings.Contains(s, kv[0]) {
			t.Fatalf("mini.yaml lacks %q", kv[0])
		}
		s = strings.Replace(s, kv[0], kv[1], 1)
	}
	s = strings.Replace(s, "scorer: lexicon:"+filepath.Join(mustAbs(t, "../../testdata"), "toxicity/lexicon-toxic.txt"), "scorer: lexicon:nowhere.txt", 1)
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(s), 0o644)
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"rtp: ", "missing-rtp.jsonl", "scorer: ", "nowhere.txt", "layer: -99", "seeds: 1000000000", "max_prompts: -1",
		"rtp_max_prompts: -5", "eval_batch_size: 0", "pool: ", "transform: ", "poor_head: ", "loss: ", "ppo.total_steps 0 must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A second run into a folder that another run holds is refused, naming the
// holder.
func TestOutIsLocked(t *testing.T) {
	out := t.TempDir()
	f, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	f.WriteString("pid 4242424 on elsewhere since 2025-01-01T00:00:00Z\n")
	_, err = Run(mini(t), Options{Out: out})
	if err == nil || !strings.Contains(err.Error(), "4242424") || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("a run into a held folder: %v", err)
	}
}

// Table 2 prints each metric's own std: expected_max_toxicity's ± is the
// std across seeds, not expected_max_toxicity_std's mean, on every run.
func TestTable2Std(t *testing.T) {
	c := mini(t)
	out := t.TempDir()
	p := &pipeline{cfg: c, opt: Options{Out: out}, hashes: map[string]string{}, res: &Result{Seconds: map[string]float64{}}}
	os.MkdirAll(p.dir("irl"), 0o755)
	os.WriteFile(filepath.Join(p.dir("irl"), "figure4.json"), []byte(`[{"epoch":1,"accuracy":0.5,"f1":0.5,"correlation":null}]`), 0o644)
	os.WriteFile(filepath.Join(p.dir("irl"), "figure4-poor.json"), []byte(`[{"epoch":1,"accuracy":0.5,"f1":0.5,"correlation":null}]`), 0o644)
	for _, m := range []string{"sft", "rlhf", "irl-rlhf-good", "irl-rlhf-poor"} {
		for proto, body := range map[string]string{
			"paper": `{"mean":{"toxicity_ratio":0.25,"mean_toxicity":0.125},"std":{"toxicity_ratio":null,"mean_toxicity":null}}`,
			"rtp": `{"mean":{"expected_max_toxicity":0.5,"expected_max_toxicity_std":0.3,"toxicity_probability":0.75},` +
				`"std":{"expected_max_toxicity":0.1,"expected_max_toxicity_std":0.2,"toxicity_probability":0.05}}`} {
			d := filepath.Join(p.dir("toxicity"), m+"-"+proto)
			os.MkdirAll(d, 0o755)
			os.WriteFile(filepath.Join(d, "summary.json"), []byte(body), 0o644)
		}
	}
	for range 20 {
		if _, err := p.stageReport(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(out, "report.md"))
		if !strings.Contains(string(b), "| SFT | 0.1250 ± — | 0.2500 ± — | 0.5000 ± 0.1000 | 0.7500 ± 0.0500 |") {
			t.Fatalf("report.md:\n%s", b)
		}
	}
}

// The paper's configurations pass every check but the paths, which name
// the user's copies of the checkpoints and datasets.
func TestPaperConfigsValid(t *testing.T) {
	for _, f := range []string{"pythia-70m.yaml", "pythia-410m.yaml"} {
		_, err := LoadConfig(f)
		if err == nil {
			continue
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasSuffix(line, " problems:") && !strings.Contains(line, "does not exist") {
				t.Errorf("%s: %s", f, line)
			}
		}
	}
}
