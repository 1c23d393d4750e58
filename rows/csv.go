package rows

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

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
