package classifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"irl/onnx"
	"irl/safetensors"
	"irl/weights"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		// Failing loudly beats skipping: a skipped parity test proves nothing.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fixture is a two-layer RobertaForSequenceClassification (labels neutral,
// toxic) saved by transformers, its torch.onnx export, and the logits ONNX
// Runtime computes on that export for a right-padded batch.
const fixture = "../testdata/tiny-roberta-classifier"

var single = onnx.Options{Threads: 1}

type reference struct {
	ids, mask []int64
	logits    []float32
	b, s      int
}

func loadReference(t *testing.T) reference {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(fixture, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *safetensors.Tensor {
		x, err := f.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	it := get("input_ids")
	ids, err := it.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	mask, err := get("attention_mask").Int64s()
	if err != nil {
		t.Fatal(err)
	}
	logits, err := get("logits").Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return reference{ids: ids, mask: mask, logits: logits, b: it.Shape[0], s: it.Shape[1]}
}

// rows are the reference's rows without their padding.
func (r reference) rows() [][]int64 {
	out := make([][]int64, r.b)
	for i := range out {
		for j := 0; j < r.s; j++ {
			if r.mask[i*r.s+j] == 1 {
				out[i] = append(out[i], r.ids[i*r.s+j])
			}
		}
	}
	return out
}

func maxAbsDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	d := 0.0
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
		d = max(d, math.Abs(float64(got[i]-want[i])))
	}
	return d
}

func openFixture(t *testing.T) *Classifier {
	t.Helper()
	c, err := Open(fixture, single)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	return c
}

// The graph built in Go matches the logits of torch's export, for the padded
// batch and for each row alone: padding changes nothing.
func TestFolderMatchesReference(t *testing.T) {
	ref := loadReference(t)
	c := openFixture(t)
	got, err := c.Logits(ref.ids, ref.mask, ref.b, ref.s)
	if err != nil {
		t.Fatal(err)
	}
	d := maxAbsDiff(t, got, ref.logits)
	t.Logf("batch [%d,%d]: max |Δlogit| = %.2e", ref.b, ref.s, d)
	if d > 1e-4 {
		t.Errorf("batch: max |Δlogit| = %.2e > 1e-4\ngot  %v\nwant %v", d, got, ref.logits)
	}
	worst := 0.0
	for r, row := range ref.rows() {
		ones := make([]int64, len(row))
		for j := range ones {
			ones[j] = 1
		}
		one, err := c.Logits(row, ones, 1, len(row))
		if err != nil {
			t.Fatal(err)
		}
		d := maxAbsDiff(t, one, ref.logits[2*r:2*r+2])
		worst = max(worst, d)
		if d > 1e-4 {
			t.Errorf("row %d alone (%d tokens): got %v, want %v", r, len(row), one, ref.logits[2*r:2*r+2])
		}
	}
	t.Logf("rows alone: max |Δlogit| = %.2e", worst)
	if got := c.Labels(); len(got) != 2 || got[0] != "neutral" || got[1] != "toxic" {
		t.Errorf("labels %v", got)
	}
	if c.PadID() != 1 || c.MaxTokens() != 80-1-1 {
		t.Errorf("pad %d, max tokens %d; want 1, 78", c.PadID(), c.MaxTokens())
	}
}

// The exported .onnx file, with the config.json beside it, gives the same
// logits and probabilities as the folder.
func TestONNXFileMatchesFolder(t *testing.T) {
	ref := loadReference(t)
	folder := openFixture(t)
	file, err := Open(filepath.Join(fixture, "model.onnx"), single)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Destroy()
	got, err := file.Logits(ref.ids, ref.mask, ref.b, ref.s)
	if err != nil {
		t.Fatal(err)
	}
	d := maxAbsDiff(t, got, ref.logits)
	t.Logf(".onnx file: max |Δlogit| = %.2e", d)
	if d > 1e-5 {
		t.Errorf(".onnx file: max |Δlogit| = %.2e", d)
	}
	want, err := folder.Logits(ref.ids, ref.mask, ref.b, ref.s)
	if err != nil {
		t.Fatal(err)
	}
	dp := maxAbsDiff(t, file.Probs(got), folder.Probs(want))
	t.Logf(".onnx file vs folder: max |Δprob| = %.2e", dp)
	if dp > 1e-4 {
		t.Errorf("probabilities differ by %.2e", dp)
	}
	// torch's export numbers positions from the ids too, so it is a
	// reference for any input: here rows up to the full 78 tokens, and pad
	// ids inside rows, attended to, which take position pad_token_id.
	r := rand.New(rand.NewPCG(3, 4))
	const b, s = 5, 78
	ids, mask := make([]int64, b*s), make([]int64, b*s)
	for i := 0; i < b; i++ {
		n := []int{78, 40, 3, 60, 1}[i]
		for j := 0; j < s; j++ {
			ids[i*s+j] = 1
			if j < n {
				ids[i*s+j], mask[i*s+j] = 3+r.Int64N(597), 1
				if r.IntN(8) == 0 {
					ids[i*s+j] = 1
				}
			}
		}
		ids[i*s] = 0
	}
	got, err = file.Logits(ids, mask, b, s)
	if err != nil {
		t.Fatal(err)
	}
	want, err = folder.Logits(ids, mask, b, s)
	if err != nil {
		t.Fatal(err)
	}
	d = maxAbsDiff(t, want, got)
	t.Logf("random batch with pad ids inside rows, folder vs .onnx file: max |Δlogit| = %.2e", d)
	if d > 1e-4 {
		t.Errorf("random batch: folder %v, .onnx file %v", want, got)
	}
	if fmt.Sprint(file.Labels()) != fmt.Sprint(folder.Labels()) || file.PadID() != folder.PadID() || file.MaxTokens() != folder.MaxTokens() {
		t.Errorf(".onnx file: labels %v, pad %d, max %d; folder: %v, %d, %d",
			file.Labels(), file.PadID(), file.MaxTokens(), folder.Labels(), folder.PadID(), folder.MaxTokens())
	}
}

// Without config.json, an .onnx file gets default labels from a probe run.
func TestONNXFileWithoutConfig(t *testing.T) {
	ref := loadReference(t)
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(fixture, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, single)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	if fmt.Sprint(c.Labels()) != "[LABEL_0 LABEL_1]" || c.PadID() != 1 || c.MaxTokens() != 0 {
		t.Errorf("labels %v, pad %d, max tokens %d", c.Labels(), c.PadID(), c.MaxTokens())
	}
	got, err := c.Logits(ref.ids, ref.mask, ref.b, ref.s)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, got, ref.logits); d > 1e-5 {
		t.Errorf("max |Δlogit| = %.2e", d)
	}
	// A config.json of another model beside it is an error, not ignored.
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"bert"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Open(path, single); err == nil {
		c.Destroy()
		t.Error("a bert config.json beside the file was accepted")
	} else if !strings.Contains(err.Error(), `"bert"`) {
		t.Errorf("error does not name the model type: %v", err)
	}
}

// An exported graph with inputs or outputs a classifier does not have is
// refused with an error naming them.
func TestONNXFileRefusesOtherGraphs(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, inputs []string, output string) string {
		g := onnx.NewGraph(name)
		var sum onnx.Value
		for _, in := range inputs {
			v := g.Cast(g.Input(in, onnx.Int64, "batch", "seq"), onnx.Float)
			if sum == "" {
				sum = v
			} else {
				sum = g.Add(sum, v)
			}
		}
		g.Output(sum, output, onnx.Float, "batch", "seq")
		path := filepath.Join(dir, name+".onnx")
		if err := g.WriteFile(path, 0); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		path, want string
	}{
		{write("pos", []string{InputIDs, AttentionMask, "position_ids"}, LogitsOutput), `"position_ids"`},
		{write("noids", []string{AttentionMask}, LogitsOutput), InputIDs},
		{write("hidden", []string{InputIDs, AttentionMask}, "last_hidden_state"), "last_hidden_state"},
	} {
		c, err := Open(tc.path, single)
		if err == nil {
			c.Destroy()
			t.Errorf("%s: accepted", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error does not mention %s: %v", tc.path, tc.want, err)
		}
	}
}

// Score sorts rows by length into padded batches; each row's logits equal
// those of the row run alone.
func TestScoreMatchesRowByRow(t *testing.T) {
	ref := loadReference(t)
	c := openFixture(t)
	seqs := ref.rows()
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 30, 5, 17, 78, 3, 12} {
		row := make([]int64, n)
		for j := range row {
			row[j] = 3 + r.Int64N(597)
		}
		row[0] = 0
		if n > 1 {
			row[n-1] = 2
		}
		seqs = append(seqs, row)
	}
	// A pad id inside a row, attended to, is numbered as padding (RoBERTa
	// numbers positions from the ids); Score and Logits must agree on it.
	seqs = append(seqs, []int64{0, 44, 1, 45, 2})
	var bar bytes.Buffer
	got, err := c.Score(seqs, 3, &bar)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*len(seqs) {
		t.Fatalf("%d logits for %d rows", len(got), len(seqs))
	}
	if bar.Len() == 0 {
		t.Error("no progress bar was drawn")
	}
	worst := 0.0
	for i, row := range seqs {
		ones := make([]int64, len(row))
		for j := range ones {
			ones[j] = 1
		}
		want, err := c.Logits(row, ones, 1, len(row))
		if err != nil {
			t.Fatal(err)
		}
		d := maxAbsDiff(t, got[2*i:2*i+2], want)
		worst = max(worst, d)
		if d > 1e-5 {
			t.Errorf("row %d (%d tokens): Score %v, alone %v", i, len(row), got[2*i:2*i+2], want)
		}
	}
	t.Logf("Score vs row by row: max |Δlogit| = %.2e", worst)
	if d := maxAbsDiff(t, got[:2*ref.b], ref.logits); d > 1e-4 {
		t.Errorf("Score on the reference rows: max |Δlogit| = %.2e", d)
	}

	if out, err := c.Score(nil, 4, nil); err != nil || len(out) != 0 {
		t.Errorf("no rows: got %v, %v", out, err)
	}
	if _, err := c.Score([][]int64{{0, 2}, {}}, 4, nil); err == nil || !strings.Contains(err.Error(), "sequence 1") {
		t.Errorf("an empty row: want an error naming sequence 1, got %v", err)
	}
	long := make([]int64, c.MaxTokens()+1)
	if _, err := c.Score([][]int64{{0, 2}, long}, 4, nil); err == nil || !strings.Contains(err.Error(), "sequence 1") {
		t.Errorf("an over-long row: want an error naming sequence 1, got %v", err)
	}
}

func TestLogitsRejectsBadBatches(t *testing.T) {
	c := openFixture(t)
	for _, tc := range []struct {
		name      string
		ids, mask []int64
		b, s      int
		want      string
	}{
		{"sizes", []int64{0, 2}, []int64{1}, 1, 2, "needs 2"},
		{"empty", nil, nil, 0, 3, "empty batch"},
		{"vocabulary", []int64{0, 600}, []int64{1, 1}, 1, 2, "input_ids[0,1] = 600"},
		{"negative", []int64{0, -1}, []int64{1, 1}, 1, 2, "input_ids[0,1] = -1"},
		{"mask", []int64{0, 2}, []int64{1, 2}, 1, 2, "attention_mask[0,1] = 2"},
		{"left padding", []int64{1, 0, 2}, []int64{0, 1, 1}, 1, 3, "row 0 starts with padding"},
		{"too long", make([]int64, 79), ones(79), 1, 79, "79 tokens"},
	} {
		_, err := c.Logits(tc.ids, tc.mask, tc.b, tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
		}
	}
	// Exactly MaxTokens tokens fit; pad tokens do not count.
	row := make([]int64, 78+5)
	for i := 78; i < len(row); i++ {
		row[i] = 1
	}
	if _, err := c.Logits(row, ones(len(row)), 1, len(row)); err != nil {
		t.Errorf("78 tokens and 5 pads: %v", err)
	}
}

func ones(n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func TestProbsByHand(t *testing.T) {
	logits := []float32{0, 0, 1, 2, -3, 100}
	soft := (&Classifier{labels: []string{"a", "b"}}).Probs(logits)
	want := []float64{0.5, 0.5, 1 / (1 + math.E), math.E / (1 + math.E), 1 / (1 + math.Exp(103)), 1 / (1 + math.Exp(-103))}
	for i := range want {
		if math.Abs(float64(soft[i])-want[i]) > 1e-7 {
			t.Errorf("softmax[%d] = %v, want %v", i, soft[i], want[i])
		}
	}
	multi := &Classifier{labels: []string{"a", "b", "c"}, problemType: MultiLabel}
	sig := multi.Probs(logits)
	for i, z := range logits {
		if w := 1 / (1 + math.Exp(-float64(z))); math.Abs(float64(sig[i])-w) > 1e-7 {
			t.Errorf("sigmoid(%v) = %v, want %v", z, sig[i], w)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("logits of the wrong width did not panic")
		}
	}()
	multi.Probs(logits[:4])
}

func TestLabelIndex(t *testing.T) {
	c := openFixture(t)
	if i, err := c.LabelIndex("toxic"); err != nil || i != 1 {
		t.Errorf("toxic: %d, %v", i, err)
	}
	_, err := c.LabelIndex("hate")
	if err == nil || !strings.Contains(err.Error(), `"hate"`) || !strings.Contains(err.Error(), `"neutral"`) || !strings.Contains(err.Error(), `"toxic"`) {
		t.Errorf("want an error naming hate and listing neutral and toxic, got %v", err)
	}
}

// fixtureConfig is the fixture's config.json as a map, to mutate.
func fixtureConfig(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixture, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseConfig(t *testing.T) {
	c, err := LoadConfig(filepath.Join(fixture, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumLayers != 2 || c.HiddenSize != 32 || c.NumHeads != 4 || c.VocabSize != 600 || c.MaxPositions != 80 ||
		c.PadTokenID != 1 || c.LayerNormEps != 1e-12 || fmt.Sprint(c.Labels) != "[neutral toxic]" || c.MaxTokens() != 78 {
		t.Errorf("parsed %+v", c)
	}
	m := fixtureConfig(t)
	m["model_type"] = "xlm-roberta"
	m["problem_type"] = MultiLabel
	if c, err := ParseConfig("x.json", jsonMarshal(t, m)); err != nil || c.ModelType != "xlm-roberta" || c.ProblemType != MultiLabel {
		t.Errorf("xlm-roberta, multi-label: %+v, %v", c, err)
	}
	delete(m, "id2label")
	delete(m, "label2id")
	m["num_labels"] = 3
	if c, err := ParseConfig("x.json", jsonMarshal(t, m)); err != nil || fmt.Sprint(c.Labels) != "[LABEL_0 LABEL_1 LABEL_2]" {
		t.Errorf("num_labels 3: %v, %v", c.Labels, err)
	}
}

// Each bad config.json is an error naming the file and the key.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		key  string
		val  any // nil deletes the key
		want string
	}{
		{"model_type", "gpt_neox", `"gpt_neox"`},
		{"model_type", nil, "model_type"},
		{"hidden_act", "gelu_new", "hidden_act"},
		{"problem_type", "regression", "problem_type"},
		{"vocab_size", 1 << 40, "vocab_size"},
		{"vocab_size", -1, "vocab_size"},
		{"hidden_size", 1 << 30, "hidden_size"},
		{"num_hidden_layers", 1 << 40, "num_hidden_layers"},
		{"num_attention_heads", 5, "num_attention_heads"},
		{"intermediate_size", 0, "intermediate_size"},
		{"max_position_embeddings", int64(1) << 50, "max_position_embeddings"},
		{"max_position_embeddings", 2, "max_position_embeddings"},
		{"type_vocab_size", 1 << 20, "type_vocab_size"},
		{"pad_token_id", 600, "pad_token_id"},
		{"layer_norm_eps", 0, "layer_norm_eps"},
		{"vocab_size", 1e30, "vocab_size"},
		{"vocab_size", "many", "vocab_size"},
		{"id2label", map[string]string{"0": "a", "2": "b"}, "id2label"},
		{"id2label", map[string]string{"0": "a", "1": "a"}, "id2label"},
		{"id2label", map[string]string{"0": "a", "1000000000": "b"}, "id2label"},
		{"label2id", map[string]int{"neutral": 1, "toxic": 0}, "label2id"},
		{"num_labels", 1 << 40, "num_labels"},
	} {
		m := fixtureConfig(t)
		if tc.val == nil {
			delete(m, tc.key)
		} else {
			m[tc.key] = tc.val
		}
		_, err := ParseConfig("dir/config.json", jsonMarshal(t, m))
		if err == nil {
			t.Errorf("%s = %v: accepted", tc.key, tc.val)
			continue
		}
		if !strings.Contains(err.Error(), "dir/config.json") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %v: error does not name the file and %s: %v", tc.key, tc.val, tc.want, err)
		}
	}
	// Each dimension within its bound, their product past any real model.
	m := fixtureConfig(t)
	m["vocab_size"], m["hidden_size"], m["num_attention_heads"] = 1<<24, 1<<16, 1<<10
	if _, err := ParseConfig("big.json", jsonMarshal(t, m)); err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("2^40 parameters: want an error, got %v", err)
	}
}

// A small config.json with absurd dimensions is refused before anything is
// sized from it: loading allocates next to nothing.
func TestAbsurdConfigAllocatesNothing(t *testing.T) {
	dir := t.TempDir()
	m := fixtureConfig(t)
	m["num_hidden_layers"] = 1 << 40
	m["max_position_embeddings"] = 1 << 40
	m["vocab_size"] = 1 << 40
	if err := os.WriteFile(filepath.Join(dir, "config.json"), jsonMarshal(t, m), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(fixture, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Load(dir)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("accepted")
	}
	if !strings.Contains(err.Error(), "config.json") {
		t.Errorf("error does not name the file: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("refusing the config allocated %d bytes", grew)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCheckpoint writes a folder with the fixture's config.json and its
// weights changed by edit.
func writeCheckpoint(t *testing.T, edit func(map[string]*weights.Tensor)) string {
	t.Helper()
	ts, err := weights.ReadFile(filepath.Join(fixture, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	edit(ts)
	var out []safetensors.Tensor
	for _, name := range sortedKeys(ts) {
		out = append(out, safetensors.FromFloat32(name, ts[name].Shape, ts[name].Data))
	}
	dir := t.TempDir()
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), out, nil); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(fixture, "config.json"), filepath.Join(dir, "config.json"))
	return dir
}

func TestLoadRejectsBadCheckpoints(t *testing.T) {
	const w = "roberta.encoder.layer.1.attention.self.key.weight"
	for _, tc := range []struct {
		name string
		edit func(map[string]*weights.Tensor)
		want []string
	}{
		{"no head", func(ts map[string]*weights.Tensor) {
			delete(ts, "classifier.out_proj.weight")
			delete(ts, "classifier.out_proj.bias")
		}, []string{`"classifier.out_proj.weight"`, "model.safetensors"}},
		{"shape", func(ts map[string]*weights.Tensor) {
			ts[w] = &weights.Tensor{Shape: []int{32, 16}, Data: make([]float32, 32*16)}
		}, []string{`"` + w + `"`, "[32 16]", "[32 32]"}},
		{"NaN", func(ts map[string]*weights.Tensor) {
			d := append([]float32(nil), ts[w].Data...)
			d[3*32+5] = float32(math.NaN())
			d[7*32+1] = float32(math.Inf(1))
			ts[w] = &weights.Tensor{Shape: ts[w].Shape, Data: d}
		}, []string{`"` + w + `"`, "NaN", "[3 5]", "flat " + strconv.Itoa(3*32+5)}},
	} {
		_, err := Load(writeCheckpoint(t, tc.edit))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error does not contain %s: %v", tc.name, s, err)
			}
		}
	}
	// A model built in Go is checked too, with an error rather than a panic.
	m, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Params, "classifier.dense.bias")
	if _, err := New(m, single); err == nil || !strings.Contains(err.Error(), "classifier.dense.bias") {
		t.Errorf("New without classifier.dense.bias: %v", err)
	}
	m.Config.NumHeads = 5
	if _, err := New(m, single); err == nil || !strings.Contains(err.Error(), "num_attention_heads") {
		t.Errorf("New with 5 heads of a width of 32: %v", err)
	}
}

func rssKiB(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Classifiers opened, run and destroyed in a loop leave memory flat: every
// ONNX Runtime object is released.
func TestOpenDestroyLoopMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("loop test")
	}
	ref := loadReference(t)
	m, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cycle := func() {
		c, err := New(m, single)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Logits(ref.ids, ref.mask, ref.b, ref.s); err != nil {
			t.Fatal(err)
		}
		c.Destroy()
		c.Destroy() // a second Destroy is harmless
	}
	for i := 0; i < 30; i++ { // steady state: allocator arenas, Go heap
		cycle()
	}
	runtime.GC()
	before := rssKiB(t)
	const n = 200
	for i := 0; i < n; i++ {
		cycle()
	}
	runtime.GC()
	after := rssKiB(t)
	// A leaked session holds its 160 KiB of weights (plus prepacked copies
	// and ORT's per-session state), so 200 leaks would add well over 30 MiB.
	if after-before > 8*1024 {
		t.Errorf("RSS grew from %d KiB to %d KiB over %d classifiers", before, after, n)
	}
	t.Logf("RSS %d KiB -> %d KiB over %d classifiers", before, after, n)
}

// The bound run, which brings back only the [B, labels] logits, gives the
// bits of a plain onnxruntime_go run of the same graph.
func TestBoundMatchesPlain(t *testing.T) {
	ref := loadReference(t)
	m, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(m, single)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	got, err := c.Logits(ref.ids, ref.mask, ref.b, ref.s)
	if err != nil {
		t.Fatal(err)
	}
	g, err := BuildGraph(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := onnx.NewGraphSession(g, []string{InputIDs, AttentionMask}, []string{LogitsOutput}, single)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	ids, _ := onnx.TensorI64(ref.ids, int64(ref.b), int64(ref.s))
	mask, _ := onnx.TensorI64(ref.mask, int64(ref.b), int64(ref.s))
	defer onnx.DestroyAll(ids, mask)
	outs, err := s.Run(ids, mask)
	if err != nil {
		t.Fatal(err)
	}
	defer onnx.DestroyAll(outs...)
	want, _, err := onnx.Float32Data(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d logits, plain run %d", len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("logit %d: %v, plain run %v", i, got[i], want[i])
		}
	}
}
