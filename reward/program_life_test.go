package reward

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cmdHelperEnv makes the test binary, run again with it set, a stand-in
// for irl: it starts the reward child the variable's value names, prints
// the child's pid and waits to be killed (see runCmdHelper).
const cmdHelperEnv = "IRL_REWARD_CMD_HELPER"

// runCmdHelper is the stand-in for irl: it starts a cmd: reward child that
// ignores the end of its input (and records its own child's pid in the
// file $IRL_REWARD_CMD_HELPER_GC), says "pid N" and blocks.
func runCmdHelper() {
	gc := os.Getenv(cmdHelperEnv + "_GC")
	if os.Getenv(cmdHelperEnv+"_OFF") != "" {
		HandleSignals(false)
	}
	s, err := StartCmd([]string{"sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $! > ` + gc + `; exec sleep 30`}, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; i < 200; i++ {
		if b, err := os.ReadFile(gc); err == nil && len(bytes.TrimSpace(b)) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("pid", s.cmd.Process.Pid)
	select {}
}

// alive tells whether pid is a running process: not gone, and not a
// zombie waiting for a parent (or init) to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// waitGone waits up to 3 s for pid to end.
func waitGone(t *testing.T, what string, pid int) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("%s (pid %d) is still running", what, pid)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return pid
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// A child that never answers, or answers fewer lines than it was given,
// stops Score within the timeout, naming the sample's row and saying what
// the child last did; the child is gone afterwards.
func TestCmdTimeout(t *testing.T) {
	row := func(r int) map[string]any { return map[string]any{RowField: r} }
	samples := []Sample{{Response: "a", Fields: row(10)}, {Response: "b", Fields: row(11)}, {Response: "c", Fields: row(12)}}
	for _, tc := range []struct {
		name, script string
		want         []string
	}{
		{"never answers", `while read -r l; do echo "thinking about $l" >&2; done`,
			[]string{"sample 0 (row 10)", "no answer within 300ms", "reward_timeout", "answered 0 of the batch's 3 lines, none since it started", "whole batch went into its input", "thinking about"}},
		{"answers fewer lines", `read -r l; echo '{"reward": 1}'; while read -r l; do :; done`,
			[]string{"sample 1 (row 11)", "no answer within 300ms", "answered 1 of the batch's 3 lines, the last", "flush"}},
		// Lines past a pipe's buffer: the child is seen to stop reading.
		{"reads nothing", `exec sleep 30`,
			[]string{"sample 0 (row 10)", "no answer within 300ms", "answered 0 of the batch's 3 lines", "stopped reading its input"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := StartCmd([]string{"sh", "-c", tc.script}, Options{Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			batch := samples
			if tc.name == "reads nothing" {
				batch = append([]Sample(nil), samples...)
				for i := range batch {
					batch[i].Response = strings.Repeat("x", 100<<10)
				}
			}
			start := time.Now()
			_, err = s.Score(batch)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Score took %v with a 300ms timeout", took)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant %q", err, w)
				}
			}
			waitGone(t, "the child", s.cmd.Process.Pid)
		})
	}
	// The zero Options wait DefaultTimeout; NoTimeout waits for ever.
	if d := (Options{}).timeout(); d != DefaultTimeout {
		t.Errorf("default timeout %v", d)
	}
	if d := (Options{Timeout: NoTimeout}).timeout(); d != 0 {
		t.Errorf("no timeout: %v", d)
	}
}

// Close ends a child that ignores the end of its input, and what it
// started, which would otherwise run on under init; and returns the
// child's own failure.
func TestCmdCloseEndsTheGroup(t *testing.T) {
	defer func(d time.Duration) { CloseTimeout = d }(CloseTimeout)
	CloseTimeout = 200 * time.Millisecond
	gc := filepath.Join(t.TempDir(), "gc")
	s, err := StartCmd([]string{"sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $! > ` + gc + `; read -r l; echo '{"reward": 1}'; exec sleep 30`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Score([]Sample{{Response: "x"}}); err != nil {
		t.Fatal(err)
	}
	child, grandchild := s.cmd.Process.Pid, readPid(t, gc)
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("close: %v", err)
	}
	waitGone(t, "the child", child)
	waitGone(t, "the child's own child", grandchild)

	// A child that exits as it should on the end of its input still takes
	// what it left running with it.
	gc2 := filepath.Join(t.TempDir(), "gc")
	s, err = StartCmd([]string{"sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $! > ` + gc2 + `; while read -r l; do echo '{"reward": 1}'; done; exit 0`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	grandchild = readPid(t, gc2)
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	waitGone(t, "the child's own child", grandchild)
}

// When irl dies — SIGTERM or SIGINT, which it handles, or SIGKILL, which
// it cannot — its reward child dies too: on SIGTERM with everything the
// child started (the whole process group is killed before irl re-raises
// the signal), on SIGKILL by the kernel (Pdeathsig; the child's own
// children are then out of reach).
func TestCmdChildDiesWithIrl(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			gc := filepath.Join(t.TempDir(), "gc")
			helper := exec.Command(os.Args[0], "-test.run", "^$")
			helper.Env = append(os.Environ(), cmdHelperEnv+"=1", cmdHelperEnv+"_GC="+gc)
			out, err := helper.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			helper.Stderr = os.Stderr
			if err := helper.Start(); err != nil {
				t.Fatal(err)
			}
			defer helper.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			var child int
			if _, serr := fmt.Sscanf(line, "pid %d", &child); err != nil || serr != nil {
				t.Fatalf("helper said %q: %v", line, err)
			}
			grandchild := readPid(t, gc)
			defer syscall.Kill(grandchild, syscall.SIGKILL)
			if !alive(child) || !alive(grandchild) {
				t.Fatal("the child is not running")
			}
			helper.Process.Signal(sig)
			err = helper.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Errorf("the helper ended with %v, want killed by %v", err, sig)
			}
			waitGone(t, "the child", child)
			if sig != syscall.SIGKILL {
				waitGone(t, "the child's own child", grandchild)
			}
		})
	}
}
