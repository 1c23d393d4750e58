package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// irl audit refuses incomplete inputs before it writes anything (the
// audit package's tests run it on the toy world's models).
func TestAuditRefusesIncompleteInput(t *testing.T) {
	dir := t.TempDir()
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), `{"prompt": "The cat is", "text": " kind."}`+"\n")
	out := filepath.Join(dir, "out")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pos", rows}, "give both"},
		{[]string{"--model", dir}, "give all three"},
		{[]string{"--pos", rows, "--neg", rows}, "--encoder"},
		{nil, "give --model, --base and --prompts, or --pos and --neg"},
		{[]string{"--model", dir, "--sample=false", "--samples", "8"}, "drop one of the two"},
		{[]string{"--model", dir, "--samples", "-1"}, "must not be negative"},
	} {
		err := run(t, append(append([]string{"audit"}, c.args...), "--out", out, "--quiet")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("irl audit %v: %v, want an error saying %q", c.args, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("irl audit %v made %s", c.args, out)
		}
	}
}

// irl audit --gt on outputs: a ground truth that cannot be read, or lacks
// a text, is refused before anything is written, naming the file and the
// row; a full one adds "direction" to report.json, and report.html is
// written beside report.md.
func TestAuditGroundTruth(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	model := p("m")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "2", "--hidden-size", "32", "--heads", "4",
		"--seed", "3", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	var pos, neg, gt, partial []string
	line := func(prompt, text string) string {
		b, _ := json.Marshal(map[string]string{"prompt": prompt, "text": text})
		return string(b)
	}
	for i, subject := range []string{"cat", "dog", "owl", "fox", "bee", "elk"} {
		prompt := "The " + subject + " is"
		pos, neg = append(pos, line(prompt, " kind.")), append(neg, line(prompt, " vile."))
		gt = append(gt, fmt.Sprintf(`{"prompt": %q, "text": " kind.", "reward": 0.5}`, prompt), fmt.Sprintf(`{"prompt": %q, "text": " vile.", "reward": -0.5}`, prompt))
		if i > 0 {
			partial = append(partial, gt[len(gt)-2:]...)
		}
	}
	partial = append(partial, `{"prompt": "The cat is", "text": " vile.", "reward": -0.5}`)
	posPath := writeFile(t, p("pos.jsonl"), strings.Join(pos, "\n")+"\n")
	negPath := writeFile(t, p("neg.jsonl"), strings.Join(neg, "\n")+"\n")
	words := writeFile(t, p("words.txt"), "kind\nvile\nwarm\ncold\n")
	base := []string{"audit", "--pos", posPath, "--neg", negPath, "--encoder", model, "--probe-words", words, "--epochs", "5", "--quiet", "--threads", "1"}
	for _, c := range []struct {
		name, gt, want string
	}{
		{"no such file", p("none.jsonl"), "none.jsonl"},
		{"a score that is no number", writeFile(t, p("bad.jsonl"), `{"text": " kind.", "reward": 0.5}`+"\n"+`{"text": " vile.", "reward": "high"}`+"\n"), "bad.jsonl:2: column \"reward\" is high, want a finite number"},
		{"no score column", writeFile(t, p("noscore.jsonl"), `{"text": " kind.", "score": 0.5}`+"\n"), "noscore.jsonl:1: no \"reward\" column"},
		// pos.jsonl's first row, " kind." after "The cat is", is the
		// first demonstration; the text alone matches no other row.
		{"a missing text", writeFile(t, p("partial.jsonl"), strings.ReplaceAll(strings.Join(partial, "\n"), `" kind."`, `" kind!"`)+"\n"), "partial.jsonl has no row for the text \" kind.\""},
	} {
		out := p("out-" + strings.ReplaceAll(c.name, " ", "-"))
		err := run(t, append(base, "--gt", c.gt, "--out", out)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: the audit made %s", c.name, out)
		}
	}
	out := p("out")
	if err := run(t, append(base, "--gt", writeFile(t, p("gt.jsonl"), strings.Join(gt, "\n")+"\n"), "--out", out)...); err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	d, _ := rep["direction"].(map[string]any)
	for _, k := range []string{"cosine", "probe_pair_accuracy", "probe_pearson"} {
		if _, ok := d[k].(float64); !ok {
			t.Errorf("report.json direction.%s missing: %v", k, d)
		}
	}
	if h, err := os.ReadFile(filepath.Join(out, "report.html")); err != nil || !strings.Contains(string(h), `id="direction"`) {
		t.Errorf("report.html: %v, or no direction section", err)
	}
}
