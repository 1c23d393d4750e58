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

// The cached decoder, which writes keys and values in place: a prefill of
// right-padded prompts of different lengths, single steps, then several
// tokens at once, give the full forward's logits at each row's last token
// within 1e-5, and log Σ exp of them.
func TestCachedDecodeMatchesForward(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		t.Run(name, func(t *testing.T) {
			m, ref := loadFixture(t, name)
			c := m.Config
			v := c.VocabSize
			ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
			// Each row's real tokens, and the full forward's logits at each.
			var rows [][]int64
			var full [][]float32
			r, err := NewRunner(m, ForwardOptions{Logits: true}, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Destroy()
			for row := 0; row < ref.b; row++ {
				var toks []int64
				for j := 0; j < ref.s; j++ {
					if mask[row*ref.s+j] != 0 {
						toks = append(toks, ids[row*ref.s+j])
					}
				}
				out, err := r.Forward(&Batch{B: 1, S: len(toks), InputIDs: toks})
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, toks)
				full = append(full, out[LogitsOutput].Data)
			}
			d, err := NewCachedDecoder(m, onnx.Options{Threads: 1}, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Destroy()
			b := len(rows)
			kv := NewCache(c, b, ref.s)
			logits, lse, best := make([]float32, b*v), make([]float32, b), make([]int64, b)
			next := DecodeOutputs{Logits: logits, LogSumExp: lse, ArgMax: best}
			worst := 0.0
			defer func() { t.Logf("max abs difference from the full forward's logits: %.3g", worst) }()
			check := func(what string) {
				t.Helper()
				for row := 0; row < kv.B; row++ {
					at := kv.Lens[row] - 1
					want := full[row][at*v : (at+1)*v]
					diff, scale := maxAbsDiff(logits[row*v:(row+1)*v], want)
					worst = math.Max(worst, diff)
					if diff > 1e-5*math.Max(1, scale) {
						t.Errorf("%s, row %d at %d: logits differ from the full forward by %.3g", what, row, at, diff)
					}
					var s float64
					for _, x := range want {
						s += math.Exp(float64(x))
					}
					if got := float64(lse[row]); math.Abs(got-math.Log(s)) > 1e-5 {
						t.Errorf("%s, row %d: log-sum-exp %v, want %v", what, row, got, math.Log(s))
					}
					if best[row] != int64(argmax(logits[row*v:(row+1)*v])) {
						t.Errorf("%s, row %d: argmax %d, want %d", what, row, best[row], argmax(logits[row*v:(row+1)*v]))
					}
				}
			}
			// Prefill: 5 tokens of one row, 3 of the other, right-padded.
			counts := []int{5, 3}
			prompt := make([]int64, b*5)
			for row := range rows {
				copy(prompt[row*5:], rows[row][:counts[row]])
			}
			if err := d.Append(prompt, 5, counts, kv, next); err != nil {
				t.Fatal(err)
			}
			check("prefill")
			// Single steps, each row after its own length.
			for step := 0; step < 3; step++ {
				step := make([]int64, b)
				for row := range rows {
					step[row] = rows[row][kv.Lens[row]]
				}
				if err := d.Append(step, 1, nil, kv, next); err != nil {
					t.Fatal(err)
				}
				check("step")
			}
			// Several tokens per row at once.
			chunk := make([]int64, b*2)
			for row := range rows {
				copy(chunk[row*2:], rows[row][kv.Lens[row]:kv.Lens[row]+2])
			}
			if err := d.Append(chunk, 2, nil, kv, next); err != nil {
				t.Fatal(err)
			}
			check("two tokens")
			// One row alone, several tokens: the kernel's own multi-token path.
			kv.Keep(c, []int{0})
			if err := d.Append(rows[0][kv.Lens[0]:kv.Lens[0]+2], 2, nil, kv, next); err != nil {
				t.Fatal(err)
			}
			check("one row, two tokens")
		})
	}
}
