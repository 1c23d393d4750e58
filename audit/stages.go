package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"irl/atomicfile"
	"irl/rewardhead"
)

// stagesFile records, in the audit's folder, which stages have finished
// and for which inputs, so that an interrupted audit rerun with the same
// command picks up after its last finished stage (as irl experiment
// toxicity does). reportFile holds the report as it stood after that
// stage: gob, which keeps the NaNs that JSON cannot.
const (
	stagesFile = "stages.json"
	reportFile = "stages.report.gob"
)

// stageLog is stages.json.
type stageLog struct {
	// Key is the hash of everything the audit's results depend on: the
	// settings, the models' fingerprints and the input files' bytes.
	Key  string   `json:"key"`
	Done []string `json:"done"`
}

// stageFormat is the version of what the stages compute: a change to how
// a stage reads its inputs (which prompts are left out, which words are
// ranked, how the held-out figures are counted) raises it, so that a
// folder left by an older irl is not resumed as if it were this one's.
const stageFormat = 3

// key hashes the audit's inputs. Output-only settings (the folder,
// --overwrite, --quiet) and the progress writer are left out.
func (a *auditor) key(fingerprints ...string) (string, error) {
	c := a.cfg
	h := sha256.New()
	settings, _ := json.Marshal(struct {
		Format                                                          int
		Model, Base, Prompts, Pos, Neg, PromptField, TextField, Encoder string
		ProbeWords, Templates, GT, GTField                              string
		Seed                                                            uint64
		HeldOut                                                         float64
		Greedy                                                          bool
		MaxNewTokens, Epochs, Top, Samples                              int
		Device                                                          string
	}{stageFormat, c.Model, c.Base, c.Prompts, c.Pos, c.Neg, c.PromptField, c.TextField, c.Encoder, c.ProbeWords, c.Templates, c.GT, c.GTField,
		c.Seed, c.HeldOut, c.Greedy, c.MaxNewTokens, c.Epochs, c.Top, c.samples(), string(c.Session.Device)})
	h.Write(settings)
	for _, f := range append([]string{a.encoder.Fingerprint}, fingerprints...) {
		fmt.Fprintf(h, "\x00%s", f)
	}
	for _, p := range []string{c.Prompts, c.Pos, c.Neg, c.ProbeWords, c.Templates, c.GT} {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// resumable reads the folder's stage log: the stages an earlier run of
// the same audit (key) finished, or nil when there is none to resume.
func (a *auditor) resumable(key string) []string {
	b, err := os.ReadFile(a.path(stagesFile))
	if err != nil {
		return nil
	}
	var log stageLog
	if json.Unmarshal(b, &log) != nil || log.Key != key || len(log.Done) == 0 {
		return nil
	}
	f, err := os.Open(a.path(reportFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	rep := &Report{}
	if gob.NewDecoder(bufio.NewReader(f)).Decode(rep) != nil {
		return nil
	}
	if rep.NotDone == nil {
		rep.NotDone = []string{} // gob leaves out empty lists; the JSON has one
	}
	a.rep = rep
	return log.Done
}

// finished records a stage as done, with the report as it stands.
func (a *auditor) finished(key string, done []string) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(a.rep); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(a.path(reportFile), buf.Bytes()); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(stageLog{Key: key, Done: done}, "", "  ")
	return atomicfile.WriteBytes(a.path(stagesFile), append(b, '\n'))
}

// reload restores what a finished stage left in memory for the stages
// after it, from its files.
func (a *auditor) reload(stage string) error {
	switch stage {
	case "demonstrations":
		ds, err := readDemos(a.path("demonstrations", "demonstrations.jsonl"))
		if err != nil {
			return err
		}
		a.demos = ds
		if a.gt != nil {
			return a.matchGT()
		}
	case "irl":
		return a.reloadIRL()
	}
	return nil
}

func readDemos(path string) ([]demo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ds []demo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<26)
	for n := 1; sc.Scan(); n++ {
		var d demo
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		ds = append(ds, d)
	}
	return ds, sc.Err()
}

// reloadIRL reads the IRL stage's features and heads back.
func (a *auditor) reloadIRL() error {
	s := &scored{}
	s.trDPos, s.trDNeg = a.part(true, "tuned"), a.part(true, "base")
	s.dPos, s.dNeg = a.part(false, "tuned"), a.part(false, "base")
	for _, x := range []struct {
		f    **rewardhead.Features
		name string
	}{{&s.trPos, "train-tuned"}, {&s.trNeg, "train-base"}, {&s.hPos, "heldout-tuned"}, {&s.hNeg, "heldout-base"}, {&s.words, "words"}} {
		f, err := rewardhead.LoadFeatures(a.path("features", x.name+".safetensors"))
		if err != nil {
			return err
		}
		*x.f = f
	}
	paths, err := rewardhead.EpochHeads(a.path("heads"))
	if err != nil {
		return err
	}
	for _, p := range paths {
		h, err := rewardhead.ReadHead(p)
		if err != nil {
			return err
		}
		s.heads = append(s.heads, h)
	}
	if s.chosen, err = rewardhead.ReadHead(a.rep.Head); err != nil {
		return err
	}
	a.sc = s
	return nil
}

// errStopped is the test hook Config.StopAfter's stop.
var errStopped = errors.New("stopped after the stage (Config.StopAfter)")

// doneAlready reports whether a stage finished in the run being resumed.
func doneAlready(done []string, stage string) bool { return slices.Contains(done, stage) }
