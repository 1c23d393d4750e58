package weights

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Fingerprint identifies a model by what it is, not where it lies: a hash of
// its config.json and, for each weight file, its name, its size and 65
// blocks of 64 KiB spread evenly through it (the whole file when smaller).
// Two folders holding the same model give the same fingerprint wherever
// they are; a fine-tune changes nearly every weight, so the sampled blocks
// tell it from its base. It reads about 4 MiB per file, so it costs
// milliseconds even for pythia-1b. model is a Hugging Face folder or an
// .onnx file (with its external-data files).
func Fingerprint(model string) (string, error) {
	h := sha256.New()
	var files []string
	if KindOf(model) == KindONNX {
		files = append(files, model)
		if extra, _ := filepath.Glob(model + ".data"); extra != nil {
			files = append(files, extra...)
		}
		if cfg := KindONNX.Beside(model, "config.json"); fileExists(cfg) {
			files = append(files, cfg)
		}
	} else {
		wf, err := Files(model)
		if err != nil {
			return "", err
		}
		files = append([]string{filepath.Join(model, "config.json")}, wf...)
	}
	sort.Strings(files[1:])
	for _, p := range files {
		if err := sample(h, p); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16]), nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// sample hashes a file's base name, size and evenly spread blocks.
func sample(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(size))
	io.WriteString(h, filepath.Base(path))
	h.Write(n[:])
	const block, blocks = 64 << 10, 64
	if size <= block*(blocks+1) {
		_, err := io.Copy(h, f)
		return err
	}
	buf := make([]byte, block)
	for k := int64(0); k <= blocks; k++ {
		off := k * (size - block) / blocks
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		h.Write(buf)
	}
	return nil
}
