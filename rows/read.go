// Package rows reads the row files every command takes: JSON lines, CSV with
// a header, or Parquet, picked by extension ("-" reads JSON lines from
// stdin). A row has a text field, optionally a prompt field and pre-tokenized
// input_ids, and, on request, all its other fields as metadata that outputs
// can echo. A bad row is reported with its file and line, never silently
// changed: invalid UTF-8 is a bad row, not U+FFFD.
//
// Encode turns rows into token ids with one set of rules that features,
// scoring, fine-tuning, generation and PPO share: prompt joining,
// truncation, EOS, vocabulary checks.
package rows

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"irl/tokenizer"
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
			return "", fmt.Errorf("%s: cannot tell the format without a file extension; name it .jsonl, .csv or .parquet, or give --input-format", path)
		}
		return "", fmt.Errorf("%s: unknown file extension %q; name it .jsonl, .csv or .parquet, or give --input-format", path, ext)
	}
}

// ---- JSONL ----

// readJSONL reads JSON lines from r; name is used in messages.
func readJSONL(name string, r io.Reader, o Options) (rows []Row, bad []*RowError, err error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	var buf []byte
	index := 0
	for line := 1; ; line++ {
		var tooLong bool
		var rerr error
		buf, tooLong, rerr = readLine(br, buf[:0], maxLineBytes)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rows, bad, fmt.Errorf("%s:%d: %w", name, line, rerr)
		}
		b := buf
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		if !tooLong && len(bytes.TrimSpace(b)) == 0 {
			continue // blank line: not a row
		}
		fail := func(e error) {
			bad = append(bad, &RowError{File: name, Line: line, Index: index, Err: e})
		}
		if tooLong {
			fail(fmt.Errorf("line is longer than %d MiB", maxLineBytes>>20))
		} else if row, e := parseJSONRow(b, o); e != nil {
			fail(e)
		} else {
			row.Index, row.Line = index, line
			rows = append(rows, row)
		}
		index++
	}
	return rows, bad, nil
}

// readLine appends the next line of br (without its "\n" or "\r\n") to buf.
// A line longer than max is read to its end but not kept: tooLong is then true.
// It returns io.EOF only when there is no line left.
func readLine(br *bufio.Reader, buf []byte, max int) (line []byte, tooLong bool, err error) {
	read := 0
	for {
		chunk, err := br.ReadSlice('\n')
		read += len(chunk)
		if !tooLong {
			if len(buf)+len(chunk) > max+2 { // +2 for "\r\n"
				tooLong = true
				buf = buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
		case io.EOF:
			if read == 0 {
				return buf, false, io.EOF
			}
		default:
			return buf, tooLong, err
		}
		break
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) > max {
		tooLong, buf = true, buf[:0]
	}
	return buf, tooLong, nil
}

// parseJSONRow parses one JSONL line into a Row (without Index and Line).
func parseJSONRow(b []byte, o Options) (Row, error) {
	var row Row
	textField := o.textField()
	b = bytes.TrimSpace(b)
	if !utf8.Valid(b) {
		return row, errors.New("invalid UTF-8 in the line")
	}
	if b[0] != '{' {
		if !json.Valid(b) {
			return row, fmt.Errorf("malformed JSON: %v", jsonSyntaxError(b))
		}
		return row, fmt.Errorf("line is a JSON %s, not an object", jsonKind(b))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return row, fmt.Errorf("malformed JSON: %w", err)
	}
	if raw, ok := obj[idsField]; ok && jsonKind(raw) != "null" {
		ids, err := parseJSONIDs(raw)
		if err != nil {
			return row, err
		}
		row.IDs = ids
	}
	raw, ok, err := lookup(obj, textField)
	if err != nil {
		return row, err
	}
	switch {
	case row.IDs != nil:
		// Text is optional: keep it when it is a string.
		if ok && jsonKind(raw) == "string" {
			if row.Text, err = jsonString(raw, textField); err != nil {
				return row, err
			}
		}
	case !ok || jsonKind(raw) == "null":
		return row, fmt.Errorf("field %q is missing (and there is no %q)", textField, idsField)
	case jsonKind(raw) != "string":
		return row, fmt.Errorf("field %q is a %s, not a string", textField, jsonKind(raw))
	default:
		if row.Text, err = jsonString(raw, textField); err != nil {
			return row, err
		}
		if strings.TrimSpace(row.Text) == "" {
			return row, fmt.Errorf("empty text in field %q", textField)
		}
	}
	if o.PromptField != "" {
		raw, ok, err := lookup(obj, o.PromptField)
		switch {
		case err != nil:
			return row, err
		case !ok || jsonKind(raw) == "null":
			return row, fmt.Errorf("field %q is missing", o.PromptField)
		case jsonKind(raw) != "string":
			return row, fmt.Errorf("field %q is a %s, not a string", o.PromptField, jsonKind(raw))
		}
		if row.Prompt, err = jsonString(raw, o.PromptField); err != nil {
			return row, err
		}
	}
	if o.KeepFields {
		row.Fields = make(map[string]any, len(obj))
		for k, v := range obj {
			if k == idsField || k == textField || k == o.PromptField {
				continue
			}
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			var x any
			if err := d.Decode(&x); err != nil {
				return row, fmt.Errorf("field %q: %w", k, err)
			}
			row.Fields[k] = x
		}
	}
	return row, nil
}

// lookup finds a field by name, or by a dotted path through nested objects
// when no top-level field has the whole name.
func lookup(obj map[string]json.RawMessage, path string) (json.RawMessage, bool, error) {
	if raw, ok := obj[path]; ok || !strings.Contains(path, ".") {
		return raw, ok, nil
	}
	head, rest, _ := strings.Cut(path, ".")
	raw, ok := obj[head]
	if !ok || jsonKind(raw) == "null" {
		return nil, false, nil
	}
	if jsonKind(raw) != "object" {
		return nil, false, fmt.Errorf("field %q is a %s, so it has no field %q", head, jsonKind(raw), rest)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(raw, &inner); err != nil {
		return nil, false, fmt.Errorf("field %q: %w", head, err)
	}
	return lookup(inner, rest)
}

// jsonString decodes a JSON string. encoding/json turns invalid UTF-8 and an
// escaped lone UTF-16 surrogate into U+FFFD without a word; that changes the
// text, so it is an error here, found in the JSON as written.
func jsonString(raw json.RawMessage, field string) (string, error) {
	if err := tokenizer.CheckUTF8JSON(raw); err != nil {
		var ue *tokenizer.UTF8Error
		if errors.As(err, &ue) {
			return "", fmt.Errorf("invalid UTF-8 in field %q (%s)", field, ue.Reason)
		}
		return "", fmt.Errorf("field %q: %w", field, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q: %w", field, err)
	}
	return s, nil
}

// jsonSyntaxError returns the error json.Unmarshal gives for invalid b.
func jsonSyntaxError(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

// jsonKind names the type of a valid JSON value.
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}

// parseJSONIDs parses a JSON array of non-negative integers.
func parseJSONIDs(raw []byte) ([]int64, error) {
	if k := jsonKind(raw); k != "array" {
		return nil, fmt.Errorf("field %q is a %s, not an array of integers", idsField, k)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("field %q: %w", idsField, err)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("field %q is empty", idsField)
	}
	ids := make([]int64, len(elems))
	for i, e := range elems {
		if k := jsonKind(e); k != "number" {
			return nil, fmt.Errorf("field %q: element [%d] is a %s, want an integer >= 0", idsField, i, k)
		}
		id, err := parseID(string(e))
		if err != nil {
			return nil, fmt.Errorf("field %q: element [%d] %w", idsField, i, err)
		}
		ids[i] = id
	}
	return ids, nil
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

// ---- CSV ----

// readCSV reads a CSV file with a header row from r; name is used in messages.
func readCSV(name string, r io.Reader, o Options) (rows []Row, bad []*RowError, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: empty file: a CSV file needs a header row naming its columns", name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: header: %w", name, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // UTF-8 byte order mark
	}
	col := func(field string) int {
		for i, h := range header {
			if h == field {
				return i
			}
		}
		for i, h := range header {
			if strings.TrimSpace(h) == field {
				return i
			}
		}
		return -1
	}
	textField := o.textField()
	textCol, idsCol, promptCol := col(textField), col(idsField), -1
	if textCol < 0 && idsCol < 0 {
		return nil, nil, fmt.Errorf("%s: no column %q in header %v", name, textField, header)
	}
	if o.PromptField != "" {
		if promptCol = col(o.PromptField); promptCol < 0 {
			return nil, nil, fmt.Errorf("%s: no column %q in header %v", name, o.PromptField, header)
		}
	}

	for index := 0; ; index++ {
		rec, rerr := cr.Read()
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var pe *csv.ParseError
			if errors.As(rerr, &pe) {
				// The reader resumes after the bad record.
				line := pe.StartLine
				if line == 0 {
					line = pe.Line
				}
				bad = append(bad, &RowError{File: name, Line: line, Index: index, Err: pe.Err})
				continue
			}
			return rows, bad, fmt.Errorf("%s: %w", name, rerr)
		}
		line, _ := cr.FieldPos(0)
		row, e := csvRow(rec, textField, textCol, idsCol, o.PromptField, promptCol)
		if e == nil && o.KeepFields {
			row.Fields = make(map[string]any, len(header))
			for c, h := range header {
				if c != textCol && c != idsCol && c != promptCol && c < len(rec) {
					row.Fields[h] = rec[c]
				}
			}
		}
		if e != nil {
			bad = append(bad, &RowError{File: name, Line: line, Index: index, Err: e})
			continue
		}
		row.Index, row.Line = index, line
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// csvRow makes a Row (without Index and Line) from one CSV record.
func csvRow(rec []string, textField string, textCol, idsCol int, promptField string, promptCol int) (Row, error) {
	var row Row
	cell := func(i int) (string, bool) {
		if i < 0 || i >= len(rec) {
			return "", false
		}
		return rec[i], true
	}
	if s, ok := cell(idsCol); ok && strings.TrimSpace(s) != "" {
		ids, err := parseCSVIDs(s)
		if err != nil {
			return row, err
		}
		row.IDs = ids
	}
	text, ok := cell(textCol)
	if ok && !utf8.ValidString(text) {
		return row, fmt.Errorf("invalid UTF-8 in field %q", textField)
	}
	switch {
	case row.IDs != nil:
		row.Text = text
	case !ok:
		if textCol < 0 {
			return row, fmt.Errorf("field %q is missing (no such column and no %q)", textField, idsField)
		}
		return row, fmt.Errorf("field %q is missing (row has %d cells)", textField, len(rec))
	case strings.TrimSpace(text) == "":
		return row, fmt.Errorf("empty text in field %q", textField)
	default:
		row.Text = text
	}
	if promptCol >= 0 {
		p, ok := cell(promptCol)
		if !ok {
			return row, fmt.Errorf("field %q is missing (row has %d cells)", promptField, len(rec))
		}
		if !utf8.ValidString(p) {
			return row, fmt.Errorf("invalid UTF-8 in field %q", promptField)
		}
		row.Prompt = p
	}
	return row, nil
}

// parseCSVIDs parses a CSV input_ids cell: a JSON array "[1,2,3]" or space-separated ints.
func parseCSVIDs(s string) ([]int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("field %q is not a valid JSON array: %v", idsField, jsonSyntaxError([]byte(s)))
		}
		return parseJSONIDs([]byte(s))
	}
	fields := strings.Fields(s)
	ids := make([]int64, len(fields))
	for i, f := range fields {
		id, err := parseID(f)
		if err != nil {
			return nil, fmt.Errorf("field %q: element [%d] %w", idsField, i, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// ---- Parquet ----

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
