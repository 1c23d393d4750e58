package toxicity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"irl/onnx"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// mini is mini.yaml made smaller still for the tests.
func mini(t *testing.T) *Config {
	t.Helper()
	c, err := LoadConfig("mini.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Seeds, c.RTPMaxPrompts, c.MaxPrompts = 1, 2, 4
	return c
}

// The miniature runs every stage and writes the report; a second run skips
// every stage; a run killed in the middle of irl-rlhf and run again ends
// where an uninterrupted run ends.
func TestMiniPipeline(t *testing.T) {
	so := onnx.Options{Threads: 2}
	a := filepath.Join(t.TempDir(), "a")
	res, err := Run(mini(t), Options{Out: a, Session: so})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ran) != len(Stages) {
		t.Errorf("ran %v", res.Ran)
	}
	for _, f := range []string{"report.md", "report.json", "figure4.png", "irl/heads/head.json", "irl/figure4.json",
		"rlhf/run/final/model.onnx", "irl-rlhf/good/final/model.safetensors", "irl-rlhf/poor/final/model.safetensors",
		"toxicity/sft-paper/summary.json", "toxicity/rlhf-rtp/samples.jsonl", "prompts/train.jsonl", "demonstrations/expert.jsonl",
		"features/gt-baseline.safetensors", "features/gt-logit-expert.safetensors", "rlhf-poor/run/final/model.safetensors",
		"demonstrations/expert-poor.jsonl", "features/expert-poor.safetensors", "irl/heads-poor/head.json", "irl/figure4-poor.json"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	var rep map[string]json.RawMessage
	b, _ := os.ReadFile(filepath.Join(a, "report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"table2", "figure4", "figure4_poor", "seconds", "paper"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report.json lacks %s", k)
		}
	}
	// Every checkpoint of every PPO run records its starting model.
	checkFingerprints(t, a)
	checkPairedDemonstrations(t, a)
	again, err := Run(mini(t), Options{Out: a, Session: so})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Ran) != 0 || len(again.Skipped) != len(Stages) {
		t.Errorf("a second run ran %v", again.Ran)
	}

	bdir := filepath.Join(t.TempDir(), "b")
	if _, err := Run(mini(t), Options{Out: bdir, Session: so, StopIn: "irl-rlhf", StopAfter: 2}); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("the killed run: %v", err)
	}
	res, err = Run(mini(t), Options{Out: bdir, Session: so})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Ran, []string{"irl-rlhf", "toxicity", "report"}) {
		t.Errorf("the resumed run ran %v", res.Ran)
	}
	for _, f := range []string{"irl-rlhf/good/final/model.safetensors", "irl-rlhf/poor/final/model.safetensors", "toxicity/irl-rlhf-good-paper/summary.json"} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(bdir, f))
		if len(x) == 0 || string(x) != string(y) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	if _, err := LoadConfig(write("a.yaml", "sft_model: x\ndataset: d\nreward: lexicon:a,b\nscorer: lexicon:a,b\nlearning_rate: 1\n")); err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Errorf("unknown key: %v", err)
	}
	c := mini(t)
	if _, err := Run(c, Options{Out: filepath.Join(dir, "o"), From: "fine-tune"}); err == nil || !strings.Contains(err.Error(), `"fine-tune"`) {
		t.Errorf("unknown stage: %v", err)
	}
	c = mini(t)
	c.Dataset = write("noflag.csv", "prompt,original_output\nHello,there\n")
	if _, err := Run(c, Options{Out: filepath.Join(dir, "p")}); err == nil || !strings.Contains(err.Error(), "toxic") {
		t.Errorf("missing column: %v", err)
	}
	c = mini(t)
	c.DemoPrompts = 40
	if _, err := Run(c, Options{Out: filepath.Join(dir, "q")}); err == nil || !strings.Contains(err.Error(), "fewer than") {
		t.Errorf("too few rows: %v", err)
	}
}

// checkPairedDemonstrations: the expert (RLHF), poor expert (rlhf-poor) and
// baseline rows continue the same prompts, in the same order — the first
// demo_prompts training prompts — each from its named model.
func checkPairedDemonstrations(t *testing.T, out string) {
	t.Helper()
	train, err := readJSONL[promptRow](filepath.Join(out, "prompts", "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	c := mini(t)
	models := map[string]string{"expert": "rlhf/run/final", "baseline": "models/baseline", "expert-poor": "rlhf-poor/run/final"}
	for kind, model := range models {
		ds, err := readJSONL[demo](filepath.Join(out, "demonstrations", kind+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != c.DemoPrompts {
			t.Fatalf("%s: %d rows, want demo_prompts %d", kind, len(ds), c.DemoPrompts)
		}
		for i, d := range ds {
			if d.Row != train[i].Row || d.Prompt != train[i].Prompt || d.Model != model {
				t.Errorf("%s row %d: row %d %q from %s; want row %d %q from %s", kind, i, d.Row, d.Prompt, d.Model, train[i].Row, train[i].Prompt, model)
			}
		}
	}
	e, _ := os.ReadFile(filepath.Join(out, "demonstrations", "expert.jsonl"))
	b, _ := os.ReadFile(filepath.Join(out, "demonstrations", "baseline.jsonl"))
	if string(e) == string(b) {
		t.Error("the expert and baseline demonstrations are the same text")
	}
}
