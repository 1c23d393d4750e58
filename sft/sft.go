// Package sft fine-tunes a GPT-NeoX policy on text with next-token
// cross-entropy: the training graph of package policy computes the loss and
// gradients on ONNX Runtime, AdamW updates the weights where they live (in
// Go on CPU, as an ONNX graph on the device on CUDA: policy.Optimizer).
//
// A run writes, in its output folder, checkpoints in Hugging Face format
// (config.json + model.safetensors) with the optimiser state and a
// trainer_state.json beside them, and metrics.jsonl, through package
// checkpoint. A resumed run replays the same batch order from the same seed,
// so its losses equal those of an uninterrupted run; it refuses changed
// settings.
package sft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
	"irl/floatbits"
	"irl/onnx"
	"irl/optim"
	"irl/policy"
	"irl/progress"
)

// Example is one training sequence: token ids, of which the first Prompt are
// context only and carry no loss.
type Example struct {
	IDs    []int64
	Prompt int
}

// Config configures a run.
type Config struct {
	// Out is the run's folder: checkpoints, metrics.jsonl.
	Out string
	// Epochs over the training split, and rows per step.
	Epochs, BatchSize int
	// Schedule gives the learning rate per step; its Total is filled in.
	Schedule optim.ScheduleConfig
	// AdamW's hyperparameters.
	AdamW optim.AdamWConfig
	// MaxGradNorm clips the global gradient norm (0: no clipping).
	MaxGradNorm float64
	// Seed drives the split and the batch order.
	Seed uint64
	// EvalFraction of the examples is held out for the eval loss.
	EvalFraction float64
	// SaveEvery writes a checkpoint every this many steps (0: each epoch end).
	SaveEvery int
	// UnfrozenLayers: see policy.TrainOptions.
	UnfrozenLayers int
	// Resume continues from the newest checkpoint in Out.
	Resume bool
	// Overwrite lets a new run replace what an earlier run left in Out.
	Overwrite bool
	// SaveTotalLimit keeps only the newest this many checkpoints (0: all),
	// plus the best by eval loss when KeepBest is set.
	SaveTotalLimit int
	KeepBest       bool
	// Extra files are copied into every checkpoint: destination name →
	// source path (tokenizer.json, so each checkpoint stands alone).
	Extra map[string]string
	// ModelFingerprint identifies the starting model (weights.Fingerprint);
	// checkpoints record it and a resume from another model is refused.
	ModelFingerprint string
	// MaxSteps stops after this many steps in total (0: no limit); a later
	// Resume continues the same schedule.
	MaxSteps int
	Session  onnx.Options
	// resident keeps the weights, gradients and AdamW's moments in ONNX
	// Runtime's memory, updated by the AdamW graph, as on CUDA, even on CPU
	// (where the Go AdamW over Go memory is faster): the tests run the
	// device path with it.
	resident bool
	// Progress, if set, receives a progress bar.
	Progress io.Writer
	// Notes, if set, receives a line for what the run does that the caller
	// may not expect: a resume that found no checkpoint and started anew.
	Notes io.Writer
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step       int      `json:"step"`
	Epoch      int      `json:"epoch"`
	Loss       *float64 `json:"loss,omitempty"`
	EvalLoss   *float64 `json:"eval_loss,omitempty"`
	LR         float64  `json:"lr"`
	GradNorm   *float64 `json:"grad_norm,omitempty"`
	TokensPerS float64  `json:"tokens_per_s,omitempty"`
}

// loopState is the loop's own part of trainer_state.json.
type loopState struct {
	BestEvalLoss   *float64 `json:"best_eval_loss,omitempty"`
	BestCheckpoint string   `json:"best_checkpoint,omitempty"`
}

// Result summarises a run.
type Result struct {
	Steps     int
	FirstLoss float64
	LastLoss  float64
	EvalLoss  float64 // NaN without an eval split
	Dir       string  // the last checkpoint
	Best      string  // the checkpoint with the lowest eval loss, if any
	// Final is OUT/final, the finished run's model (empty when the run
	// stopped before its last step).
	Final string
}

// BestCheckpointFile names, in Out, the checkpoint with the lowest eval loss.
const BestCheckpointFile = "best-checkpoint"

// Run trains m on examples. m's parameters are updated in place (on CUDA,
// at each checkpoint and at the end).
func Run(m *policy.Model, examples []Example, cfg Config) (Result, error) {
	res := Result{EvalLoss: math.NaN()}
	if len(examples) == 0 {
		return res, errors.New("sft: the dataset is empty")
	}
	if err := cfg.validate(); err != nil {
		return res, err
	}
	for i, e := range examples {
		if len(e.IDs) < 2 || e.Prompt >= len(e.IDs) {
			return res, fmt.Errorf("sft: example %d has %d tokens with a %d-token prompt: nothing to learn", i, len(e.IDs), e.Prompt)
		}
		if len(e.IDs) > m.Config.MaxPositions {
			return res, fmt.Errorf("sft: example %d has %d tokens, more than max_position_embeddings %d", i, len(e.IDs), m.Config.MaxPositions)
		}
		for _, id := range e.IDs {
			if id < 0 || id >= int64(m.Config.VocabSize) {
				return res, fmt.Errorf("sft: example %d: token id %d is outside the vocabulary [0,%d)", i, id, m.Config.VocabSize)
			}
		}
	}
	train, eval := split(examples, cfg.EvalFraction, cfg.Seed)
	perEpoch := (len(train) + cfg.BatchSize - 1) / cfg.BatchSize
	total := cfg.Epochs * perEpoch
	sc := cfg.Schedule
	sc.Total = total
	sched, err := sc.Build()
	if err != nil {
		return res, err
	}
	settings := map[string]any{
		"seed": cfg.Seed, "train_examples": len(train), "eval_examples": len(eval), "data": dataHash(examples),
		"epochs": cfg.Epochs, "batch_size": cfg.BatchSize, "schedule": sc.Kind, "lr": sc.Peak, "min_lr": sc.Min,
		"warmup": sc.Warmup, "beta1": cfg.AdamW.Beta1, "beta2": cfg.AdamW.Beta2, "eps": cfg.AdamW.Eps,
		"weight_decay": cfg.AdamW.WeightDecay, "max_grad_norm": cfg.MaxGradNorm, "eval_fraction": cfg.EvalFraction,
		"unfrozen_layers": cfg.UnfrozenLayers, "model_fingerprint": cfg.ModelFingerprint,
	}
	run, saved, err := checkpoint.OpenRun(cfg.Out, checkpoint.Options{Resume: cfg.Resume, Overwrite: cfg.Overwrite, Files: []string{checkpoint.FinalDir, BestCheckpointFile}})
	if err != nil {
		return res, fmt.Errorf("sft: %w", err)
	}
	if run.Fresh && cfg.Notes != nil {
		what := "nothing"
		if len(run.Cleared) > 0 {
			what = "what a killed run left (" + strings.Join(run.Cleared, ", ") + ")"
		}
		fmt.Fprintf(cfg.Notes, "%s holds no checkpoint to resume from: started the run anew (cleared %s)\n", cfg.Out, what)
	}
	defer run.Close()

	// The weights live where the sessions compute (see policy.ParamStore):
	// Go memory on CPU, the device on CUDA, and the optimiser runs there.
	newStore := policy.NewParamStore
	if cfg.resident {
		newStore = policy.NewResidentParamStore
	}
	store, err := newStore(m, cfg.Session)
	if err != nil {
		return res, err
	}
	defer store.Destroy()
	tr, err := policy.NewTrainer(m, policy.TrainOptions{Loss: policy.CrossEntropy, UnfrozenLayers: cfg.UnfrozenLayers, Params: store}, cfg.Session)
	if err != nil {
		return res, err
	}
	defer tr.Destroy()
	opt, err := policy.NewOptimizer(tr, cfg.AdamW)
	if err != nil {
		return res, err
	}
	defer opt.Destroy()

	start := 0
	var loop loopState
	if saved != nil {
		dir, _ := checkpoint.Last(cfg.Out)
		if err := checkpoint.CheckSettings(dir, saved.Settings, settings); err != nil {
			return res, fmt.Errorf("sft: %w", err)
		}
		if err := checkpoint.Restore(dir, m, opt); err != nil {
			return res, fmt.Errorf("sft: %w", err)
		}
		if err := store.CopyFromModel(); err != nil {
			return res, fmt.Errorf("sft: %w", err)
		}
		if len(saved.Trainer) > 0 {
			if err := json.Unmarshal(saved.Trainer, &loop); err != nil {
				return res, fmt.Errorf("sft: %s: trainer state: %w", dir, err)
			}
		}
		start = saved.Step
		res.Dir = dir
		res.Best = loop.BestCheckpoint
	}

	end := total
	if cfg.MaxSteps > 0 && cfg.MaxSteps < end {
		end = cfg.MaxSteps
	}
	bar := progress.New(cfg.Progress, end-start, "sft", "")
	res.FirstLoss = math.NaN()
	order := []int(nil)
	orderEpoch := -1
	for step := start; step < end; step++ {
		epoch := step / perEpoch
		if epoch != orderEpoch {
			order = epochOrder(len(train), cfg.Seed, epoch)
			orderEpoch = epoch
		}
		k := step % perEpoch
		idx := order[k*cfg.BatchSize : min((k+1)*cfg.BatchSize, len(order))]
		batch := make([]Example, len(idx))
		for i, j := range idx {
			batch[i] = train[j]
		}
		tb, tokens := makeBatch(batch)
		t0 := time.Now()
		out, err := tr.Step(tb)
		if err != nil {
			return res, fmt.Errorf("sft: step %d: %w", step+1, err)
		}
		if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
			return res, fmt.Errorf("sft: step %d: the loss is %v (lower the learning rate?)", step+1, out.Loss)
		}
		lr := sched.LR(step)
		norm, err := opt.Step(lr, cfg.MaxGradNorm)
		if err != nil {
			return res, fmt.Errorf("sft: step %d: %w", step+1, err)
		}
		tps := float64(tokens) / time.Since(t0).Seconds()
		loss := out.Loss
		if math.IsNaN(res.FirstLoss) {
			res.FirstLoss = loss
		}
		res.LastLoss = loss
		if err := run.Log(Metrics{Step: step + 1, Epoch: epoch, Loss: &loss, LR: lr, GradNorm: &norm, TokensPerS: tps}); err != nil {
			return res, err
		}
		bar.Describe(fmt.Sprintf("sft loss %.4f", loss))
		bar.Add(1)
		endOfEpoch := (step+1)%perEpoch == 0
		save := step+1 == end || (cfg.SaveEvery > 0 && (step+1)%cfg.SaveEvery == 0) || (cfg.SaveEvery == 0 && endOfEpoch)
		evaluated := false
		if endOfEpoch && len(eval) > 0 { // the last step of the schedule ends an epoch too
			el, err := evalLoss(tr, eval, cfg.BatchSize)
			if err != nil {
				return res, err
			}
			res.EvalLoss, evaluated = el, true
			if err := run.Log(Metrics{Step: step + 1, Epoch: epoch, EvalLoss: &el, LR: lr}); err != nil {
				return res, err
			}
		}
		if save {
			best := evaluated && (loop.BestEvalLoss == nil || res.EvalLoss < *loop.BestEvalLoss)
			if best {
				el := res.EvalLoss
				loop.BestEvalLoss, loop.BestCheckpoint = &el, checkpoint.Name(step+1)
			}
			lj, _ := json.Marshal(loop)
			// The weights come to Go memory only here (a copy on CUDA).
			if err := store.CopyToModel(); err != nil {
				return res, fmt.Errorf("sft: %w", err)
			}
			dir, err := run.Save(m, opt, checkpoint.State{Step: step + 1, Settings: settings, Trainer: lj}, cfg.Extra)
			if err != nil {
				return res, fmt.Errorf("sft: %w", err)
			}
			res.Dir = dir
			if best {
				if err := atomicfile.WriteBytes(filepath.Join(cfg.Out, BestCheckpointFile), []byte(loop.BestCheckpoint+"\n")); err != nil {
					return res, err
				}
				res.Best = dir
			}
			var keep []string
			if cfg.KeepBest && loop.BestCheckpoint != "" {
				keep = append(keep, loop.BestCheckpoint)
			}
			if err := run.Prune(cfg.SaveTotalLimit, keep...); err != nil {
				return res, err
			}
		}
		res.Steps = step + 1
	}
	bar.Finish()
	if end == total && res.Dir != "" {
		if res.Final, err = writeFinal(cfg.Out, res.Dir); err != nil {
			return res, fmt.Errorf("sft: final model: %w", err)
		}
	}
	return res, nil
}

// writeFinal copies the last checkpoint's model (not the optimiser's state,
// as large as the model twice over) to OUT/final, the folder a finished run
// is read from, as ppo writes it.
func writeFinal(out, last string) (string, error) {
	dir := filepath.Join(out, checkpoint.FinalDir)
	return dir, atomicfile.WriteDir(dir, func(tmp string) error {
		ents, err := os.ReadDir(last)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() || e.Name() == checkpoint.OptimizerFile || e.Name() == checkpoint.StateFile {
				continue
			}
			// A hard link costs no space, and is safe: checkpoints are
			// never written in place, only made whole and renamed.
			src, dst := filepath.Join(last, e.Name()), filepath.Join(tmp, e.Name())
			if os.Link(src, dst) == nil {
				continue
			}
			if err := atomicfile.Copy(src, dst); err != nil {
				return err
			}
		}
		return nil
	})
}

// dataHash identifies the training data, so a resume on other data is
// refused rather than replaying other batches.
func dataHash(ex []Example) string {
	h := sha256.New()
	var b [8]byte
	for _, e := range ex {
		binary.LittleEndian.PutUint64(b[:], uint64(len(e.IDs)))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(e.Prompt))
		h.Write(b[:])
		h.Write(floatbits.Int64Bytes(e.IDs))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// validate checks the settings before any work.
func (cfg Config) validate() error {
	var errs []error
	if cfg.Epochs <= 0 || cfg.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("epochs (%d) and batch size (%d) must be positive", cfg.Epochs, cfg.BatchSize))
	}
	if !(cfg.EvalFraction >= 0 && cfg.EvalFraction < 1) {
		errs = append(errs, fmt.Errorf("eval fraction %v must lie in [0, 1)", cfg.EvalFraction))
	}
	if !(cfg.MaxGradNorm >= 0) || math.IsInf(cfg.MaxGradNorm, 0) {
		errs = append(errs, fmt.Errorf("max grad norm %v must be finite and not negative (0: off)", cfg.MaxGradNorm))
	}
	if cfg.SaveEvery < 0 || cfg.SaveTotalLimit < 0 || cfg.MaxSteps < 0 {
		errs = append(errs, fmt.Errorf("save every (%d), save total limit (%d) and max steps (%d) must not be negative", cfg.SaveEvery, cfg.SaveTotalLimit, cfg.MaxSteps))
	}
	if err := cfg.AdamW.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	return nil
}

// split shuffles with the seed and holds out a fraction (at least one
// example when the fraction is positive and there are two or more).
func split(ex []Example, frac float64, seed uint64) (train, eval []Example) {
	perm := rand.New(rand.NewPCG(seed, 0x5f7)).Perm(len(ex))
	n := int(math.Round(frac * float64(len(ex))))
	if frac > 0 && n == 0 && len(ex) >= 2 {
		n = 1
	}
	if n >= len(ex) {
		n = len(ex) - 1
	}
	for i, j := range perm {
		if i < n {
			eval = append(eval, ex[j])
		} else {
			train = append(train, ex[j])
		}
	}
	return train, eval
}

// epochOrder is the batch order of an epoch, a function of the seed and the
// epoch alone, so a resumed run replays it.
func epochOrder(n int, seed uint64, epoch int) []int {
	return rand.New(rand.NewPCG(seed, uint64(epoch)+1)).Perm(n)
}

// makeBatch right-pads examples into a training batch whose loss covers the
// tokens after each prompt.
func makeBatch(ex []Example) (*policy.TrainBatch, int) {
	s := 0
	tokens := 0
	for _, e := range ex {
		s = max(s, len(e.IDs))
		tokens += len(e.IDs)
	}
	b := len(ex)
	tb := &policy.TrainBatch{Batch: policy.Batch{B: b, S: s, InputIDs: make([]int64, b*s), AttentionMask: make([]int64, b*s)}}
	for r, e := range ex {
		copy(tb.InputIDs[r*s:], e.IDs)
		for j := range e.IDs {
			tb.AttentionMask[r*s+j] = 1
		}
	}
	tb.NextTokenTargets()
	for r, e := range ex {
		// Position j predicts token j+1: a prompt token's prediction is not
		// trained.
		for j := 0; j+1 < e.Prompt; j++ {
			tb.LossMask[r*s+j] = 0
		}
	}
	return tb, tokens
}

// evalLoss is the token-weighted mean cross-entropy over the examples.
func evalLoss(tr *policy.Trainer, ex []Example, bs int) (float64, error) {
	var sum, n float64
	for lo := 0; lo < len(ex); lo += bs {
		tb, _ := makeBatch(ex[lo:min(lo+bs, len(ex))])
		var w float64
		for _, x := range tb.LossMask {
			w += float64(x)
		}
		out, err := tr.Step(tb)
		if err != nil {
			return 0, fmt.Errorf("sft: eval: %w", err)
		}
		sum += out.Loss * w
		n += w
	}
	return sum / n, nil
}
