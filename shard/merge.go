package shard

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"

	"irl/safetensors"
)

// MergeTensors joins the parts' safetensors files (checked by Check) into
// the file the unsharded command writes: every tensor's rows in the order
// of the "row" tensor (I64 [n], each row's input index), the tensors in the
// parts' data order, and the metadata of the parts, which must agree but
// for the additive keys (counts), summed.
func MergeTensors(parts []*Manifest, additive ...string) ([]safetensors.Tensor, map[string]string, error) {
	// entry is one row: its input index, and where it lies (which part
	// file, which of its rows).
	type entry struct {
		row         int64
		part, local int
	}
	var files []*safetensors.File
	var owners []*Manifest
	var counts []int
	var all []entry
	for _, m := range parts {
		if m.Part == "" {
			continue
		}
		f, err := safetensors.ReadFile(m.PartPath())
		if err != nil {
			return nil, nil, err
		}
		rt, err := f.Get("row")
		if err != nil {
			return nil, nil, err
		}
		rows, err := rt.Int64s()
		if err != nil {
			return nil, nil, err
		}
		given := map[int]bool{}
		for _, r := range m.Rows {
			given[r] = true
		}
		for i, r := range rows {
			if !given[int(r)] {
				return nil, nil, fmt.Errorf("%s: row %d is not one of shard %d/%d's rows", m.PartPath(), r, m.Shard, m.Shards)
			}
			all = append(all, entry{r, len(files), i})
		}
		files, owners, counts = append(files, f), append(owners, m), append(counts, len(rows))
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("every part is empty: no rows to merge")
	}
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(a.row, b.row) })
	for i := 1; i < len(all); i++ {
		if all[i].row == all[i-1].row {
			return nil, nil, fmt.Errorf("row %d is in both %s and %s", all[i].row, owners[all[i-1].part].PartPath(), owners[all[i].part].PartPath())
		}
	}
	meta, err := mergeMeta(files, additive)
	if err != nil {
		return nil, nil, err
	}
	names := files[0].DataOrder()
	var out []safetensors.Tensor
	for _, name := range names {
		var shape []int
		var dtype safetensors.DType
		strides := make([]int, len(files))
		datas := make([][]byte, len(files))
		for k, f := range files {
			t, err := f.Get(name)
			if err != nil {
				return nil, nil, err
			}
			if len(t.Shape) == 0 || t.Shape[0] != counts[k] {
				return nil, nil, fmt.Errorf("%s: tensor %q has shape %v: want one entry per row", f.Path, name, t.Shape)
			}
			if k == 0 {
				shape, dtype = t.Shape, t.DType
			} else if t.DType != dtype || !slices.Equal(t.Shape[1:], shape[1:]) {
				return nil, nil, fmt.Errorf("%s: tensor %q is %s %v, but %s's is %s %v", f.Path, name, t.DType, t.Shape, files[0].Path, dtype, shape)
			}
			if t.Shape[0] > 0 {
				strides[k] = len(t.Data) / t.Shape[0]
			}
			datas[k] = t.Data
		}
		data := make([]byte, 0, len(all)*strides[0])
		for _, e := range all {
			s := strides[e.part]
			data = append(data, datas[e.part][e.local*s:(e.local+1)*s]...)
		}
		out = append(out, safetensors.Tensor{Name: name, DType: dtype, Shape: append([]int{len(all)}, shape[1:]...), Data: data})
	}
	for _, f := range files[1:] {
		if !slices.Equal(f.DataOrder(), names) {
			return nil, nil, fmt.Errorf("%s holds tensors %v, %s %v", f.Path, f.DataOrder(), files[0].Path, names)
		}
	}
	return out, meta, nil
}

// mergeMeta is the parts' common metadata, the additive keys summed.
func mergeMeta(files []*safetensors.File, additive []string) (map[string]string, error) {
	meta := map[string]string{}
	for k, v := range files[0].Metadata {
		meta[k] = v
	}
	for _, f := range files[1:] {
		if len(f.Metadata) != len(meta) {
			return nil, fmt.Errorf("%s and %s have different metadata keys", files[0].Path, f.Path)
		}
		for k, v := range f.Metadata {
			w, ok := meta[k]
			switch {
			case !ok:
				return nil, fmt.Errorf("%s has metadata %q, %s has not", f.Path, k, files[0].Path)
			case slices.Contains(additive, k):
				a, err1 := strconv.Atoi(w)
				b, err2 := strconv.Atoi(v)
				if err1 != nil || err2 != nil {
					return nil, fmt.Errorf("%s: metadata %q = %q: want a count", f.Path, k, v)
				}
				meta[k] = strconv.Itoa(a + b)
			case w != v:
				return nil, fmt.Errorf("%s and %s disagree on metadata %q: %q and %q", files[0].Path, f.Path, k, meta[k], v)
			}
		}
	}
	return meta, nil
}

// Line is one line of a JSON-lines part, with the key that orders it.
type Line struct {
	Key  []int
	Text []byte
}

// MergeLines reads the parts' JSON-lines data files and returns their
// lines in the order of key, which reads a line's sort key and its input
// row (which must be one of its shard's rows): the order the unsharded
// command writes them in. Two lines with one key are an error.
func MergeLines(parts []*Manifest, key func(line []byte) (sortKey []int, row int, err error)) ([]Line, error) {
	var all []Line
	owner := map[string]string{}
	for _, m := range parts {
		if m.Part == "" {
			continue
		}
		given := map[int]bool{}
		for _, r := range m.Rows {
			given[r] = true
		}
		path := m.DataPath()
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
		for n := 1; sc.Scan(); n++ {
			text := append([]byte(nil), sc.Bytes()...)
			k, row, err := key(text)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			if !given[row] {
				return nil, fmt.Errorf("%s:%d: row %d is not one of shard %d/%d's rows", path, n, row, m.Shard, m.Shards)
			}
			ks := fmt.Sprint(k)
			if prev, dup := owner[ks]; dup {
				return nil, fmt.Errorf("%s:%d: the line for %v is also in %s", path, n, k, prev)
			}
			owner[ks] = fmt.Sprintf("%s:%d", path, n)
			all = append(all, Line{Key: k, Text: text})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	slices.SortFunc(all, func(a, b Line) int { return slices.Compare(a.Key, b.Key) })
	return all, nil
}
