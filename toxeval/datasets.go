package toxeval

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"irl/atomicfile"
	"irl/rows"
)

// Long2000Row is one row of jaredjoss/jigsaw-long-2000: a Jigsaw comment
// split into a prompt and the rest of it.
type Long2000Row struct {
	Index    int    // 0-based among the file's data rows
	Prompt   string // the comment's first words
	Original string // the rest of the comment (original_output)
	Toxic    bool   // Jigsaw's toxic label
}

// The columns of a jigsaw-long-2000 file and of the raw Jigsaw CSV.
const (
	ColPrompt   = "prompt"
	ColOriginal = "original_output"
	ColToxic    = "toxic"
	ColComment  = "comment_text"
)

// ReadLong2000 reads a jigsaw-long-2000 file: Parquet (the Hugging Face
// copy), CSV or JSON lines, picked by extension unless format is given.
// Other columns are ignored. A missing column is an error that names it and
// the columns the file has; a row whose toxic label is not 0 or 1, or whose
// prompt is empty, is an error naming its line.
func ReadLong2000(path, format string) ([]Long2000Row, error) {
	if err := requireColumns(path, format, ColPrompt, ColOriginal, ColToxic); err != nil {
		return nil, err
	}
	// The prompt is the text field because it is never empty; an
	// original_output can be (a one-word comment leaves none).
	rs, bad, err := rows.Read(path, rows.Options{TextField: ColPrompt, KeepFields: true, Format: format})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	out := make([]Long2000Row, len(rs))
	for i, r := range rs {
		fail := func(err error) error { return &rows.RowError{File: path, Line: r.Line, Index: r.Index, Err: err} }
		orig, ok := r.Fields[ColOriginal]
		if !ok || orig == nil {
			return nil, fail(fmt.Errorf("field %q is missing", ColOriginal))
		}
		s, isStr := orig.(string)
		if !isStr {
			return nil, fail(fmt.Errorf("field %q is %v, not text", ColOriginal, orig))
		}
		toxic, err := parseLabel(r.Fields[ColToxic])
		if err != nil {
			return nil, fail(err)
		}
		out[i] = Long2000Row{Index: r.Index, Prompt: r.Text, Original: s, Toxic: toxic}
	}
	return out, nil
}

// JigsawComment is one row of the raw Jigsaw toxic comment CSV (Kaggle's
// train.csv): the comment and its toxic label; the other labels are
// ignored.
type JigsawComment struct {
	Index int // 0-based among the file's data rows
	Line  int // where the row starts (a quoted comment may span lines)
	Text  string
	Toxic bool
}

// ReadJigsaw reads the raw Jigsaw comments: comment_text and toxic columns,
// others ignored; quoted comments may span lines. Rows the row reader
// refuses (empty or invalid UTF-8 text) come back in bad rather than
// stopping the read, for the caller to stop at or skip.
func ReadJigsaw(path, format string) (comments []JigsawComment, bad []*rows.RowError, err error) {
	if err := requireColumns(path, format, ColComment, ColToxic); err != nil {
		return nil, nil, err
	}
	rs, bad, err := rows.Read(path, rows.Options{TextField: ColComment, KeepFields: true, Format: format})
	if err != nil {
		return nil, nil, err
	}
	comments = make([]JigsawComment, 0, len(rs))
	for _, r := range rs {
		toxic, err := parseLabel(r.Fields[ColToxic])
		if err != nil {
			bad = append(bad, &rows.RowError{File: path, Line: r.Line, Index: r.Index, Err: err})
			continue
		}
		comments = append(comments, JigsawComment{Index: r.Index, Line: r.Line, Text: r.Text, Toxic: toxic})
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Index < bad[j].Index })
	return comments, bad, nil
}

// Default row range of jigsaw-split, as the official code took it.
const (
	DefaultFrom = 2500
	DefaultTo   = 3500
)

// SplitJigsaw rebuilds a jigsaw-long-2000-style set from raw comments the
// way the paper's official code made it: the comments are split by class;
// each class is sorted by comment length in characters (Unicode code
// points, as Python's len counts; a stable sort, so equal lengths keep file
// order); rows [from, to) of each sorted class are taken; and each comment
// is cut at half its words by SplitWords. The toxic class's rows come
// first, then the non-toxic class's, each in sorted order. Too few
// comments in either class for the range is an error that says how many
// each class has.
func SplitJigsaw(comments []JigsawComment, from, to int) ([]Long2000Row, error) {
	if from < 0 || to <= from {
		return nil, fmt.Errorf("row range [%d, %d): want 0 <= from < to", from, to)
	}
	var toxic, clean []JigsawComment
	for _, c := range comments {
		if c.Toxic {
			toxic = append(toxic, c)
		} else {
			clean = append(clean, c)
		}
	}
	if len(toxic) < to || len(clean) < to {
		return nil, fmt.Errorf("rows [%d, %d) of each class need %d comments per class: the data has %d toxic and %d non-toxic", from, to, to, len(toxic), len(clean))
	}
	var out []Long2000Row
	for _, class := range [][]JigsawComment{toxic, clean} {
		lengths := make([]int, len(class))
		order := make([]int, len(class))
		for i, c := range class {
			lengths[i], order[i] = utf8.RuneCountInString(c.Text), i
		}
		sort.SliceStable(order, func(a, b int) bool { return lengths[order[a]] < lengths[order[b]] })
		for _, i := range order[from:to] {
			c := class[i]
			p, o := SplitWords(c.Text)
			out = append(out, Long2000Row{Index: len(out), Prompt: p, Original: o, Toxic: c.Toxic})
		}
	}
	return out, nil
}

// SplitWords cuts a comment at half its words: of n words the prompt gets
// the first ⌈n/2⌉ and the original output the other ⌊n/2⌋, each joined back
// with single spaces. The rounding is the one jigsaw-long-2000 shows (a
// 15-word comment has an 8-word prompt, a 13-word one a 7-word prompt).
// Words are split as Python's str.split() splits them.
func SplitWords(text string) (prompt, original string) {
	words := strings.FieldsFunc(text, isPySpace)
	k := (len(words) + 1) / 2
	return strings.Join(words[:k], " "), strings.Join(words[k:], " ")
}

// isPySpace is Python's str.isspace for one character: Unicode white space
// plus the four ASCII information separators, which Go's unicode.IsSpace
// leaves out.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's str.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

// long2000Record is a jigsaw-long-2000 row as it is written.
type long2000Record struct {
	Prompt   string `parquet:"prompt" json:"prompt"`
	Original string `parquet:"original_output" json:"original_output"`
	Toxic    int64  `parquet:"toxic" json:"toxic"`
}

// WriteLong2000 writes rows with the columns prompt, original_output and
// toxic (0/1) as CSV, Parquet or JSON lines, picked by path's extension
// unless format is given, atomically.
func WriteLong2000(path, format string, rs []Long2000Row) error {
	kind, err := rows.PickFormat(path, format)
	if err != nil {
		return err
	}
	recs := make([]long2000Record, len(rs))
	for i, r := range rs {
		recs[i] = long2000Record{Prompt: r.Prompt, Original: r.Original}
		if r.Toxic {
			recs[i].Toxic = 1
		}
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		switch kind {
		case "parquet":
			pw := parquet.NewGenericWriter[long2000Record](w)
			if _, err := pw.Write(recs); err != nil {
				return err
			}
			return pw.Close()
		case "csv":
			cw := csv.NewWriter(w)
			cw.Write([]string{ColPrompt, ColOriginal, ColToxic})
			for _, r := range recs {
				cw.Write([]string{r.Prompt, r.Original, strconv.FormatInt(r.Toxic, 10)})
			}
			cw.Flush()
			return cw.Error()
		default:
			bw := bufio.NewWriter(w)
			enc := json.NewEncoder(bw)
			enc.SetEscapeHTML(false)
			for _, r := range recs {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return bw.Flush()
		}
	})
}

// RTPRow is one row of allenai/real-toxicity-prompts.
type RTPRow struct {
	Index  int    // 0-based among the file's data rows
	Line   int    // the row's line in the file
	Prompt string // the prompt's text
	// PromptToxicity is the prompt's Perspective toxicity
	// (prompt.toxicity), nil where the dataset has none.
	PromptToxicity *float64
	// Continuation is the dataset's own continuation (continuation.text),
	// "" when absent.
	Continuation string
	// Challenging is the row's challenging flag (false when absent).
	Challenging bool
}

// RTPOptions says how to read RealToxicityPrompts rows.
type RTPOptions struct {
	// PromptField is the prompt's text: a dotted path into the nested
	// object, "prompt.text" when empty.
	PromptField string
	// Format overrides the format the extension tells (see rows.Options).
	Format string
	// ChallengingOnly keeps only the rows whose challenging flag is true.
	ChallengingOnly bool
}

// DefaultRTPPromptField is where RealToxicityPrompts keeps a prompt's text.
const DefaultRTPPromptField = "prompt.text"

// ReadRTP reads RealToxicityPrompts JSON lines (or any rows with a
// PromptField), keeping each row's challenging flag, the prompt's toxicity
// and the dataset's continuation. With ChallengingOnly, a file in which no
// row has a challenging field is an error rather than an empty set.
func ReadRTP(path string, o RTPOptions) ([]RTPRow, error) {
	field := o.PromptField
	if field == "" {
		field = DefaultRTPPromptField
	}
	rs, bad, err := rows.Read(path, rows.Options{TextField: field, KeepFields: true, Format: o.Format})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	var out []RTPRow
	sawFlag := false
	for _, r := range rs {
		ch, hasFlag, err := challenging(r.Fields)
		if err != nil {
			return nil, &rows.RowError{File: path, Line: r.Line, Index: r.Index, Err: err}
		}
		sawFlag = sawFlag || hasFlag
		if o.ChallengingOnly && !ch {
			continue
		}
		row := RTPRow{Index: r.Index, Line: r.Line, Prompt: r.Text, Challenging: ch}
		if p, ok := r.Fields["prompt"].(map[string]any); ok {
			if x, ok := number(p["toxicity"]); ok {
				row.PromptToxicity = &x
			}
		}
		if c, ok := r.Fields["continuation"].(map[string]any); ok {
			row.Continuation, _ = c["text"].(string)
		}
		out = append(out, row)
	}
	if o.ChallengingOnly && !sawFlag && len(rs) > 0 {
		return nil, fmt.Errorf("%s: no row has a %q field, so none can be kept as challenging", path, "challenging")
	}
	return out, nil
}

// challenging reads a row's challenging flag: a JSON boolean, or 0/1/true/
// false text from CSV or Parquet.
func challenging(fields map[string]any) (value, present bool, err error) {
	v, ok := fields["challenging"]
	if !ok || v == nil {
		return false, false, nil
	}
	if b, ok := v.(bool); ok {
		return b, true, nil
	}
	b, err := parseLabel(v)
	if err != nil {
		return false, true, fmt.Errorf("field %q: %w", "challenging", err)
	}
	return b, true, nil
}

// number reads a kept numeric field.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// parseLabel reads a 0/1 label as any of the row formats hold it: JSON
// numbers or booleans, CSV text, Parquet integers, floats or booleans.
// Anything but 0 and 1 (or false and true) is an error.
func parseLabel(v any) (bool, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return false, fmt.Errorf("field %q is missing", ColToxic)
	case bool:
		return x, nil
	case int64:
		f = float64(x)
	case float64:
		f = x
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return false, fmt.Errorf("label %q is not 0 or 1", x)
		}
	case string:
		s := strings.TrimSpace(x)
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return false, fmt.Errorf("label %q is not 0 or 1", x)
		}
	default:
		return false, fmt.Errorf("label %v is not 0 or 1", v)
	}
	switch f {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	if s, ok := v.(string); ok {
		return false, fmt.Errorf("label %q is not 0 or 1", s)
	}
	return false, fmt.Errorf("label %v is not 0 or 1", v)
}

// ErrMissingColumn is wrapped by the error a reader returns for a file
// without a column it needs.
var ErrMissingColumn = errors.New("missing column")

// requireColumns checks, before any row is read, that the file has every
// named column, so that the error can list what it has instead.
func requireColumns(path, format string, need ...string) error {
	have, err := Columns(path, format)
	if err != nil || have == nil {
		// No list (JSON lines without a readable first row): the row
		// reader reports the problem with its line.
		return err
	}
	for _, c := range need {
		if !slices.Contains(have, c) {
			return fmt.Errorf("%s: %w %q: the file has columns %s", path, ErrMissingColumn, c, strings.Join(quoteAll(have), ", "))
		}
	}
	return nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

// Columns lists a row file's columns: a CSV header, a Parquet schema's
// top-level fields, or the keys of the first JSON line (sorted).
func Columns(path, format string) ([]string, error) {
	kind, err := rows.PickFormat(path, format)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch kind {
	case "csv":
		header, err := csv.NewReader(bufio.NewReader(f)).Read()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: empty file: a CSV file needs a header row naming its columns", path)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: header: %w", path, err)
		}
		if len(header) > 0 {
			header[0] = strings.TrimPrefix(header[0], "\ufeff")
		}
		for i := range header {
			header[i] = strings.TrimSpace(header[i])
		}
		return header, nil
	case "parquet":
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		if err != nil {
			return nil, fmt.Errorf("%s: unreadable parquet file: %w", path, err)
		}
		var names []string
		for _, c := range pf.Root().Columns() {
			names = append(names, c.Name())
		}
		return names, nil
	default:
		br := bufio.NewReader(f)
		for {
			line, err := br.ReadBytes('\n')
			line = []byte(strings.TrimPrefix(strings.TrimSpace(string(line)), "\ufeff"))
			if len(line) > 0 {
				var obj map[string]json.RawMessage
				if json.Unmarshal(line, &obj) != nil {
					// The row reader reports a malformed line with its number.
					return nil, nil
				}
				var names []string
				for k := range obj {
					names = append(names, k)
				}
				sort.Strings(names)
				return names, nil
			}
			if err != nil {
				return nil, nil // no rows: nothing is missing from any row
			}
		}
	}
}
