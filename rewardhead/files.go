package rewardhead

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"irl/atomicfile"
	"irl/safetensors"
)

// The files the reward commands exchange: feature pairs, ground-truth reward
// files, training folders, and the checks that keep a head on the features it
// was trained on. The CLI calls these; so do the experiments.

// LoadPair loads the two classes' feature files (expert --pos, baseline
// --neg) and checks that they are the same kind of features.
func LoadPair(posPath, negPath string) (pos, neg *Features, err error) {
	if pos, err = LoadFeatures(posPath); err != nil {
		return nil, nil, err
	}
	if neg, err = LoadFeatures(negPath); err != nil {
		return nil, nil, err
	}
	if err := SameKind(pos, neg); err != nil {
		return nil, nil, err
	}
	return pos, neg, nil
}

// SameFile tells whether two paths name one file, as when the same features
// are given as both classes: every metric is then meaningless.
func SameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// CheckFeatures refuses features the head was not trained on: always another
// dimension, and other metadata (model, layer, pooling, length) unless
// ignoreMeta. name names the head in errors.
func CheckFeatures(h *Head, name string, ignoreMeta bool, fs ...*Features) error {
	for _, f := range fs {
		if ignoreMeta {
			if f.D != h.Dim() {
				return fmt.Errorf("head %s has dimension %d but %s has features of dimension %d", name, h.Dim(), f.Path, f.D)
			}
			continue
		}
		if err := h.Check(name, f); err != nil {
			return fmt.Errorf("%w (ignore_metadata applies it anyway)", err)
		}
	}
	return nil
}

// LoadGroundTruth reads the ground-truth reward files for the pos and neg
// rows, both or neither ("" for neither).
func LoadGroundTruth(posPath, negPath string, pos, neg *Features) (gtPos, gtNeg []float64, err error) {
	if posPath == "" && negPath == "" {
		return nil, nil, nil
	}
	if posPath == "" || negPath == "" {
		return nil, nil, errors.New("give both gt_pos and gt_neg, or neither")
	}
	if gtPos, err = LoadRewards(posPath, pos); err != nil {
		return nil, nil, err
	}
	if gtNeg, err = LoadRewards(negPath, neg); err != nil {
		return nil, nil, err
	}
	return gtPos, gtNeg, nil
}

// LoadRewards reads a reward file (reward F32 [N], and row I64 [N] when it
// has one) for the rows of f, checking that the two are row-aligned and the
// rewards finite.
func LoadRewards(path string, f *Features) ([]float64, error) {
	sf, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := sf.Get("reward")
	if err != nil {
		return nil, err
	}
	if err := t.CheckShape(f.N); err != nil {
		return nil, fmt.Errorf("%w (one ground-truth reward per row of %s)", err, f.Path)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	if sf.Has("row") && f.Rows != nil {
		rt, _ := sf.Get("row")
		rows, err := rt.Int64s()
		if err != nil {
			return nil, err
		}
		if len(rows) != f.N {
			return nil, fmt.Errorf("%s: tensor \"row\" has %d entries, want %d", path, len(rows), f.N)
		}
		for i := range rows {
			if rows[i] != f.Rows[i] {
				return nil, fmt.Errorf("%s: row %d is source row %d but %s's row %d is source row %d; the files are not aligned", path, i, rows[i], f.Path, i, f.Rows[i])
			}
		}
	}
	out := make([]float64, len(v))
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%s: tensor \"reward\" row %d is %v; rewards must be finite", path, i, x)
		}
		out[i] = float64(x)
	}
	return out, nil
}

// WriteRewards writes a reward file: reward F32 [N], row I64 [N] when rows is
// not nil, and the metadata. Rewards that are not finite are refused, naming
// the first bad row.
func WriteRewards(path string, rewards []float64, rows []int64, meta map[string]string, extra ...safetensors.Tensor) error {
	if rows != nil && len(rows) != len(rewards) {
		panic(fmt.Sprintf("rewardhead: %d rewards, %d rows", len(rewards), len(rows)))
	}
	r32 := make([]float32, len(rewards))
	for i, x := range rewards {
		r32[i] = float32(x)
		if math.IsNaN(float64(r32[i])) || math.IsInf(float64(r32[i]), 0) {
			where := fmt.Sprintf("row %d", i)
			if rows != nil {
				where += fmt.Sprintf(" (source row %d)", rows[i])
			}
			return fmt.Errorf("%s: the reward of %s is %v; rewards must be finite", path, where, x)
		}
	}
	ts := []safetensors.Tensor{safetensors.FromFloat32("reward", []int{len(r32)}, r32)}
	if rows != nil {
		ts = append(ts, safetensors.FromInt64("row", []int{len(rows)}, rows))
	}
	return safetensors.WriteFile(path, append(ts, extra...), meta)
}

// EpochHeads lists a training folder's epoch-*.json heads in epoch order
// (epochs are zero-padded, so name order is epoch order).
func EpochHeads(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "epoch-*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s holds no epoch-*.json heads", dir)
	}
	sort.Strings(paths)
	return paths, nil
}

// TrainResult is what TrainToDir wrote.
type TrainResult struct {
	*Result
	// HeadPath is DIR/head.json, the selected head.
	HeadPath string
	// Rule says how head.json was chosen.
	Rule string
}

// TrainToDir trains a head (Train) and writes the training folder:
// epoch-NNN.json (every epoch's head, as it finishes), head.json (the
// selected one) and train.jsonl (each epoch's statistics). A folder that
// already holds a run's files is refused unless overwrite.
func TrainToDir(pos, neg *Features, cfg TrainConfig, dir string, overwrite bool) (*TrainResult, error) {
	if err := atomicfile.CheckDir(dir, overwrite); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	old, err := filepath.Glob(filepath.Join(dir, "epoch-*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range append(old, filepath.Join(dir, "head.json"), filepath.Join(dir, "train.jsonl")) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	var log []byte
	next := cfg.OnEpoch
	cfg.OnEpoch = func(h *Head, s EpochStats) error {
		if err := WriteHead(filepath.Join(dir, fmt.Sprintf("epoch-%03d.json", s.Epoch)), h); err != nil {
			return err
		}
		line, err := json.Marshal(s)
		if err != nil {
			return err
		}
		log = append(append(log, line...), '\n')
		if err := atomicfile.WriteBytes(filepath.Join(dir, "train.jsonl"), log); err != nil {
			return err
		}
		if next != nil {
			return next(h, s)
		}
		return nil
	}
	res, err := Train(pos, neg, cfg)
	if err != nil {
		return nil, err
	}
	best := *res.Best
	rule := "final epoch trained"
	if cfg.Select == "best" {
		rule = "lowest monitor loss"
	}
	best.Notes = append(append([]string(nil), best.Notes...), fmt.Sprintf("head.json is epoch %d of %d: %s", best.Epoch, len(res.Heads), rule))
	headPath := filepath.Join(dir, "head.json")
	if err := WriteHead(headPath, &best); err != nil {
		return nil, err
	}
	return &TrainResult{Result: res, HeadPath: headPath, Rule: rule}, nil
}

// ApprenticeHead turns apprenticeship learning's result into a head: w as
// found, and b = −wᵀ(m_E + m_0)/2 with m the mean feature rows of the expert
// and the initial policy, so reward 0 lies midway between them. training
// records the settings.
func ApprenticeHead(res *ApprenticeResult, expert, initial *Features, training map[string]any) *Head {
	mE, m0 := expert.Mean(), initial.Mean()
	var b float64
	for j, w := range res.W {
		b -= w * (mE[j] + m0[j]) / 2
	}
	t := map[string]any{"margin": res.Margin, "final_margin": res.FinalMargin, "stopped": res.Stopped}
	for k, v := range training {
		t[k] = v
	}
	return &Head{
		Format: HeadFormat, Kind: KindApprentice, W: res.W, B: b, Features: expert.Info(), Training: t,
		Notes: []string{"b = −wᵀ(m_E + m_0)/2 with m the mean feature rows of the expert and the initial policy"},
	}
}

// ApprenticeFiles names the feature files of an apprenticeship run and its
// settings.
type ApprenticeFiles struct {
	// Expert holds the features of the expert's outputs; Policies those of
	// candidate policies' outputs, the first being the initial policy.
	Expert   string
	Policies []string
	// Samples, if set, holds n sampled outputs per prompt (consecutive
	// trajectories, SamplesPerPrompt each): the oracle reranks them best-of-n
	// under each w instead of choosing among Policies.
	Samples          string
	SamplesPerPrompt int
	// Gamma discounts over token-level states.
	Gamma  float64
	Config ApprenticeConfig
}

// ApprenticeFromFiles reads the files, checks that every one comes from the
// expert's model, layer and pooling, runs apprenticeship learning and
// returns its head (see ApprenticeHead) with the result. A start already
// within ε of the expert, where no reward separates them, is an error.
func ApprenticeFromFiles(in ApprenticeFiles) (*Head, *ApprenticeResult, error) {
	load := func(path string, expert *Features) (*Features, *Trajectories, error) {
		f, err := LoadFeatures(path)
		if err != nil {
			return nil, nil, err
		}
		if expert != nil {
			if err := SameKind(expert, f); err != nil {
				return nil, nil, err
			}
		}
		t, err := Discounted(f, in.Gamma)
		return f, t, err
	}
	expert, et, err := load(in.Expert, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(in.Policies) == 0 {
		return nil, nil, errors.New("rewardhead: apprenticeship learning needs at least the initial policy's features")
	}
	var set FixedSet
	var first *Features
	for _, p := range in.Policies {
		f, t, err := load(p, expert)
		if err != nil {
			return nil, nil, err
		}
		if first == nil {
			first = f
		}
		set = append(set, Policy{Name: p, Mu: t.Expectation()})
	}
	var oracle Oracle = set
	if in.Samples != "" {
		n := in.SamplesPerPrompt
		if n < 1 {
			return nil, nil, fmt.Errorf("rewardhead: %s: samples per prompt %d, want ≥ 1", in.Samples, n)
		}
		_, t, err := load(in.Samples, expert)
		if err != nil {
			return nil, nil, err
		}
		if len(t.Sums)%n != 0 {
			return nil, nil, fmt.Errorf("%s: %d trajectories do not split into prompts of %d samples", in.Samples, len(t.Sums), n)
		}
		b := &BestOfN{Name: in.Samples}
		for k := 0; k < len(t.Sums); k += n {
			b.Prompts = append(b.Prompts, t.Sums[k:k+n])
		}
		oracle = b
	}
	res, err := Apprentice(et.Expectation(), set[0], oracle, in.Config)
	if err != nil {
		return nil, nil, err
	}
	if res.W == nil {
		return nil, nil, fmt.Errorf("the initial policy %s is within ε = %g of the expert's feature expectations: no reward separates them", set[0].Name, in.Config.Epsilon)
	}
	h := ApprenticeHead(res, expert, first, map[string]any{
		"method": "apprenticeship learning (" + in.Config.Method + ")", "gamma": in.Gamma,
		"epsilon": in.Config.Epsilon, "expert": expert.Path, "policies": in.Policies,
	})
	return h, res, nil
}
