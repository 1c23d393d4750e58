package rows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Row is one input row.
type Row struct {
	Index  int     // 0-based index among the file's data rows (the `row` output refers to it)
	Line   int     // 1-based line number for JSONL and CSV (CSV header is line 1), 1-based row number for Parquet
	Text   string  // the text field
	Prompt string  // the prompt field, when Options.PromptField is set
	IDs    []int64 // pre-tokenized ids when the row has an `input_ids` field (then Text may be empty)
	// Fields holds the row's other fields when Options.KeepFields is set:
	// JSON values for JSON lines (numbers as json.Number), strings for CSV,
	// strings, int64s, float64s and bools for Parquet's scalar columns.
	Fields map[string]any
}

// Field returns a kept field as text: strings as they are, other values in
// JSON. ok is false when the row has no such field or it is null.
func (r *Row) Field(name string) (s string, ok bool) {
	v, ok := r.Fields[name]
	if !ok || v == nil {
		return "", false
	}
	if s, isStr := v.(string); isStr {
		return s, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v), true
	}
	return string(b), true
}

// RowError is a bad row: where it is and what is wrong.
type RowError struct {
	File  string
	Line  int
	Index int
	Err   error
}

// Error returns "FILE:LINE: message".
func (e *RowError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *RowError) Unwrap() error { return e.Err }

// Options says how to read an input file.
type Options struct {
	// TextField names the text column (default "text"). In JSON lines a
	// dotted path reaches into nested objects: "prompt.text".
	TextField string
	// PromptField optionally names a prompt column, read like TextField;
	// when set, a row without it is bad.
	PromptField string
	// Format is "", "jsonl", "csv" or "parquet"; "" picks by extension
	// (.jsonl .ndjson .json → jsonl, .csv, .parquet); path "-" means stdin
	// as JSONL.
	Format string
	// KeepFields keeps every other field of each row in Row.Fields.
	KeepFields bool
}

// idsField is the name of the field that holds pre-tokenized ids.
const idsField = "input_ids"

// maxLineBytes is the longest JSONL line that is read; a longer line is a bad row.
const maxLineBytes = 64 << 20

// stdinName is the file name used in messages for path "-".
const stdinName = "<stdin>"

func (o Options) textField() string {
	if o.TextField == "" {
		return "text"
	}
	return o.TextField
}

// Read reads every row. Bad rows are returned in bad (in file order) and left out of rows;
// err is for failures that concern the whole file (missing file, unreadable parquet, CSV without
// the named column in its header, unknown format).
func Read(path string, o Options) (rows []Row, bad []*RowError, err error) {
	kind, err := PickFormat(path, o.Format)
	if err != nil {
		return nil, nil, err
	}
	if path == "-" {
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		switch kind {
		case "csv":
			return readCSV(stdinName, in, o)
		case "parquet":
			data, err := io.ReadAll(in)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", stdinName, err)
			}
			return readParquet(stdinName, bytes.NewReader(data), int64(len(data)), o)
		default:
			return readJSONL(stdinName, in, o)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err // *PathError names the file
	}
	defer f.Close()
	switch kind {
	case "csv":
		return readCSV(path, bufio.NewReaderSize(f, 1<<20), o)
	case "parquet":
		st, err := f.Stat()
		if err != nil {
			return nil, nil, err
		}
		return readParquet(path, f, st.Size(), o)
	default:
		return readJSONL(path, bufio.NewReaderSize(f, 1<<20), o)
	}
}

// PickFormat is the rule by which Read picks a file's format: "jsonl",
// "csv" or "parquet" from format when it is given (ndjson and json count
// as jsonl), else from path's extension ("-", stdin, is JSON lines).
func PickFormat(path, format string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(format)); f {
	case "jsonl", "ndjson", "json":
		return "jsonl", nil
	case "csv", "parquet":
		return f, nil
	case "":
	default:
		return "", fmt.Errorf("%s: unknown format %q (want jsonl, csv or parquet)", path, format)
	}
	if path == "-" {
		return "jsonl", nil
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl", ".ndjson", ".json":
		return "jsonl", nil
	case ".csv":
		return "csv", nil
	case ".parquet", ".pq":
		return "parquet", nil
	default:
		if ext == "" {
			return "", fmt.Errorf("%s: cannot tell the format without a file extension; name it .jsonl, .csv or .parquet, or give input_format", path)
		}
		return "", fmt.Errorf("%s: unknown file extension %q; name it .jsonl, .csv or .parquet, or give input_format", path, ext)
	}
}

// parseID parses one token id: an integer >= 0 (an integral float such as 3.0 is accepted).
func parseID(s string) (int64, error) {
	s = strings.TrimSpace(s)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
			return 0, fmt.Errorf("is %s, want an integer >= 0", quoteIfOdd(s))
		}
		id = int64(f)
	}
	if id < 0 {
		return 0, fmt.Errorf("is %s, want an integer >= 0", s)
	}
	return id, nil
}

// quoteIfOdd quotes s unless it looks like a number.
func quoteIfOdd(s string) string {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return strconv.Quote(s)
}
