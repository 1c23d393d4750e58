package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	err := WriteFile(path, []Tensor{
		FromFloat32("a", []int{2, 3}, []float32{1, 2, 3, 4, 5, -6}),
		FromInt64("b", []int{3}, []int64{-1, 0, 1 << 40}),
	}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Get("a")
	av, _ := a.Float32s()
	b, _ := f.Get("b")
	bv, _ := b.Int64s()
	if av[5] != -6 || bv[2] != 1<<40 || f.Metadata["k"] != "v" || a.CheckShape(2, -1) != nil {
		t.Errorf("got %v %v %v", av, bv, f.Metadata)
	}
	if _, err := f.Get("c"); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("missing tensor error %v", err)
	}
	if err := a.CheckShape(3, 2); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("shape error %v", err)
	}
	if _, err := b.Float32s(); err == nil {
		t.Error("I64 read as float")
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "g.safetensors")
	WriteFile(good, []Tensor{FromFloat32("w", []int{4}, []float32{1, 2, 3, 4})}, nil)
	data, _ := os.ReadFile(good)
	hl := binary.LittleEndian.Uint64(data)
	cases := map[string][]byte{
		"short":     data[:5],
		"truncated": data[:len(data)-3],
		"header":    append(append([]byte{}, data[:8]...), []byte("{not json")...),
	}
	bad := append([]byte{}, data...)
	copy(bad[8:8+hl], []byte(strings.Replace(string(data[8:8+hl]), "[4]", "[5]", 1)))
	cases["shape"] = bad
	for name, b := range cases {
		p := filepath.Join(dir, name+".safetensors")
		os.WriteFile(p, b, 0o644)
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not name the file", name, err)
		}
	}
}

func TestFloat32View(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.safetensors")
	want := []float32{1.5, -2, 3.25}
	WriteFile(path, []Tensor{FromFloat32("a", []int{3}, want)}, nil)
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Get("a")
	v, err := a.Float32View()
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if v[i] != want[i] {
			t.Fatalf("view %v, want %v", v, want)
		}
	}
	// Misaligned data falls back to a converted copy.
	b := Tensor{Name: "b", DType: F32, Shape: []int{1}, Data: append([]byte{0}, a.Data[:4]...)[1:]}
	if w, err := b.Float32View(); err != nil || w[0] != 1.5 {
		t.Errorf("misaligned view %v %v", w, err)
	}
}
