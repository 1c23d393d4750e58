package reward

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// KillChildren kills every live child's process group: the child and what
// it started.
func TestKillChildren(t *testing.T) {
	gc := filepath.Join(t.TempDir(), "gc")
	s, err := StartCmd([]string{"sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $! > ` + gc + `; exec sleep 30`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	grandchild := readPid(t, gc)
	defer syscall.Kill(grandchild, syscall.SIGKILL)
	KillChildren()
	waitGone(t, "the child", s.cmd.Process.Pid)
	waitGone(t, "the child's own child", grandchild)
	s.Close() // reports the killed child; the group is gone already
}

// With HandleSignals(false), a program that handles its signals itself
// gets them: the reward package neither kills the children nor re-raises.
// Here the program has no handler, so SIGTERM ends it as it ends any Go
// program; the child dies by Pdeathsig, and what the child started is out
// of reach (the program calls KillChildren on its way out to reach it).
func TestHandleSignalsOff(t *testing.T) {
	gc := filepath.Join(t.TempDir(), "gc")
	helper := exec.Command(os.Args[0], "-test.run", "^$")
	helper.Env = append(os.Environ(), cmdHelperEnv+"=1", cmdHelperEnv+"_GC="+gc, cmdHelperEnv+"_OFF=1")
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
	helper.Process.Signal(syscall.SIGTERM)
	err = helper.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("the helper ended with %v, want killed by SIGTERM", err)
	}
	waitGone(t, "the child", child)
	time.Sleep(100 * time.Millisecond)
	if !alive(grandchild) {
		t.Error("the child's own child was killed: the handler ran")
	}
}
