// Package checkpoint keeps a training run's folder: checkpoints that are
// written whole or not at all, the pointer to the newest one, the settings a
// resumed run must share, and the metrics log. Supervised fine-tuning and PPO
// both use it, so both resume the same way.
//
// A run folder holds
//
//	checkpoint-NNNNNN/   a Hugging Face model folder (config.json,
//	                     model.safetensors with every tensor the model holds),
//	                     optimizer.safetensors, trainer_state.json, and any
//	                     extra files (tokenizer.json)
//	last-checkpoint      the newest complete checkpoint's name, written last
//	metrics.jsonl        one JSON object per line, each with a "step"
//
// Each checkpoint is built in a temporary folder and renamed into place, so a
// kill leaves either the whole checkpoint or none of it; temporary files that
// a kill left behind are removed when the run is next opened.
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
	Dir     string
	metrics *os.File
	enc     *json.Encoder
}

// Open opens the run folder dir. A new run (resume false) needs dir absent or
// empty, or overwrite, which removes what an earlier run left there: mixing
// two runs' checkpoints and metrics is never what was meant. A resumed run
// needs a complete checkpoint; its metrics log is cut back to that
// checkpoint's step, so replayed steps are not logged twice.
func Open(dir string, resume, overwrite bool) (*Run, *State, error) {
	var st *State
	if resume {
		last, err := Last(dir)
		if err != nil {
			return nil, nil, err
		}
		if st, err = ReadState(last); err != nil {
			return nil, nil, err
		}
	} else {
		if err := atomicfile.CheckDir(dir, overwrite); err != nil {
			return nil, nil, err
		}
		if overwrite {
			if err := clear(dir); err != nil {
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
	r := &Run{Dir: dir}
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

// clear empties a folder.
func clear(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
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
