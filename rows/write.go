package rows

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"irl/atomicfile"
)

// Table is rows to write as a person reads them: Columns in order, and one
// record per row keyed by column (a missing key is an empty cell, null in
// JSON).
type Table struct {
	Columns []string
	Records []map[string]any
}

// WriteFormat picks the format of an output file: format when given
// (jsonl, csv), else the extension (.jsonl, .json, .csv).
func WriteFormat(path, format string) (string, error) {
	switch format {
	case "jsonl", "csv":
		return format, nil
	case "":
	default:
		return "", fmt.Errorf("format %q: want jsonl or csv", format)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".json", ".ndjson":
		return "jsonl", nil
	case ".csv":
		return "csv", nil
	}
	return "", fmt.Errorf("%s: cannot tell jsonl from csv by the extension; name the format", path)
}

// WriteTable writes t to path as JSON lines (one object a row, keys in
// column order) or CSV (a header, then one line a row; numbers in their
// shortest exact form, lists and objects as JSON), whole or not at all.
func WriteTable(path, format string, t Table) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		var err error
		if format == "csv" {
			err = writeCSV(bw, t)
		} else {
			err = writeJSONL(bw, t)
		}
		if err != nil {
			return err
		}
		return bw.Flush()
	})
}

func writeJSONL(w *bufio.Writer, t Table) error {
	for _, rec := range t.Records {
		w.WriteByte('{')
		for i, c := range t.Columns {
			if i > 0 {
				w.WriteByte(',')
			}
			k, _ := json.Marshal(c)
			v, err := json.Marshal(rec[c])
			if err != nil {
				return fmt.Errorf("column %s: %w", c, err)
			}
			w.Write(k)
			w.WriteByte(':')
			w.Write(v)
		}
		w.WriteString("}\n")
	}
	return nil
}

func writeCSV(w *bufio.Writer, t Table) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Columns); err != nil {
		return err
	}
	cells := make([]string, len(t.Columns))
	for _, rec := range t.Records {
		for i, c := range t.Columns {
			s, err := cell(rec[c])
			if err != nil {
				return fmt.Errorf("column %s: %w", c, err)
			}
			cells[i] = s
		}
		if err := cw.Write(cells); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell is a value as CSV text.
func cell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case json.Number:
		return x.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}
