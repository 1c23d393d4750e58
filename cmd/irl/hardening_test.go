package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
)

// copyModel copies a model folder, so a test may change it.
func copyModel(t *testing.T, src, dst string) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), "reference") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		writeFile(t, filepath.Join(dst, e.Name()), string(b))
	}
	return dst
}

func fixtureModel(t *testing.T, name string) string {
	return copyModel(t, filepath.Join("..", "..", "testdata", name), filepath.Join(t.TempDir(), name))
}

// Features made from one model under two paths combine; features from two
// models under one path do not.
func TestFingerprintNotPath(t *testing.T) {
	dir := t.TempDir()
	model := copyModel(t, filepath.Join("..", "..", "testdata", "tiny-neox-parallel"), filepath.Join(dir, "audit", "model"))
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5]}\n{\"input_ids\": [6, 7, 8, 9]}\n")
	abs, _ := filepath.Abs(model)
	pos, neg := filepath.Join(dir, "pos.safetensors"), filepath.Join(dir, "neg.safetensors")
	if err := run(t, "features", "--model", model, "--input", rows, "--out", pos, "--quiet"); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "features", "--model", abs, "--input", rows, "--out", neg, "--quiet"); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "reward", "train", "--pos", pos, "--neg", neg, "--out", filepath.Join(dir, "heads"), "--epochs", "2"); err != nil {
		t.Errorf("the same model under two paths: %v", err)
	}
	// Another model at the same path.
	os.RemoveAll(model)
	copyModel(t, filepath.Join("..", "..", "testdata", "tiny-neox-sequential"), model)
	if err := run(t, "features", "--model", model, "--input", rows, "--out", neg, "--quiet"); err != nil {
		t.Fatal(err)
	}
	err := run(t, "reward", "eval", "--head", filepath.Join(dir, "heads", "head.json"), "--pos", pos, "--neg", neg)
	if err == nil || !strings.Contains(err.Error(), "model_fingerprint") {
		t.Errorf("two models under one path: %v", err)
	}
}

// A model whose weights are finite but whose outputs overflow fails at the
// command that ran it, naming the first bad entry.
func TestNonFiniteOutputsRefused(t *testing.T) {
	model := fixtureModel(t, "tiny-neox-parallel")
	m, err := neox.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Params["gpt_neox.final_layer_norm.weight"].Data {
		m.Params["gpt_neox.final_layer_norm.weight"].Data[i] = 3e38
	}
	for i := range m.Params["embed_out.weight"].Data {
		m.Params["embed_out.weight"].Data[i] = 3e38
	}
	broken := filepath.Join(t.TempDir(), "broken")
	if err := m.Save(broken); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join("..", "..", "testdata", "tiny-neox-parallel", "reference.safetensors")
	err = run(t, "model", "forward", "--model", broken, "--input", in, "--out", filepath.Join(dir, "f.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "not finite") || !strings.Contains(err.Error(), "[0 0 ") {
		t.Errorf("model forward: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.safetensors")); err == nil {
		t.Error("model forward wrote its non-finite output")
	}
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), "{\"input_ids\": [1, 2, 3]}\n")
	err = run(t, "features", "--model", broken, "--input", rows, "--out", filepath.Join(dir, "x.safetensors"), "--quiet")
	if err == nil || !strings.Contains(err.Error(), "row 0") || !strings.Contains(err.Error(), "finite") {
		t.Errorf("features: %v", err)
	}
}

// Long commands check their destination before any compute.
func TestOutputCheckedFirst(t *testing.T) {
	model := filepath.Join("..", "..", "testdata", "tiny-neox-parallel")
	dir := t.TempDir()
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), "{\"input_ids\": [1, 2, 3]}\n")
	for _, out := range []string{filepath.Join(dir, "missing", "f.safetensors"), dir} {
		err := run(t, "features", "--model", model, "--input", rows, "--out", out, "--quiet")
		if err == nil || !(strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "is a folder")) {
			t.Errorf("--out %s: %v", out, err)
		}
	}
	// The destination is the first thing checked: here the inputs do not
	// exist either, and the error is still about --out.
	missing := filepath.Join(dir, "absent")
	for _, args := range [][]string{
		{"model", "forward", "--model", missing, "--input", missing, "--out", dir},
		{"model", "grad", "--model", missing, "--input", missing, "--out", dir},
		{"model", "export-onnx", "--model", missing, "--out", dir},
		{"generate", "--model", missing, "--prompt-ids", "1,2", "--out", dir},
	} {
		if err := run(t, args...); err == nil || !strings.Contains(err.Error(), "is a folder") {
			t.Errorf("%v: %v, want the --out folder refused first", args[:2], err)
		}
	}
}

// Values out of range are refused with the flag's name.
func TestFlagValidation(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join("..", "..", "testdata", "tiny-neox-parallel")
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), "{\"input_ids\": [1, 2, 3, 4]}\n{\"input_ids\": [5, 6, 7]}\n")
	sft := func(extra ...string) error {
		return run(t, append([]string{"sft", "--model", model, "--input", rows, "--out", filepath.Join(t.TempDir(), "run"), "--quiet", "--epochs", "1"}, extra...)...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--eval-fraction", "-0.1"}, "eval fraction"},
		{[]string{"--eval-fraction", "NaN"}, "eval fraction"},
		{[]string{"--eval-fraction", "1"}, "eval fraction"},
		{[]string{"--max-grad-norm", "-1"}, "max grad norm"},
		{[]string{"--save-every", "-2"}, "save every"},
		{[]string{"--max-length", "-5"}, "--max-length"},
	} {
		if err := sft(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sft %v: %v", tc.args, err)
		}
	}
	if err := run(t, "features", "--model", model, "--input", rows, "--out", filepath.Join(dir, "f.st"), "--threads", "-1"); err == nil || !strings.Contains(err.Error(), "--threads") {
		t.Errorf("--threads -1: %v", err)
	}
	if err := run(t, "features", "--model", model, "--input", rows, "--out", filepath.Join(dir, "f.st"), "--tf32"); err == nil || !strings.Contains(err.Error(), "--device cuda") {
		t.Errorf("--tf32 on CPU: %v", err)
	}
	if err := run(t, "features", "--model", model, "--input", rows, "--out", filepath.Join(dir, "f.st"), "--threads", "100000", "--quiet"); err != nil {
		t.Errorf("--threads 100000 should be capped, not fail: %v", err)
	}
	pos := filepath.Join(dir, "f.st")
	out := filepath.Join(dir, "heads")
	if err := run(t, "reward", "train", "--pos", pos, "--neg", pos, "--out", out, "--slope", "NaN"); err == nil || !strings.Contains(err.Error(), "slope") {
		t.Errorf("--slope NaN: %v", err)
	}
	if err := run(t, "reward", "train", "--pos", pos, "--neg", pos, "--out", out, "--loss", "margin", "--delta", "NaN"); err == nil || !strings.Contains(err.Error(), "δ") {
		t.Errorf("--delta NaN: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused training left its folder behind")
	}
	if err := run(t, "generate", "--model", model, "--prompt-ids", "1,2", "--greedy", "--temperature", "-1"); err == nil || !strings.Contains(err.Error(), "--temperature") {
		t.Errorf("--greedy --temperature: %v", err)
	}
	if err := run(t, "features", "--model", model, "--input", rows, "--out", pos, "stray"); err == nil || !strings.Contains(err.Error(), `unexpected argument "stray"`) {
		t.Errorf("stray argument: %v", err)
	}
	txt := writeFile(t, filepath.Join(dir, "rows.txt"), "{\"input_ids\": [1, 2]}\n")
	if err := run(t, "features", "--model", model, "--input", txt, "--out", pos, "--quiet"); err == nil || !strings.Contains(err.Error(), "--input-format") {
		t.Errorf("unknown extension: %v", err)
	}
	if err := run(t, "features", "--model", model, "--input", txt, "--out", pos, "--quiet", "--input-format", "jsonl"); err != nil {
		t.Errorf("--input-format jsonl: %v", err)
	}
}

// --version names irl's commit and the ONNX Runtime found; --help marks the
// required flags and shows no sentinel defaults.
func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"irl", "--version"}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "irl ") || !strings.Contains(s, "commit") || !strings.Contains(s, "ONNX Runtime 1.") {
		t.Errorf("--version printed %q", s)
	}
	out.Reset()
	app = newApp()
	app.Writer = &out
	if err := app.Run([]string{"irl", "features", "--help"}); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, want := range []string{"--model value", "(required)", "--threads value", "(default: 0, one per core)"} {
		if !strings.Contains(help, want) {
			t.Errorf("features --help lacks %q", want)
		}
	}
	if strings.Contains(help, "one per core) (default: 0)") {
		t.Error("--threads shows its default twice")
	}
	out.Reset()
	app = newApp()
	app.Writer = &out
	app.Run([]string{"irl", "model", "init", "--help"})
	if strings.Contains(out.String(), "(default: -1)") || strings.Contains(out.String(), "--vocab-size value         override the vocabulary size (default: 0)") {
		t.Errorf("model init --help shows sentinels:\n%s", out.String())
	}
}

// A missing required flag is said first and alone: no page of help before
// it, every missing flag named, the subcommand's full name given.
func TestMissingRequiredFlagSaidFirst(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"features"}, "features: missing --model, --input, --out (required; see --help)"},
		{[]string{"reward", "train", "--pos", "a.safetensors"}, "reward train: missing --neg, --out"},
		{[]string{"reward", "analyze", "noise", "--head", "h.json"}, "reward analyze noise: missing --pos, --neg, --out"},
	} {
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run(append([]string{"irl"}, tc.args...))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to start %q", tc.args, err, tc.want)
		}
		if out.Len() > 0 {
			t.Errorf("%v: printed before the error:\n%s", tc.args, out.String())
		}
	}
	// The flags stay marked in help, in a fresh app too.
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.Run([]string{"irl", "reward", "train", "--help"})
	if !strings.Contains(out.String(), "(required)") {
		t.Errorf("reward train --help marks no flag required:\n%s", out.String())
	}
}

// make's ONNX Runtime step honours ONNXRUNTIME_LIB: no npm is run.
func TestFetchORTHonoursEnv(t *testing.T) {
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "npm"), "#!/bin/sh\necho npm must not run >&2\nexit 3\n")
	os.Chmod(filepath.Join(bin, "npm"), 0o755)
	lib := writeFile(t, filepath.Join(t.TempDir(), "libonnxruntime.so.1"), "x")
	cmd := exec.Command("bash", filepath.Join("..", "..", "tools", "fetch-ort.sh"), t.TempDir())
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "ONNXRUNTIME_LIB="+lib)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != lib {
		t.Errorf("fetch-ort.sh with ONNXRUNTIME_LIB: %v, %q", err, out)
	}
}
