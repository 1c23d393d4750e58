package rewardhead

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHeadRoundTripAndScore(t *testing.T) {
	pos, neg, _ := planted(8, 50, 40, 6, 1)
	cfg := DefaultTrainConfig()
	cfg.Epochs = 5
	res, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "head.json")
	if err := WriteHead(path, res.Best); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.W, res.Best.W) || h.B != res.Best.B || h.Features != res.Best.Features || h.Training["loss"] != "asymmetric" {
		t.Errorf("round trip changed the head: %+v", h)
	}
	// Score against a direct float64 computation.
	s := h.Score(pos)
	for i := 0; i < pos.N; i++ {
		var want float64
		for j, v := range pos.Row(i) {
			want += h.W[j] * float64(v)
		}
		want += h.B
		if math.Abs(s[i]-want) > 1e-12 {
			t.Fatalf("row %d: score %v, want %v", i, s[i], want)
		}
	}
	if err := h.Check(path, neg); err != nil {
		t.Error(err)
	}
}

func TestHeadScoreParallel(t *testing.T) {
	// Enough rows to split across workers; compare with the serial path.
	pos, _, w := planted(9, 3000, 1, 64, 1)
	h := &Head{Format: HeadFormat, Kind: KindIRL, W: w, B: 0.5, Features: pos.Info()}
	got := h.Score(pos)
	want := make([]float64, pos.N)
	scoreRange(h.W, h.B, pos, want, 0, pos.N)
	if !reflect.DeepEqual(got, want) {
		t.Error("parallel scores differ from serial ones")
	}
}

func TestHeadCheckCatchesOtherFeatures(t *testing.T) {
	pos, _, _ := planted(10, 5, 5, 4, 1)
	h := &Head{Format: HeadFormat, Kind: KindIRL, W: make([]float64, 4), Features: pos.Info()}
	other := *pos
	other.Meta = map[string]string{"model": "synthetic", "layer": "0", "pool": "last", "max_length": "64"}
	err := h.Check("h.json", &other)
	if err == nil || !strings.Contains(err.Error(), "head h.json was trained on") || !strings.Contains(err.Error(), `pool="mean" vs "last"`) {
		t.Errorf("Check = %v", err)
	}
}

func TestReadHeadBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"format": `{"format":"x","w":[1],"b":0,"features":{"dim":1}}`,
		"dim":    `{"format":"irl-reward-head/v1","w":[1,2],"b":0,"features":{"dim":3}}`,
		"empty":  `{"format":"irl-reward-head/v1","w":[],"b":0,"features":{"dim":0}}`,
		"json":   `{"format":`,
	}
	want := map[string]string{"format": "want \"irl-reward-head/v1\"", "dim": "features.dim is 3", "empty": "no weights", "json": "not a reward head"}
	for name, body := range cases {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadHead(p); err == nil || !strings.Contains(err.Error(), want[name]) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q", name, err, want[name])
		}
	}
}

func TestEnsembleIsMeanOfScores(t *testing.T) {
	pos, neg, _ := planted(12, 30, 30, 5, 1)
	cfg := DefaultTrainConfig()
	cfg.Epochs = 6
	res, err := Train(pos, neg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Ensemble(res.Heads)
	if err != nil {
		t.Fatal(err)
	}
	got := e.Score(neg)
	for i := range got {
		var mean float64
		for _, h := range res.Heads {
			mean += h.Score(neg)[i]
		}
		mean /= float64(len(res.Heads))
		if math.Abs(got[i]-mean) > 1e-12 {
			t.Fatalf("row %d: ensemble %v, mean of heads %v", i, got[i], mean)
		}
	}
	bad := *res.Heads[0]
	bad.Features.Model = "other"
	if _, err := Ensemble([]*Head{res.Heads[0], &bad}); err == nil {
		t.Error("ensemble of heads on different features accepted")
	}
}
