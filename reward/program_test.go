package reward

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startSh(t *testing.T, script string) *CmdSource {
	t.Helper()
	s, err := StartCmd([]string{"sh", "-c", script}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The child gets one JSON line per sample, fields included, and its
// answers come back in order, batch after batch.
func TestCmdProtocol(t *testing.T) {
	log := filepath.Join(t.TempDir(), "seen.jsonl")
	s := startSh(t, `n=0; while read -r l; do printf '%s\n' "$l" >> `+log+`; n=$((n+1)); echo "{\"reward\": $n.5}"; done`)
	samples := []Sample{
		{Prompt: "p1", Response: "r1", Fields: map[string]any{"topic": "cats", RowField: 3, "response": "shadowed"}},
		{Prompt: "p2 \"quoted\"\nnewline", Response: "r2 <&>"},
	}
	got, err := s.Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1.5 2.5]" {
		t.Errorf("rewards %v", got)
	}
	got, err = s.Score(samples[:1])
	if err != nil || fmt.Sprint(got) != "[3.5]" {
		t.Errorf("second batch: %v %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("the child saw %d lines: %q", len(lines), data)
	}
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["prompt"] != "p1" || first["response"] != "r1" || first["topic"] != "cats" || first[RowField] != 3.0 {
		t.Errorf("first line %s", lines[0])
	}
	if second["prompt"] != samples[1].Prompt || second["response"] != samples[1].Response {
		t.Errorf("second line %s", lines[1])
	}
	if _, err := s.Score(samples); err == nil {
		t.Error("Score after Close")
	}
}

// A batch far larger than a pipe's buffer, both ways, does not deadlock.
func TestCmdLargeBatch(t *testing.T) {
	// 1000 lines of 110 bytes in, and of 120 out: both past a 64 KiB pipe.
	pad := strings.Repeat("x", 100)
	s := startSh(t, `while read -r l; do echo '{"reward": -0.25, "pad": "`+pad+`"}'; done`)
	samples := make([]Sample, 1000)
	for i := range samples {
		samples[i] = Sample{Prompt: strings.Repeat("p", 100), Response: fmt.Sprint(i)}
	}
	got, err := s.Score(samples)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r != -0.25 {
			t.Fatalf("sample %d: %v", i, r)
		}
	}
}

// A child that dies, answers garbage, a non-number or a non-finite number
// stops the run with an error naming the sample (and its row) and carrying
// the child's stderr; no score is made up, and the source stays failed.
func TestCmdFailures(t *testing.T) {
	row := func(r int) map[string]any { return map[string]any{RowField: r} }
	samples := []Sample{{Response: "a", Fields: row(10)}, {Response: "b", Fields: row(11)}, {Response: "c", Fields: row(12)}}
	cases := []struct {
		name, script string
		want         []string
	}{
		{"dies", `read -r l; echo '{"reward": 1}'; read -r l; echo "out of memory, giving up" >&2; exit 3`,
			[]string{"sample 1 (row 11)", "exit status 3", "out of memory, giving up"}},
		{"dies at once", `echo "no model file" >&2; exit 1`,
			[]string{"sample 0 (row 10)", "exit status 1", "no model file"}},
		{"garbage", `while read -r l; do echo "scored it!"; echo "debug: oops" >&2; done`,
			[]string{"sample 0 (row 10)", `"scored it!"`, "not a JSON object", "debug: oops"}},
		{"no reward", `while read -r l; do echo '{"score": 1}'; done`,
			[]string{"sample 0", `has no "reward"`, "nothing to stderr"}},
		{"not a number", `read -r l; echo '{"reward": 1}'; while read -r l; do echo '{"reward": "high"}'; done`,
			[]string{"sample 1 (row 11)", "not a number"}},
		{"NaN", `read -r l; echo '{"reward": 1}'; read -r l; echo '{"reward": 2}'; read -r l; echo '{"reward": NaN}'; echo "nan here" >&2`,
			[]string{"sample 2 (row 12)", "NaN", "finite", "nan here"}},
		{"Infinity", `while read -r l; do echo '{"reward": -Infinity}'; done`,
			[]string{"sample 0", "-Infinity", "finite"}},
		{"overflow", `while read -r l; do echo '{"reward": 1e999}'; done`,
			[]string{"sample 0", "1e999", "finite"}},
		{"closes its output", `exec >&-; exec sleep 30`,
			[]string{"sample 0", "closed its output"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startSh(t, tc.script)
			got, err := s.Score(samples)
			if err == nil {
				t.Fatalf("no error; rewards %v", got)
			}
			if got != nil {
				t.Errorf("rewards %v with the error", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant %q", err, w)
				}
			}
			if _, again := s.Score(samples); again == nil || again.Error() != err.Error() {
				t.Errorf("second call: %v", again)
			}
			start := time.Now()
			if cerr := s.Close(); cerr != nil {
				t.Errorf("Close after a reported failure: %v", cerr)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("Close took %v", time.Since(start))
			}
		})
	}
}

// Close ends a child that ignores its closed input, after CloseTimeout.
func TestCmdCloseKills(t *testing.T) {
	defer func(d time.Duration) { CloseTimeout = d }(CloseTimeout)
	CloseTimeout = 200 * time.Millisecond
	s := startSh(t, `read -r l; echo '{"reward": 1}'; exec sleep 30`)
	if _, err := s.Score([]Sample{{Response: "x"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("close: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Close took %v", time.Since(start))
	}
	// A child that fails on its closed input is reported.
	s = startSh(t, `while read -r l; do echo '{"reward": 1}'; done; echo "flushing failed" >&2; exit 4`)
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "flushing failed") {
		t.Errorf("close: %v", err)
	}
}

// Parse splits "cmd:PROGRAM ARGS…" on spaces; a NaN names the row.
func TestCmdSpec(t *testing.T) {
	script := filepath.Join(t.TempDir(), "child.sh")
	os.WriteFile(script, []byte(`while read -r l; do case "$l" in *bad*) echo '{"reward": NaN}';; *) echo "{\"reward\": $1}";; esac; done`+"\n"), 0o644)
	src, err := Parse("cmd:sh "+script+" 0.75", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := src.Score([]Sample{{Response: "fine"}, {Response: "fine too"}})
	if err != nil || fmt.Sprint(got) != "[0.75 0.75]" {
		t.Fatalf("%v %v", got, err)
	}
	// A sample with only token ids has no text for a program.
	if _, err := src.Score([]Sample{{IDs: []int64{1, 2}}}); err == nil || !strings.Contains(err.Error(), "token ids") {
		t.Errorf("ids only: %v", err)
	}
	_, err = src.Score([]Sample{{Response: "fine"}, {Response: "bad", Fields: map[string]any{RowField: json.Number("41")}}})
	if err == nil || !strings.Contains(err.Error(), "sample 1 (row 41)") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN: %v", err)
	}
	if d := Describe(src); d["kind"] != "cmd" || !strings.Contains(d["command"], "child.sh") {
		t.Errorf("describe %v", d)
	}
	if _, err := Parse("cmd:/no/such/program", Options{}); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("missing program: %v", err)
	}
	if _, err := Parse("cmd:   ", Options{}); err == nil {
		t.Error("empty command accepted")
	}
}

// A child that exits after answering keeps the answers it gave; the next
// batch finds it gone.
func TestCmdExitsAfterAnswering(t *testing.T) {
	s := startSh(t, `read -r l; echo '{"reward": 0.5}'; exit 0`)
	got, err := s.Score([]Sample{{Response: "x"}})
	if err != nil || fmt.Sprint(got) != "[0.5]" {
		t.Fatalf("%v %v", got, err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Score([]Sample{{Response: "y"}}); err == nil || !strings.Contains(err.Error(), "exited (status 0) before answering") {
		t.Errorf("second batch: %v", err)
	}
}
