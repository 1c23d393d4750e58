package tokenizer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// JSONLOptions say how EncodeJSONLOptions encodes each line.
type JSONLOptions struct {
	// BatchSize is the lines encoded at a time (DefaultJSONLBatch if <= 0).
	BatchSize int
	// Special applies the post-processor, as EncodeSpecial does
	// (add_special_tokens=True).
	Special bool
	// MaxLength, if positive, cuts each text's own tokens on the Truncate
	// side so the ids, specials included, number at most MaxLength (see
	// EncodeTruncated).
	MaxLength int
	// Truncate is the side cut; "" is TruncateRight, Hugging Face's
	// default. TruncateError makes a longer text stop the run.
	Truncate Truncation
	// Bad, if set, is given each line that cannot be encoded, which is then
	// left out instead of stopping the run; every output line then carries
	// its input line number, {"line":N,"ids":[…]}, so outputs still join
	// back to their inputs.
	Bad func(line int, err error)
}

// EncodeJSONLOptions is EncodeJSONL with special tokens and truncation: it
// reads JSON lines {"text"} from r and writes one {"ids"} line per input
// line to w, in order, a batch at a time. A line that cannot be encoded
// (malformed, no string "text", too long under TruncateError) stops the run
// with an error naming name and the line; the lines before it have been
// written.
func (t *Tokenizer) EncodeJSONLOptions(w io.Writer, r io.Reader, name string, o JSONLOptions) error {
	if o.Truncate == "" {
		o.Truncate = TruncateRight
	}
	if !o.Special && o.MaxLength <= 0 && o.Bad == nil {
		return t.EncodeJSONL(w, r, name, o.BatchSize)
	}
	switch o.Truncate {
	case TruncateRight, TruncateLeft, TruncateError:
	default:
		return fmt.Errorf("truncation side %q: want %q, %q or %q", o.Truncate, TruncateRight, TruncateLeft, TruncateError)
	}
	batchSize := o.BatchSize
	if batchSize <= 0 {
		batchSize = DefaultJSONLBatch
	}
	in := bufio.NewReaderSize(r, 1<<16)
	out := bufio.NewWriterSize(w, 1<<16)
	var texts []string
	var lines []int
	var buf []byte

	// flush writes the batch up to its first bad line and returns that
	// line's error.
	flush := func() error {
		ids, errs := t.encodeBatchWith(texts, o)
		var bad error
		for i := range texts {
			if errs[i] != nil {
				if o.Bad != nil {
					o.Bad(lines[i], errs[i])
					continue
				}
				bad = fmt.Errorf("%s:%d: %w", name, lines[i], errs[i])
				break
			}
			buf = buf[:0]
			if o.Bad != nil {
				buf = strconv.AppendInt(append(buf, `{"line":`...), int64(lines[i]), 10)
				buf = append(buf, ',')
			} else {
				buf = append(buf, '{')
			}
			buf = appendIDs(buf, ids[i])
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		texts, lines = texts[:0], lines[:0]
		return errors.Join(out.Flush(), bad)
	}

	for lineNo := 1; ; lineNo++ {
		line, readErr := in.ReadBytes('\n')
		if readErr != nil && readErr != io.EOF {
			return errors.Join(flush(), fmt.Errorf("%s:%d: %w", name, lineNo, readErr))
		}
		if len(bytes.TrimSpace(line)) > 0 {
			text, err := parseTextLine(line)
			switch {
			case err != nil && o.Bad != nil:
				o.Bad(lineNo, err)
			case err != nil:
				return errors.Join(flush(), fmt.Errorf("%s:%d: %w", name, lineNo, err))
			default:
				texts, lines = append(texts, text), append(lines, lineNo)
			}
			if len(texts) == batchSize {
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

// encodeBatchWith encodes texts in parallel as EncodeBatch does, with the
// options' specials and truncation.
func (t *Tokenizer) encodeBatchWith(texts []string, o JSONLOptions) ([][]int, []error) {
	ids, _, errs := t.EncodeBatchTruncated(texts, o.MaxLength, o.Special, o.Truncate)
	return ids, errs
}

// EncodeBatchTruncated is EncodeTruncated over texts, in parallel on all
// CPUs as EncodeBatch is: each text's ids, whether truncation cut it, and
// its error (a text too long under TruncateError). maxLen ≤ 0 is no limit.
func (t *Tokenizer) EncodeBatchTruncated(texts []string, maxLen int, special bool, side Truncation) (ids [][]int, cut []bool, errs []error) {
	ids, cut, errs = make([][]int, len(texts)), make([]bool, len(texts)), make([]error, len(texts))
	one := func(i int) {
		switch {
		case maxLen > 0:
			ids[i], cut[i], errs[i] = t.EncodeTruncated(texts[i], maxLen, special, side)
		case special:
			ids[i] = t.EncodeSpecial(texts[i])
		default:
			ids[i] = t.Encode(texts[i])
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				one(i)
			}
		})
	}
	wg.Wait()
	return ids, cut, errs
}
