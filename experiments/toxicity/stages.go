package toxicity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"irl/atomicfile"
	"irl/checkpoint"
	"irl/features"
	"irl/neox"
	"irl/policy"
	"irl/ppo"
	"irl/progress"
	"irl/reward"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
	"irl/toxeval"
)

// promptRow is one line of prompts/train.jsonl or eval.jsonl.
type promptRow struct {
	Row      int    `json:"row"`
	Prompt   string `json:"prompt"`
	Original string `json:"original_output"`
	Toxic    bool   `json:"toxic"`
}

// encoder is the frozen encoder's spec and its folder's name under
// OUT/models when the pipeline makes it: the SFT model unless one is given.
func (c *Config) encoder() (ModelSpec, string) {
	if c.Encoder.Path == "" && c.Encoder.Init == nil {
		return c.SFTModel, "sft"
	}
	return c.Encoder, "encoder"
}

// baseline is the model whose greedy continuations are the demonstrations'
// o⁻ and its folder's name under OUT/models when the pipeline makes it:
// the SFT model unless baseline_model is given (the paper's is the
// pretrained base model).
func (c *Config) baseline() (ModelSpec, string) {
	if c.BaselineModel.Path == "" && c.BaselineModel.Init == nil {
		return c.SFTModel, "sft"
	}
	return c.BaselineModel, "baseline"
}

// model returns a model's folder, making a random one for an init spec
// under OUT/models/NAME. The folder records the spec it was made from in
// init.json, with the tokenizer's hash, and is made again when they
// change: an edited spec must not leave the later stages on the old model.
func (p *pipeline) model(m ModelSpec, name string) (string, error) {
	if m.Init == nil {
		// A training run's folder stands for its model, as for --model.
		dir, _, err := checkpoint.ModelDir(p.cfg.resolve(m.Path))
		return dir, err
	}
	dir := filepath.Join(p.opt.Out, "models", name)
	in := m.Init
	tokPath := p.cfg.resolve(in.Tokenizer)
	tj, err := os.ReadFile(tokPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(tj)
	made, err := json.Marshal(struct {
		Init      *InitSpec `json:"init"`
		Tokenizer string    `json:"tokenizer_sha256"`
	}{in, hex.EncodeToString(sum[:])})
	if err != nil {
		return "", err
	}
	made = append(made, '\n')
	if old, err := os.ReadFile(filepath.Join(dir, "init.json")); err == nil && bytes.Equal(old, made) {
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
			return dir, nil
		}
	}
	shape, ok := neox.Shapes[in.Shape]
	if !ok {
		return "", fmt.Errorf("init: unknown shape %q", in.Shape)
	}
	tok, err := tokenizer.Parse(tokPath, tj)
	if err != nil {
		return "", err
	}
	shape = initShape(shape, in)
	if eos, ok := tok.EOS(); ok {
		shape.EOSTokenID, shape.BOSTokenID = eos, eos
	}
	mod, err := neox.Init(shape, in.Seed)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		if err := mod.Save(tmp); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(tmp, "tokenizer.json"), tj); err != nil {
			return err
		}
		return atomicfile.WriteBytes(filepath.Join(tmp, "init.json"), made)
	})
	return dir, err
}

func writeJSONL[T any](path string, xs []T) error {
	var b []byte
	for _, x := range xs {
		j, err := json.Marshal(x)
		if err != nil {
			return err
		}
		b = append(append(b, j...), '\n')
	}
	return atomicfile.WriteBytes(path, b)
}

// stagePrompts splits jigsaw-long-2000 80/20 as the official code does.
func (p *pipeline) stagePrompts() (string, error) {
	rs, err := toxeval.ReadLong2000(p.cfg.resolve(p.cfg.Dataset), "")
	if err != nil {
		return "", err
	}
	train, eval, err := toxeval.Split(len(rs), p.cfg.EvalFraction, p.cfg.SplitSeed)
	if err != nil {
		return "", err
	}
	c := p.cfg
	if len(train) < c.DemoPrompts {
		return "", fmt.Errorf("dataset %s has %d rows, so %d training prompts once eval_fraction %g is held out: fewer than demo_prompts %d, the prompts the demonstrations take",
			c.Dataset, len(rs), len(train), c.EvalFraction, c.DemoPrompts)
	}
	pick := func(idx []int) []promptRow {
		out := make([]promptRow, len(idx))
		for i, j := range idx {
			out[i] = promptRow{Row: rs[j].Index, Prompt: rs[j].Prompt, Original: rs[j].Original, Toxic: rs[j].Toxic}
		}
		return out
	}
	if err := writeJSONL(filepath.Join(p.dir("prompts"), "train.jsonl"), pick(train)); err != nil {
		return "", err
	}
	if err := writeJSONL(filepath.Join(p.dir("prompts"), "eval.jsonl"), pick(eval)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d rows: %d training prompts, %d held out", len(rs), len(train), len(eval)), nil
}

// rewardOptions are the training reward's options.
func (p *pipeline) rewardOptions() reward.Options {
	o := reward.Options{Label: p.cfg.RewardLabel, Join: p.cfg.Join, Noise: p.cfg.RewardNoise, Seed: 1, Session: p.opt.Session}
	if o.Noise == 0 {
		o.Noise = reward.NoNoise
	}
	return o
}

// runPPO runs one PPO stage's run from the SFT model into out.
func (p *pipeline) runPPO(out string, src reward.Source, pc ppo.Config, resume bool, stage string) (*ppo.Result, error) {
	sft, err := p.model(p.cfg.SFTModel, "sft")
	if err != nil {
		return nil, err
	}
	// Opened once: the weights, the tokenizer beside them and the
	// fingerprint every checkpoint records, by which a resume from another
	// SFT model is refused.
	ms, err := neox.Open(sft)
	if err != nil {
		return nil, err
	}
	m, err := ms.Load()
	if err != nil {
		return nil, err
	}
	tokPath := ms.TokenizerPath("")
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, err
	}
	train, err := ppo.ReadPrompts(filepath.Join(p.dir("prompts"), "train.jsonl"), "prompt", "", tok, m, pc)
	if err != nil {
		return nil, err
	}
	eval, err := ppo.ReadPrompts(filepath.Join(p.dir("prompts"), "eval.jsonl"), "prompt", "", tok, m, pc)
	if err != nil {
		return nil, err
	}
	// A run killed before its first checkpoint left a log and nothing to
	// resume from: it starts over.
	resume = resume && hasCheckpoint(out)
	if !resume {
		if err := os.RemoveAll(out); err != nil {
			return nil, err
		}
	}
	label := stage
	if stage == "irl-rlhf" {
		label += " " + filepath.Base(out) // good or poor
	}
	// The newest two checkpoints and the best, as irl ppo keeps by default:
	// a 410m checkpoint is 5 GB.
	o := ppo.Options{Out: out, Resume: resume, TokenizerPath: tokPath, Session: p.opt.Session, Progress: p.bars(),
		Label: label, SaveTotalLimit: 2, Context: p.opt.Context, ModelFingerprint: ms.Fingerprint}
	if p.opt.StopIn == stage {
		o.StopAfter = p.opt.StopAfter
	}
	res, err := ppo.Run(m, tok, train, eval, src, pc, o)
	if err != nil {
		return nil, err
	}
	if o.StopAfter > 0 && res.Final == "" {
		return nil, fmt.Errorf("stopped after step %d, as asked", o.StopAfter)
	}
	return res, nil
}

func hasCheckpoint(out string) bool {
	_, err := os.Stat(filepath.Join(out, "last-checkpoint"))
	return err == nil
}

// stageRLHF makes the expert π_E: PPO from the SFT model against the
// classifier, relative to each prompt's original continuation.
func (p *pipeline) stageRLHF(resume bool) (string, error) {
	res, _, err := p.rlhfRun("rlhf", nil, resume)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d steps, held-out reward %.4f → %.4f", res.Steps, res.FirstReward, res.LastReward), nil
}

// stageRLHFPoor is a poorly conducted RLHF run (the paper's §4.1 and
// Appendix F): the rlhf stage's reward and prompts under the settings
// rlhf_poor_ppo gives (far fewer steps, a KL coefficient that pins the
// policy to SFT). Its demonstrations give IRL-RLHF (Poor)'s head when
// poor_head is rlhf-poor; otherwise the stage does nothing.
func (p *pipeline) stageRLHFPoor(resume bool) (string, error) {
	if p.cfg.PoorHead != PoorRLHF {
		return fmt.Sprintf("not run: poor_head is %s", p.cfg.PoorHead), nil
	}
	res, pc, err := p.rlhfRun("rlhf-poor", p.cfg.RLHFPoorPPO, resume)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d steps (init_kl_coef %g, target %g), held-out reward %.4f → %.4f", res.Steps, pc.InitKLCoef, pc.Target, res.FirstReward, res.LastReward), nil
}

// rlhfRun is an RLHF stage's PPO run into STAGE/run: the ground-truth
// reward relative to each prompt's original continuation, under the PPO
// settings with the stage's overrides.
func (p *pipeline) rlhfRun(stage string, overrides map[string]any, resume bool) (*ppo.Result, ppo.Config, error) {
	o := p.rewardOptions()
	o.Relative = "original_output"
	src, err := reward.Parse(p.cfg.resolveSpec(p.cfg.Reward), o)
	if err != nil {
		return nil, ppo.Config{}, err
	}
	defer src.Close()
	pc, err := p.cfg.ppoConfig(overrides)
	if err != nil {
		return nil, pc, err
	}
	res, err := p.runPPO(filepath.Join(p.dir(stage), "run"), src, pc, resume, stage)
	return res, pc, err
}

// demo is one demonstration.
type demo struct {
	Row          int    `json:"row"`
	Prompt       string `json:"prompt"`
	Continuation string `json:"continuation"`
	// Model is the folder that continued the prompt, relative to the run's
	// folder where it lies inside it.
	Model string `json:"model"`
}

// greedy continues prompts greedily to maxLength tokens counting the
// prompt, under a progress bar titled label.
func (p *pipeline) greedy(model string, ps []promptRow, label string) ([]demo, error) {
	m, err := neox.Load(model)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(tokenizer.DefaultPath(model, ""))
	if err != nil {
		return nil, err
	}
	g, err := policy.NewGenerator(m, p.opt.Session)
	if err != nil {
		return nil, err
	}
	defer g.Destroy()
	name := model
	if rel, err := filepath.Rel(p.opt.Out, model); err == nil && !strings.HasPrefix(rel, "..") {
		name = filepath.ToSlash(rel)
	}
	limit := min(p.cfg.MaxLength, m.Config.MaxPositions) - 1
	// Prompts become ids by the rule every command uses, keeping their last
	// tokens; an empty prompt starts from EOS, Pythia's start of text.
	rs := make([]rows.Row, len(ps))
	for i, r := range ps {
		rs[i] = rows.Row{Index: i, Line: i + 1, Text: r.Prompt}
	}
	enc, bad := rows.Encode("prompts", rs, rows.EncodeOptions{Tokenizer: tok, VocabSize: m.Config.VocabSize, MaxLength: limit, Truncate: rows.TruncateLeft})
	prompts := make([][]int64, len(ps))
	for _, e := range enc {
		prompts[e.Index] = e.IDs
	}
	for _, b := range bad {
		if ps[b.Index].Prompt != "" {
			return nil, fmt.Errorf("prompt row %d: %w", ps[b.Index].Row, b.Err)
		}
		prompts[b.Index] = []int64{int64(m.Config.EOSTokenID)}
	}
	bar := progress.New(p.bars(), len(ps), label, "prompts")
	defer bar.Finish()
	out := make([]demo, len(ps))
	for i, r := range ps {
		if err := p.ctxErr(); err != nil {
			bar.Stop()
			return nil, err
		}
		bar.Add(1)
		ids := prompts[i]
		newTokens := min(p.cfg.MaxLength, m.Config.MaxPositions) - len(ids)
		gens, err := g.Generate([][]int64{ids}, policy.GenerateOptions{MaxNewTokens: newTokens, Sampling: policy.SampleOptions{Greedy: true}})
		if err != nil {
			return nil, err
		}
		gi := gens[0].IDs
		if gens[0].EOS {
			gi = gi[:len(gi)-1]
		}
		out[i] = demo{Row: r.Row, Prompt: tok.Decode(ids), Continuation: strings.ToValidUTF8(tok.Decode(gi), "\uFFFD"), Model: name}
	}
	return out, nil
}

func readJSONL[T any](path string) ([]T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []T
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var x T
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// stageDemonstrations makes the demonstrations as the official
// create_dataset_irl.py does: the first demo_prompts training prompts, in
// order, each continued greedily to max_length tokens counting the prompt
// by the RLHF model (expert.jsonl, o⁺) and by the baseline model
// (baseline.jsonl, o⁻), so that row i of both files continues the same
// prompt. With poor_head rlhf-poor, the rlhf-poor model continues the same
// prompts too (expert-poor.jsonl).
func (p *pipeline) stageDemonstrations() (string, error) {
	train, err := readJSONL[promptRow](filepath.Join(p.dir("prompts"), "train.jsonl"))
	if err != nil {
		return "", err
	}
	c := p.cfg
	if len(train) < c.DemoPrompts {
		return "", fmt.Errorf("demo_prompts %d, but prompts/train.jsonl holds %d training prompts", c.DemoPrompts, len(train))
	}
	ps := train[:c.DemoPrompts]
	base, err := p.model(c.baseline())
	if err != nil {
		return "", err
	}
	runs := []struct{ kind, model string }{{"expert", filepath.Join(p.dir("rlhf"), "run", "final")}, {"baseline", base}}
	if c.PoorHead == PoorRLHF {
		runs = append(runs, struct{ kind, model string }{"expert-poor", filepath.Join(p.dir("rlhf-poor"), "run", "final")})
	}
	var msg []string
	for _, r := range runs {
		ds, err := p.greedy(r.model, ps, "demonstrations ("+r.kind+")")
		if err != nil {
			return "", err
		}
		if err := writeJSONL(filepath.Join(p.dir("demonstrations"), r.kind+".jsonl"), ds); err != nil {
			return "", err
		}
		msg = append(msg, fmt.Sprintf("%d %s", len(ds), r.kind))
	}
	return strings.Join(msg, ", ") + " continuations of the same prompts", nil
}

// demoKinds are the demonstrations files the run has.
func (p *pipeline) demoKinds() []string {
	if p.cfg.PoorHead == PoorRLHF {
		return []string{"expert", "baseline", "expert-poor"}
	}
	return []string{"expert", "baseline"}
}

// stageFeatures: the frozen encoder's features of prompt + continuation, and
// the classifier's ground truth for each demonstration.
func (p *pipeline) stageFeatures() (string, error) {
	enc, err := p.model(p.cfg.encoder())
	if err != nil {
		return "", err
	}
	pool, err := neox.ParsePooling(p.cfg.Pool)
	if err != nil {
		return "", err
	}
	encoder, err := neox.Open(enc)
	if err != nil {
		return "", err
	}
	pl, err := features.NewPipeline(features.PipelineOptions{Model: encoder, Layer: p.cfg.Layer, Pool: pool, BatchSize: p.cfg.BatchSize,
		Session: p.opt.Session, Progress: p.bars(), Context: p.opt.Context})
	if err != nil {
		return "", err
	}
	defer pl.Destroy()
	ro := p.rewardOptions()
	ro.Progress = p.bars()
	src, err := reward.Parse(p.cfg.resolveSpec(p.cfg.Reward), ro)
	if err != nil {
		return "", err
	}
	defer src.Close()
	var msg []string
	for _, kind := range p.demoKinds() {
		ds, err := readJSONL[demo](filepath.Join(p.dir("demonstrations"), kind+".jsonl"))
		if err != nil {
			return "", err
		}
		rs := make([]rows.Row, len(ds))
		samples := make([]reward.Sample, len(ds))
		for i, d := range ds {
			text := d.Continuation
			if strings.TrimSpace(text) == "" {
				text = " " // an empty continuation still has a place to pool at
			}
			rs[i] = rows.Row{Index: i, Line: i + 1, Prompt: d.Prompt, Text: text}
			samples[i] = reward.Sample{Prompt: d.Prompt, Response: d.Continuation, Key: uint64(i), Fields: map[string]any{reward.RowField: d.Row}}
		}
		encd, err := pl.Encode(kind, rs, &rows.Bad{})
		if err != nil {
			return "", err
		}
		f, _, err := pl.Features(kind, encd, 0)
		if err != nil {
			return "", err
		}
		if err := f.Write(filepath.Join(p.dir("features"), kind+".safetensors")); err != nil {
			return "", err
		}
		gt, _, logits, err := reward.ScoreDetailed(src, samples)
		if err != nil {
			return "", err
		}
		if err := rewardhead.WriteRewards(filepath.Join(p.dir("features"), "gt-"+kind+".safetensors"), gt, f.Rows,
			map[string]string{"reward": p.cfg.Reward, "convention": "higher is less toxic"}); err != nil {
			return "", err
		}
		// Figure 4's ground truth in the official irl_utilities: −(the
		// classifier's toxic logit). A source without logits (the
		// miniature's lexicon) gives its reward.
		gtLogit, what := gt, "the reward (the source has no logits)"
		if idx := slices.Index(reward.Labels(src), p.cfg.RewardLabel); idx >= 0 && logits != nil {
			gtLogit, what = make([]float64, len(gt)), "-logit("+p.cfg.RewardLabel+")"
			for i := range gt {
				gtLogit[i] = -float64(logits[i][idx])
			}
		}
		if err := rewardhead.WriteRewards(filepath.Join(p.dir("features"), "gt-logit-"+kind+".safetensors"), gtLogit, f.Rows,
			map[string]string{"reward": p.cfg.Reward, "quantity": what, "convention": "higher is less toxic"}); err != nil {
			return "", err
		}
		msg = append(msg, fmt.Sprintf("%d %s rows", f.N, kind))
	}
	return strings.Join(msg, ", "), nil
}

// EpochMetrics are a head's metrics against the classifier on the
// demonstrations (Figure 4a). The default, as the official irl_utilities
// (get_evaluation, calculate_accuracy_f1) has it: the true reward is
// −(the classifier's toxic logit), a text is toxic when it is ≤ 0, the
// head calls it toxic at or below 0, and the correlation is of the head's
// rewards with the logits. The Prob* fields are the probability version
// beside it: the true reward −P(toxic), toxic at or below −½ (0 for a
// source without probabilities, where both versions coincide).
type EpochMetrics struct {
	Epoch       int     `json:"epoch"`
	Accuracy    float64 `json:"accuracy"`
	F1          float64 `json:"f1"`
	Correlation float64 `json:"correlation"`

	ProbAccuracy    float64 `json:"prob_accuracy"`
	ProbF1          float64 `json:"prob_f1"`
	ProbCorrelation float64 `json:"prob_correlation"`
}

// gtThreshold is where the probability version of the ground truth calls
// a text toxic: −½ for −P(toxic), 0 for any other reward.
func (p *pipeline) gtThreshold() float64 {
	if strings.HasPrefix(p.cfg.Reward, "classifier:") {
		return -0.5
	}
	return 0
}

// irlRun is one IRL over demonstrations: the good run's (expert.jsonl
// against baseline.jsonl, into irl/heads and irl/figure4.json) and, with
// poor_head rlhf-poor, the poor run's (expert-poor.jsonl, into
// irl/heads-poor and irl/figure4-poor.json).
type irlRun struct{ expert, heads, curve string }

func (p *pipeline) irlRunsOf() []irlRun {
	out := []irlRun{{"expert", "heads", "figure4.json"}}
	if p.cfg.PoorHead == PoorRLHF {
		out = append(out, irlRun{"expert-poor", "heads-poor", "figure4-poor.json"})
	}
	return out
}

// stageIRL: the head by max-margin IRL, every epoch's head measured against
// the classifier (Figure 4); with poor_head rlhf-poor, a second IRL on the
// poor RLHF run's demonstrations.
func (p *pipeline) stageIRL() (string, error) {
	var msg []string
	for _, r := range p.irlRunsOf() {
		m, err := p.trainIRL(r)
		if err != nil {
			return "", fmt.Errorf("%s: %w", r.expert, err)
		}
		msg = append(msg, m)
	}
	return strings.Join(msg, "; "), nil
}

func (p *pipeline) trainIRL(r irlRun) (string, error) {
	fd := p.dir("features")
	pos, neg, err := rewardhead.LoadPair(filepath.Join(fd, r.expert+".safetensors"), filepath.Join(fd, "baseline.safetensors"))
	if err != nil {
		return "", err
	}
	gtPos, gtNeg, err := rewardhead.LoadGroundTruth(filepath.Join(fd, "gt-"+r.expert+".safetensors"), filepath.Join(fd, "gt-baseline.safetensors"), pos, neg)
	if err != nil {
		return "", err
	}
	lgPos, lgNeg, err := rewardhead.LoadGroundTruth(filepath.Join(fd, "gt-logit-"+r.expert+".safetensors"), filepath.Join(fd, "gt-logit-baseline.safetensors"), pos, neg)
	if err != nil {
		return "", err
	}
	tc := rewardhead.DefaultTrainConfig()
	loss, err := rewardhead.NewLoss(p.cfg.Loss, p.cfg.P, p.cfg.Delta)
	if err != nil {
		return "", err
	}
	tc.Loss, tc.Epochs, tc.PosPerEpoch, tc.NegPerEpoch, tc.Seed = loss, p.cfg.Epochs, p.cfg.PosPerEpoch, p.cfg.NegPerEpoch, p.cfg.IRLSeed
	tc.MaxNorm = 0
	if _, ok := loss.(rewardhead.Asymmetric); ok {
		tc.MaxNorm = 1
	}
	res, err := rewardhead.TrainToDir(pos, neg, tc, filepath.Join(p.dir("irl"), r.heads), true)
	if err != nil {
		return "", err
	}
	probs := append(append([]float64(nil), gtPos...), gtNeg...)
	logits := append(append([]float64(nil), lgPos...), lgNeg...)
	var curve []EpochMetrics
	for _, h := range res.Heads {
		curve = append(curve, p.epochMetrics(h, pos, neg, logits, probs))
	}
	if err := writeJSON(filepath.Join(p.dir("irl"), r.curve), curve); err != nil {
		return "", err
	}
	last := curve[len(curve)-1]
	return fmt.Sprintf("%s: %d epochs; final accuracy %.4f, F1 %.4f against the classifier's logit", r.heads, len(curve), last.Accuracy, last.F1), nil
}

// binary is accuracy, F1 (toxic positive) and Pearson's r of the head's
// scores s against a ground truth gt that calls a text toxic at or below
// thr; the head calls it toxic at or below 0.
func binary(s, gt []float64, thr float64) (acc, f1, corr float64) {
	var tp, fp, tn, fn float64
	for i := range s {
		truth, call := gt[i] <= thr, s[i] <= 0
		switch {
		case truth && call:
			tp++
		case !truth && call:
			fp++
		case truth && !call:
			fn++
		default:
			tn++
		}
	}
	acc = (tp + tn) / float64(len(s))
	if 2*tp+fp+fn > 0 {
		f1 = 2 * tp / (2*tp + fp + fn)
	}
	corr = math.NaN()
	if c := rewardhead.Pearson(s, gt); c.OK() {
		corr = c.X
	}
	return acc, f1, corr
}

// epochMetrics scores every demonstration with h against both ground
// truths.
func (p *pipeline) epochMetrics(h *rewardhead.Head, pos, neg *rewardhead.Features, logits, probs []float64) EpochMetrics {
	s := append(h.Score(pos), h.Score(neg)...)
	m := EpochMetrics{Epoch: h.Epoch}
	m.Accuracy, m.F1, m.Correlation = binary(s, logits, 0)
	m.ProbAccuracy, m.ProbF1, m.ProbCorrelation = binary(s, probs, p.gtThreshold())
	return m
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(nanToNull(v), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}

// nanToNull turns NaN into null for JSON through a round trip of floats.
func nanToNull(v any) any {
	if c, ok := v.([]EpochMetrics); ok {
		out := make([]map[string]any, len(c))
		for i, e := range c {
			m := map[string]any{"epoch": e.Epoch, "accuracy": e.Accuracy, "f1": e.F1, "correlation": e.Correlation,
				"prob_accuracy": e.ProbAccuracy, "prob_f1": e.ProbF1, "prob_correlation": e.ProbCorrelation}
			if math.IsNaN(e.Correlation) {
				m["correlation"] = nil
			}
			if math.IsNaN(e.ProbCorrelation) {
				m["prob_correlation"] = nil
			}
			out[i] = m
		}
		return out
	}
	return v
}

// pickHead names a head by the rule: final, best or worst (by F1 against
// the classifier), or epoch-N.
func (p *pipeline) pickHead(rule string) (string, error) {
	if rule == PoorRLHF {
		return filepath.Join(p.dir("irl"), "heads-poor", "head.json"), nil
	}
	if err := checkHeadRule(rule, p.cfg.Epochs); err != nil {
		return "", err
	}
	dir := filepath.Join(p.dir("irl"), "heads")
	if rule == "final" {
		return filepath.Join(dir, "head.json"), nil
	}
	if strings.HasPrefix(rule, "epoch-") {
		var n int
		if _, err := fmt.Sscanf(rule, "epoch-%d", &n); err != nil {
			return "", fmt.Errorf("head %q: want final, best, worst or epoch-N", rule)
		}
		return filepath.Join(dir, fmt.Sprintf("epoch-%03d.json", n)), nil
	}
	curve, err := readCurve(filepath.Join(p.dir("irl"), "figure4.json"))
	if err != nil {
		return "", err
	}
	sort.SliceStable(curve, func(i, j int) bool { return curve[i].F1 > curve[j].F1 })
	switch rule {
	case "best":
		return filepath.Join(dir, fmt.Sprintf("epoch-%03d.json", curve[0].Epoch)), nil
	case "worst":
		return filepath.Join(dir, fmt.Sprintf("epoch-%03d.json", curve[len(curve)-1].Epoch)), nil
	}
	return "", fmt.Errorf("head %q: want final, best, worst or epoch-N", rule)
}

func readCurve(path string) ([]EpochMetrics, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Epoch           int      `json:"epoch"`
		Accuracy        float64  `json:"accuracy"`
		F1              float64  `json:"f1"`
		Correlation     *float64 `json:"correlation"`
		ProbAccuracy    float64  `json:"prob_accuracy"`
		ProbF1          float64  `json:"prob_f1"`
		ProbCorrelation *float64 `json:"prob_correlation"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]EpochMetrics, len(raw))
	for i, r := range raw {
		out[i] = EpochMetrics{Epoch: r.Epoch, Accuracy: r.Accuracy, F1: r.F1, Correlation: math.NaN(),
			ProbAccuracy: r.ProbAccuracy, ProbF1: r.ProbF1, ProbCorrelation: math.NaN()}
		if r.Correlation != nil {
			out[i].Correlation = *r.Correlation
		}
		if r.ProbCorrelation != nil {
			out[i].ProbCorrelation = *r.ProbCorrelation
		}
	}
	return out, nil
}

// irlRuns are IRL-RLHF's runs: a good and a poor recovered head.
func (p *pipeline) irlRuns() []struct{ name, rule string } {
	return []struct{ name, rule string }{{"good", p.cfg.GoodHead}, {"poor", p.cfg.PoorHead}}
}

// irlRunKey hashes one IRL-RLHF run's own inputs: the prompts, the PPO
// settings, the SFT model, and the head it picks (by content, so that an
// IRL edit that leaves this head as it was leaves this run too).
func (p *pipeline) irlRunKey(rule string) (string, error) {
	head, err := p.pickHead(rule)
	if err != nil {
		return "", err
	}
	c := p.cfg
	x := p.hasher("irl-rlhf run")
	p.prompts(x, "train.jsonl", "eval.jsonl")
	pc, _ := c.ppoConfig(c.IRLRLHFPPO)
	enc, _ := c.encoder()
	x.put(pc, c.Transform)
	x.model(c.SFTModel)
	x.model(enc)
	x.file(head)
	return x.sum()
}

// stageIRLRLHF fine-tunes the SFT model again, against a good and a poor
// recovered head, each run kept while its own inputs are unchanged.
func (p *pipeline) stageIRLRLHF() (string, error) {
	enc, err := p.model(p.cfg.encoder())
	if err != nil {
		return "", err
	}
	var msg []string
	for _, kind := range p.irlRuns() {
		head, err := p.pickHead(kind.rule)
		if err != nil {
			return "", err
		}
		key, err := p.irlRunKey(kind.rule)
		if err != nil {
			return "", err
		}
		var res *ppo.Result
		reused, err := p.part(filepath.Join(p.dir("irl-rlhf"), kind.name), key, func(resume bool) error {
			src, err := p.irlReward(head, enc)
			if err != nil {
				return err
			}
			defer src.Close()
			pc, err := p.cfg.ppoConfig(p.cfg.IRLRLHFPPO)
			if err != nil {
				return err
			}
			res, err = p.runPPO(filepath.Join(p.dir("irl-rlhf"), kind.name), src, pc, resume, "irl-rlhf")
			return err
		})
		if err != nil {
			return "", fmt.Errorf("%s head: %w", kind.name, err)
		}
		name, _ := filepath.Rel(p.dir("irl"), head)
		if reused {
			msg = append(msg, fmt.Sprintf("%s head %s: unchanged, reused", kind.name, name))
			continue
		}
		msg = append(msg, fmt.Sprintf("%s head %s: %d steps, reward %.4f → %.4f", kind.name, name, res.Steps, res.FirstReward, res.LastReward))
	}
	return strings.Join(msg, "; "), nil
}

// irlReward is IRL-RLHF's reward from a head on the encoder enc. With
// transform relative-rf2 (the default) it is the official reward_fn of
// train_rlhf_irl_rm.py: rf2(head(p + gen + EOS)) − rf2(head(p + orig +
// EOS)), each batch (each scoring call: a rollout chunk) transformed by
// itself. The head reads the last hidden state at that appended EOS, the
// text of the encoder's tokenizer's EOS token ("<|endoftext|>" for
// Pythia), as the official RewardModel reads hidden_states[-1][:, -1, :];
// the features the head was trained on have no EOS, as in the official IRL.
// Truncation keeps the last tokens (truncation_side "left"), so the EOS
// stays.
func (p *pipeline) irlReward(head, enc string) (reward.Source, error) {
	if p.cfg.Transform != TransformRelativeRF2 {
		return reward.Parse("head:"+head, reward.Options{RewardModel: enc, Transform: p.cfg.Transform, Session: p.opt.Session})
	}
	tok, err := tokenizer.Load(tokenizer.DefaultPath(enc, ""))
	if err != nil {
		return nil, err
	}
	id, ok := tok.EOS()
	if !ok {
		return nil, fmt.Errorf("transform %s appends the encoder's EOS, but %s's tokenizer has none", TransformRelativeRF2, enc)
	}
	src, err := reward.Parse("head:"+head, reward.Options{RewardModel: enc, Session: p.opt.Session, Truncate: rows.TruncateLeft})
	if err != nil {
		return nil, err
	}
	return reward.NewRelativeRF2(src, "original_output", tok.Decode([]int64{int64(id)})), nil
}

// policyRun is one of the policies the toxicity stage compares (Table 2's
// rows).
type policyRun struct{ name, dir string }

// policies are Table 2's rows.
func (p *pipeline) policies() ([]policyRun, error) {
	sft, err := p.model(p.cfg.SFTModel, "sft")
	if err != nil {
		return nil, err
	}
	out := []policyRun{{"sft", sft}, {"rlhf", filepath.Join(p.dir("rlhf"), "run", "final")}}
	for _, r := range p.irlRuns() {
		out = append(out, policyRun{"irl-rlhf-" + r.name, filepath.Join(p.dir("irl-rlhf"), r.name, "final")})
	}
	return out, nil
}

// policyKey hashes what made a policy: the SFT model, the rlhf stage's
// inputs, or one IRL-RLHF run's.
func (p *pipeline) policyKey(name string) (string, error) {
	switch name {
	case "sft":
		x := p.hasher("sft")
		x.model(p.cfg.SFTModel)
		return x.sum()
	case "rlhf":
		return p.hashes["rlhf"], nil
	}
	for _, r := range p.irlRuns() {
		if name == "irl-rlhf-"+r.name {
			return p.irlRunKey(r.rule)
		}
	}
	return "", fmt.Errorf("no policy %q", name)
}

// evalJob is one protocol's evaluation of a policy.
type evalJob struct {
	proto toxeval.Protocol
	path  string
	opt   toxeval.PromptOptions
	max   int
}

// evalJobs are the protocols: the official code's on the held-out Jigsaw
// prompts, and RealToxicityPrompts' on its prompts when rtp is set.
func (p *pipeline) evalJobs() []evalJob {
	jobs := []evalJob{{toxeval.Paper(), filepath.Join(p.dir("prompts"), "eval.jsonl"), toxeval.PromptOptions{Field: "prompt"}, p.cfg.MaxPrompts}}
	if p.cfg.RTP != "" {
		jobs = append(jobs, evalJob{toxeval.RTP(), p.cfg.resolve(p.cfg.RTP), toxeval.PromptOptions{Field: toxeval.DefaultRTPPromptField, ChallengingOnly: p.cfg.RTPChallenging}, p.cfg.RTPMaxPrompts})
	}
	return jobs
}

// evalKey hashes one evaluation's own inputs: the policy's, the protocol,
// its prompts, the scorer and the seeds.
func (p *pipeline) evalKey(pol policyRun, j evalJob) (string, error) {
	key, err := p.policyKey(pol.name)
	if err != nil {
		return "", err
	}
	c := p.cfg
	x := p.hasher("evaluation")
	x.put(key, j.proto, j.opt, j.max, c.Seeds, c.EvalBatch, c.ScorerLabel)
	x.file(j.path)
	x.spec(c.Scorer)
	return x.sum()
}

// stageToxicity measures every policy under every protocol; an evaluation
// whose own inputs are unchanged is kept.
func (p *pipeline) stageToxicity() (string, error) {
	pols, err := p.policies()
	if err != nil {
		return "", err
	}
	jobs := p.evalJobs()
	var names []string
	for _, pol := range pols {
		for _, j := range jobs {
			names = append(names, pol.name+"-"+j.proto.Name)
		}
	}
	if err := p.prune("toxicity", names); err != nil {
		return "", err
	}
	// The scorer and each policy's generator open when an evaluation first
	// needs them.
	var scorer toxeval.Scorer
	defer func() {
		if s, ok := scorer.(toxeval.SourceScorer); ok {
			s.Src.Close()
		}
	}()
	n, reused := 0, 0
	for _, pol := range pols {
		var g *policy.Generator
		var mod *neox.Model
		var tok *tokenizer.Tokenizer
		for _, j := range jobs {
			key, err := p.evalKey(pol, j)
			if err != nil {
				return "", err
			}
			dir := filepath.Join(p.dir("toxicity"), pol.name+"-"+j.proto.Name)
			kept, err := p.part(dir, key, func(bool) error {
				if scorer == nil {
					so := reward.Options{Label: p.cfg.ScorerLabel, Session: p.opt.Session, Noise: reward.NoNoise}
					src, err := reward.Parse(p.cfg.resolveSpec(p.cfg.Scorer), so)
					if err != nil {
						return err
					}
					scorer = toxeval.SourceScorer{Src: src, Prob: strings.HasPrefix(p.cfg.Scorer, "classifier:")}
				}
				if g == nil {
					var err error
					if mod, err = neox.Load(pol.dir); err != nil {
						return err
					}
					if tok, err = tokenizer.Load(tokenizer.DefaultPath(pol.dir, "")); err != nil {
						return err
					}
					if g, err = policy.NewGenerator(mod, p.opt.Session); err != nil {
						return err
					}
				}
				return p.evaluate(g, mod, tok, scorer, j, dir, "toxicity "+pol.name+" "+j.proto.Name)
			})
			if err != nil {
				if g != nil {
					g.Destroy()
				}
				return "", fmt.Errorf("%s, %s protocol: %w", pol.name, j.proto.Name, err)
			}
			n++
			if kept {
				reused++
			}
		}
		if g != nil {
			g.Destroy()
		}
	}
	return fmt.Sprintf("%d policies × %d protocols, %d evaluated, %d unchanged and reused", len(pols), len(jobs), n-reused, reused), nil
}

// evaluate runs one evaluation into dir: summary.json and samples.jsonl.
func (p *pipeline) evaluate(g *policy.Generator, mod *neox.Model, tok *tokenizer.Tokenizer, scorer toxeval.Scorer, j evalJob, dir, label string) error {
	ps, bad, err := toxeval.ReadPrompts(j.path, j.opt)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return bad[0]
	}
	if j.max > 0 && len(ps) > j.max {
		ps = ps[:j.max]
	}
	if _, err := toxeval.EncodePrompts(tok, ps, j.proto.PromptLimit(mod.Config.MaxPositions), mod.Config.VocabSize); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var samples []toxeval.Sample
	sum, err := toxeval.Evaluate(g, tok, ps, scorer, j.proto, toxeval.Options{Seeds: p.cfg.Seeds, BatchSize: p.cfg.EvalBatch,
		Progress: p.bars(), Label: label, Context: p.opt.Context, Emit: func(s toxeval.Sample) error { samples = append(samples, s); return nil }})
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "summary.json"), sum); err != nil {
		return err
	}
	return writeJSONL(filepath.Join(dir, "samples.jsonl"), samples)
}
