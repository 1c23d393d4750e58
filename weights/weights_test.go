package weights

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// contiguous on its own: a permuted 3-d view and a view past its storage.
func TestPickleContiguous(t *testing.T) {
	// src is a [2,3,4] row-major tensor; view it as permute(2,0,1): [4,2,3].
	src := make([]float32, 24)
	for i := range src {
		src[i] = float32(i)
	}
	got, err := contiguous(src, 0, []int{4, 2, 3}, []int{1, 12, 4})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 4; k++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < 3; j++ {
				if g, w := got[k*6+i*3+j], src[i*12+j*4+k]; g != w {
					t.Fatalf("[%d,%d,%d] = %v, want %v", k, i, j, g, w)
				}
			}
		}
	}
	if _, err := contiguous(src, 1, []int{2, 3, 4}, []int{12, 4, 1}); err == nil {
		t.Error("a view reaching past its storage was accepted")
	}
	if got, err := contiguous(src, 5, nil, nil); err != nil || len(got) != 1 || got[0] != 5 {
		t.Errorf("0-d view: %v, %v", got, err)
	}
}

// A sharded index names files of its own folder only.
func TestIndexOutsideFolder(t *testing.T) {
	for _, target := range []string{"../secret.safetensors", "/etc/passwd", "sub/model.safetensors", ".."} {
		dir := t.TempDir()
		idx := `{"weight_map": {"w": "` + target + `"}}`
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(idx), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Files(dir)
		if err == nil || !strings.Contains(err.Error(), "not a file name") {
			t.Errorf("weight_map → %q: %v", target, err)
		}
	}
}
