package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encoding/json turns invalid UTF-8 inside a JSON string, and an escaped lone
// UTF-16 surrogate such as "\ud800", into U+FFFD without a word. A text
// changed that way encodes to other ids than the one that was written, so the
// readers of JSON lines refuse it instead; CheckUTF8JSON finds it in the JSON
// as written, before encoding/json hides it.

// UTF8Error is CheckUTF8JSON's error: a JSON string that is not valid UTF-8.
type UTF8Error struct {
	// Field is where the string is: "text", "meta.title", "turns[2]", or ""
	// for a JSON value that is itself a string.
	Field string
	// Name is true when the string is a field name (of the object at Field).
	Name bool
	// Offset is the byte offset in the JSON of the bad byte or escape.
	Offset int
	// Reason is what is there: "byte 0xff", `lone UTF-16 surrogate \ud800`.
	Reason string
}

// Error says "invalid UTF-8 in field text (byte 0xff at offset 10)".
func (e *UTF8Error) Error() string {
	var where string
	switch {
	case e.Name && e.Field != "":
		where = "a field name in field " + e.Field
	case e.Name:
		where = "a field name"
	case e.Field != "":
		where = "field " + e.Field
	default:
		where = "a JSON string"
	}
	return fmt.Sprintf("invalid UTF-8 in %s (%s at offset %d)", where, e.Reason, e.Offset)
}

// CheckUTF8JSON checks that the strings of a JSON value, typically one JSON
// line, are valid UTF-8 as written: no byte that is not UTF-8, and no \uXXXX
// escape of a UTF-16 surrogate that is not half of a pair. With fields, only
// the strings in those fields are checked (anywhere inside them when they
// hold objects or arrays); a field is a top-level name or a dotted path
// ("meta.title"), matched without regard to case as encoding/json matches
// struct fields. With no fields, every string and field name is checked.
//
// The error is a *UTF8Error naming the field. CheckUTF8JSON does not
// validate the JSON's syntax, which encoding/json does; where the syntax
// keeps it from finding the strings, it returns an error that says so.
func CheckUTF8JSON(raw []byte, fields ...string) error {
	// Most lines have neither non-ASCII bytes that could be wrong nor
	// escapes that could be surrogates.
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		return nil
	}
	w := utf8Walker{data: raw, fields: fields}
	for _, f := range fields {
		w.fieldDepth = max(w.fieldDepth, 1+strings.Count(f, ".")+strings.Count(f, "["))
	}
	return w.value(len(fields) == 0, 0)
}

// utf8Walker walks a JSON value, checking the strings it is told to.
type utf8Walker struct {
	data   []byte
	pos    int
	fields []string
	// fieldDepth is the most path elements a field has: no deeper value
	// can be one of them. Comparing paths only that deep keeps the walk
	// linear in the input however deep it nests.
	fieldDepth int
	// path is where the walk is ("a.b[2]"), grown and cut back as it goes,
	// so that it costs nothing until an error or a comparison needs it.
	path []byte
}

// maxJSONDepth is encoding/json's own nesting limit.
const maxJSONDepth = 10000

func (w *utf8Walker) syntaxError(what string) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", w.pos, what)
}

func (w *utf8Walker) skipSpace() {
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// wanted reports whether the strings at w.path are to be checked.
func (w *utf8Walker) wanted(depth int) bool {
	if depth > w.fieldDepth {
		return false
	}
	path := string(w.path)
	for _, f := range w.fields {
		if strings.EqualFold(f, path) {
			return true
		}
	}
	return false
}

// value walks the value at w.pos, at depth levels of nesting; check says
// whether its strings are checked.
func (w *utf8Walker) value(check bool, depth int) error {
	if depth > maxJSONDepth {
		return w.syntaxError("nested too deep")
	}
	w.skipSpace()
	if w.pos >= len(w.data) {
		return w.syntaxError("unexpected end")
	}
	outer := len(w.path)
	switch w.data[w.pos] {
	case '{':
		w.pos++
		for first := true; ; first = false {
			w.skipSpace()
			if w.pos < len(w.data) && w.data[w.pos] == '}' && first {
				w.pos++
				return nil
			}
			if w.pos >= len(w.data) || w.data[w.pos] != '"' {
				return w.syntaxError("expected a field name")
			}
			start := w.pos
			if err := w.str(true, check); err != nil {
				return err
			}
			key, err := fieldName(w.data[start:w.pos])
			if err != nil {
				return w.syntaxError(err.Error())
			}
			w.skipSpace()
			if w.pos >= len(w.data) || w.data[w.pos] != ':' {
				return w.syntaxError("expected ':'")
			}
			w.pos++
			if outer > 0 {
				w.path = append(w.path, '.')
			}
			w.path = append(w.path, key...)
			if err := w.value(check || w.wanted(depth+1), depth+1); err != nil {
				return err
			}
			w.path = w.path[:outer]
			if done, err := w.next('}'); done || err != nil {
				return err
			}
		}
	case '[':
		w.pos++
		for i := 0; ; i++ {
			w.skipSpace()
			if w.pos < len(w.data) && w.data[w.pos] == ']' && i == 0 {
				w.pos++
				return nil
			}
			w.path = append(w.path, '[')
			w.path = strconv.AppendInt(w.path, int64(i), 10)
			w.path = append(w.path, ']')
			if err := w.value(check || w.wanted(depth+1), depth+1); err != nil {
				return err
			}
			w.path = w.path[:outer]
			if done, err := w.next(']'); done || err != nil {
				return err
			}
		}
	case '"':
		return w.str(false, check)
	case ',', ':', ']', '}':
		return w.syntaxError(fmt.Sprintf("unexpected %q", w.data[w.pos]))
	}
	// A number or a literal: no strings in it.
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return nil
		}
		w.pos++
	}
	return nil
}

// next reads the ',' between elements or the closing bracket.
func (w *utf8Walker) next(closing byte) (done bool, err error) {
	w.skipSpace()
	if w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ',':
			w.pos++
			return false, nil
		case closing:
			w.pos++
			return true, nil
		}
	}
	return false, w.syntaxError(fmt.Sprintf("expected ',' or %q", closing))
}

// str reads the string at w.pos, checking it if check is set; name says
// whether it is a field name, for the error.
func (w *utf8Walker) str(name, check bool) error {
	d := w.data
	bad := func(at int, reason string) error {
		return &UTF8Error{Field: string(w.path), Name: name, Offset: at, Reason: reason}
	}
	for i := w.pos + 1; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			w.pos = i + 1
			return nil
		case c == '\\':
			if i+1 >= len(d) {
				w.pos = i
				return w.syntaxError("unterminated string")
			}
			if d[i+1] != 'u' {
				i += 2
				continue
			}
			r, ok := hex4(d[i+2:])
			if !ok {
				w.pos = i
				return w.syntaxError(`\u not followed by four hex digits`)
			}
			if check && 0xD800 <= r && r < 0xE000 {
				// A high surrogate must be followed at once by a low one.
				if r < 0xDC00 && i+7 < len(d) && d[i+6] == '\\' && d[i+7] == 'u' {
					if low, ok := hex4(d[i+8:]); ok && 0xDC00 <= low && low < 0xE000 {
						i += 12
						continue
					}
				}
				return bad(i, fmt.Sprintf(`lone UTF-16 surrogate \u%04x`, r))
			}
			i += 6
		case c < utf8.RuneSelf || !check:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return bad(i, fmt.Sprintf("byte %#02x", c))
			}
			i += size
		}
	}
	return w.syntaxError("unterminated string")
}

// hex4 reads four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// fieldName decodes a field name written as a JSON string.
func fieldName(quoted []byte) (string, error) {
	if !bytes.ContainsRune(quoted, '\\') {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return "", errors.New("invalid field name")
		}
		return "", err
	}
	return s, nil
}
