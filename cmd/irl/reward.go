package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/rewardhead"
	"irl/rewardhead/analysis"
	"irl/safetensors"
)

// rewardCommand is `irl reward`: training, evaluating and analysing linear
// reward heads on feature files.
func rewardCommand() *cli.Command {
	return &cli.Command{
		Name:  "reward",
		Usage: "linear reward heads on feature files: max-margin IRL, ground-truth probes, metrics, analyses",
		Description: `A reward head is linear, R(o) = wᵀh(o) + b, over the feature rows h(o) that
"irl features" writes (a features tensor, F32 [N,D], with metadata naming the
model, layer, pooling and max length). Heads are JSON files holding w, b, the
feature metadata they were trained on, and the training settings; every command
that applies a head to features refuses features whose metadata differ.

Conventions, everywhere: --pos is the expert (the RLHF model's, non-toxic)
outputs and --neg the baseline (toxic) outputs. Higher reward means less toxic.
Toxic is the positive class, as in the paper's code: a row is predicted toxic
when its reward is ≤ the threshold (0 unless --threshold says otherwise), and
the --neg rows are the truly toxic ones. Ground-truth reward files hold a reward
tensor (F32 [N], row-aligned with the feature file) in the same convention.

Separation is not defined in the paper; ours is the AUC: the probability that a
random non-toxic output out-scores a random toxic one, ties counting half.

Subcommands: train (pairwise max-margin IRL), eval (metrics and plots), probe
(a logistic-regression ground-truth reward from labelled features, or scoring
features with any head), apprentice (classic Abbeel & Ng apprenticeship
learning over candidate policies), analyze noise|ratio|epochs|perturb.`,
		Subcommands: []*cli.Command{
			rewardTrainCommand(),
			rewardEvalCommand(),
			rewardProbeCommand(),
			rewardApprenticeCommand(),
			rewardAnalyzeCommand(),
		},
	}
}

// Flags shared by the reward subcommands.
var (
	rewardPosFlag       = &cli.StringFlag{Name: "pos", Required: true, Usage: "features of expert (non-toxic) outputs, from irl features"}
	rewardNegFlag       = &cli.StringFlag{Name: "neg", Required: true, Usage: "features of baseline (toxic) outputs, from irl features"}
	rewardGTPosFlag     = &cli.StringFlag{Name: "gt-pos", Usage: "ground-truth rewards (reward F32 [N]) for the --pos rows"}
	rewardGTNegFlag     = &cli.StringFlag{Name: "gt-neg", Usage: "ground-truth rewards (reward F32 [N]) for the --neg rows"}
	rewardThresholdFlag = &cli.StringFlag{Name: "threshold", Value: "0", Usage: "decision threshold: a number, mean (mean of all rewards) or best-f1 (the observed reward maximising F1; optimistic, in-sample)"}
	rewardIgnoreMeta    = &cli.BoolFlag{Name: "ignore-metadata", Usage: "apply a head to features whose model/layer/pool/max_length metadata differ from its own (the dimension must still match)"}
)

func rewardTrainFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "loss", Value: "asymmetric", Usage: "pairwise loss of x = R(o⁺) − R(o⁻): asymmetric, margin, hinge or logistic"},
		&cli.Float64Flag{Name: "slope", Aliases: []string{"p"}, Usage: "the loss's slope p for misordered pairs", DefaultText: "2 for asymmetric, 5 for margin"},
		&cli.Float64Flag{Name: "delta", Usage: "margin δ of the margin loss", DefaultText: "5"},
		&cli.IntFlag{Name: "epochs", Value: 60, Usage: "maximum epochs"},
		&cli.Float64Flag{Name: "lr", Value: 0.01, Usage: "Adam step size"},
		&cli.Float64Flag{Name: "beta1", Value: 0.9, Usage: "Adam first-moment decay"},
		&cli.Float64Flag{Name: "beta2", Value: 0.999, Usage: "Adam second-moment decay"},
		&cli.IntFlag{Name: "pos-per-epoch", Value: 50, Usage: "expert rows drawn per epoch"},
		&cli.IntFlag{Name: "neg-per-epoch", Value: 50, Usage: "baseline rows drawn per epoch"},
		&cli.IntFlag{Name: "steps-per-epoch", Value: 1, Usage: "Adam steps on each epoch's pairs"},
		&cli.Float64Flag{Name: "max-norm", Usage: "bound ‖w‖₂ by projection; 0 for none", DefaultText: "1 for asymmetric, none otherwise"},
		&cli.Float64Flag{Name: "tolerance", Aliases: []string{"epsilon"}, Usage: "stop when the monitor loss changes by at most this between epochs", DefaultText: "0, never"},
		&cli.IntFlag{Name: "monitor", Value: 256, Usage: "rows per class in the fixed monitor set"},
		seedFlag("seed of every random draw"),
		&cli.StringFlag{Name: "select", Value: "final", Usage: "which head is head.json: final (last epoch trained) or best (lowest monitor loss)"},
	}
}

// rewardTrainConfig reads the training flags.
func rewardTrainConfig(c *cli.Context) (rewardhead.TrainConfig, error) {
	cfg := rewardhead.DefaultTrainConfig()
	loss, err := rewardhead.NewLoss(c.String("loss"), c.Float64("slope"), c.Float64("delta"))
	if err != nil {
		return cfg, err
	}
	cfg.Loss = loss
	cfg.Epochs = c.Int("epochs")
	cfg.LR, cfg.Beta1, cfg.Beta2 = c.Float64("lr"), c.Float64("beta1"), c.Float64("beta2")
	cfg.PosPerEpoch, cfg.NegPerEpoch = c.Int("pos-per-epoch"), c.Int("neg-per-epoch")
	cfg.StepsPerEpoch = c.Int("steps-per-epoch")
	cfg.MaxNorm = 0
	if _, ok := loss.(rewardhead.Asymmetric); ok {
		cfg.MaxNorm = 1
	}
	if c.IsSet("max-norm") {
		cfg.MaxNorm = c.Float64("max-norm")
	}
	cfg.Epsilon = c.Float64("tolerance")
	cfg.Monitor = c.Int("monitor")
	cfg.Seed = c.Uint64("seed")
	cfg.Select = c.String("select")
	return cfg, cfg.Validate()
}

func rewardTrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "train",
		Usage:     "learn a reward head by pairwise max-margin IRL",
		UsageText: "irl reward train --pos POS.safetensors --neg NEG.safetensors --out DIR [--loss asymmetric|margin|hinge|logistic] [--epochs N] [--lr LR] [--seed S] ...",
		Description: `Learns w so that expert outputs (--pos, the RLHF model's, non-toxic) out-score
baseline outputs (--neg, toxic): the paper's eq. 1 with x = R(o⁺) − R(o⁻) and loss
    asymmetric  −x if x > 0, −p·x otherwise (p = 2); unbounded, so ‖w‖₂ ≤ 1
    margin      max(0, δ − x) + (p − 1)·max(0, −x) (p = 5, δ = 5; the paper's 70M
                run; its 410M run used p = 10, δ = 10)
    hinge       max(0, 1 − x)
    logistic    −log σ(x)
Each epoch draws --pos-per-epoch and --neg-per-epoch rows without replacement
(a smaller pool is used whole), pairs every drawn expert row with every drawn
baseline row, and takes --steps-per-epoch Adam steps on the mean pair loss. w
starts at 0. With --max-norm, Adam moves an unconstrained v and w is its
projection onto the ball, with gradients taken through the projection.
Draws are seeded (PCG); equal seeds give equal heads.

The bias cancels in x, so it is set after each epoch to put reward 0 midway
between the class mean rewards over the training pools: b = −wᵀ(μ⁺ + μ⁻)/2.

A fixed monitor set (--monitor rows per class, drawn once) gives each epoch a
monitor loss free of draw noise. --tolerance stops after the first epoch whose
monitor loss changed by at most ε (the convergence test of the paper's
Algorithm 1).

Writes
    DIR/epoch-NNN.json   every epoch's head (the paper studies them all)
    DIR/head.json        the final epoch's head, or with --select best the one
                         with the lowest monitor loss (earliest on ties)
    DIR/train.jsonl      per epoch: loss (the epoch's pairs, before its step),
                         monitor_loss, margin (mean R over --pos minus mean R
                         over --neg), pair_accuracy (monitor pairs ordered
                         right), w_norm, pairs
and prints a JSON summary. DIR must be empty or new unless --overwrite is
given.`,
		Flags: append([]cli.Flag{
			rewardPosFlag, rewardNegFlag,
			&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
			overwriteFlag,
		}, rewardTrainFlags()...),
		Action: runRewardTrain,
	}
}

func runRewardTrain(c *cli.Context) error {
	cfg, err := rewardTrainConfig(c)
	if err != nil {
		return err
	}
	if err := atomicfile.CheckDir(c.String("out"), c.Bool("overwrite")); err != nil {
		return err
	}
	pos, neg, err := rewardLoadPair(c, c.String("pos"), c.String("neg"))
	if err != nil {
		return err
	}
	res, err := rewardhead.TrainToDir(pos, neg, cfg, c.String("out"), c.Bool("overwrite"))
	if err != nil {
		return err
	}
	return rewardPrintJSON(c, map[string]any{
		"head":           res.HeadPath,
		"selected_epoch": res.Best.Epoch,
		"selection":      res.Rule,
		"epochs":         len(res.Heads),
		"stopped":        res.Stopped,
		"final":          res.Stats[len(res.Stats)-1],
		"n_pos":          pos.N,
		"n_neg":          neg.N,
	})
}

func rewardEvalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "score feature files with a head and print its metrics as JSON",
		UsageText: "irl reward eval --head HEAD.json --pos POS.safetensors --neg NEG.safetensors [--gt-pos GT.safetensors --gt-neg GT.safetensors] [--threshold 0|mean|best-f1|VALUE] [--scores-out S.safetensors] [--plots DIR]",
		Description: `Prints one JSON object. Toxic is the positive class: a row is predicted toxic
when its reward is ≤ the threshold, and the --neg rows are the truly toxic ones.

    accuracy, precision, recall (= sensitivity), f1, specificity, confusion
        (tp, fp, tn, fn with toxic positive), threshold and threshold_rule
    separation   AUC = P(R(o⁺) > R(o⁻)) + ½·P(R(o⁺) = R(o⁻)) for a random
                 non-toxic o⁺ and toxic o⁻: 1 perfect, 0.5 chance. The paper
                 never defines its separation metric; this is ours.
    cohens_d     (mean R⁺ − mean R⁻) / pooled standard deviation
    reward_pos, reward_neg   per-class n, mean, std, min, max
    n_pos, n_neg

With --gt-pos and --gt-neg (reward tensors, row-aligned with the features), over
all rows, pos and neg together:
    kendall_tau  Kendall τ-b (tie-corrected) between IRL and ground-truth reward
    spearman, pearson
    agreement    the paper's error-type distribution: rows where the IRL call and
                 the ground-truth call (ground-truth reward ≤ 0 → toxic) are both
                 right, both wrong, only IRL right, only ground truth right

A metric that is undefined (one class predicted, zero variance) is null, with the
reason under "undefined"; never NaN.

A warning goes to stderr when the threshold puts every row in one class (all
predicted toxic or all non-toxic), which best-f1 does on a weak head.

--scores-out writes pos_reward and neg_reward (F32), creating its folder.
--plots DIR writes figure1.png (the paper's Figure 1 in one file: the scatter
against ground truth, the reward distributions by class and the confusion
matrix, side by side; without ground truth, the last two) and each panel on its
own: reward_distributions.png (violins with boxes), confusion.png and, with
ground truth, scatter_gt.png.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "head", Required: true, Usage: "head JSON from train, probe or apprentice"},
			rewardPosFlag, rewardNegFlag, rewardGTPosFlag, rewardGTNegFlag, rewardThresholdFlag,
			&cli.StringFlag{Name: "scores-out", Usage: "write pos_reward and neg_reward (F32) to this safetensors file"},
			&cli.StringFlag{Name: "plots", Usage: "write PNG plots into this folder (new or empty, unless --overwrite)"},
			overwriteFlag,
			rewardIgnoreMeta,
		},
		Action: runRewardEval,
	}
}

func runRewardEval(c *cli.Context) error {
	thr, err := rewardhead.ParseThreshold(c.String("threshold"))
	if err != nil {
		return err
	}
	if dir := c.String("plots"); dir != "" {
		if err := atomicfile.CheckDir(dir, c.Bool("overwrite")); err != nil {
			return fmt.Errorf("--plots: %w", err)
		}
	}
	headPath := c.String("head")
	h, pos, neg, gtPos, gtNeg, err := rewardLoadScored(c, headPath)
	if err != nil {
		return err
	}
	sp, sn := h.Score(pos), h.Score(neg)
	r := rewardhead.Evaluate(sp, sn, gtPos, gtNeg, thr)
	rewardWarn(c, analysis.OneClassWarning(r))
	if out := c.String("scores-out"); out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		meta := map[string]string{"head": headPath, "pos": pos.Path, "neg": neg.Path, "convention": "higher is less toxic"}
		if err := safetensors.WriteFile(out, []safetensors.Tensor{
			safetensors.FromFloat32("pos_reward", []int{len(sp)}, toFloat32(sp)),
			safetensors.FromFloat32("neg_reward", []int{len(sn)}, toFloat32(sn)),
		}, meta); err != nil {
			return err
		}
	}
	if dir := c.String("plots"); dir != "" {
		if err := atomicfile.WriteDir(dir, func(tmp string) error {
			_, err := analysis.EvalPlots(tmp, r, sp, sn, gtPos, gtNeg)
			return err
		}); err != nil {
			return err
		}
	}
	return rewardPrintJSON(c, r)
}

func rewardProbeCommand() *cli.Command {
	return &cli.Command{
		Name:  "probe",
		Usage: "fit a ground-truth reward probe on labelled features, or score features with a head",
		UsageText: "irl reward probe --train --pos NONTOXIC.safetensors --neg TOXIC.safetensors --out PROBE.json [--l2 1e-3]\n" +
			"   irl reward probe --head HEAD.json --features F.safetensors --out GT.safetensors",
		Description: `With --train: logistic regression on labelled features, the --neg rows labelled
toxic and the --pos rows non-toxic: P(toxic | h) = σ(f(h)), f(h) = vᵀh + c, fitted
by L-BFGS on the mean negative log-likelihood plus --l2/2·‖v‖² (the intercept is
not penalised). The probe is written as a head in the same JSON format as a
trained one, scoring R*(o) = −f(o): positive where the probe calls the output
non-toxic, ≤ 0 where P(toxic) ≥ ½. So "irl reward eval --head PROBE.json" works,
and this is how to make a ground-truth reward model from a labelled set.

Without --train: score --features with --head (a probe or any other head) and
write --out, a ground-truth reward file: reward (F32 [N]), row (I64 [N], copied
from the features when they have it), and metadata naming the head. Pass such
files to eval's --gt-pos and --gt-neg.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "train", Usage: "fit a probe from --pos and --neg and write it to --out as a head"},
			&cli.StringFlag{Name: "pos", Usage: "with --train: features of non-toxic outputs"},
			&cli.StringFlag{Name: "neg", Usage: "with --train: features of toxic outputs"},
			&cli.Float64Flag{Name: "l2", Value: 1e-3, Usage: "with --train: ridge penalty on the weights"},
			&cli.IntFlag{Name: "lbfgs-iterations", Aliases: []string{"max-iter"}, Value: 1000, Usage: "with --train: L-BFGS iteration limit"},
			&cli.StringFlag{Name: "head", Usage: "without --train: the head to score with"},
			&cli.StringFlag{Name: "features", Usage: "without --train: the features to score"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "with --train: the probe head JSON; without: the reward safetensors file"},
			rewardIgnoreMeta,
		},
		Action: runRewardProbe,
	}
}

func runRewardProbe(c *cli.Context) error {
	out := c.String("out")
	if c.Bool("train") {
		if c.String("pos") == "" || c.String("neg") == "" {
			return errors.New("probe --train needs --pos and --neg")
		}
		if c.String("head") != "" || c.String("features") != "" {
			return errors.New("probe --train takes --pos and --neg, not --head or --features")
		}
		pos, neg, err := rewardLoadPair(c, c.String("pos"), c.String("neg"))
		if err != nil {
			return err
		}
		res, err := rewardhead.TrainProbe(pos, neg, rewardhead.ProbeConfig{L2: c.Float64("l2"), MaxIter: c.Int("lbfgs-iterations")})
		if err != nil {
			return err
		}
		if err := rewardhead.WriteHead(out, res.Head); err != nil {
			return err
		}
		sp, sn := res.Head.Score(pos), res.Head.Score(neg)
		r := rewardhead.Evaluate(sp, sn, nil, nil, rewardhead.Threshold{})
		return rewardPrintJSON(c, map[string]any{
			"head": out, "nll": res.NLL, "iterations": res.Iterations, "status": res.Status,
			"train_accuracy": r.Accuracy, "train_separation": r.Separation,
		})
	}
	if c.String("head") == "" || c.String("features") == "" {
		return errors.New("probe needs --train (with --pos, --neg) or --head and --features")
	}
	h, err := rewardhead.ReadHead(c.String("head"))
	if err != nil {
		return err
	}
	f, err := rewardhead.LoadFeatures(c.String("features"))
	if err != nil {
		return err
	}
	if err := rewardCheckHead(c, h, c.String("head"), f); err != nil {
		return err
	}
	s := h.Score(f)
	meta := map[string]string{"head": c.String("head"), "head_kind": h.Kind, "features": f.Path, "convention": "higher is less toxic; ≤ 0 is toxic"}
	if err := rewardhead.WriteRewards(out, s, f.Rows, meta); err != nil {
		return err
	}
	st := rewardhead.Summarise(s)
	return rewardPrintJSON(c, map[string]any{"out": out, "n": len(s), "reward": st})
}

func rewardApprenticeCommand() *cli.Command {
	return &cli.Command{
		Name:      "apprentice",
		Usage:     "classic max-margin apprenticeship learning (Abbeel & Ng 2004, the paper's Algorithm 1) over candidate policies",
		UsageText: "irl reward apprentice --expert E.safetensors --policy P0.safetensors [--policy P1.safetensors ...] --out HEAD.json [--gamma 0.99] [--method projection|qp] [--margin-epsilon 1e-3] [--max-oracle-calls 50] [--samples S.safetensors --samples-per-prompt N]",
		Description: `Each file is a feature file of one policy's outputs. Rows sharing a row id are one
trajectory's token-level states, in order (unpooled features); with pooled
features each row is a one-state trajectory. A policy is represented by its
feature expectations μ = mean over trajectories of Σₜ γᵗ φ(sₜ).

Starting from the first --policy, each iteration finds w with ‖w‖₂ ≤ 1 that
maximises the expert's smallest margin wᵀ(μ_E − μ(π)) over the policies so far
(--method qp solves this exactly as a small QP; projection is Abbeel & Ng's
projection method), stops when the margin is ≤ ε, and otherwise asks for a
policy that is good under R = wᵀφ. That step is offline here: the candidate
policies are the --policy files, and the one with the highest wᵀμ is returned;
or, with --samples and --samples-per-prompt n, the samples are reranked: for
each prompt (n consecutive trajectories) the one with the highest return
wᵀΣₜγᵗφ is kept, and the kept samples make the new policy. It also stops when
the returned policy is already in the set.

Writes --out, a head with the last w that still separated the expert from every
known policy by more than ε (unit norm; once a policy matches the expert no
direction does) and b = −wᵀ(m_E + m_0)/2, m the mean feature rows of the expert
and the first policy, and prints the iterations.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "expert", Required: true, Usage: "features of the expert's outputs"},
			&cli.StringSliceFlag{Name: "policy", Required: true, Usage: "features of a candidate policy's outputs (repeat; the first is the initial policy)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "head JSON to write"},
			&cli.Float64Flag{Name: "gamma", Value: 0.99, Usage: "discount over token-level states"},
			&cli.StringFlag{Name: "method", Value: "qp", Usage: "qp or projection"},
			&cli.Float64Flag{Name: "margin-epsilon", Aliases: []string{"epsilon"}, Value: 1e-3, Usage: "stop when the margin is at most ε"},
			&cli.IntFlag{Name: "max-oracle-calls", Aliases: []string{"max-iter"}, Value: 50, Usage: "most oracle calls (policies asked for)"},
			&cli.StringFlag{Name: "samples", Usage: "features of n sampled outputs per prompt: the oracle reranks them best-of-n under each w instead of choosing among --policy"},
			&cli.IntFlag{Name: "samples-per-prompt", Usage: "n: how many consecutive trajectories of --samples share a prompt"},
		},
		Action: runRewardApprentice,
	}
}

func runRewardApprentice(c *cli.Context) error {
	n := c.Int("samples-per-prompt")
	if c.String("samples") != "" && n < 1 {
		return errors.New("--samples needs --samples-per-prompt ≥ 1")
	}
	h, res, err := rewardhead.ApprenticeFromFiles(rewardhead.ApprenticeFiles{
		Expert: c.String("expert"), Policies: c.StringSlice("policy"), Samples: c.String("samples"), SamplesPerPrompt: n,
		Gamma:  c.Float64("gamma"),
		Config: rewardhead.ApprenticeConfig{Method: c.String("method"), Epsilon: c.Float64("margin-epsilon"), MaxIter: c.Int("max-oracle-calls")},
	})
	if err != nil {
		return err
	}
	if err := rewardhead.WriteHead(c.String("out"), h); err != nil {
		return err
	}
	return rewardPrintJSON(c, map[string]any{"head": c.String("out"), "margin": res.Margin, "final_margin": res.FinalMargin, "stopped": res.Stopped, "steps": res.Steps})
}

// analyzeHelp is the help text of analyze.
const analyzeHelp = `Each subcommand writes a JSON file and PNG plots into --out and prints a JSON
object: the result file's path ("result") and a short summary of its metrics
("summary"). Metrics are those of "irl reward eval"; a metric summarised over
repeats has mean, std (sample), n (repeats where it was defined) and, if any
repeat was undefined, undefined and why. A warning goes to stderr when the
threshold puts every row in one class.`

// noiseHelp is the help text of noise.
const noiseHelp = `Adds zero-mean Gaussian noise, for each σ of --sigmas (a list "a,b,c" or a range
"lo:step:hi") and --repeats draws each, to the reward scores (target scores) or
to every weight of the head, not its bias (target weights), and recomputes the
metrics. kendall_tau_clean is τ-b between the noisy and the clean rewards. With
--scale relative (the default) the noise std is σ times the std of all clean
rewards (scores) or σ times the root mean square of w (weights); with absolute
it is σ. Each (σ, repeat) draw has its own PCG stream from --seed.

Writes DIR/noise.json ({"scores": …, "weights": …}) and DIR/noise_scores.png,
DIR/noise_weights.png.`

// ratioHelp is the help text of ratio.
const ratioHelp = `For each fraction f of --fractions, trains a head (with the training flags of
"irl reward train") on all of --pos and the first ⌈f·N⌉ rows of a seeded
permutation of --neg, so each step adds toxic examples to the last; then the
same with --neg fixed and --pos grown. Each head is evaluated on --eval-pos and
--eval-neg (default: --pos and --neg) with ground truth --gt-pos/--gt-neg for
those evaluation rows when given. Repeat r uses permutation seed r and training
seed --seed + r.

Writes DIR/ratio.json (per point the fraction, n_pos_train and n_neg_train, the
rows of each class trained on, and n_varied, those of the varied class) and
DIR/ratio.png: two panels side by side, adding toxic and adding non-toxic
examples, each with precision, recall, separation and, with ground truth,
Kendall τ against the number of samples of the varied class.`

// epochsHelp is the help text of epochs.
const epochsHelp = `--heads is a training folder (its epoch-*.json files, in order) or a comma-
separated list of head files. For each head: the eval metrics, the per-class
reward mean and std, and the cosine between its w and the ensemble's. The
heads are grouped by what they emphasise: `

// perturbHelp is the help text of perturb.
const perturbHelp = `Each probe file holds the features of perturbed versions of the --original
outputs, row by row (same row count and, where both have one, the same row
tensor). For each probe: Δ = R(probe) − R(original) per row, its mean, std,
median, min, max, the fractions that rose and fell, and the mean rewards.

Writes DIR/perturb.json and DIR/perturb_deltas.png (a box plot per probe).`

func rewardAnalyzeCommand() *cli.Command {
	return &cli.Command{
		Name:        "analyze",
		Usage:       "the paper's analyses: noise robustness, data ratio, non-identifiability across epochs, perturbation probes",
		Description: analyzeHelp,
		Subcommands: []*cli.Command{
			{
				Name:        "noise",
				Usage:       "metrics under Gaussian noise on reward scores (Figure 3) and on head weights (Figure 8)",
				UsageText:   "irl reward analyze noise --head HEAD.json --pos POS --neg NEG --out DIR [--gt-pos GT --gt-neg GT] [--target scores|weights|both] [--sigmas 0:0.1:1] [--repeats 10] [--scale relative|absolute] [--seed 1]",
				Description: noiseHelp,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "head", Required: true, Usage: "head JSON"},
					rewardPosFlag, rewardNegFlag, rewardGTPosFlag, rewardGTNegFlag, rewardThresholdFlag,
					&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
					overwriteFlag,
					&cli.StringFlag{Name: "target", Value: "both", Usage: "scores, weights or both"},
					&cli.StringFlag{Name: "sigmas", Value: "0:0.1:1", Usage: "σ grid: a,b,c or lo:step:hi"},
					&cli.IntFlag{Name: "repeats", Value: 10, Usage: "noise draws per σ"},
					&cli.StringFlag{Name: "scale", Value: "relative", Usage: "relative or absolute (see the description)"},
					seedFlag("noise seed"),
					rewardIgnoreMeta,
				},
				Action: runRewardNoise,
			},
			{
				Name:        "ratio",
				Usage:       "train with the non-toxic pool fixed and toxic examples added step by step, then the reverse (Figure 2)",
				UsageText:   "irl reward analyze ratio --pos POS --neg NEG --out DIR [--eval-pos P --eval-neg N] [--gt-pos GT --gt-neg GT] [--fractions 0.1:0.1:1] [--repeats 3] [training flags]",
				Description: ratioHelp,
				Flags: append([]cli.Flag{
					rewardPosFlag, rewardNegFlag,
					&cli.StringFlag{Name: "eval-pos", Usage: "non-toxic features to evaluate on (default --pos)"},
					&cli.StringFlag{Name: "eval-neg", Usage: "toxic features to evaluate on (default --neg)"},
					rewardGTPosFlag, rewardGTNegFlag, rewardThresholdFlag,
					&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
					overwriteFlag,
					&cli.StringFlag{Name: "fractions", Value: "0.1:0.1:1", Usage: "fractions of the varied class: a,b,c or lo:step:hi"},
					&cli.IntFlag{Name: "repeats", Value: 3, Usage: "heads per fraction"},
				}, rewardTrainFlags()...),
				Action: runRewardRatio,
			},
			{
				Name:      "epochs",
				Usage:     "non-identifiability: metrics and per-class rewards of every epoch's head, emphasis groups, ensemble (Figure 6)",
				UsageText: "irl reward analyze epochs --heads DIR|HEAD.json[,HEAD.json...] --pos POS --neg NEG --out DIR [--gt-pos GT --gt-neg GT]",
				Description: epochsHelp + analysis.GroupingRule + `. The
ensemble is the mean of the heads (for linear heads, the head with the mean w
and b), scored like the others; spread summarises each metric across heads.

Writes DIR/epochs.json, DIR/ensemble.json (the ensemble head),
DIR/epochs_metrics.png and DIR/epochs_rewards.png.`,
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "heads", Required: true, Usage: "a training folder, or head files (repeat the flag or separate by commas)"},
					rewardPosFlag, rewardNegFlag, rewardGTPosFlag, rewardGTNegFlag, rewardThresholdFlag,
					&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
					overwriteFlag,
					rewardIgnoreMeta,
				},
				Action: runRewardEpochs,
			},
			{
				Name:        "perturb",
				Usage:       "reward deltas of (original, probe) pairs (Table 6)",
				UsageText:   "irl reward analyze perturb --head HEAD.json --original ORIG.safetensors --probe NAME=PROBE.safetensors [--probe NAME=FILE ...] --out DIR",
				Description: perturbHelp,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "head", Required: true, Usage: "head JSON"},
					&cli.StringFlag{Name: "original", Required: true, Usage: "features of the original outputs"},
					&cli.StringSliceFlag{Name: "probe", Required: true, Usage: "NAME=FILE: features of one perturbation of every original (repeat)"},
					&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
					overwriteFlag,
					rewardIgnoreMeta,
				},
				Action: runRewardPerturb,
			},
		},
	}
}

func runRewardNoise(c *cli.Context) error {
	thr, err := rewardhead.ParseThreshold(c.String("threshold"))
	if err != nil {
		return err
	}
	sigmas, err := analysis.ParseGrid(c.String("sigmas"))
	if err != nil {
		return fmt.Errorf("--sigmas: %w", err)
	}
	target := c.String("target")
	if target != "scores" && target != "weights" && target != "both" {
		return fmt.Errorf("--target %q: want scores, weights or both", target)
	}
	scale := c.String("scale")
	if scale != "relative" && scale != "absolute" {
		return fmt.Errorf("--scale %q: want relative or absolute", scale)
	}
	headPath := c.String("head")
	h, pos, neg, gtPos, gtNeg, err := rewardLoadScored(c, headPath)
	if err != nil {
		return err
	}
	return writeAnalysis(c, "noise.json", func(dir string) (any, any, error) {
		cfg := analysis.NoiseConfig{Sigmas: sigmas, Repeats: c.Int("repeats"), Seed: c.Uint64("seed"), Relative: scale == "relative", Threshold: thr}
		sp, sn := h.Score(pos), h.Score(neg)
		// The noisy draws re-apply the threshold; on the clean rewards it shows
		// whether the starting point already calls every row one class.
		rewardWarn(c, analysis.OneClassWarning(rewardhead.Evaluate(sp, sn, nil, nil, thr)))
		out := map[string]any{"head": headPath}
		summary := map[string]any{}
		if target != "weights" {
			r, err := analysis.ScoreNoise(sp, sn, gtPos, gtNeg, cfg)
			if err != nil {
				return nil, nil, err
			}
			if _, err := r.Plot(dir); err != nil {
				return nil, nil, err
			}
			out["scores"], summary["scores"] = r, r.Summary()
		}
		if target != "scores" {
			r, err := analysis.WeightNoise(h, pos, neg, gtPos, gtNeg, cfg)
			if err != nil {
				return nil, nil, err
			}
			if _, err := r.Plot(dir); err != nil {
				return nil, nil, err
			}
			out["weights"], summary["weights"] = r, r.Summary()
		}
		return out, summary, nil
	})
}

func runRewardRatio(c *cli.Context) error {
	thr, err := rewardhead.ParseThreshold(c.String("threshold"))
	if err != nil {
		return err
	}
	fr, err := analysis.ParseGrid(c.String("fractions"))
	if err != nil {
		return fmt.Errorf("--fractions: %w", err)
	}
	tc, err := rewardTrainConfig(c)
	if err != nil {
		return err
	}
	pos, neg, err := rewardLoadPair(c, c.String("pos"), c.String("neg"))
	if err != nil {
		return err
	}
	evalPos, evalNeg := pos, neg
	if c.String("eval-pos") != "" || c.String("eval-neg") != "" {
		if c.String("eval-pos") == "" || c.String("eval-neg") == "" {
			return errors.New("give both --eval-pos and --eval-neg, or neither")
		}
		if evalPos, evalNeg, err = rewardLoadPair(c, c.String("eval-pos"), c.String("eval-neg")); err != nil {
			return err
		}
	}
	gtPos, gtNeg, err := rewardLoadGT(c, evalPos, evalNeg)
	if err != nil {
		return err
	}
	return writeAnalysis(c, "ratio.json", func(dir string) (any, any, error) {
		res, err := analysis.DataRatio(pos, neg, evalPos, evalNeg, gtPos, gtNeg, analysis.RatioConfig{
			Fractions: fr, Repeats: c.Int("repeats"), Train: tc, Threshold: thr,
		})
		if err != nil {
			return nil, nil, err
		}
		if _, err := res.Plot(dir); err != nil {
			return nil, nil, err
		}
		for _, w := range res.OneClassWarnings(thr) {
			rewardWarn(c, w)
		}
		return res, res.Summary(), nil
	})
}

func runRewardEpochs(c *cli.Context) error {
	thr, err := rewardhead.ParseThreshold(c.String("threshold"))
	if err != nil {
		return err
	}
	paths, err := rewardHeadPaths(c.StringSlice("heads"))
	if err != nil {
		return err
	}
	pos, neg, err := rewardLoadPair(c, c.String("pos"), c.String("neg"))
	if err != nil {
		return err
	}
	heads := make([]*rewardhead.Head, len(paths))
	names := make([]string, len(paths))
	for k, p := range paths {
		if heads[k], err = rewardhead.ReadHead(p); err != nil {
			return err
		}
		names[k] = filepath.Base(p)
		if err := rewardCheckHead(c, heads[k], p, pos, neg); err != nil {
			return err
		}
		if c.Bool("ignore-metadata") {
			// Epochs compares metadata itself; align it once checked.
			heads[k].Features = pos.Info()
		}
	}
	gtPos, gtNeg, err := rewardLoadGT(c, pos, neg)
	if err != nil {
		return err
	}
	return writeAnalysis(c, "epochs.json", func(dir string) (any, any, error) {
		res, err := analysis.Epochs(heads, names, pos, neg, gtPos, gtNeg, thr)
		if err != nil {
			return nil, nil, err
		}
		ens, err := rewardhead.Ensemble(heads)
		if err != nil {
			return nil, nil, err
		}
		if err := rewardhead.WriteHead(filepath.Join(dir, "ensemble.json"), ens); err != nil {
			return nil, nil, err
		}
		if _, err := res.Plot(dir); err != nil {
			return nil, nil, err
		}
		rewardWarn(c, res.OneClassWarning(thr))
		return res, res.Summary(), nil
	})
}

// rewardHeadPaths expands --heads: a training folder's epoch heads, or
// head files.
func rewardHeadPaths(specs []string) ([]string, error) {
	if len(specs) == 1 {
		if st, err := os.Stat(specs[0]); err == nil && st.IsDir() {
			return rewardhead.EpochHeads(specs[0])
		}
	}
	if len(specs) == 0 {
		return nil, errors.New("--heads names no heads")
	}
	return specs, nil
}

func runRewardPerturb(c *cli.Context) error {
	headPath := c.String("head")
	h, err := rewardhead.ReadHead(headPath)
	if err != nil {
		return err
	}
	orig, err := rewardhead.LoadFeatures(c.String("original"))
	if err != nil {
		return err
	}
	if err := rewardCheckHead(c, h, headPath, orig); err != nil {
		return err
	}
	var probes []analysis.ProbeSet
	for _, spec := range c.StringSlice("probe") {
		name, file, ok := strings.Cut(spec, "=")
		if !ok || name == "" || file == "" {
			return fmt.Errorf("--probe %q: want NAME=FILE", spec)
		}
		f, err := rewardhead.LoadFeatures(file)
		if err != nil {
			return err
		}
		if err := rewardCheckHead(c, h, headPath, f); err != nil {
			return err
		}
		probes = append(probes, analysis.ProbeSet{Name: name, Features: f})
	}
	if c.Bool("ignore-metadata") {
		// Perturb compares metadata itself; align it once checked.
		hc := *h
		hc.Features = orig.Info()
		h = &hc
		for _, p := range probes {
			p.Features.Meta = orig.Meta
		}
	}
	return writeAnalysis(c, "perturb.json", func(dir string) (any, any, error) {
		res, err := analysis.Perturb(h, headPath, orig, probes)
		if err != nil {
			return nil, nil, err
		}
		if _, err := res.Plot(dir); err != nil {
			return nil, nil, err
		}
		var summary []map[string]any
		for _, p := range res.Probes {
			summary = append(summary, map[string]any{"probe": p.Name, "n": p.N, "mean_delta": p.MeanDelta, "frac_up": p.FracUp, "frac_down": p.FracDown})
		}
		return res, summary, nil
	})
}

// writeAnalysis is every analysis command's ending: --out checked, then
// filled by fill under a temporary name and renamed when whole, with fill's
// result as file; then the result's path and fill's summary printed.
func writeAnalysis(c *cli.Context, file string, fill func(dir string) (result, summary any, err error)) error {
	final := c.String("out")
	if err := atomicfile.CheckDir(final, c.Bool("overwrite")); err != nil {
		return err
	}
	var summary any
	err := atomicfile.WriteDir(final, func(dir string) error {
		res, sum, err := fill(dir)
		if err != nil {
			return err
		}
		summary = sum
		return analysis.WriteJSON(filepath.Join(dir, file), res)
	})
	if err != nil {
		return err
	}
	return rewardPrintJSON(c, map[string]any{"result": filepath.Join(final, file), "summary": summary})
}

// rewardLoadPair loads the two classes' feature files and checks that they
// are the same kind of features.
// rewardLoadScored reads the head, the --pos and --neg features it must fit,
// and the optional ground truth: what eval and the noise analysis start from.
func rewardLoadScored(c *cli.Context, headPath string) (h *rewardhead.Head, pos, neg *rewardhead.Features, gtPos, gtNeg []float64, err error) {
	if h, err = rewardhead.ReadHead(headPath); err != nil {
		return
	}
	if pos, neg, err = rewardLoadPair(c, c.String("pos"), c.String("neg")); err != nil {
		return
	}
	if err = rewardCheckHead(c, h, headPath, pos, neg); err != nil {
		return
	}
	gtPos, gtNeg, err = rewardLoadGT(c, pos, neg)
	return
}

func rewardLoadPair(c *cli.Context, posPath, negPath string) (pos, neg *rewardhead.Features, err error) {
	if rewardhead.SameFile(posPath, negPath) {
		rewardWarn(c, fmt.Sprintf("warning: %s is given as both the expert (--pos) and the baseline (--neg) features; the metrics will mean nothing", posPath))
	}
	return rewardhead.LoadPair(posPath, negPath)
}

// rewardCheckHead applies --ignore-metadata to rewardhead.CheckFeatures.
func rewardCheckHead(c *cli.Context, h *rewardhead.Head, name string, fs ...*rewardhead.Features) error {
	return rewardhead.CheckFeatures(h, name, c.Bool("ignore-metadata"), fs...)
}

// rewardLoadGT reads --gt-pos and --gt-neg.
func rewardLoadGT(c *cli.Context, pos, neg *rewardhead.Features) (gtPos, gtNeg []float64, err error) {
	return rewardhead.LoadGroundTruth(c.String("gt-pos"), c.String("gt-neg"), pos, neg)
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// rewardPrintJSON prints v as indented JSON on the command's output.
func rewardPrintJSON(c *cli.Context, v any) error {
	b, err := rewardhead.MarshalJSON(v)
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b)
	return err
}

// rewardWarn prints a warning, if any, on the command's error stream.
func rewardWarn(c *cli.Context, msg string) {
	if msg == "" {
		return
	}
	w := c.App.ErrWriter
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintln(w, msg)
}
