package toxicity

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"irl/atomicfile"
	"irl/onnx"
)

// Stages are the pipeline's stages, in order.
var Stages = []string{"prompts", "rlhf", "demonstrations", "features", "irl", "irl-rlhf", "toxicity", "report"}

// Options are a run's surroundings.
type Options struct {
	Out string
	// From reruns the pipeline from this stage on, whatever their hashes.
	From    string
	Session onnx.Options
	// Progress receives a line per stage (and the stages' bars).
	Progress io.Writer
	// StopIn, for tests of resumption, stops the PPO runs of this stage
	// after StopAfter steps, as a kill would.
	StopIn    string
	StopAfter int
}

// stageState is a stage's stage.json.
type stageState struct {
	Hash    string  `json:"hash"`
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds,omitempty"`
}

// Result says what a run did with each stage.
type Result struct {
	// Ran and Skipped list stages by name.
	Ran, Skipped []string
	Seconds      map[string]float64
}

// pipeline is one run.
type pipeline struct {
	cfg    *Config
	opt    Options
	hashes map[string]string // each stage's input hash
	res    *Result
}

// Run runs the pipeline.
func Run(cfg *Config, o Options) (*Result, error) {
	if o.From != "" && !slices.Contains(Stages, o.From) {
		return nil, fmt.Errorf("toxicity: unknown stage %q: want one of %s", o.From, strings.Join(Stages, ", "))
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
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
		st, _ := readState(dir)
		if !rerun && st != nil && st.Done && st.Hash == h {
			p.logf("stage %d/%d %s: unchanged, skipped", i+1, len(Stages), name)
			p.res.Skipped = append(p.res.Skipped, name)
			p.res.Seconds[name] = st.Seconds
			continue
		}
		// A stage that did not finish under these settings starts over,
		// except PPO, which resumes from its checkpoint.
		resume := !rerun && st != nil && !st.Done && st.Hash == h && (name == "rlhf" || name == "irl-rlhf")
		if !resume {
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := writeState(dir, stageState{Hash: h}); err != nil {
			return nil, err
		}
		p.logf("stage %d/%d %s …", i+1, len(Stages), name)
		t0 := time.Now()
		msg, err := p.run(name, resume)
		if err != nil {
			return nil, fmt.Errorf("toxicity: %s: %w", name, err)
		}
		sec := time.Since(t0).Seconds()
		if err := writeState(dir, stageState{Hash: h, Done: true, Seconds: sec}); err != nil {
			return nil, err
		}
		p.res.Ran = append(p.res.Ran, name)
		p.res.Seconds[name] = sec
		p.logf("stage %d/%d %s done in %.1fs: %s", i+1, len(Stages), name, sec, msg)
	}
	return p.res, nil
}

func (p *pipeline) logf(format string, a ...any) {
	if p.opt.Progress != nil {
		fmt.Fprintf(p.opt.Progress, "[toxicity] %s\n", fmt.Sprintf(format, a...))
	}
}

func (p *pipeline) dir(stage string) string { return filepath.Join(p.opt.Out, stage) }

func (p *pipeline) run(name string, resume bool) (string, error) {
	switch name {
	case "prompts":
		return p.stagePrompts()
	case "rlhf":
		return p.stageRLHF(resume)
	case "demonstrations":
		return p.stageDemonstrations()
	case "features":
		return p.stageFeatures()
	case "irl":
		return p.stageIRL()
	case "irl-rlhf":
		return p.stageIRLRLHF(resume)
	case "toxicity":
		return p.stageToxicity()
	case "report":
		return p.stageReport()
	}
	return "", fmt.Errorf("no stage %q", name)
}

func readState(dir string) (*stageState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stage.json"))
	if err != nil {
		return nil, err
	}
	var st stageState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func writeState(dir string, st stageState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	return atomicfile.WriteBytes(filepath.Join(dir, "stage.json"), append(b, '\n'))
}

// hash is a stage's input hash: its settings, the files it reads from
// outside the run, and the hashes of the stages it reads.
func (p *pipeline) hash(name string) (string, error) {
	c := p.cfg
	h := sha256.New()
	put := func(v any) {
		b, _ := json.Marshal(v)
		h.Write(b)
		h.Write([]byte{0})
	}
	file := func(path string) error {
		if path == "" {
			put("")
			return nil
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st.IsDir() {
			// A model folder: its files' names, sizes and times.
			return filepath.WalkDir(path, func(q string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				put([]any{strings.TrimPrefix(q, path), info.Size(), info.ModTime().UnixNano()})
				return nil
			})
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		put(hex.EncodeToString(sum[:]))
		return nil
	}
	deps := func(stages ...string) {
		for _, s := range stages {
			put(p.hashes[s])
		}
	}
	model := func(m ModelSpec) error {
		put(m.Init)
		return file(c.resolve(m.Path))
	}
	specFiles := func(spec string) error {
		kind, rest, ok := strings.Cut(c.resolveSpec(spec), ":")
		put(spec)
		if !ok || kind == "cmd" {
			return nil
		}
		for _, f := range strings.Split(rest, ",") {
			if err := file(f); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch name {
	case "prompts":
		put([]any{c.EvalFraction, c.SplitSeed})
		err = file(c.resolve(c.Dataset))
	case "rlhf":
		deps("prompts")
		pc, _ := c.ppoConfig()
		put([]any{pc, c.RewardLabel, c.Join, c.RewardNoise})
		if err = model(c.SFTModel); err == nil {
			err = specFiles(c.Reward)
		}
	case "demonstrations":
		deps("prompts", "rlhf")
		put([]any{c.ExpertPrompts, c.BaselinePrompts, c.MaxLength})
	case "features":
		deps("demonstrations")
		put([]any{c.Layer, c.Pool, c.BatchSize, c.RewardLabel, c.Join})
		if err = model(c.Encoder); err == nil {
			err = specFiles(c.Reward)
		}
	case "irl":
		deps("features")
		put([]any{c.Loss, c.P, c.Delta, c.Epochs, c.PosPerEpoch, c.NegPerEpoch, c.IRLSeed})
	case "irl-rlhf":
		deps("prompts", "irl", "rlhf")
		pc, _ := c.ppoConfig()
		put([]any{pc, c.GoodHead, c.PoorHead, c.Transform})
	case "toxicity":
		deps("prompts", "rlhf", "irl-rlhf")
		put([]any{c.Seeds, c.MaxPrompts, c.EvalBatch, c.ScorerLabel, c.RTPChallenging, c.RTPMaxPrompts})
		if err = specFiles(c.Scorer); err == nil {
			err = file(c.resolve(c.RTP))
		}
	case "report":
		deps("irl", "toxicity")
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

var errNoRows = errors.New("no rows")
