package rows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"irl/tokenizer"
)

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
