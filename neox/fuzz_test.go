package neox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig feeds config.json bytes to ParseConfig. It must never
// panic, and a configuration it accepts must pass Validate, stay within the
// bounds that keep allocation from it finite, and read back from its own
// JSON unchanged.
func FuzzParseConfig(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(fixtures, "tiny-neox-*", "config.json"))
	if len(paths) == 0 {
		f.Fatal("no fixture configs")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(pythia70mJSON(f, nil))
	f.Add(pythia70mJSON(f, map[string]any{"max_position_embeddings": 1 << 40}))
	f.Add(pythia70mJSON(f, map[string]any{"rope_theta": 0}))
	f.Add(pythia70mJSON(f, map[string]any{"rotary_emb_base": -1, "rotary_pct": 1}))
	f.Add(pythia70mJSON(f, map[string]any{"rope_parameters": map[string]any{"rope_theta": 0, "partial_rotary_factor": 0.5}}))
	f.Add(pythia70mJSON(f, map[string]any{"hidden_size": 1 << 40, "num_attention_heads": 1 << 20}))
	f.Add(pythia70mJSON(f, map[string]any{"eos_token_id": []int{2, 3}, "bos_token_id": nil}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("config.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config Validate refuses: %v", err)
		}
		if c.MaxPositions*c.RotaryDims() > maxRotaryTable || c.NumParams() > maxParams || c.NumParams() <= 0 {
			t.Fatalf("accepted %+v: rotary table %d, %d parameters", c, c.MaxPositions*c.RotaryDims(), c.NumParams())
		}
		c2, err := ParseConfig("ours", c.JSON())
		if err != nil || c2 != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, c2, err)
		}
	})
}
