package neox

import (
	"path/filepath"
	"strings"
	"testing"

	"irl/checkpoint"
	"irl/weights"
)

// Open identifies a folder, an .onnx file and a run folder once: the kind,
// the configuration and the fingerprint, which Load and the in-memory
// fingerprint agree with.
func TestOpenSource(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny-neox-parallel")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := weights.Fingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != dir || s.How != "" || s.IsONNX() || s.Config == nil || s.Fingerprint != fp || !strings.HasPrefix(fp, "sha256:") {
		t.Fatalf("folder: %+v (fingerprint %s)", s, fp)
	}
	if got := s.TokenizerPath(""); got != filepath.Join(dir, "tokenizer.json") {
		t.Errorf("tokenizer %s", got)
	}
	if got := s.TokenizerPath("x.json"); got != "x.json" {
		t.Errorf("tokenizer flag %s", got)
	}
	m, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config != *s.Config || m.Dir != dir {
		t.Errorf("loaded %+v from %s", m.Config, m.Dir)
	}

	o, err := Open(filepath.Join(fixtures, "tiny-neox-torch-export", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !o.IsONNX() || o.Kind != weights.KindONNX || o.Config == nil || o.Fingerprint == "" || o.Fingerprint == fp {
		t.Errorf("onnx: %+v", o)
	}
	if got := o.TokenizerPath(""); got != filepath.Join(fixtures, "tiny-neox-torch-export", "tokenizer.json") {
		t.Errorf("onnx tokenizer %s", got)
	}
	if _, err := o.Load(); err == nil || !strings.Contains(err.Error(), "ONNX graph") {
		t.Errorf("loading an .onnx file as weights: %v", err)
	}

	// A run folder means its final model, and a model in memory that Save
	// wrote has that folder's fingerprint.
	run := t.TempDir()
	final := filepath.Join(run, checkpoint.FinalDir)
	if err := m.Save(final); err != nil {
		t.Fatal(err)
	}
	r, err := Open(run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != final || r.How == "" {
		t.Errorf("run folder: %s (%q)", r.Path, r.How)
	}
	mem, err := m.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if mem != r.Fingerprint || !strings.HasPrefix(mem, "sha256:") {
		t.Errorf("in memory %s, saved %s", mem, r.Fingerprint)
	}
	m.Params[m.Config.ParamSpecs()[0].Name].Data[0] += 1
	if other, _ := m.Fingerprint(); other == mem {
		t.Error("a changed weight keeps the fingerprint")
	}

	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing folder opened")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none.onnx")); err == nil {
		t.Error("a missing .onnx file opened")
	}
}
