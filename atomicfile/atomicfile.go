package atomicfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tmpMark is in the name of every temporary file or folder this package
// makes: ".NAME.tmp-RANDOM". CleanStale looks for it.
const tmpMark = ".tmp-"

// Write creates path through a temporary file in the same folder that is
// synced and renamed into place only when write succeeds. The file is 0644.
func Write(path string, write func(w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+tmpMark+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	// CreateTemp makes the file private (0600); a result is an ordinary file.
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteBytes writes data to path atomically.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Copy copies the file src to dst atomically.
func Copy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// WriteDir builds the folder final under a temporary name in the same parent
// folder, by calling fill with that name, then renames it into place. An
// existing final is replaced: it is first renamed aside, then removed, so at
// every moment final is either the old folder whole or the new one whole.
// On error the temporary folder is removed and final is untouched.
func WriteDir(final string, fill func(tmp string) error) (err error) {
	// "out/" must name out, not a place inside it.
	final = filepath.Clean(final)
	parent, base := filepath.Dir(final), filepath.Base(final)
	tmp, err := os.MkdirTemp(parent, "."+base+tmpMark+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err = fill(tmp); err != nil {
		return err
	}
	if err = syncDir(tmp); err != nil {
		return err
	}
	if _, statErr := os.Lstat(final); statErr == nil {
		old, err := os.MkdirTemp(parent, "."+base+tmpMark+"old-*")
		if err != nil {
			return err
		}
		// MkdirTemp reserved the name; Rename needs it free.
		if err := os.Remove(old); err != nil {
			return err
		}
		if err := os.Rename(final, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, final); err != nil {
			os.Rename(old, final)
			return err
		}
		return os.RemoveAll(old)
	}
	if err = os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}

// IsTemp tells whether a file or folder name is one of this package's
// temporary names.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tmpMark)
}

// CleanStale removes the temporary files and folders that interrupted writes
// left in dir (not in its subfolders), and returns their names. Call it only
// on a folder no other process is writing to, such as a run folder at the
// start of a run.
func CleanStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if IsTemp(e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return removed, err
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

// CheckFile checks, before any work, that a result file can be written at
// path: its folder exists and path is not a folder.
func CheckFile(path string) error {
	if path == "" {
		return errors.New("no output file given")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a folder; give a file name", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: its folder %s does not exist", path, dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	return nil
}

// ErrNotEmpty is returned by CheckDir for a folder that holds files.
var ErrNotEmpty = errors.New("folder is not empty")

// CheckDir checks, before any work, that a result folder can be written at
// dir: its parent exists, dir is not a file, and dir is absent or empty
// unless overwrite is set. Every command that writes a folder uses this one
// rule, with one flag, --overwrite.
func CheckDir(dir string, overwrite bool) error {
	if dir == "" {
		return errors.New("no output folder given")
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("cannot write %s: its parent folder %s does not exist", dir, parent)
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is a file; give a folder name", dir)
	}
	if overwrite {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !IsTemp(e.Name()) && e.Name() != LockName {
			return fmt.Errorf("%s: %w (it holds %s); use --overwrite to replace it, or another folder", dir, ErrNotEmpty, e.Name())
		}
	}
	return nil
}

// ClearDir empties dir for a new run, keeping its lock file (LockName),
// which the run holding the folder has open. A missing dir is empty.
func ClearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == LockName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// SHA256 is the hex SHA-256 of a file's bytes, as manifests and
// fingerprints record it.
func SHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
