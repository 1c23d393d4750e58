package policy

import (
	"math"
	"path/filepath"
	"testing"

	"irl/onnx"
)

// maxAbsDiff is the largest |a-b| and the largest |b|.
func maxAbsDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

// Prefill and cached steps, one token or several at a time, give the logits
// of the full forward graph (and of transformers) at each step's last token,
// on the fixtures' batch, whose row 1 is left-padded.
func TestDecodeMatchesForward(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(fixtures, name)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Config
			ref := loadReference(t, dir)
			ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
			pos := PositionsFromMask(mask, ref.b, ref.s)
			refLogits := ref.f32(t, "logits")

			r, err := NewRunner(m, ForwardOptions{Logits: true}, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Destroy()
			out, err := r.Forward(&Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask})
			if err != nil {
				t.Fatal(err)
			}
			full := out[LogitsOutput].Data

			d, err := NewDecoder(m, onnx.Options{Threads: 1}, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Destroy()
			past, present := NewKVCache(c, ref.b, ref.s), NewKVCache(c, ref.b, ref.s)
			logits := make([]float32, ref.b*c.VocabSize)
			cols := func(x []int64, from, to int) []int64 {
				var y []int64
				for row := 0; row < ref.b; row++ {
					y = append(y, x[row*ref.s+from:row*ref.s+to]...)
				}
				return y
			}
			v := c.VocabSize
			// Chunks of new tokens: a prefill of 5, single steps, then 3 at once.
			for _, chunk := range [][2]int{{0, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}, {9, 12}} {
				from, to := chunk[0], chunk[1]
				err := d.Step(cols(ids, from, to), cols(mask, 0, to), cols(pos, from, to), to-from, past, present, logits)
				if err != nil {
					t.Fatal(err)
				}
				if present.P != to || present.B != ref.b {
					t.Fatalf("present cache is %d×%d, want %d×%d", present.B, present.P, ref.b, to)
				}
				var wantFull, wantRef []float32
				for row := 0; row < ref.b; row++ {
					at := (row*ref.s + to - 1) * v
					wantFull = append(wantFull, full[at:at+v]...)
					wantRef = append(wantRef, refLogits[at:at+v]...)
				}
				diff, scale := maxAbsDiff(logits[:ref.b*v], wantFull)
				if diff > 1e-4*math.Max(1, scale) {
					t.Errorf("tokens %d…%d: logits differ from the full forward by %.3g (max |logit| %.3g)", from, to-1, diff, scale)
				}
				diffRef, _ := maxAbsDiff(logits[:ref.b*v], wantRef)
				if diffRef > 1e-4*math.Max(1, scale) {
					t.Errorf("tokens %d…%d: logits differ from transformers' by %.3g", from, to-1, diffRef)
				}
				t.Logf("tokens %d…%d: max abs error %.3g vs forward, %.3g vs transformers", from, to-1, diff, diffRef)
				past, present = present, past
			}
		})
	}
}

// Keep compacts rows of a cache in place.
func TestKVCacheKeep(t *testing.T) {
	c := Config{NumLayers: 1, NumHeads: 1, HiddenSize: 2}
	kv := NewKVCache(c, 3, 2)
	kv.P = 2
	for i := range kv.Keys[0] {
		kv.Keys[0][i] = float32(i)
		kv.Values[0][i] = float32(-i)
	}
	kv.Keep(c, []int{0, 2})
	if kv.B != 2 || kv.Keys[0][4] != 8 || kv.Keys[0][7] != 11 || kv.Values[0][5] != -9 || kv.Keys[0][3] != 3 {
		t.Errorf("after Keep: B %d, keys %v", kv.B, kv.Keys[0])
	}
}
