package neox

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"irl/floatbits"
	"irl/safetensors"
)

// Half-precision and sharded safetensors checkpoints load to the fixture's
// weights, within each format's rounding.
func TestLoadHalfAndSharded(t *testing.T) {
	src := filepath.Join(fixtures, "tiny-neox-parallel")
	ref, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	specs := ref.Config.ParamSpecs()
	for _, tc := range []struct {
		dtype safetensors.DType
		tol   float64 // relative rounding of the format
	}{{safetensors.F16, 1.0 / 2048}, {safetensors.BF16, 1.0 / 128}} {
		t.Run(string(tc.dtype), func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
			// Two shards plus the index transformers writes.
			shards := [][]safetensors.Tensor{nil, nil}
			weightMap := map[string]string{}
			for i, s := range specs {
				p := ref.Params[s.Name]
				buf := make([]byte, 2*len(p.Data))
				for j, x := range p.Data {
					var h uint16
					if tc.dtype == safetensors.F16 {
						h = floatbits.Float32ToHalf(x)
					} else {
						h = uint16(math.Float32bits(x) >> 16) // truncation: within bf16 rounding
					}
					binary.LittleEndian.PutUint16(buf[2*j:], h)
				}
				shards[i%2] = append(shards[i%2], safetensors.Tensor{Name: s.Name, DType: tc.dtype, Shape: p.Shape, Data: buf})
				weightMap[s.Name] = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i%2]
			}
			for i, name := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
				if err := safetensors.WriteFile(filepath.Join(dir, name), shards[i], nil); err != nil {
					t.Fatal(err)
				}
			}
			idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
			os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range specs {
				a, b := ref.Params[s.Name].Data, m.Params[s.Name].Data
				for j := range a {
					if math.Abs(float64(a[j]-b[j])) > tc.tol*math.Abs(float64(a[j]))+1e-7 {
						t.Fatalf("%s[%d]: %v loaded as %v", s.Name, j, a[j], b[j])
					}
				}
			}
		})
	}
}
