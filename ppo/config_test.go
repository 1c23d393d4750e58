package ppo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The presets carry the paper's table; files in YAML and TOML override the
// defaults; unknown keys are named.
func TestPresetsAndFiles(t *testing.T) {
	c, err := LoadConfig("pythia-410m")
	if err != nil {
		t.Fatal(err)
	}
	if c.LR != 8e-7 || c.InitKLCoef != 0.1 || c.Target != 4.9 || c.TotalSteps != 12000 || c.BatchSize != 8 ||
		c.NumRollouts != 48 || c.ChunkSize != 4 || c.PPOEpochs != 5 || c.UnfrozenLayers != 3 || c.Betas != [2]float64{0.9, 0.95} {
		t.Errorf("410m preset %+v", c)
	}
	c, err = LoadConfig("pythia-70m")
	if err != nil {
		t.Fatal(err)
	}
	if c.LR != 3e-6 || c.InitKLCoef != 0.035 || c.Target != 5.71 || c.TotalSteps != 600 || c.BatchSize != 16 ||
		c.NumRollouts != 32 || c.PPOEpochs != 8 || c.UnfrozenLayers != 4 || c.TopK != 30 || c.MaxNewTokens != 128 || c.ScaleReward != "running" {
		t.Errorf("70m preset %+v", c)
	}
	dir := t.TempDir()
	y := filepath.Join(dir, "c.yaml")
	os.WriteFile(y, []byte("lr: 1e-4\nbetas: [0.8, 0.9]\n"), 0o644)
	if c, err := LoadConfig(y); err != nil || c.LR != 1e-4 || c.Betas[0] != 0.8 || c.BatchSize != Defaults().BatchSize {
		t.Errorf("yaml: %+v %v", c, err)
	}
	tm := filepath.Join(dir, "c.toml")
	os.WriteFile(tm, []byte("lr = 2e-4\nppo_epochs = 3\n"), 0o644)
	if c, err := LoadConfig(tm); err != nil || c.LR != 2e-4 || c.PPOEpochs != 3 {
		t.Errorf("toml: %+v %v", c, err)
	}
	os.WriteFile(y, []byte("learning_rate: 1e-4\n"), 0o644)
	if _, err := LoadConfig(y); err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := LoadConfig("pythia-9b"); err == nil || !strings.Contains(err.Error(), "pythia-70m") {
		t.Errorf("unknown preset: %v", err)
	}
}
