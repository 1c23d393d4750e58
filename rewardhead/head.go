package rewardhead

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"

	"irl/atomicfile"
)

// HeadFormat identifies the JSON layout of a saved head.
const HeadFormat = "irl-reward-head/v1"

// Head kinds, stored in Head.Kind.
const (
	KindIRL        = "irl"        // pairwise max-margin IRL (Train)
	KindProbe      = "probe"      // ground-truth logistic probe (TrainProbe)
	KindEnsemble   = "ensemble"   // mean of several heads (Ensemble)
	KindApprentice = "apprentice" // Abbeel & Ng apprenticeship learning (Apprentice)
	KindPerturbed  = "perturbed"  // weights with added noise (analysis only)
)

// Head is a linear reward head R(o) = wᵀh(o) + b over feature rows h(o).
// Higher reward means more like the expert (non-toxic) class.
type Head struct {
	Format string `json:"format"`
	// Kind says how the head was made: one of the Kind constants.
	Kind string `json:"kind"`
	// W and B are the weights and bias.
	W []float64 `json:"w"`
	B float64   `json:"b"`
	// Features describes the features the head was trained on; scoring
	// refuses features whose metadata differ.
	Features FeatureInfo `json:"features"`
	// Epoch is the 1-based training epoch that produced the head, 0 if the
	// head did not come from epoch-wise training.
	Epoch int `json:"epoch,omitempty"`
	// Training holds the settings that made the head, for the record.
	Training map[string]any `json:"training,omitempty"`
	// Notes records rules that shaped the head (bias choice, selection).
	Notes []string `json:"notes,omitempty"`
}

// Dim is the feature dimension of the head.
func (h *Head) Dim() int { return len(h.W) }

// Check returns an error unless features f may be scored by h: the same
// dimension and the same model, layer, pool and max_length metadata. name
// is how h is called in the message.
func (h *Head) Check(name string, f *Features) error {
	return h.Features.Compare(f.Info(), "head "+name+" was trained on", f.Path)
}

// Score returns R for every row of f. It panics if the dimensions differ,
// which Check reports as an error beforehand. Large inputs are split across
// CPUs.
func (h *Head) Score(f *Features) []float64 {
	if f.D != len(h.W) {
		panic(fmt.Sprintf("rewardhead: head of dimension %d scoring features of dimension %d", len(h.W), f.D))
	}
	out := make([]float64, f.N)
	// Below this many multiply-adds a goroutine costs more than it saves.
	const perWorker = 1 << 16
	workers := min(runtime.GOMAXPROCS(0), f.N*f.D/perWorker)
	if workers <= 1 {
		scoreRange(h.W, h.B, f, out, 0, f.N)
		return out
	}
	var wg sync.WaitGroup
	chunk := (f.N + workers - 1) / workers
	for lo := 0; lo < f.N; lo += chunk {
		hi := min(lo+chunk, f.N)
		wg.Add(1)
		go func() {
			defer wg.Done()
			scoreRange(h.W, h.B, f, out, lo, hi)
		}()
	}
	wg.Wait()
	return out
}

func scoreRange(w []float64, b float64, f *Features, out []float64, lo, hi int) {
	for i := lo; i < hi; i++ {
		out[i] = dot32(w, f.Row(i)) + b
	}
}

// dot32 is wᵀx with float64 accumulation. Four partial sums break the
// dependency chain so the loop is not latency bound.
func dot32(w []float64, x []float32) float64 {
	x = x[:len(w)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(w); j += 4 {
		s0 += w[j] * float64(x[j])
		s1 += w[j+1] * float64(x[j+1])
		s2 += w[j+2] * float64(x[j+2])
		s3 += w[j+3] * float64(x[j+3])
	}
	for ; j < len(w); j++ {
		s0 += w[j] * float64(x[j])
	}
	return (s0 + s1) + (s2 + s3)
}

// validate reports structural problems in a decoded head.
func (h *Head) validate(name string) error {
	if h.Format != HeadFormat {
		return fmt.Errorf("%s: format %q, want %q", name, h.Format, HeadFormat)
	}
	if len(h.W) == 0 {
		return fmt.Errorf("%s: head has no weights (\"w\" is empty)", name)
	}
	if h.Features.Dim != len(h.W) {
		return fmt.Errorf("%s: \"w\" has %d entries but features.dim is %d", name, len(h.W), h.Features.Dim)
	}
	for i, v := range h.W {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s: w[%d] is %v; weights must be finite", name, i, v)
		}
	}
	if math.IsNaN(h.B) || math.IsInf(h.B, 0) {
		return fmt.Errorf("%s: bias b is %v; it must be finite", name, h.B)
	}
	// Features are finite float32, |h_j| ≤ MaxFloat32, so |wᵀh + b| ≤
	// Σ|w_j|·MaxFloat32 + |b|. Below half the largest float64 that bound
	// leaves room for rounding, and Score is finite on any features; above
	// it a head could score ±Inf or NaN (Inf − Inf), which no metric means.
	var l1 float64
	for _, v := range h.W {
		l1 += math.Abs(v)
	}
	if bound := l1*math.MaxFloat32 + math.Abs(h.B); !(bound <= math.MaxFloat64/2) {
		return fmt.Errorf("%s: weights too large (Σ|w| = %g, |b| = %g): a feature row could score beyond float64 (want Σ|w|·%g + |b| ≤ %g)",
			name, l1, math.Abs(h.B), math.MaxFloat32, math.MaxFloat64/2)
	}
	return nil
}

// ReadHead reads and validates a head JSON file.
func ReadHead(path string) (*Head, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHead(path, data)
}

// headJSON decodes a head with w's entries and b as pointers, since
// encoding/json reads null into a float64 as 0 without a word.
type headJSON struct {
	Head
	W []*float64      `json:"w"`
	B json.RawMessage `json:"b"`
}

// ParseHead decodes and validates head JSON bytes; name (a path, say)
// prefixes every error. A null weight or bias is refused, not read as 0; a
// missing "b" reads as 0.
func ParseHead(name string, data []byte) (*Head, error) {
	var raw headJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a reward head: %w", name, err)
	}
	h := raw.Head
	if raw.W != nil {
		h.W = make([]float64, len(raw.W))
	}
	for i, p := range raw.W {
		if p == nil {
			return nil, fmt.Errorf("%s: w[%d] is null; weights must be numbers", name, i)
		}
		h.W[i] = *p
	}
	if raw.B != nil {
		if string(raw.B) == "null" {
			return nil, fmt.Errorf("%s: bias b is null; it must be a number", name)
		}
		if err := json.Unmarshal(raw.B, &h.B); err != nil {
			return nil, fmt.Errorf("%s: not a reward head: b: %w", name, err)
		}
	}
	if err := h.validate(name); err != nil {
		return nil, err
	}
	return &h, nil
}

// WriteHead writes h as indented JSON, atomically.
func WriteHead(path string, h *Head) error {
	if err := h.validate(path); err != nil {
		return err
	}
	data, err := MarshalJSON(h)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, data)
}

// Ensemble returns the head whose reward is the mean of the heads' rewards.
// Because heads are linear this is the head with the mean weights and bias.
// It panics on an empty list and returns an error when the heads were
// trained on different features, dimension included.
func Ensemble(heads []*Head) (*Head, error) {
	if len(heads) == 0 {
		panic("rewardhead: Ensemble of no heads")
	}
	d := len(heads[0].W)
	out := &Head{Format: HeadFormat, Kind: KindEnsemble, W: make([]float64, d), Features: heads[0].Features,
		Notes: []string{fmt.Sprintf("mean of %d heads", len(heads))}}
	for k, h := range heads {
		if err := heads[0].Features.Compare(h.Features, "ensemble member 0 was trained on", fmt.Sprintf("member %d", k)); err != nil {
			return nil, err
		}
		for j, v := range h.W {
			out.W[j] += v
		}
		out.B += h.B
	}
	n := float64(len(heads))
	for j := range out.W {
		out.W[j] /= n
	}
	out.B /= n
	return out, nil
}

// MarshalJSON encodes v as indented JSON ending in a newline. Unlike
// json.MarshalIndent it leaves <, > and & unescaped, since the files are
// read by people and the metric definitions use ">".
func MarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
