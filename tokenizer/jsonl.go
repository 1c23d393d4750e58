package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultJSONLBatch is the number of lines EncodeJSONL encodes at a time.
const DefaultJSONLBatch = 1024

// EncodeJSONL reads JSON lines from r, each an object with a string field
// "text" (other fields are ignored), and writes one line {"ids":[...]} per
// input line to w, in the same order. Blank lines are skipped. Lines are
// encoded batchSize at a time (DefaultJSONLBatch if batchSize <= 0) with
// EncodeBatch, and the output is flushed after each batch, so input of any
// size streams through in bounded memory.
//
// A line that is not a JSON object with a string "text" stops the run with an
// error naming name (the input's file name, or "stdin") and the line number;
// the lines before it have been written. So does a text that is not valid
// UTF-8 as written (invalid bytes, or an escaped lone UTF-16 surrogate such
// as "\ud800"; see CheckUTF8JSON): encoding/json would silently turn it into
// U+FFFD, and its ids would not be the text's.
func (t *Tokenizer) EncodeJSONL(w io.Writer, r io.Reader, name string, batchSize int) error {
	if batchSize <= 0 {
		batchSize = DefaultJSONLBatch
	}
	in := bufio.NewReaderSize(r, 1<<16)
	out := bufio.NewWriterSize(w, 1<<16)
	batch := make([]string, 0, batchSize)
	var buf []byte

	flush := func() error {
		for _, ids := range t.EncodeBatch(batch) {
			buf = appendIDsLine(buf[:0], ids)
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return out.Flush()
	}

	for lineNo := 1; ; lineNo++ {
		line, readErr := in.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return fmt.Errorf("%s:%d: %w", name, lineNo, readErr)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			text, err := parseTextLine(line)
			if err != nil {
				return errors.Join(flush(), fmt.Errorf("%s:%d: %w", name, lineNo, err))
			}
			batch = append(batch, text)
			if len(batch) == batchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if readErr == io.EOF {
			return flush()
		}
	}
}

func parseTextLine(line []byte) (string, error) {
	var rec struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			if typ.Field == "text" {
				return "", fmt.Errorf(`"text" is a JSON %s, not a string`, typ.Value)
			}
			return "", fmt.Errorf("expected a JSON object, found %s", typ.Value)
		}
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	if rec.Text == nil {
		return "", errors.New(`"text" field missing or null`)
	}
	if err := CheckUTF8JSON(line, "text"); err != nil {
		return "", err
	}
	return *rec.Text, nil
}

// appendIDsLine appends {"ids":[...]} and a newline.
func appendIDsLine(buf []byte, ids []int) []byte {
	return appendIDs(append(buf, '{'), ids)
}

// appendIDs appends "ids":[...]}, closing the line's object, and a newline.
func appendIDs(buf []byte, ids []int) []byte {
	buf = append(buf, `"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(id), 10)
	}
	return append(buf, "]}\n"...)
}
