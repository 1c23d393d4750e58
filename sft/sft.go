package sft

import (
	"context"
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
	"irl/neox"
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
	// UnfrozenLayers: see neox.TrainOptions.
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
	// ModelFingerprint identifies the starting model (its neox.Source's
	// Fingerprint); checkpoints record it and a resume from another model
	// is refused. Empty means the model's own in memory
	// (neox.Model.Fingerprint), so no checkpoint records an empty one.
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
	// Context, if set, stops the run when it is done: at the next safe
	// point (between two optimiser steps) the run saves a checkpoint, unless
	// it has just saved one, and returns a *checkpoint.InterruptedError,
	// which wraps the context's error; a Resume then continues as if
	// nothing had happened.
	Context context.Context
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
func Run(m *neox.Model, examples []Example, cfg Config) (Result, error) {
	t := &trainer{cfg: cfg, ctx: cfg.Context, saved: -1, res: Result{EvalLoss: math.NaN()}}
	if t.ctx == nil {
		t.ctx = context.Background()
	}
	if len(examples) == 0 {
		return t.res, errors.New("sft: the dataset is empty")
	}
	if err := cfg.validate(); err != nil {
		return t.res, err
	}
	if err := checkExamples(m.Config, examples); err != nil {
		return t.res, err
	}
	if t.cfg.ModelFingerprint == "" {
		fp, err := m.Fingerprint()
		if err != nil {
			return t.res, fmt.Errorf("sft: %w", err)
		}
		t.cfg.ModelFingerprint = fp
	}
	defer t.close()
	if err := t.open(m, examples); err != nil {
		return t.res, err
	}
	err := t.loop()
	return t.res, err
}

// checkExamples refuses an example with nothing to learn, with more tokens
// than the model has positions, or with an id outside its vocabulary.
func checkExamples(c neox.Config, examples []Example) error {
	for i, e := range examples {
		if len(e.IDs) < 2 || e.Prompt >= len(e.IDs) {
			return fmt.Errorf("sft: example %d has %d tokens with a %d-token prompt: nothing to learn", i, len(e.IDs), e.Prompt)
		}
		if len(e.IDs) > c.MaxPositions {
			return fmt.Errorf("sft: example %d has %d tokens, more than max_position_embeddings %d", i, len(e.IDs), c.MaxPositions)
		}
		for _, id := range e.IDs {
			if id < 0 || id >= int64(c.VocabSize) {
				return fmt.Errorf("sft: example %d: token id %d is outside the vocabulary [0,%d)", i, id, c.VocabSize)
			}
		}
	}
	return nil
}

// trainer holds a run's sessions and state.
type trainer struct {
	cfg         Config
	ctx         context.Context
	train, eval []Example
	perEpoch    int // steps per epoch
	total       int // steps in the schedule
	sched       optim.Schedule
	settings    map[string]any
	run         *checkpoint.Run
	tr          *policy.Training
	st          loopState
	start       int // the step the run starts at: 0, or a checkpoint's
	saved       int // the step of the newest checkpoint (-1: none)
	res         Result
}

// open splits the examples, opens the run folder and the training
// sessions, and resumes from the newest checkpoint when there is one.
func (t *trainer) open(m *neox.Model, examples []Example) error {
	cfg := t.cfg
	t.train, t.eval = split(examples, cfg.EvalFraction, cfg.Seed)
	t.perEpoch = (len(t.train) + cfg.BatchSize - 1) / cfg.BatchSize
	t.total = cfg.Epochs * t.perEpoch
	sc := cfg.Schedule
	sc.Total = t.total
	var err error
	if t.sched, err = sc.Build(); err != nil {
		return err
	}
	t.settings = cfg.settings(sc, len(t.train), len(t.eval), dataHash(examples))
	run, saved, err := checkpoint.OpenRun(cfg.Out, checkpoint.Options{Resume: cfg.Resume, Overwrite: cfg.Overwrite, Files: []string{checkpoint.FinalDir, BestCheckpointFile}})
	if err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	t.run = run
	if run.Fresh && cfg.Notes != nil {
		what := "nothing"
		if len(run.Cleared) > 0 {
			what = "what a killed run left (" + strings.Join(run.Cleared, ", ") + ")"
		}
		fmt.Fprintf(cfg.Notes, "%s holds no checkpoint to resume from: started the run anew (cleared %s)\n", cfg.Out, what)
	}
	// The weights live where the sessions compute (see policy.ParamStore):
	// Go memory on CPU, the device on CUDA, and the optimiser runs there.
	t.tr, err = policy.NewTraining(m, policy.TrainingOptions{
		Train: neox.TrainOptions{Loss: neox.CrossEntropy, UnfrozenLayers: cfg.UnfrozenLayers},
		AdamW: cfg.AdamW, Session: cfg.Session, Resident: cfg.resident,
	})
	if err != nil {
		return err
	}
	if saved != nil {
		return t.resume(saved)
	}
	return nil
}

// resume continues from the run's newest checkpoint: its settings checked
// against this run's, then the weights, the optimiser and the loop's state
// restored.
func (t *trainer) resume(saved *checkpoint.State) error {
	dir, _ := checkpoint.Last(t.cfg.Out)
	if err := checkpoint.CheckSettings(dir, saved.Settings, t.settings); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	if err := t.tr.Restore(dir); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	if len(saved.Trainer) > 0 {
		if err := json.Unmarshal(saved.Trainer, &t.st); err != nil {
			return fmt.Errorf("sft: %s: trainer state: %w", dir, err)
		}
	}
	t.start, t.saved = saved.Step, saved.Step
	t.res.Dir = dir
	t.res.Best = t.st.BestCheckpoint
	return nil
}

// settings are what a resumed run must share with the run it continues.
func (cfg Config) settings(sc optim.ScheduleConfig, train, eval int, data string) map[string]any {
	return map[string]any{
		"seed": cfg.Seed, "train_examples": train, "eval_examples": eval, "data": data,
		"epochs": cfg.Epochs, "batch_size": cfg.BatchSize, "schedule": sc.Kind, "lr": sc.Peak, "min_lr": sc.Min,
		"warmup": sc.Warmup, "beta1": cfg.AdamW.Beta1, "beta2": cfg.AdamW.Beta2, "eps": cfg.AdamW.Eps,
		"weight_decay": cfg.AdamW.WeightDecay, "max_grad_norm": cfg.MaxGradNorm, "eval_fraction": cfg.EvalFraction,
		"unfrozen_layers": cfg.UnfrozenLayers, "model_fingerprint": cfg.ModelFingerprint,
	}
}

// loop runs the steps from t.start to the schedule's end (or MaxSteps),
// evaluating at each epoch's end and saving as SaveEvery says, and writes
// the final model when the schedule is done.
func (t *trainer) loop() error {
	cfg := t.cfg
	end := t.total
	if cfg.MaxSteps > 0 && cfg.MaxSteps < end {
		end = cfg.MaxSteps
	}
	bar := progress.New(cfg.Progress, end-t.start, "sft", "")
	t.res.FirstLoss = math.NaN()
	order := []int(nil)
	orderEpoch := -1
	for step := t.start; step < end; step++ {
		if t.ctx.Err() != nil {
			bar.Stop()
			return t.interrupted(step)
		}
		epoch := step / t.perEpoch
		if epoch != orderEpoch {
			order = epochOrder(len(t.train), cfg.Seed, epoch)
			orderEpoch = epoch
		}
		k := step % t.perEpoch
		idx := order[k*cfg.BatchSize : min((k+1)*cfg.BatchSize, len(order))]
		lr := t.sched.LR(step)
		if err := t.step(step, epoch, idx, lr); err != nil {
			return err
		}
		bar.Describe(fmt.Sprintf("sft loss %.4f", t.res.LastLoss))
		bar.Add(1)
		endOfEpoch := (step+1)%t.perEpoch == 0
		evaluated := false
		if endOfEpoch && len(t.eval) > 0 { // the last step of the schedule ends an epoch too
			el, err := evalLoss(t.tr.Trainer, t.eval, cfg.BatchSize)
			if err != nil {
				return err
			}
			t.res.EvalLoss, evaluated = el, true
			if err := t.run.Log(Metrics{Step: step + 1, Epoch: epoch, EvalLoss: &el, LR: lr}); err != nil {
				return err
			}
		}
		if step+1 == end || (cfg.SaveEvery > 0 && (step+1)%cfg.SaveEvery == 0) || (cfg.SaveEvery == 0 && endOfEpoch) {
			if err := t.save(step+1, evaluated); err != nil {
				return err
			}
		}
		t.res.Steps = step + 1
	}
	bar.Finish()
	if end == t.total && t.res.Dir != "" {
		var err error
		if t.res.Final, err = writeFinal(cfg.Out, t.res.Dir); err != nil {
			return fmt.Errorf("sft: final model: %w", err)
		}
	}
	return nil
}

// step trains on the training examples idx at learning rate lr and logs
// the step.
func (t *trainer) step(step, epoch int, idx []int, lr float64) error {
	batch := make([]Example, len(idx))
	for i, j := range idx {
		batch[i] = t.train[j]
	}
	tb, tokens := makeBatch(batch)
	t0 := time.Now()
	out, norm, err := t.tr.Step(tb, lr, t.cfg.MaxGradNorm)
	if err != nil {
		return fmt.Errorf("sft: step %d: %w", step+1, err)
	}
	tps := float64(tokens) / time.Since(t0).Seconds()
	loss := out.Loss
	if math.IsNaN(t.res.FirstLoss) {
		t.res.FirstLoss = loss
	}
	t.res.LastLoss = loss
	return t.run.Log(Metrics{Step: step + 1, Epoch: epoch, Loss: &loss, LR: lr, GradNorm: &norm, TokensPerS: tps})
}

// save writes the checkpoint after steps steps, marks it the best when
// this step's eval loss (evaluated) is the lowest yet, and prunes the
// older ones.
func (t *trainer) save(steps int, evaluated bool) error {
	cfg := t.cfg
	best := evaluated && (t.st.BestEvalLoss == nil || t.res.EvalLoss < *t.st.BestEvalLoss)
	if best {
		el := t.res.EvalLoss
		t.st.BestEvalLoss, t.st.BestCheckpoint = &el, checkpoint.Name(steps)
	}
	lj, _ := json.Marshal(t.st)
	dir, err := t.tr.Save(t.run, checkpoint.State{Step: steps, Settings: t.settings, Trainer: lj}, cfg.Extra)
	if err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	t.res.Dir, t.saved = dir, steps
	if best {
		if err := atomicfile.WriteBytes(filepath.Join(cfg.Out, BestCheckpointFile), []byte(t.st.BestCheckpoint+"\n")); err != nil {
			return err
		}
		t.res.Best = dir
	}
	var keep []string
	if cfg.KeepBest && t.st.BestCheckpoint != "" {
		keep = append(keep, t.st.BestCheckpoint)
	}
	return t.run.Prune(cfg.SaveTotalLimit, keep...)
}

// interrupted stops the run after steps steps, a safe point: everything
// up to that step is logged, and a checkpoint saved there resumes exactly.
// It saves one unless the newest is of that step, and says where it is.
func (t *trainer) interrupted(steps int) error {
	e := &checkpoint.InterruptedError{Step: steps, Err: t.ctx.Err()}
	if steps > 0 && t.saved != steps {
		// Not the best, whatever its eval loss: the uninterrupted run
		// saves no checkpoint here, and the state must be as it has it.
		if err := t.save(steps, false); err != nil {
			return fmt.Errorf("sft: interrupted after step %d, and the checkpoint failed: %w", steps, err)
		}
	}
	if steps > 0 {
		e.Dir = t.res.Dir
	}
	return fmt.Errorf("sft: %w", e)
}

// close releases the sessions and the run folder.
func (t *trainer) close() {
	t.tr.Destroy()
	if t.run != nil {
		t.run.Close()
	}
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
	tb := &policy.TrainBatch{Batch: neox.Batch{B: b, S: s, InputIDs: make([]int64, b*s), AttentionMask: make([]int64, b*s)}}
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
