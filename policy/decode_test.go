package policy

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"irl/neox"
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
			m, err := neox.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Config
			ref := loadReference(t, dir)
			ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
			pos := neox.PositionsFromMask(mask, ref.b, ref.s)
			refLogits := ref.f32(t, "logits")

			r, err := NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Destroy()
			out, err := r.Forward(&neox.Batch{B: ref.b, S: ref.s, InputIDs: ids, AttentionMask: mask})
			if err != nil {
				t.Fatal(err)
			}
			full := out[neox.LogitsOutput].Data

			d, err := NewDecoder(m, neox.DecodeOptions{}, onnx.Options{Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Destroy()
			kv, err := d.NewKVCache(ref.b, ref.s)
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Destroy()
			kv.Reset(ref.b)
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
				err := d.Step(cols(ids, from, to), cols(mask, 0, to), cols(pos, from, to), to-from, nil, kv, DecodeOutputs{Logits: logits})
				if err != nil {
					t.Fatal(err)
				}
				if kv.P != to || kv.B != ref.b {
					t.Fatalf("the cache holds %d×%d, want %d×%d", kv.B, kv.P, ref.b, to)
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
			}
		})
	}
}

// A step that lists the rows going on carries only those rows of the
// cache: its logits are those of the same rows in a step of the whole
// batch, and the steps after it see the rows' own past.
func TestDecodeRows(t *testing.T) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	c := m.Config
	v := c.VocabSize
	ids, mask := ref.i64(t, "input_ids"), ref.i64(t, "attention_mask")
	pos := neox.PositionsFromMask(mask, ref.b, ref.s)
	d, err := NewDecoder(m, neox.DecodeOptions{}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	cols := func(x []int64, rows []int, from, to int) []int64 {
		var y []int64
		for _, row := range rows {
			y = append(y, x[row*ref.s+from:row*ref.s+to]...)
		}
		return y
	}
	all, last := []int{0, 1}, []int{1}
	// steps runs a prefill of 6 tokens over both rows, then single tokens
	// 6…9, from token 7 on for the rows in keep only, and returns the
	// logits of each step's last row.
	steps := func(keep []int) [][]float32 {
		kv, err := d.NewKVCache(ref.b, ref.s)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Destroy()
		kv.Reset(ref.b)
		var got [][]float32
		rows := all
		for to := 6; to <= 9; to++ {
			from := to - 1
			if to == 6 {
				from = 0
			}
			var sel []int64
			if to == 8 && len(keep) < len(all) {
				for _, r := range keep {
					sel = append(sel, int64(r))
				}
				rows = keep
			}
			logits := make([]float32, len(rows)*v)
			if err := d.Step(cols(ids, rows, from, to), cols(mask, rows, 0, to), cols(pos, rows, from, to), to-from, sel, kv, DecodeOutputs{Logits: logits}); err != nil {
				t.Fatal(err)
			}
			if kv.B != len(rows) || kv.P != to {
				t.Fatalf("after tokens up to %d: the cache holds %d×%d, want %d×%d", to, kv.B, kv.P, len(rows), to)
			}
			got = append(got, logits[(len(rows)-1)*v:])
		}
		return got
	}
	whole, kept := steps(all), steps(last)
	for i := range whole {
		diff, scale := maxAbsDiff(kept[i], whole[i])
		if diff > 1e-5*math.Max(1, scale) {
			t.Errorf("step %d: row 1 carried alone differs from the whole batch's by %.3g", i, diff)
		}
	}
	if err := func() error {
		kv, err := d.NewKVCache(1, 4)
		if err != nil {
			return err
		}
		defer kv.Destroy()
		kv.Reset(1)
		return d.Step([]int64{1, 2, 3, 4, 5}, []int64{1, 1, 1, 1, 1}, []int64{0, 1, 2, 3, 4}, 5, nil, kv, DecodeOutputs{Logits: make([]float32, v)})
	}(); err == nil || !strings.Contains(err.Error(), "the cache holds 4") {
		t.Errorf("a step past the cache's capacity: %v", err)
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
			r, err := NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{Threads: 1}, nil)
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
				out, err := r.Forward(&neox.Batch{B: 1, S: len(toks), InputIDs: toks})
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, toks)
				full = append(full, out[neox.LogitsOutput].Data)
			}
			d, err := NewCachedDecoder(m, neox.DecodeOptions{}, onnx.Options{Threads: 1}, nil)
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
