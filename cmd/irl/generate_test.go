package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"irl/neox"
	"irl/tokenizer"
)

type genLine struct {
	IDs      []int64   `json:"ids"`
	LogProbs []float64 `json:"logprobs"`
	Text     *string   `json:"text"`
}

func genRun(t *testing.T, args ...string) ([]genLine, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if err := newApp().Run(append([]string{"irl", "generate", "--threads", "1", "--out", out}, args...)); err != nil {
		return nil, err
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []genLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l genLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if len(l.IDs) == 0 || len(l.IDs) != len(l.LogProbs) {
			t.Errorf("output line %q: %d ids, %d logprobs", sc.Text(), len(l.IDs), len(l.LogProbs))
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// --greedy reproduces transformers' greedy continuation of the fixture.
func TestGenerateCommandGreedy(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "tiny-neox-parallel")
	var ref struct{ Greedy [][]int64 }
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	want := ref.Greedy[0]
	var ids []string
	for _, id := range want[:6] {
		ids = append(ids, jsonInt(id))
	}
	lines, err := genRun(t, "--model", dir, "--prompt-ids", strings.Join(ids, ","), "--greedy", "--max-new-tokens", "8")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !reflect.DeepEqual(lines[0].IDs, want[6:]) || lines[0].Text != nil {
		t.Errorf("got %+v, want ids %v and no text", lines, want[6:])
	}
}

func jsonInt(i int64) string { b, _ := json.Marshal(i); return string(b) }

// A prompts file with several copies per prompt: prompt order, reproducible
// from the seed, and independent of the batch size.
func TestGenerateCommandPromptsFile(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "tiny-neox-sequential")
	prompts := writeFile(t, filepath.Join(t.TempDir(), "p.jsonl"),
		"{\"input_ids\": [1, 2, 3], \"id\": \"a\"}\n\n{\"input_ids\": [400, 5]}\n")
	args := []string{"--model", dir, "--prompts", prompts, "--num-return-sequences", "3", "--seed", "5",
		"--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--max-new-tokens", "6"}
	a, err := genRun(t, append(args, "--batch-size", "6")...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := genRun(t, append(args, "--batch-size", "4")...)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 6 {
		t.Fatalf("%d lines, want 6", len(a))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i].IDs, b[i].IDs) {
			t.Errorf("line %d: %v at batch size 6, %v at 4", i, a[i].IDs, b[i].IDs)
		}
	}
}

// With a tokenizer.json in the model folder, prompts may be text and each
// line has the decoded text.
func TestGenerateCommandText(t *testing.T) {
	cfg := neox.Shapes["pythia-14m"]
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, cfg.NumHeads, cfg.MaxPositions = 32, 64, 1, 2, 64
	m, err := neox.Init(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(filepath.Join("..", "..", "testdata", "gpt2-bpe", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tokenizer.json"), string(tj))
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	prompts := writeFile(t, filepath.Join(t.TempDir(), "p.jsonl"), `{"prompt": "Hello world"}`+"\n"+`{"input_ids": [15496, 995]}`+"\n")
	lines, err := genRun(t, "--model", dir, "--prompts", prompts, "--greedy", "--max-new-tokens", "5", "--ignore-eos")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	for i, l := range lines {
		if l.Text == nil || *l.Text != strings.ToValidUTF8(tok.Decode(l.IDs), "\uFFFD") || len(l.IDs) != 5 {
			t.Errorf("line %d: %+v", i, l)
		}
	}
	// "Hello world" is 15496 995: both lines continue the same prompt.
	if !reflect.DeepEqual(lines[0].IDs, lines[1].IDs) {
		t.Errorf("text and id prompts differ: %v, %v", lines[0].IDs, lines[1].IDs)
	}
}

func TestGenerateCommandBadInput(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "tiny-neox-parallel")
	tmp := t.TempDir()
	long := "[" + strings.Repeat("1,", 124) + "1]" // 125 tokens; the model has 128 positions
	cases := []struct {
		name   string
		args   []string
		expect []string
	}{
		{"no prompts", []string{"--model", dir}, []string{"--input", "--prompt-ids"}},
		{"both", []string{"--model", dir, "--prompt-ids", "1", "--prompts", "x.jsonl"}, []string{"exactly one"}},
		{"bad ids", []string{"--model", dir, "--prompt-ids", "1,x,3"}, []string{"--prompt-ids", `"x"`}},
		{"bad json", []string{"--model", dir, "--prompts", writeFile(t, filepath.Join(tmp, "bad.jsonl"), "{\"input_ids\": [1]}\n{\"input_ids\": [1,\n")},
			[]string{"bad.jsonl:2"}},
		{"no field", []string{"--model", dir, "--prompts", writeFile(t, filepath.Join(tmp, "nofield.jsonl"), "{\"text\": \"hi\"}\n")},
			[]string{"nofield.jsonl:1", "input_ids"}},
		{"text without tokenizer", []string{"--model", dir, "--prompts", writeFile(t, filepath.Join(tmp, "text.jsonl"), "\n{\"prompt\": \"hi\"}\n")},
			[]string{"text.jsonl:2", "tokenizer.json"}},
		{"too long", []string{"--model", dir, "--max-new-tokens", "8", "--prompts", writeFile(t, filepath.Join(tmp, "long.jsonl"), "{\"input_ids\": [1]}\n\n{\"input_ids\": "+long+"}\n")},
			[]string{"long.jsonl:3", "prompt 1", "125 tokens", "max_position_embeddings 128"}},
		{"empty prompt", []string{"--model", dir, "--prompts", writeFile(t, filepath.Join(tmp, "empty.jsonl"), "{\"input_ids\": []}\n")},
			[]string{"empty.jsonl:1", "prompt 0", "empty"}},
		{"bad temperature", []string{"--model", dir, "--prompt-ids", "1", "--temperature", "0"}, []string{"temperature"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := genRun(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.expect {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}
