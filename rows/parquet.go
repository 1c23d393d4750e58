package rows

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// checkParquetFooter checks the frame of a Parquet file, "PAR1" at both
// ends and the footer's length between them, before parquet-go sees it:
// given a length the file cannot hold (a 12-byte file claiming a 2 GiB
// footer, found by FuzzRead), parquet-go allocated it, taking 2 GB and
// seconds.
func checkParquetFooter(r io.ReaderAt, size int64) error {
	const magic = "PAR1"
	if size < 12 {
		return fmt.Errorf("%d bytes, too short for a Parquet file (at least 12)", size)
	}
	var head [4]byte
	var tail [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return err
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(head[:]) != magic || string(tail[4:]) != magic {
		return fmt.Errorf("no %q at the start and the end", magic)
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-12 {
		return fmt.Errorf("its footer claims %d bytes, but the file holds %d between its magic numbers", n, size-12)
	}
	return nil
}

// readParquet reads a Parquet file; name is used in messages. Only the needed
// columns are read.
func readParquet(name string, r io.ReaderAt, size int64, o Options) (rows []Row, bad []*RowError, err error) {
	defer func() {
		// parquet-go may panic on corrupt input.
		if p := recover(); p != nil {
			rows, bad, err = nil, nil, fmt.Errorf("%s: unreadable parquet file: %v", name, p)
		}
	}()
	if err := checkParquetFooter(r, size); err != nil {
		return nil, nil, fmt.Errorf("%s: unreadable parquet file: %w", name, err)
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: unreadable parquet file: %w", name, err)
	}
	root := f.Root()
	var names []string
	for _, c := range root.Columns() {
		names = append(names, c.Name())
	}
	n := int(f.NumRows())
	textField := o.textField()

	textCol, idsCol, promptCol := root.Column(textField), root.Column(idsField), (*parquet.Column)(nil)
	if textCol == nil && idsCol == nil {
		return nil, nil, fmt.Errorf("%s: no column %q in schema %v", name, textField, names)
	}
	if o.PromptField != "" {
		if promptCol = root.Column(o.PromptField); promptCol == nil {
			return nil, nil, fmt.Errorf("%s: no column %q in schema %v", name, o.PromptField, names)
		}
	}

	var texts, prompts []pqString
	var ids []pqIDs
	if textCol != nil {
		if texts, err = readParquetStrings(textCol, n); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if promptCol != nil {
		if prompts, err = readParquetStrings(promptCol, n); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if idsCol != nil {
		if ids, err = readParquetIDs(idsCol, n); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	// Kept fields: every other top-level scalar column; lists and groups
	// are left out.
	kept := map[string][]any{}
	if o.KeepFields {
		for _, c := range root.Columns() {
			if c == textCol || c == idsCol || c == promptCol || !c.Leaf() || c.Repeated() {
				continue
			}
			if vals, err := readParquetScalars(c, n); err == nil {
				kept[c.Name()] = vals
			}
		}
	}

	for i := 0; i < n; i++ {
		row := Row{Index: i, Line: i + 1}
		e := func() error {
			if ids != nil && ids[i].err != nil {
				return ids[i].err
			}
			if texts != nil && !utf8.ValidString(texts[i].s) {
				return fmt.Errorf("invalid UTF-8 in field %q", textField)
			}
			if prompts != nil && !utf8.ValidString(prompts[i].s) {
				return fmt.Errorf("invalid UTF-8 in field %q", o.PromptField)
			}
			if ids != nil && len(ids[i].ids) > 0 {
				row.IDs = ids[i].ids
			}
			switch {
			case row.IDs != nil:
				if texts != nil {
					row.Text = texts[i].s
				}
			case texts == nil && ids[i].null:
				return fmt.Errorf("field %q is null and there is no column %q", idsField, textField)
			case texts == nil:
				return fmt.Errorf("field %q is empty and there is no column %q", idsField, textField)
			case texts[i].null:
				return fmt.Errorf("field %q is missing (null)", textField)
			case strings.TrimSpace(texts[i].s) == "":
				return fmt.Errorf("empty text in field %q", textField)
			default:
				row.Text = texts[i].s
			}
			if prompts != nil {
				if prompts[i].null {
					return fmt.Errorf("field %q is missing (null)", o.PromptField)
				}
				row.Prompt = prompts[i].s
			}
			return nil
		}()
		if e != nil {
			bad = append(bad, &RowError{File: name, Line: i + 1, Index: i, Err: e})
			continue
		}
		if o.KeepFields {
			row.Fields = make(map[string]any, len(kept))
			for k, vals := range kept {
				row.Fields[k] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// readParquetScalars reads a top-level scalar column: strings, integers,
// floats and booleans, nil for nulls.
func readParquetScalars(c *parquet.Column, n int) ([]any, error) {
	out := make([]any, 0, n)
	maxDef := c.MaxDefinitionLevel()
	kind := c.Type().Kind()
	err := forEachValue(c, func(v parquet.Value) error {
		if len(out) == n {
			return fmt.Errorf("column %q has more values than the file has rows (%d)", c.Name(), n)
		}
		if v.IsNull() || v.DefinitionLevel() < maxDef {
			out = append(out, nil)
			return nil
		}
		switch kind {
		case parquet.ByteArray, parquet.FixedLenByteArray:
			out = append(out, string(v.ByteArray()))
		case parquet.Int32:
			out = append(out, int64(v.Int32()))
		case parquet.Int64:
			out = append(out, v.Int64())
		case parquet.Float:
			out = append(out, float64(v.Float()))
		case parquet.Double:
			out = append(out, v.Double())
		case parquet.Boolean:
			out = append(out, v.Boolean())
		default:
			return fmt.Errorf("column %q: unsupported type %s", c.Name(), c.Type())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("column %q has %d values, the file has %d rows", c.Name(), len(out), n)
	}
	return out, nil
}

type pqString struct {
	s    string
	null bool
}

type pqIDs struct {
	ids   []int64
	null  bool  // the field is null: treated as absent
	empty bool  // the list is empty: treated as absent, like an empty CSV cell
	err   error // a bad list
}

// readParquetStrings reads a top-level string column into one entry per row.
func readParquetStrings(c *parquet.Column, n int) ([]pqString, error) {
	if !c.Leaf() || c.Repeated() || c.Type().Kind() != parquet.ByteArray {
		return nil, fmt.Errorf("column %q is %s, want a string column", c.Name(), describeColumn(c))
	}
	out := make([]pqString, 0, n)
	maxDef := c.MaxDefinitionLevel()
	err := forEachValue(c, func(v parquet.Value) error {
		if v.RepetitionLevel() != 0 {
			return fmt.Errorf("column %q: unexpected repeated value", c.Name())
		}
		if len(out) == n {
			return fmt.Errorf("column %q has more values than the file has rows (%d)", c.Name(), n)
		}
		if v.IsNull() || v.DefinitionLevel() < maxDef {
			out = append(out, pqString{null: true})
		} else {
			out = append(out, pqString{s: string(v.ByteArray())})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("column %q has %d values, the file has %d rows", c.Name(), len(out), n)
	}
	return out, nil
}

// readParquetIDs reads a top-level list-of-integers column into one entry per row.
// It accepts the standard 3-level LIST, the legacy 2-level list and a bare repeated field.
func readParquetIDs(c *parquet.Column, n int) ([]pqIDs, error) {
	want := fmt.Errorf("column %q is %s, want a list of int32 or int64", c.Name(), describeColumn(c))
	// Walk down to the leaf, noting the definition level at which the
	// top-level field and the list's repeated node are defined.
	topDef, repDef, def := 0, -1, 0
	leaf := c
	for depth := 0; ; depth++ {
		if leaf.Optional() || leaf.Repeated() {
			def++
		}
		if depth == 0 {
			topDef = def
		}
		if leaf.Repeated() {
			if repDef >= 0 {
				return nil, want // nested lists
			}
			repDef = def
		}
		if leaf.Leaf() {
			break
		}
		if len(leaf.Columns()) != 1 {
			return nil, want
		}
		leaf = leaf.Columns()[0]
	}
	kind := leaf.Type().Kind()
	if repDef < 0 || (kind != parquet.Int32 && kind != parquet.Int64) {
		return nil, want
	}
	unsigned := false
	if lt := leaf.Type().LogicalType(); lt != nil {
		if it, ok := lt.Value.(*format.IntType); ok && !it.IsSigned {
			unsigned = true
		}
	}
	maxDef := leaf.MaxDefinitionLevel()

	out := make([]pqIDs, 0, n)
	err := forEachValue(leaf, func(v parquet.Value) error {
		if v.RepetitionLevel() == 0 {
			if len(out) == n {
				return fmt.Errorf("column %q has more rows than the file (%d)", c.Name(), n)
			}
			out = append(out, pqIDs{})
		} else if len(out) == 0 {
			return fmt.Errorf("column %q: corrupt repetition levels", c.Name())
		}
		cur := &out[len(out)-1]
		if cur.err != nil {
			return nil
		}
		d := v.DefinitionLevel()
		switch {
		case d < topDef:
			cur.null = true
			return nil
		case d < repDef:
			cur.empty = true
			return nil
		case v.IsNull() || d < maxDef:
			cur.err = fmt.Errorf("field %q: element [%d] is null, want an integer >= 0", idsField, len(cur.ids))
			cur.ids = nil
			return nil
		}
		var id int64
		switch {
		case kind == parquet.Int32 && unsigned:
			id = int64(v.Uint32())
		case kind == parquet.Int32:
			id = int64(v.Int32())
		case unsigned:
			u := v.Uint64()
			if u > math.MaxInt64 {
				cur.err = fmt.Errorf("field %q: element [%d] is %d, too large", idsField, len(cur.ids), u)
				cur.ids = nil
				return nil
			}
			id = int64(u)
		default:
			id = v.Int64()
		}
		if id < 0 {
			cur.err = fmt.Errorf("field %q: element [%d] is %d, want an integer >= 0", idsField, len(cur.ids), id)
			cur.ids = nil
			return nil
		}
		cur.ids = append(cur.ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("column %q has %d rows, the file has %d", c.Name(), len(out), n)
	}
	return out, nil
}

// forEachValue calls fn for each value of the leaf column c, across row groups.
func forEachValue(c *parquet.Column, fn func(parquet.Value) error) error {
	pages := c.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	for {
		page, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name(), err)
		}
		err = func() error {
			defer parquet.Release(page)
			vr := page.Values()
			for {
				k, err := vr.ReadValues(buf)
				for _, v := range buf[:k] {
					if e := fn(v); e != nil {
						return e
					}
				}
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("column %q: %w", c.Name(), err)
				}
				if k == 0 {
					return fmt.Errorf("column %q: page reader made no progress", c.Name())
				}
			}
		}()
		if err != nil {
			return err
		}
	}
}

// describeColumn names the type of a column for messages.
func describeColumn(c *parquet.Column) string {
	s := c.Type().String()
	if c.Repeated() {
		s = "repeated " + s
	}
	return s
}
