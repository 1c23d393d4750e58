package rewardhead

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"irl/safetensors"
)

// MetadataKeys are the feature-file metadata entries that identify how
// features were made. A head remembers them so that it is never applied to
// features from another model, layer, pooling or truncation length. The
// model is identified by its fingerprint (weights.Fingerprint), not by the
// path it was given as, which is kept for people to read.
var MetadataKeys = []string{"model_fingerprint", "layer", "pool", "max_length"}

// Features is a feature matrix: N rows of D float32 values, one row per
// output (or per token for unpooled features), as written by `irl features`.
type Features struct {
	// Path names the source in error messages.
	Path string
	// N and D are the number of rows and the feature dimension.
	N, D int
	// X holds the rows, row-major: row i is X[i*D : (i+1)*D].
	X []float32
	// Rows maps each feature row to its source row (the `row` tensor). It is
	// nil when the file has no `row` tensor.
	Rows []int64
	// Meta is the file's __metadata__, possibly nil.
	Meta map[string]string
}

// Row returns row i of the matrix, sharing memory with f.X.
func (f *Features) Row(i int) []float32 {
	return f.X[i*f.D : (i+1)*f.D : (i+1)*f.D]
}

// rowName names row i for error messages, with its source row when known.
func (f *Features) rowName(i int) string {
	if f.Rows != nil {
		return fmt.Sprintf("row %d (source row %d)", i, f.Rows[i])
	}
	return fmt.Sprintf("row %d", i)
}

// NewFeatures wraps an in-memory N×D row-major matrix, validating it as
// LoadFeatures validates a file. name is used in error messages. rows and
// meta may be nil.
func NewFeatures(name string, n, d int, x []float32, rows []int64, meta map[string]string) (*Features, error) {
	f := &Features{Path: name, N: n, D: d, X: x, Rows: rows, Meta: meta}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Features) validate() error {
	if f.N <= 0 {
		return fmt.Errorf("%s: features hold no rows; every class needs at least one", f.Path)
	}
	if f.D <= 0 {
		return fmt.Errorf("%s: features have dimension %d, want at least 1", f.Path, f.D)
	}
	if len(f.X) != f.N*f.D {
		return fmt.Errorf("%s: features hold %d values, want N×D = %d×%d", f.Path, len(f.X), f.N, f.D)
	}
	if f.Rows != nil && len(f.Rows) != f.N {
		return fmt.Errorf("%s: tensor \"row\" has %d entries, want one per feature row (%d)", f.Path, len(f.Rows), f.N)
	}
	for i := 0; i < f.N; i++ {
		for j, v := range f.Row(i) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: tensor \"features\" %s column %d is %v; features must be finite", f.Path, f.rowName(i), j, v)
			}
		}
	}
	return nil
}

// LoadFeatures reads a feature file: a `features` tensor of shape [N,D] in a
// float type, an optional `row` integer tensor of shape [N], and metadata. It
// rejects empty files and non-finite values, naming the offending row.
func LoadFeatures(path string) (*Features, error) {
	sf, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := sf.Get("features")
	if err != nil {
		return nil, err
	}
	if err := t.CheckShape(-1, -1); err != nil {
		return nil, fmt.Errorf("%w (features must be [N,D])", err)
	}
	x, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	f := &Features{Path: path, N: t.Shape[0], D: t.Shape[1], X: x, Meta: sf.Metadata}
	if sf.Has("row") {
		rt, _ := sf.Get("row")
		if err := rt.CheckShape(f.N); err != nil {
			return nil, fmt.Errorf("%w (one source row per feature row)", err)
		}
		if f.Rows, err = rt.Int64s(); err != nil {
			return nil, err
		}
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// Subset returns a Features holding the given rows of f, in order.
func (f *Features) Subset(idx []int) *Features {
	out := &Features{Path: f.Path, N: len(idx), D: f.D, X: make([]float32, len(idx)*f.D), Meta: f.Meta}
	if f.Rows != nil {
		out.Rows = make([]int64, len(idx))
	}
	for k, i := range idx {
		copy(out.X[k*f.D:], f.Row(i))
		if f.Rows != nil {
			out.Rows[k] = f.Rows[i]
		}
	}
	return out
}

// Mean returns the mean row.
func (f *Features) Mean() []float64 {
	m := make([]float64, f.D)
	for i := 0; i < f.N; i++ {
		for j, v := range f.Row(i) {
			m[j] += float64(v)
		}
	}
	for j := range m {
		m[j] /= float64(f.N)
	}
	return m
}

// FeatureInfo is the identifying metadata of a feature file, as stored in a
// head. Empty fields were absent from the file.
type FeatureInfo struct {
	// Model is the path the model was given as: information only.
	Model string `json:"model,omitempty"`
	// Fingerprint identifies the model (weights.Fingerprint).
	Fingerprint string `json:"model_fingerprint,omitempty"`
	Layer       string `json:"layer,omitempty"`
	Pool        string `json:"pool,omitempty"`
	MaxLength   string `json:"max_length,omitempty"`
	// Dim is the feature dimension D.
	Dim int `json:"dim"`
}

// Info extracts the identifying metadata of f.
func (f *Features) Info() FeatureInfo {
	return FeatureInfo{
		Model:       f.Meta["model"],
		Fingerprint: f.Meta["model_fingerprint"],
		Layer:       f.Meta["layer"],
		Pool:        f.Meta["pool"],
		MaxLength:   f.Meta["max_length"],
		Dim:         f.D,
	}
}

// fields are the entries Compare holds equal. The model is compared by
// fingerprint; only when neither side has one (files from before
// fingerprints) by the path, as then.
func (fi FeatureInfo) fields(other FeatureInfo) map[string]string {
	m := map[string]string{"layer": fi.Layer, "pool": fi.Pool, "max_length": fi.MaxLength}
	if fi.Fingerprint == "" && other.Fingerprint == "" {
		m["model"] = fi.Model
	} else {
		m["model_fingerprint"] = fi.Fingerprint
	}
	return m
}

// Compare returns an error describing every way other differs from fi, or
// nil when they describe the same kind of features. what names the two sides
// in the message, for example "head h.json was trained on" and "x.safetensors
// has". A key set on only one side counts as a difference, since a head
// cannot vouch for features whose provenance is unknown.
func (fi FeatureInfo) Compare(other FeatureInfo, a, b string) error {
	var diffs []string
	if fi.Dim != other.Dim {
		diffs = append(diffs, fmt.Sprintf("dimension %d vs %d", fi.Dim, other.Dim))
	}
	fa, fb := fi.fields(other), other.fields(fi)
	keys := make([]string, 0, len(fa))
	for k := range fa {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fa[k] != fb[k] {
			diffs = append(diffs, fmt.Sprintf("%s=%q vs %q", k, fa[k], fb[k]))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%s features that differ from %s: %s", a, b, strings.Join(diffs, ", "))
}

// SameKind checks that feature sets can be used together (both classes of a
// training or evaluation set): equal dimension and equal metadata.
func SameKind(fs ...*Features) error {
	for _, f := range fs[1:] {
		if err := fs[0].Info().Compare(f.Info(), fs[0].Path+" holds", f.Path); err != nil {
			return err
		}
	}
	return nil
}
