package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"irl/neox"
	"irl/ppo"
	"irl/reward"
	"irl/tokenizer"
)

// ppoFlag ties a flag to the Config field it overrides.
type ppoFlag struct {
	flag  cli.Flag
	apply func(c *cli.Context, cfg *ppo.Config)
}

func ppoConfigFlags() []ppoFlag {
	d := ppo.Defaults()
	i := func(name, usage string, def int, field func(*ppo.Config) *int) ppoFlag {
		return ppoFlag{&cli.IntFlag{Name: name, Usage: usage, Value: def, Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) { *field(cfg) = c.Int(name) }}
	}
	fl := func(name, usage string, def float64, field func(*ppo.Config) *float64) ppoFlag {
		return ppoFlag{&cli.Float64Flag{Name: name, Usage: usage, Value: def, Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) { *field(cfg) = c.Float64(name) }}
	}
	s := func(name, usage string, def string, field func(*ppo.Config) *string) ppoFlag {
		return ppoFlag{&cli.StringFlag{Name: name, Usage: usage, Value: def, Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) { *field(cfg) = c.String(name) }}
	}
	return []ppoFlag{
		i("num-rollouts", "samples per phase", d.NumRollouts, func(c *ppo.Config) *int { return &c.NumRollouts }),
		i("chunk-size", "prompts sampled together", d.ChunkSize, func(c *ppo.Config) *int { return &c.ChunkSize }),
		i("max-new-tokens", "most tokens per response", d.MaxNewTokens, func(c *ppo.Config) *int { return &c.MaxNewTokens }),
		i("seq-length", "prompt + response positions; prompts are cut on the left to seq-length − max-new-tokens", d.SeqLength, func(c *ppo.Config) *int { return &c.SeqLength }),
		i("top-k", "sample from the k most likely tokens (0: all)", d.TopK, func(c *ppo.Config) *int { return &c.TopK }),
		fl("top-p", "nucleus sampling (0 or 1: off)", d.TopP, func(c *ppo.Config) *float64 { return &c.TopP }),
		fl("temperature", "sampling temperature; the PPO log-probs are of softmax(logits/T) too", d.Temperature, func(c *ppo.Config) *float64 { return &c.Temperature }),
		fl("cliprange-reward", "clip scores to ±this: before scaling under --trlx-compat (TRLx's order), after it under none (0: off)", d.ClipRangeReward, func(c *ppo.Config) *float64 { return &c.ClipRangeReward }),
		s("scale-reward", "running (divide by the running std of scores), ref (by the first chunk's std) or none", d.ScaleReward, func(c *ppo.Config) *string { return &c.ScaleReward }),
		fl("init-kl-coef", "β, the KL penalty's starting coefficient", d.InitKLCoef, func(c *ppo.Config) *float64 { return &c.InitKLCoef }),
		fl("target", "the adaptive KL controller's target (0: β fixed)", d.Target, func(c *ppo.Config) *float64 { return &c.Target }),
		fl("horizon", "the adaptive KL controller's horizon", d.Horizon, func(c *ppo.Config) *float64 { return &c.Horizon }),
		fl("gamma", "GAE discount", d.Gamma, func(c *ppo.Config) *float64 { return &c.Gamma }),
		fl("lam", "GAE λ", d.Lam, func(c *ppo.Config) *float64 { return &c.Lam }),
		fl("cliprange", "policy ratio clip ε", d.ClipRange, func(c *ppo.Config) *float64 { return &c.ClipRange }),
		fl("cliprange-value", "value clip around the rollout's values", d.ClipRangeValue, func(c *ppo.Config) *float64 { return &c.ClipRangeValue }),
		fl("vf-coef", "value loss weight", d.VFCoef, func(c *ppo.Config) *float64 { return &c.VFCoef }),
		fl("ent-coef", "entropy bonus weight (the paper's toy run: 0.005; TRLx: none)", d.EntCoef, func(c *ppo.Config) *float64 { return &c.EntCoef }),
		fl("max-grad-norm", "clip the global gradient norm (0: off)", d.MaxGradNorm, func(c *ppo.Config) *float64 { return &c.MaxGradNorm }),
		i("ppo-epochs", "passes over each phase", d.PPOEpochs, func(c *ppo.Config) *int { return &c.PPOEpochs }),
		i("batch-size", "samples per optimiser step", d.BatchSize, func(c *ppo.Config) *int { return &c.BatchSize }),
		i("total-steps", "optimiser steps in all", d.TotalSteps, func(c *ppo.Config) *int { return &c.TotalSteps }),
		fl("lr", "peak learning rate", d.LR, func(c *ppo.Config) *float64 { return &c.LR }),
		fl("min-lr", "the schedule's final learning rate", d.MinLR, func(c *ppo.Config) *float64 { return &c.MinLR }),
		fl("eps", "AdamW ε", d.Eps, func(c *ppo.Config) *float64 { return &c.Eps }),
		fl("weight-decay", "AdamW decoupled weight decay (not on biases and layer norms)", d.WeightDecay, func(c *ppo.Config) *float64 { return &c.WeightDecay }),
		s("scheduler", "cosine, constant or linear, from --lr to --min-lr over --total-steps; or cosine_annealing, PyTorch's CosineAnnealingLR (the official code's): --min-lr at step --t-max, rising again after", d.Scheduler, func(c *ppo.Config) *string { return &c.Scheduler }),
		i("t-max", "cosine_annealing's T_max", d.TMax, func(c *ppo.Config) *int { return &c.TMax }),
		i("unfrozen-layers", "train only the top N layers and the heads (-1: all)", d.UnfrozenLayers, func(c *ppo.Config) *int { return &c.UnfrozenLayers }),
		s("trlx-compat", "follow one TRLx version's PPO loop exactly: eleuther-126c8f0 (the fork the paper ran: unshuffled minibatches, each taking ppo-epochs steps, β moved after each), carper (CarperAI main: ppo-epochs reshuffled passes, β moved after each), or none (this program's own loop)", d.TRLxCompat, func(c *ppo.Config) *string { return &c.TRLxCompat }),
		s("score-position", "where the score sits among the per-token rewards: trlx (TRLx's slice, up to two positions past the last real response token) or last_token (on it); default trlx under --trlx-compat eleuther-126c8f0 or carper, last_token under none", d.ScorePosition, func(c *ppo.Config) *string { return &c.ScorePosition }),
		s("advantage-whitening", "trlx (whiten the advantages over the padded minibatch, padding included, and leave the EOS out of the loss, as TRLx) or real_tokens (whiten over and train on the real response tokens, EOS included); default trlx under --trlx-compat eleuther-126c8f0 or carper, real_tokens under none", d.AdvantageWhitening, func(c *ppo.Config) *string { return &c.AdvantageWhitening }),
		{&cli.BoolFlag{Name: "train-embeddings", Usage: "with --unfrozen-layers below the model's layers, train the input embeddings too, the reference reading them live (the starting model with the policy's current embed_in), as TRLx's fork; default true under --trlx-compat eleuther-126c8f0, false under carper and none (embeddings frozen, the reference the starting model)", Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) { v := c.Bool("train-embeddings"); cfg.TrainEmbeddings = &v }},
		i("eval-interval", "evaluate on the held-out prompts every N steps (and at 0 and the end)", d.EvalInterval, func(c *ppo.Config) *int { return &c.EvalInterval }),
		i("checkpoint-interval", "checkpoint every N steps (and at the end)", d.CheckpointInterval, func(c *ppo.Config) *int { return &c.CheckpointInterval }),
		{&cli.StringFlag{Name: "betas", Usage: "AdamW β1,β2", Value: fmt.Sprintf("%g,%g", d.Betas[0], d.Betas[1]), Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) {
				fmt.Sscanf(strings.ReplaceAll(c.String("betas"), " ", ""), "%g,%g", &cfg.Betas[0], &cfg.Betas[1])
			}},
		{&cli.Uint64Flag{Name: "seed", Usage: "seed of every random draw (prompts, sampling, minibatches, reward noise)", Value: d.Seed, Category: "PPO settings (override --config)"},
			func(c *cli.Context, cfg *ppo.Config) { cfg.Seed = c.Uint64("seed") }},
	}
}

// rewardFlags are the flags that build a reward source, shared by ppo,
// score and eval.
func rewardFlags(prefix string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: prefix, Required: true, Usage: "the reward: lexicon:TOXIC.txt,NONTOXIC.txt | head:HEAD.json | classifier:MODEL | cmd:PROGRAM ARGS…"},
		&cli.StringFlag{Name: "reward-model", Usage: "for head: the frozen encoder the head's features come from", DefaultText: "the model the head's features name"},
		&cli.StringFlag{Name: "reward-label", Aliases: []string{"label"}, Value: "toxic", Usage: "for classifier: the label whose probability P the reward −P penalises"},
		&cli.StringFlag{Name: "reward-relative", Usage: "original: score prompt + the row's original continuation too and reward R(response) − R(original)"},
		&cli.StringFlag{Name: "original-field", Value: "original", Usage: "the prompt rows' column holding the original continuation"},
		&cli.StringFlag{Name: "reward-transform", Value: "none", Usage: "none, or official-rf2 (the paper's official IRL-RLHF transform; not monotonic)"},
		&cli.StringFlag{Name: "join", Usage: "for classifier: what joins prompt and response", DefaultText: `"", nothing, as the official code`},
		&cli.Float64Flag{Name: "reward-noise", Value: 0.2, Usage: "for lexicon: uniform noise ±this on every non-zero reward (Algorithm 2)"},
		&cli.DurationFlag{Name: "reward-timeout", Value: reward.DefaultTimeout, Usage: "for cmd: the longest the program may take over one answer before the run stops naming the row (0: no limit)"},
	}
}

// openReward opens the reward spec names, with its closer: the first call
// closes it, later ones do nothing, so a command defers close(false) for its
// error paths and calls close(true) where its results are in. There, a
// reward program that fails on the end of its input is worth a warning, not
// worth failing results that stand.
func openReward(c *cli.Context, spec string, o reward.Options) (src reward.Source, close func(warn bool), err error) {
	if src, err = reward.Parse(spec, o); err != nil {
		return nil, nil, err
	}
	var once sync.Once
	return src, func(warn bool) {
		once.Do(func() {
			if err := src.Close(); err != nil && warn {
				fmt.Fprintln(c.App.ErrWriter, "irl: warning:", err)
			}
		})
	}, nil
}

// rewardOptions reads rewardFlags.
func rewardOptions(c *cli.Context) (reward.Options, error) {
	o := reward.Options{RewardModel: c.String("reward-model"), Label: c.String("reward-label"), Join: c.String("join"),
		Transform: c.String("reward-transform"), Noise: c.Float64("reward-noise"), Seed: c.Uint64("seed")}
	if o.Noise == 0 {
		o.Noise = reward.NoNoise
	}
	switch d := c.Duration("reward-timeout"); {
	case d < 0:
		return o, fmt.Errorf("--reward-timeout %v must not be negative (0: no limit)", d)
	case d == 0:
		o.Timeout = reward.NoTimeout
	default:
		o.Timeout = d
	}
	switch r := c.String("reward-relative"); r {
	case "":
	case "original":
		o.Relative = c.String("original-field")
	default:
		return o, fmt.Errorf("--reward-relative %q: want original (the column is --original-field)", r)
	}
	return o, nil
}

// ppoHelp is the help text of irl ppo.
const ppoHelp = `Follows TRLx's PPO (the code the paper ran), with every random draw seeded so
a resumed run continues exactly, and two fixes that --trlx-compat none takes by
default and the compat modes (the presets) take only when asked: the score sits
on the last real response token, EOS when there is one (--score-position
last_token), and advantages are whitened over, and the loss taken on, the real
response tokens only (--advantage-whitening real_tokens).

Each phase samples --num-rollouts responses from the current weights, in chunks
of --chunk-size prompts (left-padded, prompts cut on the left to --seq-length −
--max-new-tokens), scores them with --reward, divides the scores by their
running std (--scale-reward), clips them (--cliprange-reward), and gives every
response token the reward −β·(log π − log π_ref) plus the score on the last.
--ppo-epochs passes over the phase follow, in shuffled minibatches of
--batch-size, each one AdamW step on the clipped PPO loss (policy and value,
GAE with --gamma and --lam) minus --ent-coef × entropy. β starts at
--init-kl-coef and, with a --target (the presets': 5.71 for 70m, 4.9 for
410m), adapts after each phase as TRLx adapts it (Ziegler et al.: β ← β·(1 +
clip(KL/target − 1, ±0.2)·n/horizon), KL being TRLx's k3 sequence estimate
Σ(e^x − 1 − x), x = log π − log π_ref, logged as policy/sqrt_kl; policy/kl is
the plain Σx); --target 0 keeps β fixed.

--trlx-compat follows one TRLx version's loop exactly (the presets:
eleuther-126c8f0, the fork the paper ran): the fork trains each minibatch, in
rollout order, --ppo-epochs steps in a row and moves β after each; carper
(CarperAI main) makes --ppo-epochs reshuffled passes and moves β after each
pass. Both clip the raw scores before scaling them, take the first chunk's
std after clipping, and feed the controller TRLx's KL: the whole sequence's,
prompt included, averaged over chunks as (mean of √KL)². none (the default
without a preset) is the loop described above. Under either compat mode the
score sits at the end of TRLx's reward slice, up to two positions past the last
real response token (one past the EOS), and the advantages are whitened over
the padded minibatch with the EOS left out of the loss, as TRLx does, unless
--score-position last_token or --advantage-whitening real_tokens asks for the fix.
Under eleuther-126c8f0, with --unfrozen-layers below the model's layers, the
input embeddings train too and the KL reference reads them live (the fork's
hydra: the starting model with the policy's current embed_in), unless
--train-embeddings=false freezes them, as carper and none do by default.

Rewards (--reward):
  lexicon:TOXIC.txt,NONTOXIC.txt   the paper's Algorithm 2 on the response
  head:HEAD.json                   a recovered head on --reward-model's features
                                   of prompt + response (IRL-RLHF)
  classifier:MODEL                 −P(--reward-label) of prompt + --join + response
  cmd:PROGRAM ARGS…                a child process: JSON lines in, {"reward": x} out,
                                   each answer within --reward-timeout
--reward-relative original subtracts the reward of prompt + the row's
--original-field column (the paper's P_tox(p+orig) − P_tox(p+gen)). A reward
that is not a number, or beyond ±1e9, stops the run naming the prompt row.

Writes DIR/metrics.jsonl (TRLx's names), DIR/samples/step-N.jsonl (the
held-out samples with their rewards at step 0, every --eval-interval steps and
at the end), DIR/checkpoint-N/ (model with the value head, optimiser,
tokenizer, trainer_state.json, and the phase's rollouts when mid-phase),
DIR/last-checkpoint, DIR/final/ (the same plus model.onnx) and DIR/plots/.
Only the newest --save-total-limit checkpoints are kept (2), and the best
(DIR/best-checkpoint names it): a pythia-70m checkpoint is about 0.6 GB.

--resume continues the run in --out from its newest checkpoint, and refuses
other settings, prompts, model or reward (its spec, label, join, transform,
noise, relative field and the fingerprints of the files it reads), listing
each difference; a run killed before its first checkpoint starts anew.
Ctrl-C stops the run at the next step, or between two rollout chunks (the
phase begun is dropped), with a checkpoint there to --resume from; a second
Ctrl-C stops at once.`

func ppoCommand() *cli.Command {
	cfgFlags := ppoConfigFlags()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "model", Required: true, Usage: "the starting model (an SFT Hugging Face folder); also the frozen reference"},
		inputFlag("prompt rows: JSON lines, CSV or Parquet; other columns are kept as metadata", true, "prompts"),
		&cli.StringFlag{Name: "out", Required: true, Usage: "run folder"},
		&cli.StringFlag{Name: "config", Usage: "settings: a preset (" + strings.Join(ppo.Presets(), ", ") + ") or a YAML/TOML file; flags override it"},
		&cli.StringFlag{Name: "eval-prompts", Usage: "held-out prompt rows (default: 20% of --input, chosen with --seed)"},
		promptFieldFlag("prompt", "the prompt column"), inputFormatFlag,
		tokenizerFlag,
		&cli.BoolFlag{Name: "resume", Usage: "continue from the newest checkpoint in --out, with the same settings, prompts and reward (with no checkpoint yet: start the run anew there)"},
		&cli.IntFlag{Name: "save-total-limit", Value: 2, Usage: "keep only the newest N checkpoints, and the best (highest held-out reward/mean; --out/best-checkpoint names it) (0: keep all)"},
		overwriteFlag, quietFlag,
	}
	flags = append(flags, rewardFlags("reward")...)
	for _, f := range cfgFlags {
		flags = append(flags, f.flag)
	}
	return &cli.Command{
		Name:        "ppo",
		Usage:       "RLHF: fine-tune a model with PPO against a reward (RLHF from a ground truth, IRL-RLHF from a recovered head)",
		UsageText:   "irl ppo --model SFT_DIR --input PROMPTS --reward SPEC --out DIR [--config FILE] [settings] [--seed S] [--resume]",
		Description: ppoHelp,
		Flags:       append(flags, runtimeFlags()...),
		Action:      func(c *cli.Context) error { return runPPO(c, cfgFlags) },
	}
}

func runPPO(c *cli.Context, cfgFlags []ppoFlag) error {
	cfg, err := ppoSettings(c, cfgFlags)
	if err != nil {
		return err
	}
	out := c.String("out")
	if !c.Bool("resume") {
		if err := ppo.CheckOut(out, c.Bool("overwrite")); err != nil {
			return err
		}
	}
	if n := c.Int("save-total-limit"); n < 0 {
		return fmt.Errorf("--save-total-limit %d must not be negative (0: keep all)", n)
	}
	so, err := sessionOptions(c)
	if err != nil {
		return err
	}
	ms, err := neox.Open(c.String("model"))
	if err != nil {
		return err
	}
	m, err := ms.Load()
	if err != nil {
		return err
	}
	tokPath := ms.TokenizerPath(c.String("tokenizer"))
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return fmt.Errorf("ppo needs the model's tokenizer to decode responses for the reward: %w", err)
	}
	train, eval, err := ppoPrompts(c, tok, m, cfg)
	if err != nil {
		return err
	}
	ro, err := rewardOptions(c)
	if err != nil {
		return err
	}
	ro.Seed, ro.Session = cfg.Seed, so
	src, closeSrc, err := openReward(c, c.String("reward"), ro)
	if err != nil {
		return err
	}
	defer closeSrc(false)
	o := ppo.Options{Out: out, Resume: c.Bool("resume"), Overwrite: c.Bool("overwrite"), TokenizerPath: tokPath, Session: so, ModelFingerprint: ms.Fingerprint,
		SaveTotalLimit: c.Int("save-total-limit"), Notes: c.App.ErrWriter, Context: c.Context}
	if !c.Bool("quiet") {
		o.Progress = os.Stderr
	}
	res, err := ppo.Run(m, tok, train, eval, src, cfg, o)
	if err != nil {
		return err
	}
	closeSrc(true)
	if math.IsNaN(res.LastReward) {
		fmt.Fprintf(os.Stderr, "%s had already run its %d steps; final model %s\n", out, res.Steps, res.Final)
		return nil
	}
	fmt.Fprintf(os.Stderr, "%d steps: held-out reward/mean %.4f → %.4f; final model %s\n", res.Steps, res.FirstReward, res.LastReward, res.Final)
	return nil
}

// ppoSettings are --config (a preset or a file) with the flags set over it,
// checked, in the flags' names.
func ppoSettings(c *cli.Context, cfgFlags []ppoFlag) (ppo.Config, error) {
	cfg := ppo.Defaults()
	if spec := c.String("config"); spec != "" {
		var err error
		if cfg, err = ppo.LoadConfig(spec); err != nil {
			return cfg, err
		}
	}
	for _, f := range cfgFlags {
		if c.IsSet(f.flag.Names()[0]) {
			f.apply(c, &cfg)
		}
	}
	if err := cfg.Validate(); err != nil {
		// ppo names its settings by key; here they are flags.
		return cfg, errors.New(ppo.RenameKeys(err.Error(), func(k string) string { return "--" + strings.ReplaceAll(k, "_", "-") }))
	}
	return cfg, nil
}

// ppoPrompts are the training prompts and the held-out ones: --eval-prompts,
// or 20% of --input held out by the seed.
func ppoPrompts(c *cli.Context, tok *tokenizer.Tokenizer, m *neox.Model, cfg ppo.Config) (train, eval []ppo.Prompt, err error) {
	if cfg.MaxNewTokens >= m.Config.MaxPositions {
		return nil, nil, fmt.Errorf("--max-new-tokens %d leaves no room for a prompt in the model's %d positions", cfg.MaxNewTokens, m.Config.MaxPositions)
	}
	read := func(path string) ([]ppo.Prompt, error) {
		return ppo.ReadPrompts(path, c.String("prompt-field"), c.String("input-format"), tok, m, cfg)
	}
	if train, err = read(c.String("input")); err != nil {
		return nil, nil, err
	}
	if p := c.String("eval-prompts"); p != "" {
		eval, err = read(p)
		return train, eval, err
	}
	train, eval = ppo.SplitPrompts(train, 0.2, cfg.Seed)
	return train, eval, nil
}
