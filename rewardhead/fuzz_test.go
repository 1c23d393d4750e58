package rewardhead

import (
	"math"
	"strings"
	"testing"
)

// FuzzReadHead feeds head JSON to ParseHead. It must never panic, and a
// head it accepts must score any finite features finitely and round-trip
// through its own JSON.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		`{"format":"irl-reward-head/v1","kind":"irl","w":[0.5,-0.25,1],"b":0.1,"features":{"model":"m","layer":"3","pool":"mean","max_length":"64","dim":3},"epoch":2,"training":{"lr":0.01},"notes":["n"]}`,
		`{"format":"irl-reward-head/v1","w":[1,null,3],"b":0,"features":{"dim":3}}`,
		`{"format":"irl-reward-head/v1","w":[1,2,3],"b":null,"features":{"dim":3}}`,
		`{"format":"irl-reward-head/v1","w":[1e308],"b":0,"features":{"dim":1}}`,
		`{"format":"irl-reward-head/v1","w":[1e269,-1e269],"b":-1e300,"features":{"dim":2}}`,
		`{"format":"irl-reward-head/v1","w":[],"b":0,"features":{"dim":0}}`,
		`{"format":"irl-reward-head/v1","w":null,"features":{"dim":0}}`,
		`{"format":`,
	} {
		f.Add([]byte(s))
	}
	extreme := []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0, 1, -1}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHead("head.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "head.json: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		d := h.Dim()
		if d == 0 || d != h.Features.Dim {
			t.Fatalf("accepted a head of dimension %d, features.dim %d", d, h.Features.Dim)
		}
		// Rows of extreme features, each sign pattern the head could meet
		// at its worst: all aligned with w's signs, and all against.
		const rows = 2 + 6
		x := make([]float32, 0, rows*d)
		for _, sign := range []float32{1, -1} {
			for _, w := range h.W {
				v := float32(math.MaxFloat32)
				if w < 0 {
					v = -v
				}
				x = append(x, sign*v)
			}
		}
		for r := range 6 {
			for j := range d {
				x = append(x, extreme[(r+j)%len(extreme)])
			}
		}
		feats, err := NewFeatures("x", rows, d, x, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range h.Score(feats) {
			if math.IsNaN(s) || math.IsInf(s, 0) {
				t.Fatalf("row %d scores %v", i, s)
			}
		}
		b, err := MarshalJSON(h)
		if err != nil {
			t.Fatalf("accepted head does not encode: %v", err)
		}
		h2, err := ParseHead("again.json", b)
		if err != nil {
			t.Fatalf("accepted head does not read back: %v", err)
		}
		for j := range h.W {
			if math.Float64bits(h.W[j]) != math.Float64bits(h2.W[j]) && h.W[j] != h2.W[j] {
				t.Fatalf("w[%d] %v read back as %v", j, h.W[j], h2.W[j])
			}
		}
	})
}
