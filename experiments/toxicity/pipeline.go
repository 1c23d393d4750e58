package toxicity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"irl/atomicfile"
	"irl/checkpoint"

	"irl/onnx"
)

// Stages are the pipeline's stages, in order.
var Stages = []string{"prompts", "rlhf", "rlhf-poor", "demonstrations", "features", "irl", "irl-rlhf", "toxicity", "report"}

// Options are a run's surroundings.
type Options struct {
	Out string
	// From reruns the pipeline from this stage on, whatever their hashes.
	From    string
	Session onnx.Options
	// Progress receives a line per stage and, unless Quiet, the stages'
	// progress bars.
	Progress io.Writer
	Quiet    bool
	// StopIn, for tests of resumption, stops the PPO runs of this stage
	// after StopAfter steps, as a kill would.
	StopIn    string
	StopAfter int
	// Context, if set, stops the run when it is done: a PPO stage at its
	// next safe point, with a checkpoint the next run resumes from, the
	// others between batches, leaving nothing half-written. The stage is
	// not marked done, and Run returns an error wrapping the context's (and
	// the PPO run's *checkpoint.InterruptedError, if any).
	Context context.Context
}

// stageState is a stage's stage.json, and a part's DIR.inputs.json.
type stageState struct {
	Hash    string  `json:"hash"`
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds,omitempty"`
}

// Result says what a run did with each stage.
type Result struct {
	// Ran and Skipped list stages by name.
	Ran, Skipped []string
	// Reused lists the parts of stages that ran which were kept because
	// their own inputs had not changed ("irl-rlhf/poor",
	// "toxicity/sft-paper").
	Reused  []string
	Seconds map[string]float64
}

// pipeline is one run.
type pipeline struct {
	cfg    *Config
	opt    Options
	hashes map[string]string // each stage's input hash
	res    *Result
}

// partStages keep each part whose own inputs are unchanged when they rerun
// (see part); the other stages start over.
var partStages = map[string]bool{"irl-rlhf": true, "toxicity": true}

// Run runs the pipeline. It holds OUT/.lock while it runs: a second run
// into the same folder is refused with the holder's pid.
func Run(cfg *Config, o Options) (*Result, error) {
	if o.From != "" && !slices.Contains(Stages, o.From) {
		return nil, fmt.Errorf("toxicity: unknown stage %q: want one of %s", o.From, strings.Join(Stages, ", "))
	}
	// A Config made in code has not been through LoadConfig's checks.
	if err := cfg.validate("toxicity: the configuration"); err != nil {
		return nil, err
	}
	lock, err := atomicfile.LockDir(o.Out)
	if err != nil {
		return nil, fmt.Errorf("toxicity: %w", err)
	}
	defer lock.Release()
	p := &pipeline{cfg: cfg, opt: o, hashes: map[string]string{}, res: &Result{Seconds: map[string]float64{}}}
	rerun := false
	for i, name := range Stages {
		if name == o.From {
			rerun = true
		}
		h, err := p.hash(name)
		if err != nil {
			return nil, fmt.Errorf("toxicity: %s: %w", name, err)
		}
		p.hashes[name] = h
		dir := p.dir(name)
		st, _ := readState(filepath.Join(dir, "stage.json"))
		if !rerun && st != nil && st.Done && st.Hash == h {
			p.logf("stage %d/%d %s: unchanged, skipped", i+1, len(Stages), name)
			p.res.Skipped = append(p.res.Skipped, name)
			p.res.Seconds[name] = st.Seconds
			continue
		}
		// A stage that did not finish under these settings starts over,
		// except rlhf, which resumes from its checkpoint, and the stages
		// made of parts, which keep every part whose inputs are unchanged.
		resume := !rerun && st != nil && !st.Done && st.Hash == h && (name == "rlhf" || name == "rlhf-poor")
		if !resume && (rerun || !partStages[name]) {
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := writeState(filepath.Join(dir, "stage.json"), stageState{Hash: h}); err != nil {
			return nil, err
		}
		if err := p.ctxErr(); err != nil {
			return nil, interrupted(name, err)
		}
		p.logf("stage %d/%d %s …", i+1, len(Stages), name)
		t0 := time.Now()
		msg, err := p.run(name, resume)
		if err != nil && errors.Is(err, context.Canceled) {
			return nil, interrupted(name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("toxicity: %s: %w", name, err)
		}
		sec := time.Since(t0).Seconds()
		if err := writeState(filepath.Join(dir, "stage.json"), stageState{Hash: h, Done: true, Seconds: sec}); err != nil {
			return nil, err
		}
		p.res.Ran = append(p.res.Ran, name)
		p.res.Seconds[name] = sec
		p.logf("stage %d/%d %s done in %.1fs: %s", i+1, len(Stages), name, sec, msg)
	}
	return p.res, nil
}

// ctxErr is the run's context's error: nil while it goes on.
func (p *pipeline) ctxErr() error {
	if p.opt.Context == nil {
		return nil
	}
	return p.opt.Context.Err()
}

// interrupted says where the run stopped and how to go on: rerunning the
// same command resumes the stage (a PPO stage from its checkpoint).
func interrupted(stage string, err error) error {
	where := ""
	var ie *checkpoint.InterruptedError
	if errors.As(err, &ie) && ie.Dir != "" {
		where = fmt.Sprintf(" after step %d (checkpoint %s)", ie.Step, ie.Dir)
	}
	return checkpoint.StageInterrupted(fmt.Sprintf("toxicity: interrupted in stage %s%s; rerun the same command to resume", stage, where), err)
}

func (p *pipeline) logf(format string, a ...any) {
	if p.opt.Progress != nil {
		fmt.Fprintf(p.opt.Progress, "[toxicity] %s\n", fmt.Sprintf(format, a...))
	}
}

// bars is where the stages' progress bars go: nil when quiet.
func (p *pipeline) bars() io.Writer {
	if p.opt.Quiet {
		return nil
	}
	return p.opt.Progress
}

func (p *pipeline) dir(stage string) string { return filepath.Join(p.opt.Out, stage) }

func (p *pipeline) run(name string, resume bool) (string, error) {
	switch name {
	case "prompts":
		return p.stagePrompts()
	case "rlhf":
		return p.stageRLHF(resume)
	case "rlhf-poor":
		return p.stageRLHFPoor(resume)
	case "demonstrations":
		return p.stageDemonstrations()
	case "features":
		return p.stageFeatures()
	case "irl":
		return p.stageIRL()
	case "irl-rlhf":
		return p.stageIRLRLHF()
	case "toxicity":
		return p.stageToxicity()
	case "report":
		return p.stageReport()
	}
	return "", fmt.Errorf("no stage %q", name)
}

func readState(path string) (*stageState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st stageState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func writeState(path string, st stageState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	return atomicfile.WriteBytes(path, append(b, '\n'))
}

// part runs one part of a stage (an IRL-RLHF run, an evaluation) keyed by
// the hash of its own inputs, kept in DIR.inputs.json: a part whose inputs
// are unchanged since it finished is reused, so that editing what one
// part reads does not redo the others. One that did not finish under these
// inputs is handed resume, to continue from what DIR holds.
func (p *pipeline) part(dir, key string, run func(resume bool) error) (reused bool, err error) {
	state := dir + ".inputs.json"
	st, _ := readState(state)
	if st != nil && st.Hash == key && st.Done {
		if _, err := os.Stat(dir); err == nil {
			rel, _ := filepath.Rel(p.opt.Out, dir)
			p.res.Reused = append(p.res.Reused, filepath.ToSlash(rel))
			return true, nil
		}
	}
	resume := st != nil && st.Hash == key && !st.Done
	if !resume {
		if err := os.RemoveAll(dir); err != nil {
			return false, err
		}
	}
	if err := writeState(state, stageState{Hash: key}); err != nil {
		return false, err
	}
	t0 := time.Now()
	if err := run(resume); err != nil {
		return false, err
	}
	return false, writeState(state, stageState{Hash: key, Done: true, Seconds: time.Since(t0).Seconds()})
}

// prune removes what a part stage's folder holds besides stage.json and
// the parts named, left by parts a configuration no longer has.
func (p *pipeline) prune(stage string, parts []string) error {
	keep := map[string]bool{"stage.json": true}
	for _, n := range parts {
		keep[n], keep[n+".inputs.json"] = true, true
	}
	ents, err := os.ReadDir(p.dir(stage))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(p.dir(stage), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasher hashes a stage's or a part's inputs: settings, files read from
// outside the run, and the hashes of what it reads from inside.
type hasher struct {
	c   *Config
	h   hash.Hash
	err error
}

func (p *pipeline) hasher(what string) *hasher {
	x := &hasher{c: p.cfg, h: sha256.New()}
	x.put(what)
	return x
}

func (x *hasher) put(v ...any) {
	b, _ := json.Marshal(v)
	x.h.Write(b)
	x.h.Write([]byte{0})
}

func (x *hasher) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

// file hashes a file's content, or a model folder's files' names, sizes
// and times; "" is hashed as nothing.
func (x *hasher) file(path string) {
	if path == "" {
		x.put("")
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		x.fail(err)
		return
	}
	if st.IsDir() {
		x.fail(filepath.WalkDir(path, func(q string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			x.put(strings.TrimPrefix(q, path), info.Size(), info.ModTime().UnixNano())
			return nil
		}))
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		x.fail(err)
		return
	}
	sum := sha256.Sum256(b)
	x.put(hex.EncodeToString(sum[:]))
}

// model hashes a model: its folder, or its init spec and the tokenizer
// that spec copies in.
func (x *hasher) model(m ModelSpec) {
	x.put(m.Init)
	if m.Init != nil {
		x.file(x.c.resolve(m.Init.Tokenizer))
		return
	}
	// A run folder's model, as the stages read it: a newer checkpoint
	// or a final model changes the hash.
	dir, _, err := checkpoint.ModelDir(x.c.resolve(m.Path))
	if err != nil {
		dir = x.c.resolve(m.Path)
	}
	x.put(filepath.Base(dir))
	x.file(dir)
}

// spec hashes a reward spec and the files it names; for cmd: the program
// as exec finds it on the PATH. What a program reads or runs is not seen.
func (x *hasher) spec(spec string) {
	x.put(spec)
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return
	}
	if kind == "cmd" {
		argv := strings.Fields(rest)
		if len(argv) == 0 {
			x.fail(fmt.Errorf("reward spec %q: no program after \"cmd:\"", spec))
			return
		}
		prog, err := exec.LookPath(argv[0])
		if err != nil {
			x.fail(err)
			return
		}
		x.file(prog)
		return
	}
	_, rest, _ = strings.Cut(x.c.resolveSpec(spec), ":")
	for _, f := range strings.Split(rest, ",") {
		x.file(f)
	}
}

func (x *hasher) sum() (string, error) {
	if x.err != nil {
		return "", x.err
	}
	return hex.EncodeToString(x.h.Sum(nil)[:16]), nil
}

// prompts hashes the prompt files' content: a stage that reads them needs
// doing again only when they change, not when the prompts stage reruns
// with other counts.
func (p *pipeline) prompts(x *hasher, files ...string) {
	for _, f := range files {
		x.file(filepath.Join(p.dir("prompts"), f))
	}
}

// hash is a stage's input hash: its settings, the files it reads from
// outside the run, and the hashes of what it reads from earlier stages.
func (p *pipeline) hash(name string) (string, error) {
	c := p.cfg
	x := p.hasher(name)
	deps := func(stages ...string) {
		for _, s := range stages {
			x.put(p.hashes[s])
		}
	}
	switch name {
	case "prompts":
		// The counts are here because this stage checks them against the
		// dataset.
		x.put(c.EvalFraction, c.SplitSeed, c.DemoPrompts)
		x.file(c.resolve(c.Dataset))
	case "rlhf":
		p.prompts(x, "train.jsonl", "eval.jsonl")
		pc, _ := c.ppoConfig(nil)
		x.put(pc, c.RewardLabel, c.Join, c.RewardNoise)
		x.model(c.SFTModel)
		x.spec(c.Reward)
	case "rlhf-poor":
		x.put(c.PoorHead == PoorRLHF)
		if c.PoorHead == PoorRLHF {
			p.prompts(x, "train.jsonl", "eval.jsonl")
			pc, _ := c.ppoConfig(c.RLHFPoorPPO)
			x.put(pc, c.RewardLabel, c.Join, c.RewardNoise)
			x.model(c.SFTModel)
			x.spec(c.Reward)
		}
	case "demonstrations":
		p.prompts(x, "train.jsonl")
		deps("rlhf", "rlhf-poor")
		x.put(c.DemoPrompts, c.MaxLength)
		base, _ := c.baseline()
		x.model(base)
	case "features":
		deps("demonstrations")
		x.put(c.Layer, c.Pool, c.BatchSize, c.RewardLabel, c.Join, c.RewardNoise)
		enc, _ := c.encoder()
		x.model(enc)
		x.spec(c.Reward)
	case "irl":
		deps("features")
		x.put(c.Loss, c.P, c.Delta, c.Epochs, c.PosPerEpoch, c.NegPerEpoch, c.IRLSeed)
	case "irl-rlhf":
		for _, r := range p.irlRuns() {
			k, err := p.irlRunKey(r.rule)
			if err != nil {
				return "", err
			}
			x.put(r.name, k)
		}
	case "toxicity":
		pols, err := p.policies()
		if err != nil {
			return "", err
		}
		for _, pol := range pols {
			for _, j := range p.evalJobs() {
				k, err := p.evalKey(pol, j)
				if err != nil {
					return "", err
				}
				x.put(pol.name, j.proto.Name, k)
			}
		}
	case "report":
		deps("irl", "toxicity")
	}
	return x.sum()
}
