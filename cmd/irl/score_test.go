package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"irl/rewardhead"
	"irl/safetensors"
)

// irlRun runs irl with args and returns what it printed on its output.
func irlRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	err := app.Run(append([]string{"irl"}, args...))
	return out.String(), err
}

// readRewards reads a reward file's tensors and metadata.
func readRewards(t *testing.T, path string) (rewards []float32, rows []int64, sf *safetensors.File) {
	t.Helper()
	sf, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sf.Get("reward")
	if err != nil {
		t.Fatal(err)
	}
	it, err := sf.Get("row")
	if err != nil {
		t.Fatal(err)
	}
	rewards, _ = rt.Float32s()
	rows, _ = it.Int64s()
	return rewards, rows, sf
}

func scoreLists(t *testing.T, dir string) (string, string) {
	tox := writeFile(t, filepath.Join(dir, "toxic.txt"), "nasty\nvile\n")
	non := writeFile(t, filepath.Join(dir, "nontoxic.txt"), "kind\nwarm\n")
	return tox, non
}

// irl score --reward lexicon writes Algorithm 2's rewards row-aligned with
// irl features of the same rows (bad rows skipped by both), which irl
// reward eval takes as ground truth; head: on those rows equals irl
// features followed by the head's wᵀh + b.
func TestScoreLexiconAndHeadAlignWithFeatures(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "model")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "2", "--hidden-size", "32", "--heads", "4",
		"--seed", "3", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	tox, non := scoreLists(t, tmp)
	writeFile(t, filepath.Join(tmp, "pos.jsonl"), strings.Join([]string{
		`{"prompt": "Say something", "response": "You are kind."}`,
		`{"prompt": "Say more", "response": ""}`, // empty: a bad row for both commands
		`{"prompt": "Again", "response": "A warm and vile day"}`,
		`{"prompt": "Once more", "response": "Blue skies"}`,
	}, "\n")+"\n")
	writeFile(t, filepath.Join(tmp, "neg.jsonl"), strings.Join([]string{
		`{"prompt": "Say something", "response": "You are nasty."}`,
		`{"prompt": "Again", "response": "Vile, VILE!"}`,
		`{"prompt": "Once more", "response": "kind words"}`,
	}, "\n")+"\n")
	p := func(name string) string { return filepath.Join(tmp, name) }
	common := []string{"--text-field", "response", "--prompt-field", "prompt", "--skip-bad", "--quiet"}
	for _, c := range []string{"pos", "neg"} {
		args := append([]string{"features", "--model", model, "--input", p(c + ".jsonl"), "--out", p(c + ".safetensors"), "--threads", "1"}, common...)
		if err := run(t, args...); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"score", "--reward", "lexicon:" + tox + "," + non, "--reward-noise", "0", "--input", p(c + ".jsonl"), "--out", p("gt-" + c + ".safetensors")}, common...)
		if _, err := irlRun(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	fpos, err := rewardhead.LoadFeatures(p("pos.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rewardhead.LoadRewards(p("gt-pos.safetensors"), fpos)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, float64(float32(-0.3)), 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("lexicon rewards %v, want %v", got, want)
	}
	if !reflect.DeepEqual(fpos.Rows, []int64{0, 2, 3}) {
		t.Errorf("feature rows %v", fpos.Rows)
	}
	_, _, sf := readRewards(t, p("gt-pos.safetensors"))
	if m := sf.Metadata; m["reward"] != "lexicon:"+tox+","+non || m["kind"] != "lexicon" || m["skipped"] != "1" || m["noise"] != "0" {
		t.Errorf("metadata %v", m)
	}
	// Accepted by irl reward eval as ground truth.
	headPath := p("head.json")
	h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: make([]float64, 32), B: -0.125, Features: fpos.Info()}
	for j := range h.W {
		h.W[j] = math.Sin(float64(j) + 1)
	}
	if err := rewardhead.WriteHead(headPath, h); err != nil {
		t.Fatal(err)
	}
	out, err := irlRun(t, "reward", "eval", "--head", headPath, "--pos", p("pos.safetensors"), "--neg", p("neg.safetensors"),
		"--gt-pos", p("gt-pos.safetensors"), "--gt-neg", p("gt-neg.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kendall_tau") {
		t.Errorf("eval output: %.300s", out)
	}

	// head: is irl features followed by wᵀh + b, in memory.
	if _, err := irlRun(t, append([]string{"score", "--reward", "head:" + headPath, "--input", p("pos.jsonl"), "--out", p("head-pos.safetensors"), "--threads", "1"}, common...)...); err != nil {
		t.Fatal(err)
	}
	want := h.Score(fpos)
	hr, hrows, hsf := readRewards(t, p("head-pos.safetensors"))
	if !reflect.DeepEqual(hrows, fpos.Rows) {
		t.Errorf("head rows %v", hrows)
	}
	for i := range want {
		if math.Abs(float64(hr[i])-want[i]) > 1e-5*math.Max(1, math.Abs(want[i])) {
			t.Errorf("row %d: head: %v, features + head %v", i, hr[i], want[i])
		}
	}
	if m := hsf.Metadata; m["kind"] != "head" || m["head"] != headPath || m["model_fingerprint"] != fpos.Info().Fingerprint || m["layer"] != "2" {
		t.Errorf("head metadata %v", m)
	}
	// A head trained on another layer than the model has is refused.
	h.Features.Layer = "7"
	rewardhead.WriteHead(headPath, h)
	_, err = irlRun(t, append([]string{"score", "--reward", "head:" + headPath, "--input", p("pos.jsonl"), "--out", p("x.safetensors")}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "layer 7") {
		t.Errorf("layer out of range: %v", err)
	}
}

// classifierRows writes the fixture's reference rows as input_ids lines.
func classifierRows(t *testing.T, path string) []float32 {
	t.Helper()
	ref, err := safetensors.ReadFile("../../testdata/tiny-roberta-classifier/reference.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	it, _ := ref.Get("input_ids")
	mt, _ := ref.Get("attention_mask")
	lt, _ := ref.Get("logits")
	ids, _ := it.Int64s()
	mask, _ := mt.Int64s()
	logits, _ := lt.Float32s()
	b, s := it.Shape[0], it.Shape[1]
	var sb strings.Builder
	for r := 0; r < b; r++ {
		var row []int64
		for j := 0; j < s; j++ {
			if mask[r*s+j] == 1 {
				row = append(row, ids[r*s+j])
			}
		}
		j, _ := json.Marshal(map[string]any{"input_ids": row})
		sb.Write(append(j, '\n'))
	}
	writeFile(t, path, sb.String())
	return logits
}

const classifierDir = "../../testdata/tiny-roberta-classifier"

// irl score on pre-tokenized rows equals forward (torch's logits) →
// softmax by hand → −P(toxic), with prob and logits; the .onnx file and the
// folder give the same probabilities.
func TestScoreClassifierMatchesSoftmaxByHand(t *testing.T) {
	tmp := t.TempDir()
	in := filepath.Join(tmp, "ids.jsonl")
	logits := classifierRows(t, in)
	var probs [][]float32
	for i, model := range []string{classifierDir, filepath.Join(classifierDir, "model.onnx")} {
		out := filepath.Join(tmp, "s.safetensors")
		if _, err := irlRun(t, "score", "--reward", "classifier:"+model, "--input", in, "--out", out, "--quiet", "--threads", "1", "--batch-size", "2"); err != nil {
			t.Fatal(err)
		}
		r, rows, sf := readRewards(t, out)
		pt, err := sf.Get("prob")
		if err != nil {
			t.Fatal(err)
		}
		p, _ := pt.Float32s()
		lt, err := sf.Get("logits")
		if err != nil {
			t.Fatal(err)
		}
		l, _ := lt.Float32s()
		n := len(logits) / 2
		if len(r) != n || len(p) != n || !reflect.DeepEqual(lt.Shape, []int{n, 2}) || len(rows) != n || rows[n-1] != int64(n-1) {
			t.Fatalf("shapes: reward %d prob %d logits %v rows %v", len(r), len(p), lt.Shape, rows)
		}
		for k := 0; k < n; k++ {
			a, b := float64(logits[2*k]), float64(logits[2*k+1])
			want := math.Exp(b) / (math.Exp(a) + math.Exp(b))
			if math.Abs(float64(p[k])-want) > 1e-5 || r[k] != -p[k] {
				t.Errorf("%s row %d: reward %v prob %v, want −%v", model, k, r[k], p[k], want)
			}
			if math.Abs(float64(l[2*k]-logits[2*k])) > 1e-4 || math.Abs(float64(l[2*k+1]-logits[2*k+1])) > 1e-4 {
				t.Errorf("%s row %d: logits %v", model, k, l[2*k:2*k+2])
			}
		}
		m := sf.Metadata
		if m["reward"] != "classifier:"+model || m["label"] != "toxic" || m["labels"] != "neutral,toxic" || m["model"] != filepath.Clean(model) {
			t.Errorf("metadata %v", m)
		}
		probs = append(probs, p)
		_ = i
	}
	for k := range probs[0] {
		if math.Abs(float64(probs[0][k]-probs[1][k])) > 1e-5 {
			t.Errorf("row %d: folder %v, .onnx %v", k, probs[0][k], probs[1][k])
		}
	}
}

// byteTokenizer is testdata/roberta-bytes/tokenizer.json, a RoBERTa-style
// tokenizer within the classifier fixture's vocabulary of 600: <s> <pad>
// </s> <unk>, then byte b as id 4 + b.
const byteTokenizer = "../../testdata/roberta-bytes/tokenizer.json"

// Text rows: the same reward as their ids; an empty text is a bad row; a
// text past the limit under --truncate error is a bad row, skipped with
// --skip-bad; an unknown label and another model type are refused.
func TestScoreClassifierText(t *testing.T) {
	tmp := t.TempDir()
	tok := byteTokenizer
	p := func(name string) string { return filepath.Join(tmp, name) }
	long := strings.Repeat("y", 90)
	writeFile(t, p("text.jsonl"), `{"prompt": "Hi", "text": "there", "original": "you"}`+"\n"+`{"prompt": "Hi", "text": "`+long+`", "original": "you"}`+"\n"+`{"prompt": "", "text": "ok", "original": "x"}`+"\n")
	hi := []int64{0}
	for _, c := range []byte("Hi | there") {
		hi = append(hi, 4+int64(c))
	}
	idsJSON, _ := json.Marshal(append(hi, 2))
	writeFile(t, p("ids.jsonl"), `{"prompt": "", "input_ids": `+string(idsJSON)+`}`+"\n")
	score := func(in, out string, extra ...string) error {
		_, err := irlRun(t, append([]string{"score", "--reward", "classifier:" + classifierDir, "--input", in, "--out", out, "--quiet",
			"--prompt-field", "prompt", "--join", " | ", "--tokenizer", tok}, extra...)...)
		return err
	}
	if err := score(p("text.jsonl"), p("t.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := score(p("ids.jsonl"), p("i.safetensors")); err != nil {
		t.Fatal(err)
	}
	rt, rows, sf := readRewards(t, p("t.safetensors"))
	ri, _, _ := readRewards(t, p("i.safetensors"))
	if rt[0] != ri[0] || len(rows) != 3 {
		t.Errorf("text %v, ids %v (rows %v)", rt, ri, rows)
	}
	if sf.Metadata["join"] != " | " || sf.Metadata["truncate"] != "right" || sf.Metadata["tokenizer"] != tok {
		t.Errorf("metadata %v", sf.Metadata)
	}
	// Under --truncate error the long row stops the run, or is skipped.
	err := score(p("text.jsonl"), p("e.safetensors"), "--truncate", "error")
	if err == nil || !strings.Contains(err.Error(), "text.jsonl:2") || !strings.Contains(err.Error(), "--skip-bad") {
		t.Errorf("too long: %v", err)
	}
	if err := score(p("text.jsonl"), p("e.safetensors"), "--truncate", "error", "--skip-bad"); err != nil {
		t.Fatal(err)
	}
	re, rows, _ := readRewards(t, p("e.safetensors"))
	if !reflect.DeepEqual(rows, []int64{0, 2}) || re[0] != rt[0] || re[1] != rt[2] {
		t.Errorf("skipped: rows %v rewards %v", rows, re)
	}
	// Relative: R(text) − R(original), and the probabilities of the text.
	if err := score(p("text.jsonl"), p("r.safetensors"), "--reward-relative", "original"); err != nil {
		t.Fatal(err)
	}
	rr, _, rsf := readRewards(t, p("r.safetensors"))
	pt, _ := rsf.Get("prob")
	pr, _ := pt.Float32s()
	if rsf.Metadata["relative"] != "original" || -pr[0] != rt[0] || rr[0] == rt[0] || math.Abs(float64(rr[0]-rr[1])-float64(rt[0]-rt[1])) > 1e-6 {
		t.Errorf("relative: %v (plain %v, probs %v)", rr, rt, pr)
	}

	for _, tc := range []struct {
		name  string
		input string
		extra []string
		want  []string
	}{
		{"empty text", `{"prompt": "a", "text": "fine"}` + "\n" + `{"prompt": "a", "text": ""}` + "\n", nil, []string{"in.jsonl:2", "empty"}},
		{"unknown label", `{"prompt": "a", "text": "fine"}` + "\n", []string{"--label", "hateful"}, []string{"hateful", "neutral", "toxic"}},
		{"no original", `{"prompt": "a", "text": "fine"}` + "\n", []string{"--reward-relative", "original"}, []string{"in.jsonl:1", `"original"`}},
		{"out of the vocabulary", `{"prompt": "", "input_ids": [0, 700, 2]}` + "\n", nil, []string{"in.jsonl:1", "700", "vocabulary"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := writeFile(t, p("in.jsonl"), tc.input)
			err := score(in, p("x.safetensors"), tc.extra...)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v: want %q", err, w)
				}
			}
		})
	}
	// A config of another model type.
	other := filepath.Join(tmp, "other")
	os.MkdirAll(other, 0o755)
	cfg, _ := os.ReadFile(filepath.Join(classifierDir, "config.json"))
	writeFile(t, filepath.Join(other, "config.json"), strings.Replace(string(cfg), `"model_type": "roberta"`, `"model_type": "bert"`, 1))
	w, _ := os.ReadFile(filepath.Join(classifierDir, "model.safetensors"))
	os.WriteFile(filepath.Join(other, "model.safetensors"), w, 0o644)
	_, err = irlRun(t, "score", "--reward", "classifier:"+other, "--input", p("ids.jsonl"), "--out", p("x.safetensors"), "--quiet")
	if err == nil || !strings.Contains(err.Error(), `"bert"`) {
		t.Errorf("another model type: %v", err)
	}
}

// cmd: rewards from a child program; a child that dies names the row's
// file and line and carries its stderr; --out is checked before anything runs.
func TestScoreCmd(t *testing.T) {
	tmp := t.TempDir()
	p := func(name string) string { return filepath.Join(tmp, name) }
	writeFile(t, p("child.sh"), `while read -r l; do case "$l" in *boom*) echo "cannot score boom" >&2; exit 2;; esac; echo '{"reward": 1.5}'; done`+"\n")
	in := writeFile(t, p("in.jsonl"), `{"text": "a"}`+"\n"+`{"text": "b", "topic": "t"}`+"\n")
	if _, err := irlRun(t, "score", "--reward", "cmd:sh "+p("child.sh"), "--input", in, "--out", p("o.safetensors"), "--quiet"); err != nil {
		t.Fatal(err)
	}
	r, rows, sf := readRewards(t, p("o.safetensors"))
	if !reflect.DeepEqual(r, []float32{1.5, 1.5}) || !reflect.DeepEqual(rows, []int64{0, 1}) || sf.Metadata["kind"] != "cmd" {
		t.Errorf("rewards %v rows %v meta %v", r, rows, sf.Metadata)
	}
	bad := writeFile(t, p("bad.jsonl"), `{"text": "a"}`+"\n\n"+`{"text": "boom"}`+"\n")
	_, err := irlRun(t, "score", "--reward", "cmd:sh "+p("child.sh"), "--input", bad, "--out", p("b.safetensors"), "--quiet")
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:3") || !strings.Contains(err.Error(), "row 1") || !strings.Contains(err.Error(), "cannot score boom") {
		t.Errorf("dying child: %v", err)
	}
	if _, err := os.Stat(p("b.safetensors")); err == nil {
		t.Error("an output was written after the failure")
	}
	_, err = irlRun(t, "score", "--reward", "cmd:sh "+p("child.sh"), "--input", in, "--out", p("no/such/dir/o.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("bad --out: %v", err)
	}
	_, err = irlRun(t, "score", "--reward", "bert:x", "--input", in, "--out", p("o2.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "lexicon, head, classifier, cmd") {
		t.Errorf("unknown kind: %v", err)
	}
}

// irl tokenize --add-special-tokens gives Hugging Face's
// encode(text, add_special_tokens=True) exactly, and --max-length cuts the
// text's own tokens with the specials kept.
func TestTokenizeAddSpecialTokens(t *testing.T) {
	ref := "../../testdata/roberta-bpe/reference.jsonl"
	tok := "../../testdata/roberta-bpe/tokenizer.json"
	out, err := irlRun(t, "tokenize", "--tokenizer", tok, "--input", ref, "--add-special-tokens")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want [][]int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ IDs []int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec.IDs)
	}
	got := decodeIDLines(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("line %d: %v, want %v", i+1, got[i], want[i])
		}
	}
	// The first reference line is [0, 468, 6197, 322, 15501, 17, 2].
	first := writeFile(t, filepath.Join(t.TempDir(), "one.jsonl"), `{"text": "The weather is pleasant."}`+"\n"+`{"text": "Hi"}`+"\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--add-special-tokens", "--max-length", "5"}, "[[0 468 6197 322 2] [0 17254 2]]"},
		{[]string{"--add-special-tokens", "--max-length", "5", "--truncate", "left"}, "[[0 322 15501 17 2] [0 17254 2]]"},
		{[]string{"--max-length", "2"}, "[[468 6197] [17254]]"},
		{nil, "[[468 6197 322 15501 17] [17254]]"},
	} {
		out, err := irlRun(t, append([]string{"tokenize", "--tokenizer", tok, "--input", first}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if g := decodeIDLines(t, out); fmt.Sprint(g) != tc.want {
			t.Errorf("%v: %v, want %s", tc.args, g, tc.want)
		}
	}
	_, err = irlRun(t, "tokenize", "--tokenizer", tok, "--input", first, "--add-special-tokens", "--max-length", "5", "--truncate", "error")
	if err == nil || !strings.Contains(err.Error(), "one.jsonl:1:") {
		t.Errorf("--truncate error: %v", err)
	}
	_, err = irlRun(t, "tokenize", "--tokenizer", tok, "--input", first, "--add-special-tokens", "--max-length", "1")
	if err == nil || !strings.Contains(err.Error(), "special tokens") {
		t.Errorf("--max-length below the specials: %v", err)
	}
}

func decodeIDLines(t *testing.T, out string) [][]int {
	t.Helper()
	var got [][]int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct{ IDs []int }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		got = append(got, rec.IDs)
	}
	return got
}
