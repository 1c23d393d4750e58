package onnx

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ortAPIPositions reads the OrtApi table's declaration order from an
// onnxruntime_c_api.h: each member's name and its position.
func ortAPIPositions(t *testing.T, header string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(header)
	if err != nil {
		t.Fatal(err)
	}
	h := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(b), "")
	h = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(h, "")
	start := strings.Index(h, "struct OrtApi {")
	if start < 0 {
		t.Fatalf("%s: no struct OrtApi", header)
	}
	end := strings.Index(h[start:], "\n};")
	if end < 0 {
		t.Fatalf("%s: struct OrtApi does not end", header)
	}
	patterns := []struct {
		re     *regexp.Regexp
		prefix string
	}{
		{regexp.MustCompile(`ORT_API2_STATUS\(\s*(\w+)`), ""},
		{regexp.MustCompile(`ORT_CLASS_RELEASE2?\(\s*(\w+)`), "Release"},
		{regexp.MustCompile(`ORT_API_CALL\s*\*\s*(\w+)\s*\)`), ""},
		{regexp.MustCompile(`ORT_API_T\(\s*[^,]+,\s*(\w+)`), ""},
	}
	pos := map[string]int{}
	i := 0
	for _, member := range strings.Split(h[start+len("struct OrtApi {"):start+end], ";") {
		if strings.TrimSpace(member) == "" {
			continue
		}
		name := ""
		for _, p := range patterns {
			if m := p.re.FindStringSubmatch(member); m != nil {
				name = p.prefix + m[1]
				break
			}
		}
		if name == "" {
			t.Fatalf("%s: OrtApi member %d is of no known form: %.120s", header, i, strings.TrimSpace(member))
		}
		pos[name] = i
		i++
	}
	return pos
}

// The positions device_c.c reaches ONNX Runtime's functions by are those of
// the OrtApi table in the header onnxruntime_go vendors: a wrong number
// would call another function with the wrong arguments, and nothing else
// would tell.
func TestOrtAPIPositions(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Skipf("cannot find onnxruntime_go's module folder for its header (go list: %v)", err)
	}
	pos := ortAPIPositions(t, filepath.Join(strings.TrimSpace(string(out)), "onnxruntime_c_api.h"))
	for _, known := range []struct {
		name string
		at   int
	}{{"CreateStatus", 0}, {"ReleaseStatus", 93}, {"CreateIoBinding", 134}} {
		if pos[known.name] != known.at {
			t.Fatalf("the header parser puts %s at %d, not %d", known.name, pos[known.name], known.at)
		}
	}
	src, err := os.ReadFile("device_c.c")
	if err != nil {
		t.Fatal(err)
	}
	entries := regexp.MustCompile(`(?m)^\s*IRL_(\w+) = (\d+),`).FindAllStringSubmatch(string(src), -1)
	if len(entries) < 40 {
		t.Fatalf("device_c.c: %d table positions found; the enum's form changed?", len(entries))
	}
	for _, e := range entries {
		at, _ := strconv.Atoi(e[2])
		want, ok := pos[e[1]]
		switch {
		case !ok:
			t.Errorf("device_c.c: IRL_%s: OrtApi has no member %s", e[1], e[1])
		case want != at:
			t.Errorf("device_c.c: IRL_%s = %d, but OrtApi declares %s at %d", e[1], at, e[1], want)
		}
	}
}
