package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"irl/atomicfile"
)

// LastFile names, in a run folder, the file holding the newest checkpoint's
// name.
const LastFile = "last-checkpoint"

// MetricsFile names a run's metrics log.
const MetricsFile = "metrics.jsonl"

// StateFile names a checkpoint's trainer state.
const StateFile = "trainer_state.json"

// OptimizerFile names a checkpoint's optimiser state.
const OptimizerFile = "optimizer.safetensors"

// Model is what a checkpoint saves and restores of a model.
type Model interface {
	// Save writes the model as a Hugging Face folder into dir (which exists).
	Save(dir string) error
	// LoadWeights replaces the model's weights, in place, by those of a
	// folder Save wrote.
	LoadWeights(dir string) error
}

// Optimizer is what a checkpoint saves and restores of an optimiser.
type Optimizer interface {
	Save(path string) error
	Load(path string) error
}

// State is trainer_state.json.
type State struct {
	// Step is the number of optimiser steps taken.
	Step int `json:"step"`
	// Settings are the run's settings that a resumed run must share: the
	// data, seeds, batch size, learning rate, schedule…
	Settings map[string]any `json:"settings"`
	// Trainer holds the training loop's own state (RNG positions, a KL
	// controller's coefficient, running statistics…).
	Trainer json.RawMessage `json:"trainer,omitempty"`
}

// Run is an open run folder.
type Run struct {
	Dir string
	// Fresh says a resume was asked for but the folder held no checkpoint
	// yet, so the run starts at step 0: a run killed before its first
	// checkpoint is resumed by starting it again.
	Fresh bool
	// Cleared names what such a killed run had left in the folder and
	// Open removed (its metrics, the loop's own files).
	Cleared []string
	metrics *os.File
	enc     *json.Encoder
}

// Options say how OpenRun opens a run folder.
type Options struct {
	Resume, Overwrite bool
	// Files are the names, besides the checkpoints, last-checkpoint and the
	// metrics log, that the training loop writes in the folder (PPO:
	// samples, plots, final). They mark a folder as a run's, and a resume
	// that finds no checkpoint clears them with the rest of the killed
	// run.
	Files []string
}

// Open opens the run folder dir: OpenRun with no files of the loop's own.
func Open(dir string, resume, overwrite bool) (*Run, *State, error) {
	return OpenRun(dir, Options{Resume: resume, Overwrite: overwrite})
}

// OpenRun opens the run folder dir. A new run (Resume false) needs dir
// absent or empty, or Overwrite, which removes what an earlier run left
// there: mixing two runs' checkpoints and metrics is never what was meant
// (CheckNew). A resumed run continues from the newest complete checkpoint;
// its metrics log is cut back to that checkpoint's step, so replayed steps
// are not logged twice. A resume that finds no checkpoint (the folder is
// absent, empty, or holds only what a run killed before its first
// checkpoint writes) clears the folder and starts a new run, marked Fresh;
// a folder holding anything else is refused rather than emptied.
func OpenRun(dir string, o Options) (*Run, *State, error) {
	var st *State
	r := &Run{Dir: dir}
	if o.Resume {
		last, err := Last(dir)
		switch {
		case err == nil:
			if st, err = ReadState(last); err != nil {
				return nil, nil, err
			}
		case errors.Is(err, fs.ErrNotExist):
			if r.Cleared, err = clearUnstarted(dir, o.Files); err != nil {
				return nil, nil, err
			}
			r.Fresh = true
		default:
			return nil, nil, err
		}
	} else {
		if err := CheckNew(dir, o.Overwrite, o.Files...); err != nil {
			return nil, nil, err
		}
		if o.Overwrite {
			if err := atomicfile.ClearDir(dir); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if _, err := atomicfile.CleanStale(dir); err != nil {
		return nil, nil, err
	}
	if st != nil {
		if err := cutMetrics(filepath.Join(dir, MetricsFile), st.Step); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, MetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	r.metrics, r.enc = f, json.NewEncoder(f)
	return r, st, nil
}

// RunExistsError is CheckNew's refusal of a folder that holds a run. It
// names --resume before --overwrite, the flags of both training commands:
// continuing a run is what a rerun usually means, and --overwrite destroys
// it.
type RunExistsError struct {
	Dir string
	// Step is the last checkpoint's step; -1 when the run saved none.
	Step int
	// Holds is one of the run's files, when Step is -1.
	Holds string
}

func (e *RunExistsError) Error() string {
	if e.Step < 0 {
		return fmt.Sprintf("%s holds a run that saved no checkpoint yet (it holds %s); add --resume to start it again there, or --overwrite to discard it", e.Dir, e.Holds)
	}
	return fmt.Sprintf("%s holds a run (last checkpoint: step %d); add --resume to continue it, or --overwrite to discard it", e.Dir, e.Step)
}

// Is makes a RunExistsError an atomicfile.ErrNotEmpty, which it refines.
func (e *RunExistsError) Is(target error) bool { return target == atomicfile.ErrNotEmpty }

// CheckNew checks, before any work, that a new run can start in dir: the
// rule of atomicfile.CheckDir, except that a folder holding a run is
// refused with a *RunExistsError. files are the loop's own names (see
// Options.Files).
func CheckNew(dir string, overwrite bool, files ...string) error {
	err := atomicfile.CheckDir(dir, overwrite)
	if err == nil || !errors.Is(err, atomicfile.ErrNotEmpty) {
		return err
	}
	if last, lerr := Last(dir); lerr == nil {
		if st, serr := ReadState(last); serr == nil {
			return &RunExistsError{Dir: dir, Step: st.Step}
		}
		return err
	}
	names, others, rerr := runFiles(dir, files)
	if rerr != nil || len(others) > 0 || len(names) == 0 {
		return err
	}
	return &RunExistsError{Dir: dir, Step: -1, Holds: names[0]}
}

// runFiles sorts dir's entries into those a run writes (a checkpoint, the
// metrics log, last-checkpoint, one of files) and the others; temporary
// files are in neither.
func runFiles(dir string, files []string) (run, others []string, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	own := map[string]bool{MetricsFile: true, LastFile: true}
	for _, f := range files {
		own[f] = true
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case atomicfile.IsTemp(n):
		case own[n] || e.IsDir() && strings.HasPrefix(n, "checkpoint-"):
			run = append(run, n)
		default:
			others = append(others, n)
		}
	}
	return run, others, nil
}

// clearUnstarted removes what a run killed before its first checkpoint
// left in dir, and returns the names removed; a folder holding anything
// else is refused, since a resume must never empty a folder that is not
// a run's.
func clearUnstarted(dir string, files []string) ([]string, error) {
	names, others, err := runFiles(dir, files)
	if err != nil {
		return nil, err
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("nothing to resume in %s: it holds no checkpoint, and holds %s, which no run writes; give the folder of a run, or a new one", dir, others[0])
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// Close closes the metrics log.
func (r *Run) Close() error {
	if r.metrics == nil {
		return nil
	}
	err := r.metrics.Close()
	r.metrics = nil
	return err
}

// Log appends one metrics line.
func (r *Run) Log(v any) error { return r.enc.Encode(v) }

// Name is the folder name of the checkpoint after step steps.
func Name(step int) string { return fmt.Sprintf("checkpoint-%06d", step) }

// Save writes the checkpoint after st.Step steps: the model, the optimiser,
// trainer_state.json, the extra files (destination name → source path,
// copied) and blobs (destination name → contents), as one folder renamed
// into place, then points last-checkpoint at it. It returns the
// checkpoint's path.
func (r *Run) Save(m Model, opt Optimizer, st State, extra map[string]string, blobs ...Blob) (string, error) {
	name := Name(st.Step)
	dir := filepath.Join(r.Dir, name)
	sj, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		if err := m.Save(tmp); err != nil {
			return err
		}
		if opt != nil {
			if err := opt.Save(filepath.Join(tmp, OptimizerFile)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, StateFile), append(sj, '\n'), 0o644); err != nil {
			return err
		}
		for _, b := range blobs {
			if err := b.Write(filepath.Join(tmp, b.Name)); err != nil {
				return err
			}
		}
		for dst, src := range extra {
			b, err := os.ReadFile(src)
			if err != nil {
				return fmt.Errorf("copying %s into the checkpoint: %w", src, err)
			}
			if err := os.WriteFile(filepath.Join(tmp, dst), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	// Written last: a crash before this leaves the previous checkpoint as
	// the one to resume from.
	return dir, atomicfile.WriteBytes(filepath.Join(r.Dir, LastFile), []byte(name+"\n"))
}

// Blob is a file a training loop adds to a checkpoint (PPO's rollouts of the
// phase in progress, say): Write writes it at the path given.
type Blob struct {
	Name  string
	Write func(path string) error
}

// Last is the newest complete checkpoint folder of a run.
func Last(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, LastFile))
	if err != nil {
		return "", fmt.Errorf("nothing to resume in %s: %w", dir, err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || filepath.Base(name) != name {
		return "", fmt.Errorf("%s: %q is not a checkpoint name", filepath.Join(dir, LastFile), name)
	}
	return filepath.Join(dir, name), nil
}

// ReadState reads a checkpoint's trainer_state.json.
func ReadState(ckpt string) (*State, error) {
	p := filepath.Join(ckpt, StateFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var st State
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if st.Step < 0 {
		return nil, fmt.Errorf("%s: step %d is negative", p, st.Step)
	}
	return &st, nil
}

// Restore loads a checkpoint's weights into m and its moments into opt.
func Restore(ckpt string, m Model, opt Optimizer) error {
	if err := m.LoadWeights(ckpt); err != nil {
		return err
	}
	if opt != nil {
		return opt.Load(filepath.Join(ckpt, OptimizerFile))
	}
	return nil
}

// CheckSettings compares the settings a checkpoint was trained with against
// this run's, and lists every difference: resuming under other settings would
// not continue the same run.
func CheckSettings(ckpt string, saved, now map[string]any) error {
	norm := func(m map[string]any) map[string]any {
		b, _ := json.Marshal(m)
		var out map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		d.Decode(&out)
		return out
	}
	a, b := norm(saved), norm(now)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if !reflect.DeepEqual(a[k], b[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: %s then, %s now", k, show(a[k]), show(b[k])))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%s was trained with other settings; resume with the same ones, or start a new run:\n  %s", ckpt, strings.Join(diffs, "\n  "))
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// cutMetrics keeps the metrics lines of steps up to step, dropping what a
// killed run logged after its last checkpoint.
func cutMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Step *int `json:"step"`
		}
		// A torn last line (killed mid-write) or a later step goes.
		if json.Unmarshal(line, &rec) != nil || rec.Step == nil || *rec.Step > step {
			continue
		}
		keep = append(append(keep, line...), '\n')
	}
	if len(keep) == len(b) {
		return nil
	}
	return atomicfile.WriteBytes(path, keep)
}

// Prune keeps the newest limit checkpoints of a run and the ones named in
// keep (a best checkpoint, say), removing the others. limit ≤ 0 keeps all.
func (r *Run) Prune(limit int, keep ...string) error {
	if limit <= 0 {
		return nil
	}
	ents, err := os.ReadDir(r.Dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // zero-padded: name order is step order
	protected := map[string]bool{}
	for _, k := range keep {
		protected[filepath.Base(k)] = true
	}
	if last, err := Last(r.Dir); err == nil {
		protected[filepath.Base(last)] = true
	}
	for i, n := range names {
		if i >= len(names)-limit || protected[n] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.Dir, n)); err != nil {
			return err
		}
	}
	return nil
}
