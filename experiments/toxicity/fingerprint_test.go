package toxicity

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/neox"
	"irl/onnx"
)

// A run whose rlhf stage stopped mid-way, then its SFT model replaced by
// another of the same shape (init seed 2's weights written over the made
// folder, whose init.json still names seed 1): the stage's hash sees the
// init spec, not the weights, so it is unchanged and the stage resumes;
// the checkpoint's model_fingerprint refuses it. Changing the seed in the
// configuration changes the hash instead: the model is made again and the
// stage starts over, its checkpoints recording the new fingerprint.
func TestResumeRefusesAnotherSFTModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o")
	so := onnx.Options{Threads: 2}
	if _, err := Run(mini(t), Options{Out: out, Session: so, StopIn: "rlhf", StopAfter: 2}); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("the stopped run: %v", err)
	}
	sftDir := filepath.Join(out, "models", "sft")
	made, err := neox.Open(sftDir)
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(out, "rlhf", "run")
	if got := lastFingerprint(t, run); got != made.Fingerprint {
		t.Fatalf("the rlhf checkpoint records model_fingerprint %q, want the SFT model's %s", got, made.Fingerprint)
	}

	c2 := mini(t)
	c2.SFTModel.Init.Seed = 2
	p := &pipeline{cfg: c2, opt: Options{Out: t.TempDir()}, hashes: map[string]string{}, res: &Result{}}
	otherDir, err := p.model(c2.SFTModel, "sft")
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(filepath.Join(otherDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sftDir, "model.safetensors"), w, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(mini(t), Options{Out: out, Session: so})
	if err == nil || !strings.Contains(err.Error(), "toxicity: rlhf: ") || !strings.Contains(err.Error(), "model_fingerprint: \""+made.Fingerprint+"\" then") {
		t.Fatalf("resumed rlhf on another SFT model: %v", err)
	}

	_, err = Run(c2, Options{Out: out, Session: so, StopIn: "rlhf", StopAfter: 2})
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("after the seed changed, rlhf starts over and stops where asked; got %v", err)
	}
	remade, err := neox.Open(sftDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := lastFingerprint(t, run); got != remade.Fingerprint || got == made.Fingerprint {
		t.Errorf("after the seed changed the checkpoint records %q; want the remade model's %s", got, remade.Fingerprint)
	}
}

// lastFingerprint is the model_fingerprint a run's newest checkpoint
// records.
func lastFingerprint(t *testing.T, run string) string {
	t.Helper()
	last, err := checkpoint.Last(run)
	if err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.ReadState(last)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := st.Settings["model_fingerprint"].(string)
	return fp
}

// checkFingerprints fails unless every trainer_state.json under dir (there
// must be some) records a model_fingerprint.
func checkFingerprints(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != checkpoint.StateFile {
			return err
		}
		n++
		st, err := checkpoint.ReadState(filepath.Dir(path))
		if err != nil {
			return err
		}
		if fp, _ := st.Settings["model_fingerprint"].(string); !strings.HasPrefix(fp, "sha256:") {
			t.Errorf("%s: model_fingerprint %v", path, st.Settings["model_fingerprint"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no %s under %s", checkpoint.StateFile, dir)
	}
}
