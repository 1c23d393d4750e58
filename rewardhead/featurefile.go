package rewardhead

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"irl/atomicfile"
	"irl/floatbits"
	"irl/safetensors"
)

// Write writes the features as a safetensors file that LoadFeatures reads:
// features F32 [N,D], row I64 [N] when known, and the metadata. Features that
// are not finite are refused, naming the first bad row, so a broken model
// fails here rather than in a later command.
func (f *Features) Write(path string) error {
	if err := f.validate(); err != nil {
		return err
	}
	ts := []safetensors.Tensor{safetensors.FromFloat32("features", []int{f.N, f.D}, f.X)}
	if f.Rows != nil {
		ts = append(ts, safetensors.FromInt64("row", []int{f.N}, f.Rows))
	}
	return safetensors.WriteFile(path, ts, f.Meta)
}

// WriteNPY writes the features for numpy users as a folder holding
// features.npy, row.npy and metadata.json. The folder is written whole under
// a temporary name and renamed, so a crash never mixes new and old files.
func (f *Features) WriteNPY(dir string) error {
	if err := f.validate(); err != nil {
		return err
	}
	rows := f.Rows
	if rows == nil {
		rows = make([]int64, f.N)
		for i := range rows {
			rows[i] = int64(i)
		}
	}
	return atomicfile.WriteDir(dir, func(tmp string) error {
		if err := writeNPY(filepath.Join(tmp, "features.npy"), "<f4", []int{f.N, f.D}, floatbits.Bytes(f.X)); err != nil {
			return err
		}
		if err := writeNPY(filepath.Join(tmp, "row.npy"), "<i8", []int{f.N}, floatbits.Int64Bytes(rows)); err != nil {
			return err
		}
		mj, err := json.MarshalIndent(f.Meta, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "metadata.json"), append(mj, '\n'), 0o644)
	})
}

// writeNPY writes a version 1.0 .npy file: header, then little-endian data.
func writeNPY(path, descr string, shape []int, data []byte) error {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = fmt.Sprint(s)
	}
	st := strings.Join(dims, ", ")
	if len(shape) == 1 {
		st += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, st)
	// Pad with spaces so magic + lengths + header + newline is a multiple of 64.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	return atomicfile.Write(path, func(w io.Writer) error {
		if _, err := w.Write([]byte("\x93NUMPY\x01\x00")); err != nil {
			return err
		}
		if err := binary.Write(w, binary.LittleEndian, uint16(len(header))); err != nil {
			return err
		}
		if _, err := io.WriteString(w, header); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	})
}
