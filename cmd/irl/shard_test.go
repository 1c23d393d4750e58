package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
)

// shardModel saves a random GPT-NeoX wide enough (64), and with a
// vocabulary that is no multiple of the vector width (97), that ONNX
// Runtime's kernels which group their terms by the batch, its padding or a
// row's place in memory show here.
func shardModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	m, err := neox.Init(neox.Config{VocabSize: 97, HiddenSize: 64, NumLayers: 2, NumHeads: 4, IntermediateSize: 128,
		MaxPositions: 128, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.2, EOSTokenID: 0, BOSTokenID: 0}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// idRows writes n rows of input_ids of varied lengths (1…maxLen) under
// vocab, starting with first when first ≥ 0 and ending with last.
func idRows(t *testing.T, path string, n, maxLen, vocab int, first, last int64, seed int64) string {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	var b strings.Builder
	for i := 0; i < n; i++ {
		var ids []int64
		if first >= 0 {
			ids = append(ids, first)
		}
		for k := 1 + r.Intn(maxLen); k > 0; k-- {
			ids = append(ids, int64(3+r.Intn(vocab-3)))
		}
		if last >= 0 {
			ids = append(ids, last)
		}
		line, _ := json.Marshal(map[string]any{"input_ids": ids, "id": i})
		b.Write(line)
		b.WriteByte('\n')
	}
	return writeFile(t, path, b.String())
}

// runShards runs args as n processes at once, shard i of n each, their
// --out the pattern out (holding {shard}), and fails on any error.
func runShards(t *testing.T, n int, args []string, out string, env ...string) {
	t.Helper()
	cmds := make([]*exec.Cmd, n)
	errs := make([]*bytes.Buffer, n)
	for i := range cmds {
		errs[i] = &bytes.Buffer{}
		a := append(append([]string(nil), args...), "--out", out, "--shard", fmt.Sprintf("%d/%d", i, n), "--threads", "1", "--quiet")
		cmds[i] = exec.Command(os.Args[0], a...)
		cmds[i].Env = append(append(os.Environ(), asIrlEnv+"=1"), env...)
		cmds[i].Stderr = errs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("shard %d/%d: %v\n%s", i, n, err, errs[i])
		}
	}
}

// sameBytes fails unless the two files hold the same bytes.
func sameBytes(t *testing.T, what, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s: merged %s (%d bytes) differs from the unsharded %s (%d bytes)", what, got, len(g), want, len(w))
	}
}

// shardCase is one command run unsharded and in 1, 3 and 7 shards.
type shardCase struct {
	name   string
	args   []string // the command and its flags, without --out
	file   string   // the output's name: a file, or a folder for eval
	folder bool
}

func checkShards(t *testing.T, tc shardCase) {
	dir := t.TempDir()
	want := filepath.Join(dir, tc.file)
	if err := run(t, append(append([]string(nil), tc.args...), "--out", want, "--threads", "1", "--quiet")...); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 7} {
		parts := filepath.Join(dir, fmt.Sprintf("parts%d", n))
		pattern := filepath.Join(parts, "part-{shard}"+filepath.Ext(tc.file))
		runShards(t, n, tc.args, pattern)
		got := filepath.Join(dir, fmt.Sprintf("merged%d-%s", n, tc.file))
		if err := run(t, "merge", "--out", got, "--quiet", parts); err != nil {
			t.Fatalf("%s, %d shards: %v", tc.name, n, err)
		}
		if tc.folder {
			for _, f := range []string{"summary.json", "samples.jsonl"} {
				sameBytes(t, fmt.Sprintf("%s, %d shards, %s", tc.name, n, f), filepath.Join(got, f), filepath.Join(want, f))
			}
		} else {
			sameBytes(t, fmt.Sprintf("%s, %d shards", tc.name, n), got, want)
		}
	}
}

// TestShardsMergeExactly: each sharded command, run as 1, 3 and 7 separate
// processes and merged, writes the unsharded command's output byte for byte.
func TestShardsMergeExactly(t *testing.T) {
	dir := t.TempDir()
	model := shardModel(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 40, 40, 96, -1, -1, 1)
	clsRows := idRows(t, filepath.Join(dir, "cls.jsonl"), 30, 40, 600, 0, 2, 2)
	policy, lex := evalModel(t), evalLexicon(t)
	var lines []string
	for i := 0; i < 23; i++ {
		words := []string{"the", "cat", "is", "hate", "love", "awful", "kind", "nice", "mean"}
		lines = append(lines, fmt.Sprintf(`{"prompt": %q}`, strings.Join(words[i%5:i%5+1+i%4], " ")))
	}
	prompts := writeFile(t, filepath.Join(dir, "prompts.jsonl"), strings.Join(lines, "\n")+"\n")
	cases := []shardCase{
		{"features last", []string{"features", "--model", model, "--input", rowsIn, "--batch-size", "8"}, "f.safetensors", false},
		{"features mean", []string{"features", "--model", model, "--input", rowsIn, "--pool", "mean", "--layer", "1", "--batch-size", "8"}, "f.safetensors", false},
		{"score classifier", []string{"score", "--reward", "classifier:" + filepath.Join("..", "..", "testdata", "tiny-roberta-classifier"), "--input", clsRows, "--batch-size", "8"}, "s.safetensors", false},
		{"score lexicon", []string{"score", "--reward", lex, "--reward-noise", "0.1", "--input", prompts, "--text-field", "prompt"}, "s.safetensors", false},
		{"generate greedy", []string{"generate", "--model", model, "--input", rowsIn, "--greedy", "--max-new-tokens", "12", "--batch-size", "8"}, "g.jsonl", false},
		{"generate sampled", []string{"generate", "--model", model, "--input", rowsIn, "--temperature", "1.3", "--top-p", "0.9", "--num-return-sequences", "2", "--seed", "7", "--max-new-tokens", "12", "--batch-size", "8"}, "g.jsonl", false},
		{"eval greedy", []string{"eval", "toxicity", "--model", policy, "--scorer", lex, "--input", prompts, "--protocol", "paper", "--batch-size", "8"}, "eval", true},
		{"eval sampled", []string{"eval", "toxicity", "--model", policy, "--scorer", lex, "--input", prompts, "--protocol", "rtp", "--seeds", "2", "--batch-size", "16"}, "eval", true},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) { checkShards(t, tc) })
	}
}

// TestShardFromEnvironment: a Slurm array task and a Kubernetes Indexed
// Job's pod write the part --shard writes, and say where their shard came
// from.
func TestShardFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	model := shardModel(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 20, 20, 96, -1, -1, 3)
	args := []string{"features", "--model", model, "--input", rowsIn, "--threads", "1"}
	flagPart := filepath.Join(dir, "flag.safetensors")
	if err := run(t, append(args, "--out", flagPart, "--shard", "2/3", "--quiet")...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		from string
	}{
		{[]string{"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_COUNT=3"}, nil, "SLURM_ARRAY_TASK_ID=3"},
		{[]string{"SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_TASK_COUNT=3"}, nil, "SLURM_ARRAY_TASK_ID=2"},
		{[]string{"JOB_COMPLETION_INDEX=2"}, []string{"--shards", "3"}, "JOB_COMPLETION_INDEX=2"},
	} {
		out := filepath.Join(t.TempDir(), "env.safetensors")
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], append(append(append([]string(nil), args...), tc.args...), "--out", out)...)
		cmd.Env = append(append(os.Environ(), asIrlEnv+"=1"), tc.env...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", tc.env, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "shard 2/3 (from "+tc.from) {
			t.Errorf("%v: stderr does not say where the shard came from:\n%s", tc.env, stderr.String())
		}
		sameBytes(t, fmt.Sprint(tc.env), out, flagPart)
		var m map[string]any
		b, _ := os.ReadFile(out + ".shard.json")
		if err := json.Unmarshal(b, &m); err != nil || m["shard"] != 2.0 || m["shards"] != 3.0 {
			t.Errorf("%v: manifest %s", tc.env, b)
		}
	}
	// A pod without --shards, and --shard off inside an array.
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], append(args, "--out", filepath.Join(dir, "k.safetensors"))...)
	cmd.Env = append(os.Environ(), asIrlEnv+"=1", "JOB_COMPLETION_INDEX=1")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "--shards") {
		t.Errorf("JOB_COMPLETION_INDEX without --shards: %v %s", err, stderr.String())
	}
	off := filepath.Join(dir, "off.safetensors")
	cmd = exec.Command(os.Args[0], append(args, "--out", off, "--shard", "off", "--quiet")...)
	cmd.Env = append(os.Environ(), asIrlEnv+"=1", "SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_COUNT=3")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(off + ".shard.json"); err == nil {
		t.Error("--shard off wrote a part")
	}
}

// TestMergeRefuses: a missing part, a part given twice, parts of another
// input or model, and parts of two shard counts are errors naming them,
// and nothing is written.
func TestMergeRefuses(t *testing.T) {
	dir := t.TempDir()
	model, other := shardModel(t), evalModel(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 12, 10, 20, -1, -1, 4)
	rows2 := idRows(t, filepath.Join(dir, "rows2.jsonl"), 12, 10, 20, -1, -1, 5)
	part := func(name, model, input, shard string) string {
		out := filepath.Join(dir, name+".safetensors")
		if err := run(t, "features", "--model", model, "--input", input, "--out", out, "--shard", shard, "--threads", "1", "--quiet"); err != nil {
			t.Fatal(err)
		}
		return out
	}
	p0, p1, p2 := part("a0", model, rowsIn, "0/3"), part("a1", model, rowsIn, "1/3"), part("a2", model, rowsIn, "2/3")
	foreignInput := part("b1", model, rows2, "1/3")
	foreignModel := part("c1", other, rowsIn, "1/3")
	fiveShards := part("d1", model, rowsIn, "1/5")
	out := filepath.Join(dir, "merged.safetensors")
	for _, tc := range []struct {
		name  string
		parts []string
		want  []string
	}{
		{"missing", []string{p0, p2}, []string{"missing shard 1/3"}},
		{"twice", []string{p0, p1, p1, p2}, []string{"shard 1/3 is given twice", p1}},
		{"foreign input", []string{p0, foreignInput, p2}, []string{"different runs", "input (sha256)", foreignInput}},
		{"foreign model", []string{p0, foreignModel, p2}, []string{"different runs", "model (fingerprint)", foreignModel}},
		{"shard counts", []string{p0, fiveShards, p2}, []string{"different runs", "shard count"}},
		{"no manifest", []string{p0, p1, p2, filepath.Join(dir, "rows.jsonl")}, []string{"no manifest"}},
	} {
		err := run(t, append([]string{"merge", "--out", out, "--quiet"}, tc.parts...)...)
		if err == nil {
			t.Errorf("%s: merged", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: wrote %s", tc.name, out)
		}
	}
	// A part changed after its shard wrote it.
	b, _ := os.ReadFile(p1)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p1, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "merge", "--out", out, p0, p1, p2); err == nil || !strings.Contains(err.Error(), "has changed") {
		t.Errorf("changed part: %v", err)
	}
}

// TestShardRefusals: what a shard cannot do is an error before any work.
func TestShardRefusals(t *testing.T) {
	dir := t.TempDir()
	model, lex := shardModel(t), evalLexicon(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 5, 5, 96, -1, -1, 6)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"features", "--model", model, "--input", rowsIn, "--out", filepath.Join(dir, "f"), "--format", "npy", "--shard", "0/2"}, "--format npy to irl merge"},
		{[]string{"generate", "--model", model, "--input", rowsIn, "--shard", "0/2"}, "needs --out"},
		{[]string{"generate", "--model", model, "--prompt-ids", "1,2", "--out", filepath.Join(dir, "g.jsonl"), "--shard", "0/2"}, "needs --input FILE"},
		{[]string{"score", "--reward", lex, "--input", rowsIn, "--out", filepath.Join(dir, "s.jsonl"), "--shard", "0/2"}, "safetensors"},
		{[]string{"features", "--model", model, "--input", rowsIn, "--out", filepath.Join(dir, "x.safetensors"), "--shard", "2/2"}, "0…N−1"},
		{[]string{"features", "--model", model, "--input", rowsIn, "--out", filepath.Join(dir, "x.safetensors"), "--shard", "1/3", "--shards", "4"}, "disagree"},
	} {
		err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	// More shards than rows: the empty shard writes its manifest alone,
	// and the merge still equals the unsharded file.
	want := filepath.Join(dir, "all.safetensors")
	if err := run(t, "features", "--model", model, "--input", rowsIn, "--out", want, "--threads", "1", "--quiet"); err != nil {
		t.Fatal(err)
	}
	runShards(t, 7, []string{"features", "--model", model, "--input", rowsIn}, filepath.Join(dir, "few", "p{shard}.safetensors"))
	if _, err := os.Stat(filepath.Join(dir, "few", "p6.safetensors.shard.json")); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "merged.safetensors")
	if err := run(t, "merge", "--out", got, "--quiet", filepath.Join(dir, "few")); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "7 shards of 5 rows", got, want)
}

// TestMergeFeaturesNPY: features parts merge into the folder irl features
// --format npy writes.
func TestMergeFeaturesNPY(t *testing.T) {
	dir := t.TempDir()
	model := shardModel(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 17, 30, 96, -1, -1, 7)
	args := []string{"features", "--model", model, "--input", rowsIn, "--pool", "last:2"}
	want := filepath.Join(dir, "want")
	if err := run(t, append(args, "--format", "npy", "--out", want, "--threads", "1", "--quiet")...); err != nil {
		t.Fatal(err)
	}
	runShards(t, 3, args, filepath.Join(dir, "parts", "p{shard}.safetensors"))
	got := filepath.Join(dir, "got")
	if err := run(t, "merge", "--format", "npy", "--out", got, "--quiet", filepath.Join(dir, "parts")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"features.npy", "row.npy", "metadata.json"} {
		sameBytes(t, f, filepath.Join(got, f), filepath.Join(want, f))
	}
}

// TestShardsSkipBadRows: with --skip-bad, each shard skips its own bad
// rows, and the merge sums the counts into the unsharded file's metadata.
func TestShardsSkipBadRows(t *testing.T) {
	dir := t.TempDir()
	model := shardModel(t)
	rowsIn := idRows(t, filepath.Join(dir, "rows.jsonl"), 14, 20, 96, -1, -1, 8)
	b, err := os.ReadFile(rowsIn)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines[4] = `{"input_ids": [1, 2,`          // malformed: row 4, shard 1 of 3
	lines[9] = `{"input_ids": [1, 100000, 3]}` // an id outside the vocabulary: row 9, shard 0
	bad := writeFile(t, filepath.Join(dir, "bad.jsonl"), strings.Join(lines, "\n")+"\n")
	args := []string{"features", "--model", model, "--input", bad, "--skip-bad"}
	want := filepath.Join(dir, "want.safetensors")
	if err := run(t, append(args, "--out", want, "--threads", "1", "--quiet")...); err != nil {
		t.Fatal(err)
	}
	runShards(t, 3, args, filepath.Join(dir, "parts", "p{shard}.safetensors"))
	got := filepath.Join(dir, "got.safetensors")
	if err := run(t, "merge", "--out", got, "--quiet", filepath.Join(dir, "parts")); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "skip-bad, 3 shards", got, want)
	// Without --skip-bad, only the shards holding a bad row fail.
	plain := []string{"features", "--model", model, "--input", bad, "--threads", "1", "--quiet"}
	if err := run(t, append(plain, "--out", filepath.Join(dir, "s2.safetensors"), "--shard", "2/3")...); err != nil {
		t.Errorf("shard 2/3 holds no bad row: %v", err)
	}
	if err := run(t, append(plain, "--out", filepath.Join(dir, "s1.safetensors"), "--shard", "1/3")...); err == nil || !strings.Contains(err.Error(), "bad.jsonl:5") {
		t.Errorf("shard 1/3 holds the malformed line 5: %v", err)
	}
}
