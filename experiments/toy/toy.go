package toy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"irl/atomicfile"
	"irl/checkpoint"

	"irl/features"
	"irl/neox"
	"irl/onnx"
	"irl/optim"
	"irl/policy"
	"irl/ppo"
	"irl/reward"
	"irl/rewardhead"
	"irl/rewardhead/analysis"
	"irl/rows"
	"irl/sft"
	"irl/tokenizer"
)

// Config configures a demo run.
type Config struct {
	// Out is the report's folder. Seed 1's files lie at its top level
	// (heads/, eval/, plots/ …); further seeds' under seeds/seed-N/.
	Out string
	// Seeds repeats the whole run with seeds 1…Seeds and reports mean ± std.
	Seeds int
	// BaseModel starts SFT from a real checkpoint (a Hugging Face folder
	// with its tokenizer, such as pythia-70m) instead of a small model
	// trained from scratch on the demo's own vocabulary.
	BaseModel string
	// Quick runs a short version (fewer steps, coarser analyses) that shows
	// every stage works; its numbers are not the demo's.
	Quick bool
	// Pool and Layer choose the features the head sees; with Pool empty
	// the demo chooses among Variants on the training demonstrations alone
	// (see stageFeatures).
	Pool  neox.Pooling
	Layer int
	// Rollouts is how PPO samples its rollouts: RolloutsPaper (the
	// default) or RolloutsPlain; see the constants.
	Rollouts string
	// NoiseScale is the σ of the noise analyses (Figures 3 and 5):
	// NoiseAbsolute (the default, the paper's) or NoiseRelative.
	NoiseScale string
	// Overwrite lets the run replace an earlier report in Out.
	Overwrite bool
	Session   onnx.Options
	// Progress receives a line per stage and, unless Quiet, the progress
	// bars of the stages that train.
	Progress io.Writer
	Quiet    bool
	// Context, if set, stops the run when it is done: between stages, or
	// within the stages that train, generate or extract, at their next
	// safe point. Run then returns an error wrapping the context's; the
	// demo restarts its stages, so the next run needs Overwrite.
	Context context.Context
}

// The ways PPO can sample its rollouts (Config.Rollouts).
const (
	// RolloutsPaper samples at temperature 1.4 and top-p 0.95, as the paper
	// samples its toy model's generations (Appendix C, Tables 3 and 4).
	RolloutsPaper = "paper"
	// RolloutsPlain samples the policy as it is: temperature 1, no top-p
	// (TRLx's defaults).
	RolloutsPlain = "plain"
)

// The scales of σ in the noise analyses (Config.NoiseScale).
const (
	// NoiseAbsolute is σ in reward units, as the paper's Figures 3 and 5
	// add N(0, σ²) to the rewards.
	NoiseAbsolute = "absolute"
	// NoiseRelative is σ times the standard deviation of the clean scores.
	NoiseRelative = "relative"
)

// Stages names the demo's stages, in order.
var Stages = []string{"data", "sft", "baseline_generation", "rlhf", "rlhf_generation", "features", "irl", "evaluation", "analyses"}

// run is one seed's run.
type run struct {
	cfg   Config
	seed  uint64
	dir   string
	words *Words
	data  *Dataset
	tok   *tokenizer.Tokenizer
	// sft is the SFT model, opened once: the policy RLHF starts from
	// and the frozen encoder.
	sft *neox.Source
	// paths
	tokPath, toxicPath, nonToxicPath, sftModel, rlhfModel string
	lexicon                                               *reward.Lexicon
	toxic, nonToxic                                       map[string]bool
	baseline, rlhfGen                                     []generated
	// pool and layer are the feature choice (stageFeatures).
	pool  neox.Pooling
	layer int
	res   SeedResult
}

type generated struct {
	Prompt   string `json:"prompt"`
	Response string `json:"text"` // the CLI's default --text-field, so the files feed irl features as they are
	Class    string `json:"class"`
}

// SeedResult is what one seed's run measured.
type SeedResult struct {
	Seed     uint64             `json:"seed"`
	Table1   Table1             `json:"table1"`
	Table3   Counts             `json:"table3"`
	Table4   Counts             `json:"table4"`
	Seconds  map[string]float64 `json:"seconds"`
	Variants []Variant          `json:"variants"`
	// Pool and Layer are the feature choice the head used.
	Pool  string `json:"pool"`
	Layer int    `json:"layer"`
	// TauCeiling is Kendall's τ-b between the lexicon's noiseless values
	// and the noisy ground truth on the 500 samples (TauCeiling).
	TauCeiling float64 `json:"tau_ceiling"`
	// TauSeparator is the τ-b a score with no ties can expect when it
	// separates the classes perfectly but cannot see the noise (TauSeparator).
	TauSeparator float64 `json:"tau_separator"`
	// Background is the number of background-corpus sentences the model
	// trained on before SFT (0 with Config.BaseModel).
	Background int `json:"background"`
	// RLHF's held-out lexicon reward before and after.
	RewardBefore, RewardAfter float64
	// AUC and more from the evaluation, for the report.
	Report *rewardhead.Report `json:"-"`
}

// Table1 is the paper's Table 1 for the recovered reward.
type Table1 struct {
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	KendallTau float64 `json:"kendall_tau"`
	Separation float64 `json:"separation"`
	Threshold  float64 `json:"threshold"`
}

// Run runs the demo for every seed and writes the report.
func Run(cfg Config) (*Result, error) {
	if cfg.Seeds <= 0 {
		cfg.Seeds = 1
	}
	if cfg.Pool != "" {
		if _, err := neox.ParsePooling(string(cfg.Pool)); err != nil {
			return nil, err
		}
	}
	switch cfg.Rollouts {
	case "":
		cfg.Rollouts = RolloutsPaper
	case RolloutsPaper, RolloutsPlain:
	default:
		return nil, fmt.Errorf("toy: rollouts %q: want %q or %q", cfg.Rollouts, RolloutsPaper, RolloutsPlain)
	}
	switch cfg.NoiseScale {
	case "":
		cfg.NoiseScale = NoiseAbsolute
	case NoiseAbsolute, NoiseRelative:
	default:
		return nil, fmt.Errorf("toy: noise scale %q: want %q or %q", cfg.NoiseScale, NoiseAbsolute, NoiseRelative)
	}
	// Only the parent and the kind of Out here: its contents are judged
	// under the lock, which lives in Out.
	if err := atomicfile.CheckDir(cfg.Out, true); err != nil {
		return nil, err
	}
	lock, err := atomicfile.LockDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("toy: %w", err)
	}
	defer lock.Release()
	if err := atomicfile.CheckDir(cfg.Out, cfg.Overwrite); err != nil {
		return nil, err
	}
	if cfg.Overwrite {
		if err := atomicfile.ClearDir(cfg.Out); err != nil {
			return nil, err
		}
	}
	words, err := LoadWords()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{}
	for s := 1; s <= cfg.Seeds; s++ {
		dir := cfg.Out
		if s > 1 {
			dir = filepath.Join(cfg.Out, "seeds", fmt.Sprintf("seed-%d", s))
		}
		r := &run{cfg: cfg, seed: uint64(s), dir: dir, words: words, res: SeedResult{Seed: uint64(s), Seconds: map[string]float64{}}}
		if err := r.all(); err != nil {
			return nil, fmt.Errorf("toy: seed %d: %w", s, err)
		}
		res.Seeds = append(res.Seeds, r.res)
	}
	res.Seconds = time.Since(start).Seconds()
	if err := res.write(cfg); err != nil {
		return nil, err
	}
	return res, nil
}

// bars is where the progress bars go: nil when quiet.
func (r *run) bars() io.Writer {
	if r.cfg.Quiet {
		return nil
	}
	return r.cfg.Progress
}

func (r *run) logf(format string, a ...any) {
	if r.cfg.Progress != nil {
		prefix := "toy"
		if r.cfg.Seeds > 1 {
			prefix = fmt.Sprintf("toy seed %d", r.seed)
		}
		fmt.Fprintf(r.cfg.Progress, "[%s] %s\n", prefix, fmt.Sprintf(format, a...))
	}
}

func (r *run) all() error {
	steps := []struct {
		name string
		fn   func() (string, error)
	}{
		{"data", r.stageData}, {"sft", r.stageSFT}, {"baseline_generation", r.stageBaseline},
		{"rlhf", r.stageRLHF}, {"rlhf_generation", r.stageRLHFGeneration}, {"features", r.stageFeatures},
		{"irl", r.stageIRL}, {"evaluation", r.stageEvaluation}, {"analyses", r.stageAnalyses},
	}
	for i, st := range steps {
		t0 := time.Now()
		r.logf("stage %d/%d %s …", i+1, len(steps), st.name)
		if r.cfg.Context != nil && r.cfg.Context.Err() != nil {
			return interrupted(st.name, r.cfg.Context.Err())
		}
		msg, err := st.fn()
		if err != nil && errors.Is(err, context.Canceled) {
			return interrupted(st.name, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		r.res.Seconds[st.name] = time.Since(t0).Seconds()
		r.logf("stage %d/%d %s done in %.1fs: %s", i+1, len(steps), st.name, r.res.Seconds[st.name], msg)
	}
	return nil
}

// interrupted says where the run stopped and how to go on: the demo does
// not resume its stages, so it starts again.
func interrupted(stage string, err error) error {
	return checkpoint.StageInterrupted(fmt.Sprintf("interrupted in stage %s; the demo starts over: rerun the same command with --overwrite", stage), err)
}

func (r *run) path(parts ...string) string {
	return filepath.Join(append([]string{r.dir}, parts...)...)
}

// stageData writes the dataset, the lexicon and the tokenizer.
func (r *run) stageData() (string, error) {
	if err := os.MkdirAll(r.path("data"), 0o755); err != nil {
		return "", err
	}
	w := r.words
	r.data = BuildDataset(w.Entities, w.Good, w.Bad, r.seed)
	var b []byte
	for _, s := range r.data.Samples {
		j, _ := json.Marshal(s)
		b = append(append(b, j...), '\n')
	}
	if err := atomicfile.WriteBytes(r.path("data", "dataset.jsonl"), b); err != nil {
		return "", err
	}
	// The prompts, one a line, for `irl audit --prompts` (make demo ends
	// with an audit of the demo's own RLHF model).
	b = b[:0]
	for _, e := range w.Entities {
		j, _ := json.Marshal(map[string]string{"prompt": Prompt(e)})
		b = append(append(b, j...), '\n')
	}
	if err := atomicfile.WriteBytes(r.path("data", "prompts.jsonl"), b); err != nil {
		return "", err
	}
	var err error
	if r.toxicPath, r.nonToxicPath, err = w.WriteLexicon(r.path("data")); err != nil {
		return "", err
	}
	if r.lexicon, err = reward.LoadLexicon(r.toxicPath, r.nonToxicPath, reward.DefaultNoise, r.seed); err != nil {
		return "", err
	}
	r.toxic, r.nonToxic = set(w.Bad, w.BadOOD), set(w.Good, w.GoodOOD)
	if r.cfg.BaseModel != "" {
		r.tokPath = tokenizer.DefaultPath(r.cfg.BaseModel, "")
	} else {
		tj, err := tokenizer.BuildWordBPE(w.All())
		if err != nil {
			return "", err
		}
		r.tokPath = r.path("data", "tokenizer.json")
		if err := atomicfile.WriteBytes(r.tokPath, tj); err != nil {
			return "", err
		}
	}
	if r.tok, err = tokenizer.Load(r.tokPath); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d samples from %d prompts, vocabulary of %d", len(r.data.Samples), len(w.Entities), r.tok.VocabSize()), nil
}

// encode turns the demo's texts into ids by the rule every command uses
// (rows.Encode): a prompt and its text tokenized apart and joined, and the
// id eos after the text unless it is negative.
func (r *run) encode(rs []rows.Row, eos int64) []rows.Encoded {
	for i := range rs {
		rs[i].Index, rs[i].Line = i, i+1
	}
	enc, bad := rows.Encode("the demo's texts", rs, rows.EncodeOptions{Tokenizer: r.tok, AppendEOS: eos >= 0, EOS: eos})
	if len(bad) > 0 {
		// The demo's own words, all in its vocabulary: never a bad row.
		panic(fmt.Sprintf("toy: %v", bad[0]))
	}
	return enc
}

// texts encodes texts with no prompt and no EOS.
func (r *run) texts(ts ...string) [][]int64 {
	rs := make([]rows.Row, len(ts))
	for i, t := range ts {
		rs[i].Text = t
	}
	var out [][]int64
	for _, e := range r.encode(rs, -1) {
		out = append(out, e.IDs)
	}
	return out
}

// stageSFT fine-tunes the starting model on the dataset's sentences: the
// loss covers each adjective, its period and EOS after the prompt.
func (r *run) stageSFT() (string, error) {
	var m *neox.Model
	var err error
	// The starting model's fingerprint goes into every checkpoint; a
	// model made here has no folder, and sft fingerprints it in memory.
	fp := ""
	if r.cfg.BaseModel != "" {
		base, err := neox.Open(r.cfg.BaseModel)
		if err != nil {
			return "", err
		}
		if m, err = base.Load(); err != nil {
			return "", err
		}
		fp = base.Fingerprint
	} else {
		eos, _ := r.tok.EOS()
		m, err = neox.Init(neox.Config{VocabSize: r.tok.VocabSize(), HiddenSize: 64, NumLayers: 2, NumHeads: 4,
			IntermediateSize: 256, MaxPositions: 32, RotaryPct: 0.25, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
			ParallelResidual: true, InitializerRange: 0.02, EOSTokenID: eos, BOSTokenID: eos}, r.seed)
		if err != nil {
			return "", err
		}
	}
	eos := int64(m.Config.EOSTokenID)
	msg := ""
	if r.cfg.BaseModel == "" {
		// A model trained from scratch knows nothing of what its words mean:
		// toxic and non-toxic adjectives appear in the dataset in the same
		// places, so nothing would set them apart in its hidden states, and
		// a linear reward on them would have nothing to find. Pythia learned
		// such things from the Pile. The stand-in is a background corpus in
		// which adjectives keep company with their own kind ("The cat is
		// kind and gentle."), every adjective included, the out-of-
		// distribution ones too: they are unseen by the dataset, not by the
		// encoder, as in the paper.
		bg := r.background()
		r.res.Background = len(bg)
		bres, err := sft.Run(m, bg, sft.Config{Out: r.path("pretrain"), Epochs: 10, BatchSize: 64,
			Schedule: optim.ScheduleConfig{Kind: "cosine", Peak: 3e-3, Min: 3e-4, Warmup: 10},
			AdamW:    optim.AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01}, MaxGradNorm: 1,
			Seed: r.seed, EvalFraction: 0.05, UnfrozenLayers: -1, Session: r.cfg.Session, SaveTotalLimit: 1, Progress: r.bars(), Context: r.cfg.Context})
		if err != nil {
			return "", err
		}
		msg = fmt.Sprintf("background corpus of %d sentences, loss %.3f → %.3f; then ", len(bg), bres.FirstLoss, bres.LastLoss)
	}
	var rs []rows.Row
	for _, s := range r.data.Samples {
		rs = append(rs, rows.Row{Prompt: s.Prompt, Text: s.Response})
	}
	var ex []sft.Example
	for _, e := range r.encode(rs, eos) {
		ex = append(ex, sft.Example{IDs: e.IDs, Prompt: e.Prompt})
	}
	epochs, lr := 24, 3e-3
	if r.cfg.BaseModel != "" {
		epochs, lr = 4, 5e-5
	}
	if r.cfg.Quick {
		epochs = 6
	}
	res, err := sft.Run(m, ex, sft.Config{Out: r.path("sft"), Epochs: epochs, BatchSize: 32,
		Schedule: optim.ScheduleConfig{Kind: "cosine", Peak: lr, Min: lr / 10, Warmup: 10},
		AdamW:    optim.AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01}, MaxGradNorm: 1,
		Seed: r.seed, EvalFraction: 0.1, UnfrozenLayers: -1, Session: r.cfg.Session, SaveTotalLimit: 1, Progress: r.bars(), Context: r.cfg.Context,
		Extra: map[string]string{"tokenizer.json": r.tokPath}, ModelFingerprint: fp})
	if err != nil {
		return "", err
	}
	r.sftModel = res.Dir
	if r.sft, err = neox.Open(res.Dir); err != nil {
		return "", err
	}
	return msg + fmt.Sprintf("SFT %d steps, loss %.3f → %.3f, held-out loss %.3f", res.Steps, res.FirstLoss, res.LastLoss, res.EvalLoss), nil
}

// backgroundPerEntity is the background corpus's sentences per entity,
// alternating the classes. 16 (it was 8 with lists of 26 + 26 adjectives):
// with the paper's 50 non-toxic adjectives each still appears in about 70
// sentences.
const backgroundPerEntity = 16

// background is the background corpus: for every entity, sentences pairing
// two adjectives of one class ("The cat is kind and gentle."), drawn with
// the seed from every adjective the demo knows.
func (r *run) background() []sft.Example {
	w := r.words
	rng := rand.New(rand.NewPCG(r.seed, 0xb6))
	good, bad := append(append([]string(nil), w.Good...), w.GoodOOD...), append(append([]string(nil), w.Bad...), w.BadOOD...)
	var rs []rows.Row
	for _, e := range w.Entities {
		for k := 0; k < backgroundPerEntity; k++ {
			class := good
			if k%2 == 1 {
				class = bad
			}
			a, b := class[rng.IntN(len(class))], class[rng.IntN(len(class))]
			rs = append(rs, rows.Row{Text: "The " + e + " is " + a + " and " + b + "."})
		}
	}
	eos, _ := r.tok.EOS()
	var ex []sft.Example
	for _, e := range r.encode(rs, int64(eos)) {
		ex = append(ex, sft.Example{IDs: e.IDs})
	}
	return ex
}

// generate samples 2 continuations per prompt at top-p 0.95, temperature
// 1.4, as the paper's Table 3 and 4 generations.
func (r *run) generate(model, name string) ([]generated, Counts, error) {
	m, err := neox.Load(model)
	if err != nil {
		return nil, Counts{}, err
	}
	g, err := policy.NewGenerator(m, r.cfg.Session)
	if err != nil {
		return nil, Counts{}, err
	}
	defer g.Destroy()
	var prompts [][]int64
	for _, e := range r.words.Entities {
		prompts = append(prompts, r.texts(Prompt(e))[0])
	}
	maxNew := 4
	if r.cfg.BaseModel != "" {
		maxNew = 8
	}
	gens, err := g.Generate(prompts, policy.GenerateOptions{MaxNewTokens: maxNew, NumReturnSequences: 2, BatchSize: 128, Context: r.cfg.Context,
		Sampling: policy.SampleOptions{Temperature: 1.4, TopP: 0.95}, Seed: r.seed*1000 + uint64(len(name))})
	if err != nil {
		return nil, Counts{}, err
	}
	out := make([]generated, len(gens))
	var responses []string
	eos := int64(m.Config.EOSTokenID)
	for i, gen := range gens {
		ids := gen.IDs
		if gen.EOS && len(ids) > 0 && ids[len(ids)-1] == eos {
			ids = ids[:len(ids)-1]
		}
		resp := strings.ToValidUTF8(r.tok.Decode(ids), "\uFFFD")
		out[i] = generated{Prompt: Prompt(r.words.Entities[gen.Prompt]), Response: resp, Class: Classify(Adjective(resp), r.toxic, r.nonToxic)}
		responses = append(responses, resp)
	}
	var b []byte
	for _, x := range out {
		j, _ := json.Marshal(x)
		b = append(append(b, j...), '\n')
	}
	if err := os.MkdirAll(r.path("generations"), 0o755); err != nil {
		return nil, Counts{}, err
	}
	if err := atomicfile.WriteBytes(r.path("generations", name+".jsonl"), b); err != nil {
		return nil, Counts{}, err
	}
	return out, Count(responses, r.toxic, r.nonToxic), nil
}

func (r *run) stageBaseline() (string, error) {
	var err error
	r.baseline, r.res.Table3, err = r.generate(r.sftModel, "baseline")
	return "Table 3: " + r.res.Table3.String(), err
}

// stageRLHF runs PPO against the lexicon reward with the paper's entropy
// bonus, on an 80/20 split of the prompts, its rollouts sampled as the paper
// samples (temperature 1.4, top-p 0.95: Appendix C) unless Config.Rollouts
// is RolloutsPlain. The rest (rates, steps, β) is sized for a model trained
// from scratch; README's Deviations table lists it.
func (r *run) stageRLHF() (string, error) {
	m, err := r.sft.Load()
	if err != nil {
		return "", err
	}
	var ps []ppo.Prompt
	for i, e := range r.words.Entities {
		ps = append(ps, ppo.Prompt{IDs: r.texts(Prompt(e))[0], Text: Prompt(e), Row: i})
	}
	c := ppo.Defaults()
	c.NumRollouts, c.ChunkSize, c.BatchSize, c.PPOEpochs = 64, 32, 32, 4
	c.MaxNewTokens, c.SeqLength, c.TopK = 4, 12, 0
	c.TopP, c.Temperature = 0.95, 1.4 // the paper's sampling (Appendix C)
	if r.cfg.Rollouts == RolloutsPlain {
		c.TopP, c.Temperature = 1, 1
	}
	c.LR, c.MinLR, c.Betas, c.WeightDecay = 1e-3, 1e-4, [2]float64{0.9, 0.95}, 0
	c.InitKLCoef, c.Target = 0.02, 0
	c.EntCoef, c.UnfrozenLayers = 0.005, -1
	c.TotalSteps, c.EvalInterval, c.CheckpointInterval = 384, 48, 96
	c.Seed = r.seed
	if r.cfg.BaseModel != "" {
		c.MaxNewTokens, c.SeqLength, c.LR, c.MinLR, c.UnfrozenLayers = 8, 24, 1e-5, 1e-5, 4
	}
	if r.cfg.Quick {
		c.TotalSteps, c.EvalInterval, c.CheckpointInterval = 16, 8, 16
	}
	train, eval := ppo.SplitPrompts(ps, 0.2, r.seed)
	res, err := ppo.Run(m, r.tok, train, eval, r.lexicon, c, ppo.Options{Out: r.path("rlhf"), TokenizerPath: r.tokPath, Session: r.cfg.Session, Progress: r.bars(), Label: "rlhf", Context: r.cfg.Context,
		ModelFingerprint: r.sft.Fingerprint})
	if err != nil {
		return "", err
	}
	r.rlhfModel = res.Final
	r.res.RewardBefore, r.res.RewardAfter = res.FirstReward, res.LastReward
	return fmt.Sprintf("%d PPO steps, held-out reward/mean %.3f → %.3f", res.Steps, res.FirstReward, res.LastReward), nil
}

func (r *run) stageRLHFGeneration() (string, error) {
	var err error
	r.rlhfGen, r.res.Table4, err = r.generate(r.rlhfModel, "rlhf")
	return "Table 4: " + r.res.Table4.String(), err
}

// pipeline opens the frozen encoder (the SFT model) at a feature choice.
func (r *run) pipeline(pool neox.Pooling, layer int) (*features.Pipeline, error) {
	return features.NewPipeline(features.PipelineOptions{Model: r.sft, Tokenizer: r.tokPath, Layer: layer, Pool: pool,
		BatchSize: 64, Session: r.cfg.Session, Context: r.cfg.Context})
}

// featuresOf extracts features of prompt + response texts.
func featuresOf(p *features.Pipeline, name string, prompts, responses []string) (*rewardhead.Features, error) {
	rs := make([]rows.Row, len(prompts))
	for i := range rs {
		rs[i] = rows.Row{Index: i, Line: i + 1, Prompt: prompts[i], Text: responses[i]}
	}
	enc, err := p.Encode(name, rs, &rows.Bad{})
	if err != nil {
		return nil, err
	}
	f, _, err := p.Features(name, enc, 0)
	return f, err
}

// demonstrations are IRL's two classes: the RLHF model's non-toxic outputs
// (expert) and the SFT model's toxic ones (baseline).
func (r *run) demonstrations() (ep, er, bp, br []string, err error) {
	for _, g := range r.rlhfGen {
		if g.Class == "non-toxic" {
			ep, er = append(ep, g.Prompt), append(er, g.Response)
		}
	}
	for _, g := range r.baseline {
		if g.Class == "toxic" {
			bp, br = append(bp, g.Prompt), append(br, g.Response)
		}
	}
	if len(ep) == 0 || len(bp) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("no demonstrations: %d non-toxic RLHF outputs, %d toxic SFT outputs", len(ep), len(bp))
	}
	return ep, er, bp, br, nil
}

// evalSet is the dataset's 500 samples as features with their lexicon
// ground truth: pos the non-toxic samples, neg the toxic ones.
type evalSet struct {
	pos, neg     *rewardhead.Features
	gtPos, gtNeg []float64
	// basePos and baseNeg are the lexicon's values without its noise
	// (Algorithm 2's ±0.5): what a word-level reward can know.
	basePos, baseNeg []float64
}

func (r *run) evalSet(p *features.Pipeline, samples []Sample, name string) (*evalSet, error) {
	var pp, pr, np, nr []string
	var gp, gn, bp, bn []float64
	for i, s := range samples {
		g, err := r.lexicon.Score([]reward.Sample{{Prompt: s.Prompt, Response: s.Response, Key: uint64(i)}})
		if err != nil {
			return nil, err
		}
		b := r.lexicon.Base(s.Response)
		if s.Toxic {
			np, nr, gn, bn = append(np, s.Prompt), append(nr, s.Response), append(gn, g[0]), append(bn, b)
		} else {
			pp, pr, gp, bp = append(pp, s.Prompt), append(pr, s.Response), append(gp, g[0]), append(bp, b)
		}
	}
	e := &evalSet{gtPos: gp, gtNeg: gn, basePos: bp, baseNeg: bn}
	var err error
	if e.pos, err = featuresOf(p, name+"/pos", pp, pr); err != nil {
		return nil, err
	}
	if e.neg, err = featuresOf(p, name+"/neg", np, nr); err != nil {
		return nil, err
	}
	return e, nil
}

// trainConfig is the head's training: the asymmetric loss, 60 epochs of
// 50 + 50 rows, every epoch's head kept.
func (r *run) trainConfig() rewardhead.TrainConfig {
	tc := rewardhead.DefaultTrainConfig()
	tc.Seed = r.seed
	if r.cfg.Quick {
		tc.Epochs = 20
	}
	return tc
}

var zero = rewardhead.Threshold{Rule: "value", Value: 0}

func (r *run) stageIRL() (string, error) {
	ep, er, bp, br, err := r.demonstrations()
	if err != nil {
		return "", err
	}
	p, err := r.pipeline(r.pool, r.layer)
	if err != nil {
		return "", err
	}
	defer p.Destroy()
	pos, err := featuresOf(p, "expert", ep, er)
	if err != nil {
		return "", err
	}
	neg, err := featuresOf(p, "baseline", bp, br)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(r.path("features"), 0o755); err != nil {
		return "", err
	}
	if err := pos.Write(r.path("features", "expert.safetensors")); err != nil {
		return "", err
	}
	if err := neg.Write(r.path("features", "baseline.safetensors")); err != nil {
		return "", err
	}
	res, err := rewardhead.TrainToDir(pos, neg, r.trainConfig(), r.path("heads"), true)
	if err != nil {
		return "", err
	}
	last := res.Stats[len(res.Stats)-1]
	return fmt.Sprintf("%d expert and %d baseline demonstrations, %d epochs, monitor pair accuracy %.3f", pos.N, neg.N, len(res.Heads), last.PairAccuracy), nil
}

func (r *run) stageEvaluation() (string, error) {
	p, err := r.pipeline(r.pool, r.layer)
	if err != nil {
		return "", err
	}
	defer p.Destroy()
	e, err := r.evalSet(p, r.data.Samples, "dataset")
	if err != nil {
		return "", err
	}
	h, err := rewardhead.ReadHead(r.path("heads", "head.json"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(r.path("eval"), 0o755); err != nil {
		return "", err
	}
	e.pos.Path, e.neg.Path = r.path("eval", "pos.safetensors"), r.path("eval", "neg.safetensors")
	for _, w := range []struct {
		f  *rewardhead.Features
		gt []float64
		gp string
	}{{e.pos, e.gtPos, "gt-pos.safetensors"}, {e.neg, e.gtNeg, "gt-neg.safetensors"}} {
		if err := w.f.Write(w.f.Path); err != nil {
			return "", err
		}
		if err := rewardhead.WriteRewards(r.path("eval", w.gp), w.gt, w.f.Rows, map[string]string{"reward": "lexicon (Algorithm 2)", "convention": "higher is less toxic"}); err != nil {
			return "", err
		}
	}
	sp, sn := h.Score(e.pos), h.Score(e.neg)
	rep := rewardhead.Evaluate(sp, sn, e.gtPos, e.gtNeg, zero)
	r.res.Report = rep
	r.res.Table1 = Table1{Precision: rep.Precision.X, Recall: rep.Recall.X, Separation: rep.Separation.X, Threshold: rep.Threshold}
	if rep.KendallTau != nil {
		r.res.Table1.KendallTau = rep.KendallTau.X
	}
	r.res.TauCeiling = TauCeiling(e.basePos, e.baseNeg, e.gtPos, e.gtNeg)
	r.res.TauSeparator = TauSeparator(len(e.gtPos), len(e.gtNeg))
	if err := analysis.WriteJSON(r.path("eval", "metrics.json"), rep); err != nil {
		return "", err
	}
	if _, err := analysis.EvalPlots(r.path("plots"), rep, sp, sn, e.gtPos, e.gtNeg); err != nil {
		return "", err
	}
	t := r.res.Table1
	return fmt.Sprintf("Table 1: precision %.3f, recall %.3f, Kendall τ %.3f, separation %.3f at threshold %g", t.Precision, t.Recall, t.KendallTau, t.Separation, t.Threshold), nil
}

// TauCeiling is the Kendall τ-b between Algorithm 2's noiseless values
// (±0.5 by class) and the ground truth, which adds uniform noise in
// [−0.2, 0.2] to each sample: the τ of the exact word-level reward. The noise
// is drawn per sample and is in no feature, so it bounds what a head can
// reach: within a class the ground truth's order is the noise's, which no
// head can predict, and τ-b counts those pairs as ties broken at random at
// best.
func TauCeiling(basePos, baseNeg, gtPos, gtNeg []float64) float64 {
	base := append(append([]float64(nil), basePos...), baseNeg...)
	gt := append(append([]float64(nil), gtPos...), gtNeg...)
	return val(rewardhead.KendallTauB(base, gt))
}

// TauSeparator is the expected Kendall τ-b of a score without ties that
// ranks every non-toxic sample above every toxic one but orders each class
// at random (the noise is in no feature): the between-class pairs, all
// concordant, over all pairs (the ground truth has no ties).
func TauSeparator(nPos, nNeg int) float64 {
	n := float64(nPos + nNeg)
	return float64(nPos) * float64(nNeg) / (n * (n - 1) / 2)
}

// oodSamples pairs every prompt with an adjective the training set never
// showed, one of each class.
func (r *run) oodSamples() []Sample {
	w := r.words
	var out []Sample
	for i, e := range w.Entities {
		g, b := w.GoodOOD[i%len(w.GoodOOD)], w.BadOOD[(i/len(w.GoodOOD))%len(w.BadOOD)]
		out = append(out, Sample{Prompt: Prompt(e), Response: " " + b + ".", Adjective: b, Toxic: true},
			Sample{Prompt: Prompt(e), Response: " " + g + ".", Adjective: g})
	}
	return out
}

func (r *run) stageAnalyses() (string, error) {
	p, err := r.pipeline(r.pool, r.layer)
	if err != nil {
		return "", err
	}
	defer p.Destroy()
	id, err := r.evalSet(p, r.data.Samples, "dataset")
	if err != nil {
		return "", err
	}
	ood, err := r.evalSet(p, r.oodSamples(), "ood")
	if err != nil {
		return "", err
	}
	h, err := rewardhead.ReadHead(r.path("heads", "head.json"))
	if err != nil {
		return "", err
	}
	expert, baseline, err := rewardhead.LoadPair(r.path("features", "expert.safetensors"), r.path("features", "baseline.safetensors"))
	if err != nil {
		return "", err
	}
	sigmas, _ := analysis.ParseGrid("0:0.1:1")
	fractions, _ := analysis.ParseGrid("0.1:0.1:1")
	repeats, noiseRepeats := 3, 10
	if r.cfg.Quick {
		sigmas, fractions, repeats, noiseRepeats = []float64{0, 0.5, 1}, []float64{0.25, 0.5, 1}, 1, 3
	}
	var notes []string
	// Figure 2: data ratios, both directions.
	ratio, err := analysis.DataRatio(expert, baseline, id.pos, id.neg, id.gtPos, id.gtNeg,
		analysis.RatioConfig{Fractions: fractions, Repeats: repeats, Train: r.trainConfig(), Threshold: zero})
	if err != nil {
		return "", err
	}
	if err := writeResult(r.path("analyses", "ratio"), "ratio.json", ratio, func(d string) error { _, err := ratio.Plot(d); return err }); err != nil {
		return "", err
	}
	// Figures 3 and 5: noise on the scores, in and out of distribution.
	for _, set := range []struct {
		name, data string
		e          *evalSet
	}{{"noise", "in distribution (the dataset's adjectives)", id}, {"noise-ood", "out of distribution (unseen adjectives)", ood}} {
		nr, err := analysis.ScoreNoise(h.Score(set.e.pos), h.Score(set.e.neg), set.e.gtPos, set.e.gtNeg,
			analysis.NoiseConfig{Sigmas: sigmas, Repeats: noiseRepeats, Seed: r.seed, Relative: r.cfg.NoiseScale == NoiseRelative, Threshold: zero})
		if err != nil {
			return "", err
		}
		nr.Data = set.data
		dir := r.path("analyses", set.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if _, err := nr.Plot(dir); err != nil {
			return "", err
		}
		if err := analysis.WriteJSON(filepath.Join(dir, "noise.json"), nr); err != nil {
			return "", err
		}
	}
	oodRep := rewardhead.Evaluate(h.Score(ood.pos), h.Score(ood.neg), ood.gtPos, ood.gtNeg, zero)
	notes = append(notes, fmt.Sprintf("out-of-distribution separation %.3f", oodRep.Separation.X))
	if err := analysis.WriteJSON(r.path("analyses", "ood-metrics.json"), oodRep); err != nil {
		return "", err
	}
	// Figure 6: every epoch's head (non-identifiability).
	paths, err := rewardhead.EpochHeads(r.path("heads"))
	if err != nil {
		return "", err
	}
	var heads []*rewardhead.Head
	var names []string
	for _, p := range paths {
		hh, err := rewardhead.ReadHead(p)
		if err != nil {
			return "", err
		}
		heads, names = append(heads, hh), append(names, filepath.Base(p))
	}
	ep, err := analysis.Epochs(heads, names, id.pos, id.neg, id.gtPos, id.gtNeg, zero)
	if err != nil {
		return "", err
	}
	if err := writeResult(r.path("analyses", "epochs"), "epochs.json", ep, func(d string) error { _, err := ep.Plot(d); return err }); err != nil {
		return "", err
	}
	return strings.Join(notes, "; "), nil
}

// writeResult writes an analysis result's JSON and plots into dir.
func writeResult[T any](dir, file string, v T, plot func(string) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := plot(dir); err != nil {
		return err
	}
	return analysis.WriteJSON(filepath.Join(dir, file), v)
}

// Variant is one feature choice's row of the variants table.
type Variant struct {
	Pool  string `json:"pool"`
	Layer int    `json:"layer"`
	// TrainPairAccuracy is the share of the training demonstrations'
	// monitor pairs the head orders right: what the choice is made on.
	TrainPairAccuracy float64 `json:"train_pair_accuracy"`
	Chosen            bool    `json:"chosen"`
	// The rest are measured on the 500 dataset samples, for the reader.
	Separation float64 `json:"separation"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	KendallTau float64 `json:"kendall_tau"`
}

// Variants lists the feature choices the demo compares: the last token (the
// paper's), the one before it (the adjective, before the period), and the
// mean over the text, each at the last layer, the first layer and the
// embeddings.
var Variants = []struct {
	Pool  neox.Pooling
	Layer int
}{{"last", -1}, {"last:2", -1}, {"mean", -1}, {"last", 1}, {"last:2", 1}, {"mean", 1}, {"last", 0}, {"last:2", 0}, {"mean", 0}}

// stageFeatures trains a head, as stageIRL does, on each feature choice and
// chooses the one whose head best orders its own training demonstrations
// (the monitor pairs of the last epoch): a rule that sees no evaluation
// sample. Every choice is then measured on the dataset for the variants
// table. With Config.Pool set, that choice is taken instead.
func (r *run) stageFeatures() (string, error) {
	ep, er, bp, br, err := r.demonstrations()
	if err != nil {
		return "", err
	}
	best := -1
	for _, v := range Variants {
		p, err := r.pipeline(v.Pool, v.Layer)
		if err != nil {
			return "", err
		}
		row, err := func() (Variant, error) {
			defer p.Destroy()
			pos, err := featuresOf(p, "expert", ep, er)
			if err != nil {
				return Variant{}, err
			}
			neg, err := featuresOf(p, "baseline", bp, br)
			if err != nil {
				return Variant{}, err
			}
			res, err := rewardhead.Train(pos, neg, r.trainConfig())
			if err != nil {
				return Variant{}, err
			}
			e, err := r.evalSet(p, r.data.Samples, "dataset")
			if err != nil {
				return Variant{}, err
			}
			rep := rewardhead.Evaluate(res.Best.Score(e.pos), res.Best.Score(e.neg), e.gtPos, e.gtNeg, zero)
			row := Variant{Pool: string(v.Pool), Layer: v.Layer, TrainPairAccuracy: res.Stats[len(res.Stats)-1].PairAccuracy,
				Separation: val(rep.Separation), Precision: val(rep.Precision), Recall: val(rep.Recall)}
			if rep.KendallTau != nil {
				row.KendallTau = val(*rep.KendallTau)
			}
			return row, nil
		}()
		if err != nil {
			return "", err
		}
		r.res.Variants = append(r.res.Variants, row)
		if i := len(r.res.Variants) - 1; best < 0 || row.TrainPairAccuracy > r.res.Variants[best].TrainPairAccuracy {
			best = i
		}
	}
	how := "chosen on the training demonstrations"
	if r.cfg.Pool != "" {
		how = "given"
		best = -1
		for i, v := range r.res.Variants {
			if neox.Pooling(v.Pool) == r.cfg.Pool && v.Layer == r.cfg.Layer {
				best = i
			}
		}
	}
	if best >= 0 {
		r.res.Variants[best].Chosen = true
		r.pool, r.layer = neox.Pooling(r.res.Variants[best].Pool), r.res.Variants[best].Layer
	} else {
		r.pool, r.layer = r.cfg.Pool, r.cfg.Layer
	}
	r.res.Pool, r.res.Layer = string(r.pool), r.layer
	return fmt.Sprintf("%d feature choices; pool %s at layer %d, %s", len(Variants), r.pool, r.layer, how), nil
}

// val is a metric's value, NaN when undefined.
func val(v rewardhead.Value) float64 {
	if !v.OK() {
		return math.NaN()
	}
	return v.X
}
