package reward

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/features"
	"irl/neox"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
	"irl/weights"
)

// tinyEncoder saves a random one-layer GPT-NeoX (width 32, 64 positions)
// with GPT-2's tokenizer.
func tinyEncoder(t *testing.T) string {
	t.Helper()
	return tinyEncoderSeed(t, 5)
}

func tinyEncoderSeed(t *testing.T, seed uint64) string {
	t.Helper()
	cfg := neox.Shapes["pythia-14m"]
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, cfg.NumHeads, cfg.MaxPositions = 32, 64, 1, 2, 64
	m, err := neox.Init(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "encoder")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile("../testdata/gpt2-bpe/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var headSamples = []Sample{
	{Prompt: "Hello there", Response: ", friend."},
	{Prompt: "The weather today", Response: " is sunny and warm"},
	{Prompt: "A", Response: " b"},
	{Prompt: "", Response: "No prompt at all"},
	{Prompt: "Nothing said", Response: ""},
}

// writeHead makes a random head on f's features, edited by edit, and
// writes it.
func writeHead(t *testing.T, info rewardhead.FeatureInfo, seed uint64) (string, *rewardhead.Head) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	h := &rewardhead.Head{Format: rewardhead.HeadFormat, Kind: rewardhead.KindIRL, W: make([]float64, info.Dim), B: 0.25, Features: info}
	for j := range h.W {
		h.W[j] = r.NormFloat64()
	}
	path := filepath.Join(t.TempDir(), "head.json")
	if err := rewardhead.WriteHead(path, h); err != nil {
		t.Fatal(err)
	}
	return path, h
}

// head: is the features pipeline (irl features --prompt-field) followed by
// wᵀh + b, for text and for the same ids pre-tokenized.
func TestHeadMatchesFeaturesPipeline(t *testing.T) {
	model := tinyEncoder(t)
	src, err := neox.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, pool := range []neox.Pooling{neox.PoolLast, neox.PoolMean} {
		p, err := features.NewPipeline(features.PipelineOptions{Model: src, Layer: 1, Pool: pool, BatchSize: 2, Session: single})
		if err != nil {
			t.Fatal(err)
		}
		rs := make([]rows.Row, len(headSamples))
		for i, s := range headSamples {
			rs[i] = rows.Row{Index: i, Line: i + 1, Prompt: s.Prompt, Text: s.Response}
		}
		enc, err := p.Encode("rows", rs, &rows.Bad{})
		if err != nil {
			t.Fatal(err)
		}
		f, _, err := p.Features("rows", enc, 0)
		p.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		path, h := writeHead(t, f.Info(), 3)
		want := h.Score(f)

		src, err := Parse("head:"+path, Options{Session: single, BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		got, err := src.Score(headSamples)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("pool %s sample %d: head: %v, features + head %v", pool, i, got[i], want[i])
			}
		}
		// The same ids, pre-tokenized, score the same.
		tok, _ := tokenizer.Load(filepath.Join(model, "tokenizer.json"))
		var ids []Sample
		for _, s := range headSamples {
			var q []int64
			for _, id := range append(tok.Encode(s.Prompt), tok.Encode(s.Response)...) {
				q = append(q, int64(id))
			}
			ids = append(ids, Sample{IDs: q})
		}
		gotIDs, err := src.Score(ids)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(gotIDs[i]-want[i]) > 1e-6 {
				t.Errorf("pool %s sample %d: ids %v, text %v", pool, i, gotIDs[i], want[i])
			}
		}
		if d := Describe(src); d["kind"] != "head" || d["pool"] != string(pool) || d["layer"] != "1" || d["max_length"] != "64" {
			t.Errorf("describe %v", d)
		}
		src.Close()
	}
}

// A head whose metadata does not fit the encoder is refused, saying how.
func TestHeadRefusesMismatch(t *testing.T) {
	model := tinyEncoder(t)
	fp, err := weights.Fingerprint(model)
	if err != nil {
		t.Fatal(err)
	}
	other := tinyEncoderSeed(t, 6)
	base := rewardhead.FeatureInfo{Model: model, Fingerprint: fp, Layer: "1", Pool: "last", MaxLength: "64", Dim: 32}
	cases := []struct {
		name string
		edit func(*rewardhead.FeatureInfo)
		o    Options
		want []string
	}{
		{"layer out of range", func(f *rewardhead.FeatureInfo) { f.Layer = "5" }, Options{}, []string{"layer 5", "out of range"}},
		{"another dimension", func(f *rewardhead.FeatureInfo) { f.Dim = 16 }, Options{}, []string{"dimension 16", "dimension 32"}},
		{"longer than the model", func(f *rewardhead.FeatureInfo) { f.MaxLength = "128" }, Options{}, []string{"max_length 128", "64"}},
		{"other max length asked", nil, Options{MaxLength: 32}, []string{"max_length 64", "32"}},
		{"no model", func(f *rewardhead.FeatureInfo) { f.Model = "" }, Options{}, []string{"reward_model"}},
		{"another model", nil, Options{RewardModel: other}, []string{"another model", fp}},
		{"bad pool", func(f *rewardhead.FeatureInfo) { f.Pool = "max" }, Options{}, []string{"pool", "max"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := base
			if tc.edit != nil {
				tc.edit(&info)
			}
			path, _ := writeHead(t, info, 1)
			tc.o.Session = single
			src, err := OpenHead(path, tc.o)
			if err == nil {
				src.Close()
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: want %q", err, w)
				}
			}
		})
	}
	// --reward-model overrides the recorded path (a moved encoder).
	info := base
	info.Model = "/nowhere/encoder"
	path, _ := writeHead(t, info, 2)
	copied := filepath.Join(t.TempDir(), "moved")
	os.MkdirAll(copied, 0o755)
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		data, _ := os.ReadFile(filepath.Join(model, f))
		os.WriteFile(filepath.Join(copied, f), data, 0o644)
	}
	src, err := OpenHead(path, Options{Session: single, RewardModel: copied})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Score(headSamples[:2]); err != nil {
		t.Error(err)
	}
	// A sample with no tokens, or an id outside the vocabulary, is named.
	if bad := src.Validate([]Sample{{Response: "x"}, {}, {IDs: []int64{1, 60000}}}); len(bad) != 2 || bad[0].Index != 1 || bad[1].Index != 2 {
		t.Errorf("validate: %v", bad)
	}
	if _, err := src.Score([]Sample{{Response: "x"}, {}}); err == nil || !strings.Contains(err.Error(), "sample 1") {
		t.Errorf("empty sample: %v", err)
	}
}
