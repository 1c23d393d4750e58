package shard

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		flag   string
		shards int
		env    func(string) string
		want   string // "I/N", "" for unsharded, "error: …" for an error
	}{
		{"", 0, env(), ""},
		{"off", 0, env(SlurmTaskID, "1", SlurmTaskCount, "4"), ""},
		{"2/7", 0, env(), "2/7"},
		{"2/7", 0, env(SlurmTaskID, "1", SlurmTaskCount, "4"), "2/7"},
		{"", 0, env(SlurmTaskID, "1", SlurmTaskCount, "4"), "1/4"},
		{"", 0, env(SlurmTaskID, "4", SlurmTaskCount, "4", SlurmTaskMin, "1"), "3/4"},
		{"", 0, env(SlurmTaskID, "4", SlurmTaskCount, "4"), "error: not a task of a gapless array"},
		{"", 0, env(SlurmTaskID, "2", SlurmTaskCount, "4", SlurmTaskStep, "2"), "error: " + SlurmTaskStep},
		{"", 0, env(SlurmTaskID, "2"), "error: " + SlurmTaskCount},
		{"", 5, env(K8sIndex, "3"), "3/5"},
		{"", 0, env(K8sIndex, "3"), "error: give --shards N"},
		{"", 3, env(K8sIndex, "3"), "error: not below --shards 3"},
		{"", 3, env(), "error: needs JOB_COMPLETION_INDEX"},
		{"3/3", 0, env(), "error: 0…N−1"},
		{"1/2", 3, env(), "error: disagree"},
		{"a/b", 0, env(), "error: want I/N"},
	} {
		s, err := Resolve(tc.flag, tc.shards, tc.env)
		got := ""
		switch {
		case err != nil:
			got = "error: " + err.Error()
		case s != nil:
			got = s.String()
		}
		if strings.HasPrefix(tc.want, "error: ") {
			if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("Resolve(%q, %d): %q, want an error saying %q", tc.flag, tc.shards, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("Resolve(%q, %d) = %q, want %q", tc.flag, tc.shards, got, tc.want)
		}
	}
}

// TestPickCoversOnce: the shards of any count deal every row to exactly
// one shard.
func TestPickCoversOnce(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		seen := make([]int, 20)
		for i := 0; i < n; i++ {
			for _, r := range (&Spec{Index: i, Count: n}).Pick(20) {
				seen[r]++
				if r%n != i {
					t.Errorf("%d/%d picked row %d", i, n, r)
				}
			}
		}
		for r, c := range seen {
			if c != 1 {
				t.Errorf("N=%d: row %d dealt %d times", n, r, c)
			}
		}
	}
	var none *Spec
	if got := none.Pick(3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("unsharded Pick = %v", got)
	}
	if got := (&Spec{Index: 4, Count: 7}).Out("parts/f-{shard}.safetensors"); got != "parts/f-4.safetensors" {
		t.Errorf("Out = %q", got)
	}
}

// TestMergeLinesOrder: lines come back in key order, and a line of a row
// the shard was not given, or a key twice, is refused.
func TestMergeLinesOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, shard int, rows ...int) *Manifest {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		m := &Manifest{Command: "x", Shard: shard, Shards: 2, Total: 4, Units: rows, Rows: rows, Part: name, path: filepath.Join(dir, name+ManifestSuffix)}
		return m
	}
	key := func(b []byte) ([]int, int, error) {
		r := int(b[0] - '0')
		return []int{r}, r, nil
	}
	a := write("a", "2\n0\n", 0, 0, 2)
	b := write("b", "3\n1\n", 1, 1, 3)
	lines, err := MergeLines([]*Manifest{a, b}, key)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, string(l.Text))
	}
	if strings.Join(got, ",") != "0,1,2,3" {
		t.Errorf("order %v", got)
	}
	c := write("c", "1\n", 0, 0, 2)
	if _, err := MergeLines([]*Manifest{c, b}, key); err == nil || !strings.Contains(err.Error(), "not one of shard 0/2's rows") {
		t.Errorf("foreign row: %v", err)
	}
	d := write("d", "3\n3\n", 1, 1, 3)
	if _, err := MergeLines([]*Manifest{a, d}, key); err == nil || !strings.Contains(err.Error(), "also in") {
		t.Errorf("twice: %v", err)
	}
}
