package ppo

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
	"slices"
	"strings"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
	"irl/optim"
	"irl/policy"
	"irl/progress"
	"irl/reward"
	"irl/rows"
	"irl/tokenizer"
)

// Prompt is one prompt row: its token ids (already cut to the prompt limit),
// and the row's text, other fields and index, which rewards and samples see.
type Prompt struct {
	IDs    []int64
	Text   string
	Fields map[string]any
	Row    int
}

// Config holds every setting of a run. Defaults() gives the paper's 70M
// preset; the JSON names are those of the preset files and metrics.
type Config struct {
	// Rollouts.
	NumRollouts  int     `json:"num_rollouts"`
	ChunkSize    int     `json:"chunk_size"`
	MaxNewTokens int     `json:"max_new_tokens"`
	SeqLength    int     `json:"seq_length"`
	TopK         int     `json:"top_k"`
	TopP         float64 `json:"top_p"`
	Temperature  float64 `json:"temperature"`
	// Scores.
	ClipRangeReward float64 `json:"cliprange_reward"`
	ScaleReward     string  `json:"scale_reward"`
	// KL controller: fixed at InitKLCoef without a Target.
	InitKLCoef float64 `json:"init_kl_coef"`
	Target     float64 `json:"target"`
	Horizon    float64 `json:"horizon"`
	// Advantages and losses.
	Gamma          float64 `json:"gamma"`
	Lam            float64 `json:"lam"`
	ClipRange      float64 `json:"cliprange"`
	ClipRangeValue float64 `json:"cliprange_value"`
	VFCoef         float64 `json:"vf_coef"`
	EntCoef        float64 `json:"ent_coef"`
	MaxGradNorm    float64 `json:"max_grad_norm"`
	PPOEpochs      int     `json:"ppo_epochs"`
	BatchSize      int     `json:"batch_size"`
	TotalSteps     int     `json:"total_steps"`
	// Optimiser.
	LR          float64    `json:"lr"`
	MinLR       float64    `json:"min_lr"`
	Betas       [2]float64 `json:"betas"`
	Eps         float64    `json:"eps"`
	WeightDecay float64    `json:"weight_decay"`
	Scheduler   string     `json:"scheduler"`
	// TMax is cosine_annealing's T_max (PyTorch's CosineAnnealingLR, the
	// official code's schedule): min_lr at step TMax, rising again after.
	TMax int `json:"t_max,omitempty"`
	// UnfrozenLayers trains the top N layers (and the heads); -1 all.
	UnfrozenLayers int `json:"unfrozen_layers"`
	// Evaluation and checkpoints, in optimiser steps.
	EvalInterval       int    `json:"eval_interval"`
	CheckpointInterval int    `json:"checkpoint_interval"`
	Seed               uint64 `json:"seed"`
	// TRLxCompat follows one TRLx version's loop exactly (CompatFork,
	// CompatCarper; see PhasePlan, ScaleScoresTRLx and ControllerKL);
	// "" or "none" is this package's own. Omitted when empty, so the
	// settings of runs from before it match a run without it.
	TRLxCompat string `json:"trlx_compat,omitempty"`
	// ScorePosition is where the score sits among a sample's per-token
	// rewards: ScoreTRLx (TRLx's slice, up to two positions past the last
	// real response token) or ScoreLastToken (on it). Empty: the compat
	// mode's, trlx under eleuther-126c8f0 and carper, last_token under none.
	ScorePosition string `json:"score_position,omitempty"`
	// AdvantageWhitening is over which tokens the advantages are whitened
	// and the loss taken: WhitenTRLx (the padded minibatch; the loss
	// without the EOS) or WhitenRealTokens (the real response tokens, the
	// EOS included). Empty: the compat mode's, as ScorePosition.
	AdvantageWhitening string `json:"advantage_whitening,omitempty"`
	// TrainEmbeddings trains the input embeddings (embed_in) with the
	// unfrozen_layers top layers, and makes the reference read them live:
	// the starting model's weights but the policy's current embed_in, as
	// TRLx's fork (freeze_bottom_causal_layers freezes the lower blocks
	// only; its hydra reference runs a frozen copy of the top layers and the
	// head on the policy's shared bottom). It applies when 0 <
	// unfrozen_layers < the model's layers: with every layer trained the
	// embeddings train anyway and the reference is a frozen copy, as in
	// TRLx, which also builds no hydra for 0 (the heads alone). Unset: true under eleuther-126c8f0 (what the paper ran), false
	// under carper (CarperAI main freezes them) and none.
	TrainEmbeddings *bool `json:"train_embeddings,omitempty"`
}

// compat is the run's compat mode, "" read as CompatNone.
func (c Config) compat() string {
	if c.TRLxCompat == "" {
		return CompatNone
	}
	return c.TRLxCompat
}

// scorePosition is the run's score_position: the one set, else TRLx's
// under a compat mode (what the paper ran) and our fix under none.
func (c Config) scorePosition() string {
	return c.orTRLx(c.ScorePosition, ScoreTRLx, ScoreLastToken)
}

// whitening is the run's advantage_whitening, defaulted as scorePosition.
func (c Config) whitening() string {
	return c.orTRLx(c.AdvantageWhitening, WhitenTRLx, WhitenRealTokens)
}

// orTRLx is a setting's value: set when given, else trlx under a compat
// mode and ours under none.
func (c Config) orTRLx(set, trlx, ours string) string {
	switch {
	case set != "":
		return set
	case c.compat() != CompatNone:
		return trlx
	}
	return ours
}

// trainEmbeddings is the run's train_embeddings: the one set, else true
// under the fork only.
func (c Config) trainEmbeddings() bool {
	if c.TrainEmbeddings != nil {
		return *c.TrainEmbeddings
	}
	return c.compat() == CompatFork
}

// liveEmbeddings tells whether a run on a model of numLayers layers trains
// embed_in below frozen layers, with a reference that reads it live.
func (c Config) liveEmbeddings(numLayers int) bool {
	return c.trainEmbeddings() && c.UnfrozenLayers > 0 && c.UnfrozenLayers < numLayers
}

// Defaults are irl ppo's settings without a preset: the paper's 70M values
// (Appendix D) run by this package's own loop (trlx_compat none), with
// gradients clipped at norm 1 and a cosine schedule from lr to min_lr.
// The pythia-70m preset (presets/pythia-70m.yaml) is the official code's
// run exactly: the fork's loop, no clipping, its CosineAnnealingLR.
func Defaults() Config {
	return Config{
		NumRollouts: 32, ChunkSize: 4, MaxNewTokens: 128, SeqLength: 1024, TopK: 30, TopP: 1, Temperature: 1,
		ClipRangeReward: 10, ScaleReward: "running",
		InitKLCoef: 0.035, Target: 5.71, Horizon: 10000,
		Gamma: 1, Lam: 0.95, ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 1, EntCoef: 0, MaxGradNorm: 1,
		PPOEpochs: 8, BatchSize: 16, TotalSteps: 600,
		LR: 3e-6, MinLR: 3e-6, Betas: [2]float64{0.9, 0.95}, Eps: 1e-8, WeightDecay: 1e-6, Scheduler: "cosine",
		UnfrozenLayers: 4, EvalInterval: 100, CheckpointInterval: 100, Seed: 1000,
	}
}

// Validate reports every setting out of range, each named by its key (the
// preset files' and metrics' name: num_rollouts); RenameKeys puts a
// caller's names for them (--num-rollouts, ppo.num_rollouts) in its place.
func (c Config) Validate() error {
	var errs []error
	bad := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	nonneg := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	bad(c.NumRollouts > 0, "num_rollouts %d must be positive", c.NumRollouts)
	bad(c.ChunkSize > 0, "chunk_size %d must be positive", c.ChunkSize)
	bad(c.MaxNewTokens > 0, "max_new_tokens %d must be positive", c.MaxNewTokens)
	bad(c.SeqLength > c.MaxNewTokens, "seq_length %d must exceed max_new_tokens %d", c.SeqLength, c.MaxNewTokens)
	bad(c.TopK >= 0, "top_k %d must not be negative", c.TopK)
	bad(c.TopP >= 0 && c.TopP <= 1, "top_p %v must lie in [0, 1]", c.TopP)
	if err := policy.CheckTemperature(c.Temperature); err != nil {
		errs = append(errs, err)
	}
	bad(nonneg(c.ClipRangeReward), "cliprange_reward %v must not be negative (0: off)", c.ClipRangeReward)
	bad(c.ScaleReward == "running" || c.ScaleReward == "ref" || c.ScaleReward == "none", "scale_reward %q: want running, ref or none", c.ScaleReward)
	bad(nonneg(c.InitKLCoef), "init_kl_coef %v must not be negative", c.InitKLCoef)
	bad(nonneg(c.Target), "target %v must not be negative (0: a fixed β)", c.Target)
	bad(c.Target == 0 || pos(c.Horizon), "horizon %v must be positive with target", c.Horizon)
	bad(c.Gamma >= 0 && c.Gamma <= 1, "gamma %v must lie in [0, 1]", c.Gamma)
	bad(c.Lam >= 0 && c.Lam <= 1, "lam %v must lie in [0, 1]", c.Lam)
	bad(pos(c.ClipRange), "cliprange %v must be positive", c.ClipRange)
	bad(pos(c.ClipRangeValue), "cliprange_value %v must be positive", c.ClipRangeValue)
	bad(nonneg(c.VFCoef), "vf_coef %v must not be negative", c.VFCoef)
	bad(nonneg(c.EntCoef), "ent_coef %v must not be negative", c.EntCoef)
	bad(nonneg(c.MaxGradNorm), "max_grad_norm %v must not be negative (0: off)", c.MaxGradNorm)
	bad(c.PPOEpochs > 0, "ppo_epochs %d must be positive", c.PPOEpochs)
	bad(c.BatchSize > 0, "batch_size %d must be positive", c.BatchSize)
	bad(c.TotalSteps > 0, "total_steps %d must be positive", c.TotalSteps)
	bad(pos(c.LR), "lr %v must be positive", c.LR)
	// PyTorch's CosineAnnealingLR takes an eta_min above lr (the official
	// 70m configuration has one); the other schedules fall to min_lr.
	bad(nonneg(c.MinLR) && (c.MinLR <= c.LR || c.Scheduler == "cosine_annealing"), "min_lr %v must lie in [0, lr]", c.MinLR)
	bad(c.Scheduler != "cosine_annealing" || c.TMax > 0, "t_max %d must be positive with scheduler cosine_annealing", c.TMax)
	bad(slices.Contains(optim.ScheduleKinds, c.Scheduler), "scheduler %q: want one of %s", c.Scheduler, strings.Join(optim.ScheduleKinds, ", "))
	bad(c.TRLxCompat == "" || slices.Contains(CompatModes, c.TRLxCompat), "trlx_compat %q: want %s", c.TRLxCompat, strings.Join(CompatModes, ", "))
	bad(c.ScorePosition == "" || slices.Contains(ScorePositions, c.ScorePosition), "score_position %q: want %s (empty: trlx under a trlx_compat mode, last_token under none)", c.ScorePosition, strings.Join(ScorePositions, " or "))
	bad(c.AdvantageWhitening == "" || slices.Contains(AdvantageWhitenings, c.AdvantageWhitening), "advantage_whitening %q: want %s (empty: trlx under a trlx_compat mode, real_tokens under none)", c.AdvantageWhitening, strings.Join(AdvantageWhitenings, " or "))
	bad(c.EvalInterval >= 0, "eval_interval %d must not be negative (0: only at the start and the end)", c.EvalInterval)
	bad(c.CheckpointInterval >= 0, "checkpoint_interval %d must not be negative (0: only at the end)", c.CheckpointInterval)
	if err := (optim.AdamWConfig{Beta1: c.Betas[0], Beta2: c.Betas[1], Eps: c.Eps, WeightDecay: c.WeightDecay}).Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// settings are what a resumed run must share with the checkpoint.
func (c Config) settings(promptsHash string, nTrain, nEval int) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	json.Unmarshal(b, &m)
	if c.TRLxCompat == CompatNone {
		delete(m, "trlx_compat") // "none" is "", which older runs recorded by omission
	}
	// The effective placement and whitening, recorded only where they are
	// TRLx's: every run from before the keys placed the score on the last
	// token and whitened over real tokens in every mode, so it resumes
	// under none, and one under a compat mode (whose default is now TRLx's)
	// is refused, naming the key, rather than continued on other rewards.
	delete(m, "score_position")
	delete(m, "advantage_whitening")
	if c.scorePosition() == ScoreTRLx {
		m["score_position"] = ScoreTRLx
	}
	if c.whitening() == WhitenTRLx {
		m["advantage_whitening"] = WhitenTRLx
	}
	// Trained embeddings, likewise, recorded only where they train: runs
	// from before the key froze them in every mode, so they resume where
	// the setting is off (or moot: every layer trained), and a fork run
	// from then is refused, naming the key. trainer.open drops it where the
	// model has no more layers than unfrozen_layers.
	delete(m, "train_embeddings")
	if c.trainEmbeddings() && c.UnfrozenLayers > 0 {
		m["train_embeddings"] = true
	}
	m["prompts"], m["train_prompts"], m["eval_prompts"] = promptsHash, nTrain, nEval
	return m
}

// Options are the run's surroundings, which do not change its results.
type Options struct {
	// Out is the run folder (see package checkpoint).
	Out               string
	Resume, Overwrite bool
	// Tokenizer is the tokenizer.json copied into every checkpoint.
	TokenizerPath string
	Session       onnx.Options
	// Progress, if set, receives a progress bar.
	Progress io.Writer
	// StopAfter stops after this many steps in total (0: TotalSteps), as a
	// kill would, for tests of resumption; a later Resume continues.
	StopAfter int
	// ModelFingerprint identifies the starting model (its neox.Source's
	// Fingerprint); checkpoints record it and a resume from another model
	// is refused. Empty means the model's own in memory
	// (neox.Model.Fingerprint), so no checkpoint records an empty one.
	ModelFingerprint string
	// SaveTotalLimit keeps only the newest this many checkpoints, and the
	// best (highest held-out reward/mean at a checkpoint's step, named by
	// DIR/best-checkpoint); 0 keeps all.
	SaveTotalLimit int
	// Notes, if set, receives a line for what the run does that the caller
	// may not expect: a resume that found no checkpoint and started anew.
	Notes io.Writer
	// Label names the run on its progress bar ("ppo" when empty), so a
	// pipeline's bars say which stage they are.
	Label string
	// Context, if set, stops the run when it is done, at the next safe
	// point: between two optimiser steps, or between two rollout chunks
	// (the phase's rollouts so far are dropped, and the run stands after
	// its last step). There it saves a checkpoint, unless it has just saved
	// one, and returns a *checkpoint.InterruptedError, which wraps the
	// context's error; a Resume then continues as if nothing had happened.
	Context context.Context
	// resident keeps the weights, gradients and AdamW's moments in ONNX
	// Runtime's memory, updated by the AdamW graph, as on CUDA, even on CPU
	// (where the Go AdamW over Go memory is faster): the tests run the
	// device path with it.
	resident bool
}

// Metrics is one line of metrics.jsonl, with TRLx's names.
type Metrics struct {
	Step               int      `json:"step"`
	RewardMean         *float64 `json:"reward/mean,omitempty"`
	ScoresMean         *float64 `json:"rollout_scores/mean,omitempty"`
	ScoresStd          *float64 `json:"rollout_scores/std,omitempty"`
	ScoresRunningStd   *float64 `json:"rollout_scores/running_std,omitempty"`
	ReturnsMean        *float64 `json:"returns/mean,omitempty"`
	PolicyLoss         *float64 `json:"losses/policy_loss,omitempty"`
	ValueLoss          *float64 `json:"losses/value_loss,omitempty"`
	TotalLoss          *float64 `json:"losses/total_loss,omitempty"`
	ApproxKL           *float64 `json:"policy/approx_kl,omitempty"`
	ClipFrac           *float64 `json:"policy/clipfrac,omitempty"`
	SqrtKL             *float64 `json:"policy/sqrt_kl,omitempty"`
	KL                 *float64 `json:"policy/kl,omitempty"`
	KLCoef             *float64 `json:"kl_ctl_value,omitempty"`
	ValuesMean         *float64 `json:"values/mean,omitempty"`
	Entropy            *float64 `json:"entropy,omitempty"`
	LearningRate       *float64 `json:"learning_rate,omitempty"`
	GradNorm           *float64 `json:"grad_norm,omitempty"`
	TimeRolloutGen     *float64 `json:"time/rollout_generate,omitempty"`
	TimeRolloutScore   *float64 `json:"time/rollout_score,omitempty"`
	TimeForward        *float64 `json:"time/forward,omitempty"`
	TimeReference      *float64 `json:"time/reference,omitempty"`
	TimeBackward       *float64 `json:"time/backward,omitempty"`
	TokensPerS         *float64 `json:"tokens_per_s,omitempty"`
	PolicyRatioAtStart *float64 `json:"policy/ratio_first_minibatch,omitempty"`
}

// sample is one rollout: prompt and response ids, and per response token the
// rollout's log-prob, the reference's, the value, and the reward.
type sample struct {
	Prompt, Response           []int64
	LogProb, RefLogProb, Value []float64
	Reward                     []float64
	Score                      float64 // after scaling and clipping
	Row                        int
}

// phaseStats are the rollout-time statistics logged with every step.
type phaseStats struct {
	ScoresMean, ScoresStd, RunningStd float64
	// MeanKL is TRLx's k3 sequence estimate, which drives the controller;
	// MeanKL1 the plain Σ(log π − log π_ref), logged as policy/kl.
	MeanKL, MeanKL1 float64
	// Seconds of the phase's sampling, scoring, policy forward (rollout
	// log-probs and values) and reference forward.
	TimeGenerate, TimeScore, TimeForward, TimeReference float64
}

// loopState is the loop's part of trainer_state.json.
type loopState struct {
	Phase       int            `json:"phase"`        // phases begun
	PhaseStart  int            `json:"phase_start"`  // the step at which the current phase's training began
	PromptEpoch int            `json:"prompt_epoch"` // passes begun over the training prompts
	PromptPos   int            `json:"prompt_pos"`   // prompts of that pass taken
	KL          KLController   `json:"kl"`
	Moments     RunningMoments `json:"moments"`
	RefStd      *float64       `json:"ref_std,omitempty"`
	Stats       *phaseStats    `json:"phase_stats,omitempty"`
	// InPhase says the checkpoint holds the current phase's rollouts.
	InPhase bool `json:"in_phase"`
	// BestReward is the highest held-out reward/mean at a checkpoint's
	// step so far, and BestCheckpoint that checkpoint's name, which
	// pruning keeps.
	BestReward     *float64 `json:"best_reward,omitempty"`
	BestCheckpoint string   `json:"best_checkpoint,omitempty"`
}

// Result summarises a run.
type Result struct {
	Steps int
	// FirstReward and LastReward are reward/mean at the first and the last
	// evaluation.
	FirstReward, LastReward float64
	// Final is the final folder (empty when stopped early).
	Final string
	// Fresh says a resume found no checkpoint and started the run anew.
	Fresh bool
	// Best is the checkpoint with the highest held-out reward/mean at its
	// step ("" when no checkpoint was evaluated).
	Best string
}

// BestCheckpointFile names, in a run folder, the file holding the best
// checkpoint's name (see Options.SaveTotalLimit).
const BestCheckpointFile = "best-checkpoint"

// MaxScore bounds a reward's magnitude. Rewards are of order 1 (a
// classifier's −P, the lexicon's ±0.5, a head's wᵀh + b); a larger one is a
// bug in the reward, and past about 1e150 its square in the running moments
// overflows to +Inf and stops the run far from its cause. 1e9 leaves room
// for any real reward and keeps squared returns well inside float32, in
// which the value loss is computed.
const MaxScore = 1e9

// CheckOut checks, before any work, that a new run can start in dir (see
// checkpoint.CheckNew): a folder holding a run is refused naming --resume
// and --overwrite.
func CheckOut(dir string, overwrite bool) error {
	return checkpoint.CheckNew(dir, overwrite, runFiles...)
}

// runFiles are what a run writes in its folder besides checkpoints and
// metrics: they mark the folder as a run's, and a resume that finds no
// checkpoint clears them.
var runFiles = []string{"samples", "plots", "final", BestCheckpointFile}

// rolloutsFile names the phase's rollouts in a checkpoint.
const rolloutsFile = "rollouts.json"

// trainer holds a run's sessions and state.
type trainer struct {
	cfg   Config
	opt   Options
	m     *neox.Model
	tok   *tokenizer.Tokenizer
	src   reward.Source
	train []Prompt
	eval  []Prompt

	ref *policy.Runner // the frozen starting model's log-probs
	// refStore, with trained embeddings (Config.liveEmbeddings), holds the
	// reference's weights: a copy of the starting model's, but for embed_in,
	// which bindEmbeddings points at the policy's own tensor before every
	// reference forward. Nil otherwise (the reference's weights are then
	// its session's initializers).
	refStore *policy.ParamStore
	// tr holds the policy's training sessions on one store, where the
	// weights live: the trainer, the optimiser, the runner of log-probs and
	// values and the generator of rollouts, each reading the weights the
	// optimiser just wrote, with no copy.
	tr   *policy.Training
	sch  optim.Schedule
	run  *checkpoint.Run
	st   loopState
	step int

	phase    []sample
	settings map[string]any
	ctx      context.Context
	// saved is the step of the newest checkpoint (-1: none).
	saved int
	// evalStep is the step of the last evaluation (-1: none yet).
	evalStep int
	bar      *progress.Bar
	res      Result
}

// Run trains m, in place, with PPO. m is the starting model: the reference
// is a frozen copy of it, taken before any update (or, on resume, before the
// checkpoint's weights are loaded into m). tok decodes responses for the
// reward. train holds the training prompts and eval the held-out ones.
func Run(m *neox.Model, tok *tokenizer.Tokenizer, train, eval []Prompt, src reward.Source, cfg Config, o Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	if len(train) == 0 {
		return nil, errors.New("ppo: no training prompts")
	}
	if len(eval) == 0 {
		return nil, errors.New("ppo: no evaluation prompts")
	}
	limit := cfg.SeqLength - cfg.MaxNewTokens
	for _, p := range append(append([]Prompt(nil), train...), eval...) {
		if len(p.IDs) == 0 {
			return nil, fmt.Errorf("ppo: prompt row %d has no tokens", p.Row)
		}
		if len(p.IDs) > limit || len(p.IDs)+cfg.MaxNewTokens > m.Config.MaxPositions {
			return nil, fmt.Errorf("ppo: prompt row %d has %d tokens; with %d new tokens that passes seq_length %d or the model's %d positions (cut prompts with TrimPrompt)",
				p.Row, len(p.IDs), cfg.MaxNewTokens, cfg.SeqLength, m.Config.MaxPositions)
		}
	}
	if o.ModelFingerprint == "" {
		fp, err := m.Fingerprint()
		if err != nil {
			return nil, fmt.Errorf("ppo: %w", err)
		}
		o.ModelFingerprint = fp
	}
	t := &trainer{cfg: cfg, opt: o, m: m, tok: tok, src: src, train: train, eval: eval, evalStep: -1, ctx: o.Context, saved: -1}
	if t.ctx == nil {
		t.ctx = context.Background()
	}
	defer t.close()
	if err := t.open(); err != nil {
		return nil, err
	}
	if err := t.loop(); err != nil {
		return nil, err
	}
	return &t.res, nil
}

// TrimPrompt cuts a prompt's ids on the left to the limit a run allows,
// SeqLength − MaxNewTokens, as TRLx truncates prompts.
func TrimPrompt(ids []int64, cfg Config) []int64 {
	if limit := cfg.SeqLength - cfg.MaxNewTokens; len(ids) > limit && limit > 0 {
		return ids[len(ids)-limit:]
	}
	return ids
}

func (t *trainer) open() error {
	cfg, m := t.cfg, t.m
	var err error
	// The reference first: its session copies the starting weights. Both
	// scoring runners use the standard graph, the training graph's own
	// arithmetic: so the ratio before a phase's first update is exactly 1
	// and the first phase's KL exactly 0, as PPO's math assumes.
	live := cfg.liveEmbeddings(m.Config.NumLayers)
	if live {
		if err := t.openLiveReference(); err != nil {
			return err
		}
	} else if t.ref, err = policy.NewRunner(m, neox.ForwardOptions{LogProbs: true, Standard: true}, t.opt.Session, nil); err != nil {
		return err
	}
	t.tr, err = policy.NewTraining(m, policy.TrainingOptions{
		Train:     neox.TrainOptions{Loss: neox.PPO, UnfrozenLayers: cfg.UnfrozenLayers, TrainEmbeddings: live},
		AdamW:     optim.AdamWConfig{Beta1: cfg.Betas[0], Beta2: cfg.Betas[1], Eps: cfg.Eps, WeightDecay: cfg.WeightDecay},
		Session:   t.opt.Session,
		Resident:  t.opt.resident,
		Runner:    &neox.ForwardOptions{LogProbs: true, Values: true, Standard: true},
		Generator: true,
	})
	if err != nil {
		return err
	}
	if t.sch, err = (optim.ScheduleConfig{Kind: cfg.Scheduler, Peak: cfg.LR, Min: cfg.MinLR, Total: cfg.TotalSteps, TMax: cfg.TMax}).Build(); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	settings := cfg.settings(promptsHash(t.train, t.eval), len(t.train), len(t.eval))
	if !live {
		delete(settings, "train_embeddings") // moot where unfrozen_layers covers every layer
	}
	settings["model_fingerprint"] = t.opt.ModelFingerprint
	// The reward is part of the run: steps on one reward and then on
	// another are no run at all.
	id, err := reward.Identity(t.src)
	if err != nil {
		return fmt.Errorf("ppo: the reward's identity: %w", err)
	}
	for k, v := range id {
		settings["reward."+k] = v
	}
	run, saved, err := checkpoint.OpenRun(t.opt.Out, checkpoint.Options{Resume: t.opt.Resume, Overwrite: t.opt.Overwrite, Files: runFiles})
	if err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	t.run = run
	if run.Fresh {
		t.res.Fresh = true
		if t.opt.Notes != nil {
			what := "nothing"
			if len(run.Cleared) > 0 {
				what = "what a killed run left (" + strings.Join(run.Cleared, ", ") + ")"
			}
			fmt.Fprintf(t.opt.Notes, "%s holds no checkpoint to resume from: started the run anew (cleared %s)\n", t.opt.Out, what)
		}
	}
	t.st = loopState{KL: KLController{Value: cfg.InitKLCoef, Target: cfg.Target, Horizon: cfg.Horizon}, Moments: NewRunningMoments()}
	t.settings = settings
	if saved != nil {
		return t.resume(saved)
	}
	return nil
}

// resume continues from the run's newest checkpoint: its settings checked
// against this run's, then the weights and the optimiser, the loop's state
// and the rollouts of a phase in progress restored.
func (t *trainer) resume(saved *checkpoint.State) error {
	cfg, m := t.cfg, t.m
	dir, _ := checkpoint.Last(t.opt.Out)
	if unverified(saved.Settings, t.settings) {
		// A checkpoint from before rewards were recorded cannot say
		// which it was trained on; refusing it would throw the run
		// away, so it continues, said, and its next checkpoint
		// records the reward.
		if saved.Settings == nil {
			saved.Settings = map[string]any{}
		}
		for k, v := range t.settings {
			if strings.HasPrefix(k, "reward.") {
				saved.Settings[k] = v
			}
		}
		if t.opt.Notes != nil {
			fmt.Fprintf(t.opt.Notes, "%s records no reward (it predates the check): the reward cannot be verified; its next checkpoint records it\n", dir)
		}
	}
	if err := checkpoint.CheckSettings(dir, saved.Settings, t.settings); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	if err := t.tr.Restore(dir); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	if err := json.Unmarshal(saved.Trainer, &t.st); err != nil {
		return fmt.Errorf("ppo: %s: trainer state: %w", dir, err)
	}
	t.step, t.saved = saved.Step, saved.Step
	t.res.Best = t.st.BestCheckpoint
	if t.st.InPhase {
		b, err := os.ReadFile(filepath.Join(dir, rolloutsFile))
		if err != nil {
			return fmt.Errorf("ppo: %s: the phase's rollouts: %w", dir, err)
		}
		if err := json.Unmarshal(b, &t.phase); err != nil {
			return fmt.Errorf("ppo: %s: %w", filepath.Join(dir, rolloutsFile), err)
		}
	}
	// A state that decodes may still not fit this run (an edited or
	// damaged file): a prompt position past the prompts would never
	// end the loop that takes prompts.
	if err := t.st.check(cfg, t.phase, len(t.train), t.step, m.Config.VocabSize, m.Config.MaxPositions, int64(m.Config.EOSTokenID)); err != nil {
		return fmt.Errorf("ppo: %s: trainer state: %w", dir, err)
	}
	return nil
}

// unverified tells whether saved settings predate the reward's identity
// while this run has one.
func unverified(saved, now map[string]any) bool {
	has := func(m map[string]any) bool {
		for k := range m {
			if strings.HasPrefix(k, "reward.") {
				return true
			}
		}
		return false
	}
	return !has(saved) && has(now)
}

func (t *trainer) close() {
	if t.run != nil {
		t.run.Close()
	}
	t.tr.Destroy()
	t.ref.Destroy()
	t.refStore.Destroy()
}

// embedIn is the input embeddings' parameter.
const embedIn = "gpt_neox.embed_in.weight"

// openLiveReference opens the reference of a run that trains embed_in
// below frozen layers: TRLx's hydra, a frozen copy of the top layers and
// the head on the policy's own bottom. The frozen lower layers are the
// starting model's in both, so the reference is the starting model with
// the policy's current embed_in, exactly; its weights are graph inputs,
// from a store over a copy of the starting model (the policy trains m in
// place), with embed_in bound to the policy's tensor (bindEmbeddings).
func (t *trainer) openLiveReference() error {
	m := t.m
	if m.Config.TieEmbeddings {
		// The hydra's head would be a frozen copy of the tied matrix while
		// its input lookup is live: one weight, two values, which this
		// graph cannot take.
		return errors.New("ppo: train_embeddings with tied input and output embeddings is not supported (set train_embeddings false)")
	}
	start := &neox.Model{Config: m.Config, Params: make(map[string]*neox.Param, len(m.Params))}
	for name, p := range m.Params {
		start.Params[name] = &neox.Param{Shape: slices.Clone(p.Shape), Data: slices.Clone(p.Data)}
	}
	newStore := policy.NewParamStore
	if t.opt.resident {
		newStore = policy.NewResidentParamStore
	}
	var err error
	if t.refStore, err = newStore(start, t.opt.Session); err != nil {
		return err
	}
	t.ref, err = policy.NewRunner(start, neox.ForwardOptions{LogProbs: true, Standard: true, ParamInputs: true}, t.opt.Session, t.refStore)
	return err
}

// bindEmbeddings points the live reference's embed_in at the tensor that
// holds the policy's now, before a reference forward: the same memory the
// policy's runner reads, so the two see the same embeddings bit for bit
// and nothing is copied. It is looked up each time, since an optimiser
// may move a parameter to another tensor (ParamStore.Replace).
func (t *trainer) bindEmbeddings() error {
	if t.refStore == nil {
		return nil
	}
	e, err := t.tr.Store.Tensor(embedIn)
	if err != nil {
		return err
	}
	return t.refStore.Replace(embedIn, e)
}

// mix derives a seed for a place in the run from the run's seed.
func mix(seed uint64, parts ...uint64) uint64 {
	z := seed
	for _, p := range parts {
		z ^= p + 0x9e3779b97f4a7c15 + (z << 6) + (z >> 2)
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
	}
	return z
}

// Seed purposes, so that no two draws share a stream.
const (
	seedPrompts = iota + 1
	seedRollout
	seedShuffle
	seedEval
	seedReward
)

// SplitPrompts holds out a share of the prompts for evaluation, chosen by a
// permutation from the seed (at least one each way when there are two or
// more), keeping each side in file order: the official code's 80/20 split
// with evalFrac 0.2.
func SplitPrompts(ps []Prompt, evalFrac float64, seed uint64) (train, eval []Prompt) {
	n := int(math.Round(evalFrac * float64(len(ps))))
	if evalFrac > 0 && n == 0 && len(ps) >= 2 {
		n = 1
	}
	if n >= len(ps) {
		n = len(ps) - 1
	}
	held := map[int]bool{}
	for _, i := range rand.New(rand.NewPCG(seed, 0x5eed)).Perm(len(ps))[:max(n, 0)] {
		held[i] = true
	}
	for i, p := range ps {
		if held[i] {
			eval = append(eval, p)
		} else {
			train = append(train, p)
		}
	}
	return train, eval
}

// ReadPrompts reads a prompt file for a run: JSON lines, CSV or Parquet rows
// with the prompt in field (and every other field kept for the reward, such
// as an original continuation), tokenized and cut on the left to the limit
// the run and the model allow.
func ReadPrompts(path, field, format string, tok *tokenizer.Tokenizer, m *neox.Model, cfg Config) ([]Prompt, error) {
	rs, bad, err := rows.Read(path, rows.Options{TextField: field, KeepFields: true, Format: format})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	limit := min(cfg.SeqLength, m.Config.MaxPositions) - cfg.MaxNewTokens
	if limit < 1 {
		return nil, fmt.Errorf("ppo: %d new tokens leave no room for a prompt in %d positions", cfg.MaxNewTokens, min(cfg.SeqLength, m.Config.MaxPositions))
	}
	enc, badEnc := rows.Encode(path, rs, rows.EncodeOptions{Tokenizer: tok, VocabSize: m.Config.VocabSize, MaxLength: limit, Truncate: rows.TruncateLeft})
	if len(badEnc) > 0 {
		return nil, badEnc[0]
	}
	ps := make([]Prompt, len(enc))
	for i, e := range enc {
		ps[i] = Prompt{IDs: e.IDs, Text: rs[i].Text, Fields: rs[i].Fields, Row: rs[i].Index}
	}
	return ps, nil
}
