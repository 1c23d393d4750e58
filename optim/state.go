package optim

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"irl/floatbits"
	"irl/safetensors"
)

// Saved-state layout: tensors "m.<name>" and "v.<name>" (F32, the parameter's
// shape) for every parameter, and metadata holding the step count and the
// hyperparameters. Floats are written with strconv's shortest exact form, so
// they read back bit-for-bit.
const (
	metaOptimizer   = "optimizer"
	metaStep        = "step"
	metaBeta1       = "beta1"
	metaBeta2       = "beta2"
	metaEps         = "eps"
	metaWeightDecay = "weight_decay"
)

// Save writes the step count and both moments of every parameter to a
// safetensors file at path, atomically. Parameters themselves are not saved;
// a checkpoint saves them alongside.
func (o *AdamW) Save(path string) error {
	ts := make([]safetensors.Tensor, 0, 2*len(o.params))
	for i, p := range o.params {
		ts = append(ts, safetensors.FromFloat32("m."+p.Name, p.shape(), o.m[i]), safetensors.FromFloat32("v."+p.Name, p.shape(), o.v[i]))
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	meta := map[string]string{
		metaOptimizer:   "adamw",
		metaStep:        strconv.Itoa(o.step),
		metaBeta1:       f(o.cfg.Beta1),
		metaBeta2:       f(o.cfg.Beta2),
		metaEps:         f(o.cfg.Eps),
		metaWeightDecay: f(o.cfg.WeightDecay),
	}
	return safetensors.WriteFile(path, ts, meta)
}

// Load restores the step count and moments saved by Save. The file must hold
// exactly this optimiser's parameters, by name and shape, and the same betas,
// because the moments and their bias correction mean nothing under other
// betas; eps and weight decay may differ (they hold no state) and keep this
// optimiser's values. Errors name the file and, where there is one, the
// tensor. On error the optimiser is unchanged.
func (o *AdamW) Load(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return o.loadFrom(path, data)
}

// maxStep bounds a restored step count: Step adds one to it, and beyond 2^53
// the count no longer converts exactly to the float64 of the bias
// corrections.
const maxStep = 1 << 53

// loadFrom is Load of the file's bytes; name is used in errors.
func (o *AdamW) loadFrom(path string, data []byte) error {
	f, err := safetensors.Parse(path, data)
	if err != nil {
		return err
	}
	if kind := f.Metadata[metaOptimizer]; kind != "adamw" {
		return fmt.Errorf("%s: optimizer %q in metadata, want \"adamw\"", path, kind)
	}
	step, err := strconv.Atoi(f.Metadata[metaStep])
	if err != nil || step < 0 || step > maxStep {
		return fmt.Errorf("%s: bad step %q in metadata (want an integer in [0, 2^53])", path, f.Metadata[metaStep])
	}
	for _, b := range []struct {
		key  string
		want float64
	}{{metaBeta1, o.cfg.Beta1}, {metaBeta2, o.cfg.Beta2}} {
		got, err := strconv.ParseFloat(f.Metadata[b.key], 64)
		if err != nil {
			return fmt.Errorf("%s: bad %s %q in metadata", path, b.key, f.Metadata[b.key])
		}
		if got != b.want {
			return fmt.Errorf("%s: saved with %s %v, optimiser has %v", path, b.key, got, b.want)
		}
	}
	want := make(map[string]bool, 2*len(o.params))
	src := make([]*safetensors.Tensor, 0, 2*len(o.params))
	for i, p := range o.params {
		for _, name := range []string{"m." + p.Name, "v." + p.Name} {
			want[name] = true
			t, err := f.Get(name)
			if err != nil {
				return err
			}
			if t.DType != safetensors.F32 {
				return fmt.Errorf("%s: tensor %q has dtype %s, want F32", path, name, t.DType)
			}
			if !slices.Equal(t.Shape, p.shape()) {
				return fmt.Errorf("%s: tensor %q has shape %v, parameter %q has %v", path, name, t.Shape, p.Name, p.shape())
			}
			if len(t.Data) != 4*len(o.m[i]) { // a Shape that disagrees with Data
				return fmt.Errorf("%s: tensor %q holds %d values, parameter %q has %d", path, name, len(t.Data)/4, p.Name, len(o.m[i]))
			}
			if err := checkMoment(t.Data, name[0] == 'v'); err != nil {
				return fmt.Errorf("%s: tensor %q: %w", path, name, err)
			}
			src = append(src, t)
		}
	}
	var extra []string
	for _, name := range f.Names() {
		if !want[name] {
			extra = append(extra, fmt.Sprintf("%q", name))
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("%s: tensors %s match no parameter of this optimiser", path, strings.Join(extra, ", "))
	}
	for i := range o.params {
		floatbits.Decode(o.m[i], src[2*i].Data)
		floatbits.Decode(o.v[i], src[2*i+1].Data)
	}
	o.step = step
	return nil
}

// checkMoment refuses moments that Step would turn into NaN weights: a NaN
// or infinite entry, or a negative second moment, whose square root is NaN.
func checkMoment(b []byte, second bool) error {
	for i := 0; i+4 <= len(b); i += 4 {
		bits := binary.LittleEndian.Uint32(b[i:])
		switch {
		case bits&0x7f800000 == 0x7f800000:
			return fmt.Errorf("element %d is %v; moments must be finite", i/4, math.Float32frombits(bits))
		case second && bits > 0x80000000: // negative, -0 aside
			return fmt.Errorf("element %d is %v; a second moment cannot be negative", i/4, math.Float32frombits(bits))
		}
	}
	return nil
}
