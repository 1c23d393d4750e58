package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/safetensors"
	"irl/tokenizer"
)

func TestMain(m *testing.M) {
	runAsIrlIfAsked()
	if err := onnx.Init(""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) error {
	t.Helper()
	return newApp().Run(append([]string{"irl"}, args...))
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixtureJSONL writes the reference rows, unpadded, as input_ids JSON lines.
func fixtureJSONL(t *testing.T, dir, out string) (*safetensors.File, []int64, int, int) {
	ref, err := safetensors.ReadFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	it, _ := ref.Get("input_ids")
	mt, _ := ref.Get("attention_mask")
	ids, _ := it.Int64s()
	mask, _ := mt.Int64s()
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
	writeFile(t, out, sb.String())
	return ref, mask, b, s
}

func readFeatures(t *testing.T, path string) ([]float32, []int64, []int, map[string]string) {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := f.Get("features")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := f.Get("row")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ft.Float32s()
	r, _ := rt.Int64s()
	return v, r, ft.Shape, f.Metadata
}

func TestFeaturesCommandMatchesFixture(t *testing.T) {
	tmp := t.TempDir()
	dir := "../../testdata/tiny-neox-parallel"
	in := filepath.Join(tmp, "in.jsonl")
	ref, mask, b, s := fixtureJSONL(t, dir, in)
	out := filepath.Join(tmp, "f.safetensors")
	if err := run(t, "features", "--model", dir, "--input", in, "--out", out, "--quiet", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	got, rows, shape, meta := readFeatures(t, out)
	if shape[0] != b || shape[1] != 64 || rows[0] != 0 || rows[1] != 1 {
		t.Fatalf("shape %v rows %v", shape, rows)
	}
	if meta["layer"] != "2" || meta["pool"] != "last" || meta["max_length"] != "128" || !strings.Contains(meta["model"], "tiny-neox-parallel") {
		t.Errorf("metadata %v", meta)
	}
	ht, _ := ref.Get("hidden_states.2")
	h, _ := ht.Float32s()
	for r := 0; r < b; r++ {
		last := 0
		for j := 0; j < s; j++ {
			if mask[r*s+j] == 1 {
				last = j
			}
		}
		for k := 0; k < 64; k++ {
			want := h[(r*s+last)*64+k]
			if math.Abs(float64(got[r*64+k]-want)) > 1e-4*3.5 {
				t.Fatalf("row %d dim %d: %v want %v", r, k, got[r*64+k], want)
			}
		}
	}
	// npy output holds the same numbers.
	npy := filepath.Join(tmp, "npy")
	if err := run(t, "features", "--model", dir, "--input", in, "--out", npy, "--format", "npy", "--quiet"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(npy, "features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint16(raw[8:]))
	header := string(raw[10 : 10+hl])
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'shape': (2, 64)") || (10+hl)%64 != 0 {
		t.Errorf("npy header %q", header)
	}
	body := raw[10+hl:]
	for i := range got {
		if math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])) != got[i] {
			t.Fatalf("npy value %d differs", i)
		}
	}
	// The folder now holds results: a second run is refused before any work,
	// and --overwrite replaces the folder whole, leaving nothing stale and
	// no temporary folder beside it.
	again := []string{"features", "--model", dir, "--input", in, "--out", npy, "--format", "npy", "--quiet"}
	if err := run(t, again...); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("npy into a used folder: %v", err)
	}
	writeFile(t, filepath.Join(npy, "stale.npy"), "old")
	if err := run(t, append(again, "--overwrite")...); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(npy)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "features.npy metadata.json row.npy" {
		t.Errorf("npy folder after --overwrite holds %v", names)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("a temporary folder is left: %s", e.Name())
			}
		}
	}
}

// Text rows are tokenized with the model's tokenizer, a prefix's ids go
// before the text's, and the result equals feeding those ids directly.
func TestFeaturesCommandText(t *testing.T) {
	tmp := t.TempDir()
	model := filepath.Join(tmp, "model")
	if err := run(t, "model", "init", "--shape", "pythia-70m", "--layers", "2", "--hidden-size", "32", "--heads", "4",
		"--seed", "3", "--out", model, "--tokenizer", "../../testdata/gpt2-bpe/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(model, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	texts := []struct{ prompt, out string }{{"Hello there", ", friend."}, {"The weather today", " is sunny and warm"}, {"A", " b"}}
	var tl, il strings.Builder
	for _, x := range texts {
		j, _ := json.Marshal(map[string]string{"prompt": x.prompt, "response": x.out})
		tl.Write(append(j, '\n'))
		ids := append(tok.Encode(x.prompt), tok.Encode(x.out)...)
		j, _ = json.Marshal(map[string]any{"input_ids": ids})
		il.Write(append(j, '\n'))
	}
	a, b := filepath.Join(tmp, "a.safetensors"), filepath.Join(tmp, "b.safetensors")
	if err := run(t, "features", "--model", model, "--input", writeFile(t, filepath.Join(tmp, "t.jsonl"), tl.String()),
		"--text-field", "response", "--prefix-field", "prompt", "--out", a, "--quiet", "--pool", "mean"); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "features", "--model", model, "--input", writeFile(t, filepath.Join(tmp, "i.jsonl"), il.String()), "--out", b, "--quiet", "--pool", "mean"); err != nil {
		t.Fatal(err)
	}
	fa, _, _, _ := readFeatures(t, a)
	fb, _, _, _ := readFeatures(t, b)
	for i := range fa {
		if math.Abs(float64(fa[i]-fb[i])) > 1e-5 {
			t.Fatalf("feature %d: text %v, ids %v", i, fa[i], fb[i])
		}
	}
}

func TestFeaturesCommandBadInput(t *testing.T) {
	tmp := t.TempDir()
	dir := "../../testdata/tiny-neox-parallel"
	out := filepath.Join(tmp, "o.safetensors")
	long := make([]string, 40)
	for i := range long {
		long[i] = "5"
	}
	cases := []struct {
		name, input string
		extra       []string
		want        []string
	}{
		{"malformed json", "{\"input_ids\": [1,2]}\n{\"input_ids\": [1,\n", nil, []string{"in.jsonl:2"}},
		{"missing field", "{\"input_ids\": [1,2]}\n{\"other\": 1}\n", nil, []string{"in.jsonl:2", "text"}},
		{"empty text", "{\"text\": \"\"}\n", nil, []string{"in.jsonl:1", "empty"}},
		{"too long", "{\"input_ids\": [1,2]}\n{\"input_ids\": [" + strings.Join(long, ",") + "]}\n", []string{"--max-length", "16", "--truncate", "error"}, []string{"in.jsonl:2", "40 tokens", "--max-length 16"}},
		{"out of vocabulary", "{\"input_ids\": [1,600]}\n", nil, []string{"in.jsonl:1", "600", "vocabulary"}},
		{"unknown device", "{\"input_ids\": [1,2]}\n", []string{"--device", "tpu"}, []string{"tpu"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := writeFile(t, filepath.Join(tmp, "in.jsonl"), tc.input)
			err := run(t, append([]string{"features", "--model", dir, "--input", in, "--out", out, "--quiet"}, tc.extra...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left an output file")
	}
	// --skip-bad leaves bad rows out and says which rows remain; long rows are
	// truncated by default and counted.
	in := writeFile(t, filepath.Join(tmp, "in.jsonl"), "{\"input_ids\": [1,2]}\n{\"input_ids\": [1,\n{\"input_ids\": ["+strings.Join(long, ",")+"]}\n{\"text\": \"\"}\n{\"input_ids\": [7]}\n")
	if err := run(t, "features", "--model", dir, "--input", in, "--out", out, "--quiet", "--skip-bad", "--max-length", "16"); err != nil {
		t.Fatal(err)
	}
	_, rows, shape, meta := readFeatures(t, out)
	if shape[0] != 3 || rows[0] != 0 || rows[1] != 2 || rows[2] != 4 {
		t.Errorf("kept rows %v (shape %v), want [0 2 4]", rows, shape)
	}
	if meta["skipped"] != "2" || meta["truncated"] != "1" {
		t.Errorf("metadata %v", meta)
	}
}

// Left truncation keeps a row's last tokens: its features equal those of the
// row cut by hand.
func TestFeaturesTruncationKeepsTheEnd(t *testing.T) {
	tmp := t.TempDir()
	dir := "../../testdata/tiny-neox-parallel"
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprint(10 + i)
	}
	a := writeFile(t, filepath.Join(tmp, "a.jsonl"), "{\"input_ids\": ["+strings.Join(ids, ",")+"]}\n")
	b := writeFile(t, filepath.Join(tmp, "b.jsonl"), "{\"input_ids\": ["+strings.Join(ids[12:], ",")+"]}\n")
	oa, ob := filepath.Join(tmp, "a.st"), filepath.Join(tmp, "b.st")
	if err := run(t, "features", "--model", dir, "--input", a, "--out", oa, "--quiet", "--max-length", "8"); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "features", "--model", dir, "--input", b, "--out", ob, "--quiet"); err != nil {
		t.Fatal(err)
	}
	fa, _, _, _ := readFeatures(t, oa)
	fb, _, _, _ := readFeatures(t, ob)
	for i := range fa {
		if fa[i] != fb[i] {
			t.Fatalf("feature %d: %v vs %v", i, fa[i], fb[i])
		}
	}
}

var _ = neox.PoolLast
