package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A run folder means its final model when it has one, else its newest
// checkpoint; last-checkpoint means the checkpoint it names; a model folder
// or file is itself; a hub id is refused with the way to download it.
func TestModelDir(t *testing.T) {
	dir := t.TempDir()
	mk := func(parts ...string) string {
		p := filepath.Join(append([]string{dir}, parts...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("model", "config.json")
	mk("run", "checkpoint-000002", "config.json")
	mk("run", "checkpoint-000004", "config.json")
	os.WriteFile(filepath.Join(dir, "run", LastFile), []byte("checkpoint-000004\n"), 0o644)
	onnx := mk("m.onnx")
	for _, c := range []struct{ in, want string }{
		{filepath.Join(dir, "model"), filepath.Join(dir, "model")},
		{onnx, onnx},
		{filepath.Join(dir, "run"), filepath.Join(dir, "run", "checkpoint-000004")},
		{filepath.Join(dir, "run", LastFile), filepath.Join(dir, "run", "checkpoint-000004")},
		{filepath.Join(dir, "absent"), filepath.Join(dir, "absent")},
	} {
		got, _, err := ModelDir(c.in)
		if err != nil || got != c.want {
			t.Errorf("ModelDir(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	mk("run", FinalDir, "config.json")
	if got, how, _ := ModelDir(filepath.Join(dir, "run")); got != filepath.Join(dir, "run", FinalDir) || !strings.Contains(how, "final") {
		t.Errorf("a finished run: %s (%s)", got, how)
	}
	os.WriteFile(filepath.Join(dir, "run", LastFile), []byte("checkpoint-000009\n"), 0o644)
	if _, _, err := ModelDir(filepath.Join(dir, "run", LastFile)); err == nil || !strings.Contains(err.Error(), "checkpoint-000009") {
		t.Errorf("a last-checkpoint naming nothing: %v", err)
	}
	if _, _, err := ModelDir("EleutherAI/pythia-70m"); err == nil || !strings.Contains(err.Error(), "huggingface-cli download EleutherAI/pythia-70m --local-dir pythia-70m") {
		t.Errorf("a hub id: %v", err)
	}
}
