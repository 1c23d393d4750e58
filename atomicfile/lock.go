package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockName is the lock file's name inside a locked folder. CheckDir and
// ClearDir leave it alone.
const LockName = ".lock"

// DirLock is a held folder lock.
type DirLock struct{ f *os.File }

// LockDir keeps two runs out of one output folder: it makes dir if need
// be and takes an exclusive flock(2) on DIR/.lock, writing its pid, host
// and start time there so that a second run can say who holds the folder,
// or says which run holds it. The kernel drops the lock when its holder
// exits, however it exits, so a lock left by a killed run holds nothing:
// the next run takes it without any staleness test.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockName)
	// The file is opened in place, never replaced: a lock lives on the
	// inode, and a file renamed over it would let a second run in.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 512))
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		who := strings.TrimSpace(string(holder))
		if who == "" {
			// The holder has the lock but has not written its name yet.
			who = "another run"
		}
		return nil, fmt.Errorf("%s is in use by %s (lock file %s): wait for that run to end or stop it, or give another folder", dir, who, path)
	}
	host, _ := os.Hostname()
	line := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(line), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return &DirLock{f: f}, nil
}

// Release lets the folder go. The file stays: removing it would race with
// a run that has just opened it.
func (l *DirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
