package toxicity

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Figure 4's metrics label and score as the official irl_utilities does
// (testdata/trlx/irl_for_llms.json, ground_truth_irl_eval): the true
// reward −(toxic logit), a text toxic when its reward is ≤ 0 for both the
// truth and the head, sklearn's accuracy and F1 with toxic positive.
func TestFigure4OfficialGroundTruth(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "trlx", "irl_for_llms.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		GT struct {
			Logits  [][]float64 `json:"classifier_logits"`
			True    []float64   `json:"true_rewards"`
			Learned []float64   `json:"learned_rewards"`
			Acc     float64     `json:"accuracy"`
			F1      float64     `json:"f1"`
		} `json:"ground_truth_irl_eval"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	g := f.GT
	// −logits[:, -1]: the toxic label is the classifier's last.
	truth := make([]float64, len(g.Logits))
	for i, l := range g.Logits {
		truth[i] = -l[len(l)-1]
		if truth[i] != g.True[i] {
			t.Errorf("true reward %d: %v, official %v", i, truth[i], g.True[i])
		}
	}
	acc, f1, _ := binary(g.Learned, truth, 0)
	if math.Abs(acc-g.Acc) > 1e-12 || math.Abs(f1-g.F1) > 1e-12 {
		t.Errorf("accuracy %v, F1 %v; official %v, %v", acc, f1, g.Acc, g.F1)
	}
}

// poor_head picks where IRL-RLHF (Poor)'s head comes from: rlhf-poor (the
// default) trains IRL on a poor RLHF run's demonstrations, worst keeps the
// good run's worst epoch and leaves the rlhf-poor stage idle.
func TestPoorHeadRules(t *testing.T) {
	c := mini(t)
	out := t.TempDir()
	p := &pipeline{cfg: c, opt: Options{Out: out}, hashes: map[string]string{}, res: &Result{}}
	if c.PoorHead != PoorRLHF || defaults().PoorHead != PoorRLHF || defaults().Transform != TransformRelativeRF2 {
		t.Errorf("poor_head %q (default %q), transform default %q", c.PoorHead, defaults().PoorHead, defaults().Transform)
	}
	h, err := p.pickHead(PoorRLHF)
	if err != nil || h != filepath.Join(out, "irl", "heads-poor", "head.json") {
		t.Errorf("rlhf-poor head: %s, %v", h, err)
	}
	if got := len(p.demoKinds()); got != 3 {
		t.Errorf("%d demonstration files with rlhf-poor", got)
	}
	c.PoorHead = "worst"
	msg, err := p.stageRLHFPoor(false)
	if err != nil || !strings.Contains(msg, "not run") {
		t.Errorf("rlhf-poor with poor_head worst: %q, %v", msg, err)
	}
	if got := len(p.demoKinds()); got != 2 || len(p.irlRunsOf()) != 1 {
		t.Errorf("poor_head worst: %d demonstration files, %d IRL runs", got, len(p.irlRunsOf()))
	}
	if err := c.validate("x"); err != nil {
		t.Errorf("poor_head worst: %v", err)
	}
	c.GoodHead = PoorRLHF
	if err := c.validate("x"); err == nil || !strings.Contains(err.Error(), "good_head") {
		t.Errorf("good_head rlhf-poor: %v", err)
	}
}
