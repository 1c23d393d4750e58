package onnxbench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// OpTime is the run time ONNX Runtime's profiler gave one operator type,
// summed over every node of that type and every run.
type OpTime struct {
	Op    string
	Nodes int // distinct nodes of this type
	Calls int
	Time  time.Duration
}

// ProfileByOpType reads the profile that a session opened with
// Options.Profile set to prefix wrote (the newest file starting with prefix)
// and sums its node run times by operator type, largest first. A fused
// kernel appears under its own name (Gelu, FusedMatMul, …), so the table
// shows what ONNX Runtime actually ran.
func ProfileByOpType(prefix string) ([]OpTime, string, error) {
	files, _ := filepath.Glob(prefix + "*.json")
	if len(files) == 0 {
		return nil, "", fmt.Errorf("onnxbench: no profile %s*.json (is the session destroyed?)", prefix)
	}
	newest, newestTime := "", time.Time{}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(newestTime) {
			newest, newestTime = f, st.ModTime()
		}
	}
	data, err := os.ReadFile(newest)
	if err != nil {
		return nil, "", err
	}
	var events []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
		Dur  int64  `json:"dur"` // microseconds
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(data, &events); err != nil {
		return nil, "", fmt.Errorf("onnxbench: reading profile %s: %w", newest, err)
	}
	byOp := map[string]*OpTime{}
	nodes := map[string]map[string]bool{}
	for _, e := range events {
		// Each node run gives a _kernel_time event (and _fence events,
		// which are not run time).
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") || e.Args.OpName == "" {
			continue
		}
		t := byOp[e.Args.OpName]
		if t == nil {
			t = &OpTime{Op: e.Args.OpName}
			byOp[e.Args.OpName] = t
			nodes[e.Args.OpName] = map[string]bool{}
		}
		t.Calls++
		t.Time += time.Duration(e.Dur) * time.Microsecond
		nodes[e.Args.OpName][e.Name] = true
	}
	out := make([]OpTime, 0, len(byOp))
	for op, t := range byOp {
		t.Nodes = len(nodes[op])
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	return out, newest, nil
}

// FormatProfile renders op times as a table with each type's share.
func FormatProfile(ops []OpTime) string {
	var total time.Duration
	for _, o := range ops {
		total += o.Time
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %6s %7s %12s %6s\n", "op type", "nodes", "calls", "time", "share")
	for _, o := range ops {
		fmt.Fprintf(&b, "%-28s %6d %7d %12s %5.1f%%\n", o.Op, o.Nodes, o.Calls, o.Time.Round(time.Microsecond), 100*o.Time.Seconds()/max(total.Seconds(), 1e-12))
	}
	fmt.Fprintf(&b, "%-28s %6s %7s %12s\n", "total", "", "", total.Round(time.Microsecond))
	return b.String()
}
