package optim

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stateFile builds optimiser state for one parameter "a" of 2 values by
// hand, so that a test can give it what Save never writes.
func stateFile(step string, mOff, vOff [2]int, m, v []float32) []byte {
	header := map[string]any{
		"__metadata__": map[string]string{"optimizer": "adamw", "step": step, "beta1": "0.9", "beta2": "0.999", "eps": "1e-08", "weight_decay": "0"},
		"m.a":          map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": mOff},
		"v.a":          map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": vOff},
	}
	h, _ := json.Marshal(header)
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	b = append(b, h...)
	for _, x := range append(slices.Clone(m), v...) {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// Crafted state that Save never writes is refused with an error naming the
// file, and leaves the optimiser as it was.
func TestLoadRefusesCraftedState(t *testing.T) {
	nan := float32(math.NaN())
	ok := [2][2]int{{0, 8}, {8, 16}}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"valid", stateFile("5", ok[0], ok[1], []float32{1, 2}, []float32{3, 4}), ""},
		{"NaN first moment", stateFile("5", ok[0], ok[1], []float32{1, nan}, []float32{3, 4}), `"m.a": element 1 is NaN`},
		{"infinite second moment", stateFile("5", ok[0], ok[1], []float32{1, 2}, []float32{float32(math.Inf(1)), 4}), `"v.a": element 0 is +Inf`},
		{"negative second moment", stateFile("5", ok[0], ok[1], []float32{1, 2}, []float32{3, -4}), `"v.a": element 1 is -4`},
		{"moments aliasing one another", stateFile("5", ok[0], ok[0], []float32{1, 2}, nil), "overlap"},
		{"step past 2^53", stateFile("9223372036854775807", ok[0], ok[1], []float32{1, 2}, []float32{3, 4}), "bad step"},
	} {
		p := &Param{Name: "a", Data: []float32{0, 0}, Grad: []float32{0, 0}}
		o, err := NewAdamW([]*Param{p}, DefaultAdamW())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "optimizer.safetensors")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		err = o.Load(path)
		if c.want == "" {
			if err != nil || o.Steps() != 5 || o.m[0][1] != 2 || o.v[0][1] != 4 {
				t.Errorf("%s: %v, step %d, m %v, v %v", c.name, err, o.Steps(), o.m[0], o.v[0])
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s and %q", c.name, err, path, c.want)
		}
		if o.Steps() != 0 || o.m[0][0] != 0 || o.v[0][0] != 0 {
			t.Errorf("%s: a refused file changed the optimiser", c.name)
		}
	}
}
