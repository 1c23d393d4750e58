package rows

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func writeInputFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// badAt is an expected bad row: its line and a piece of its message.
type badAt struct {
	line int
	msg  string
}

func checkBad(t *testing.T, file string, bad []*RowError, want []badAt) {
	t.Helper()
	if len(bad) != len(want) {
		for _, b := range bad {
			t.Log(b)
		}
		t.Fatalf("got %d bad rows, want %d", len(bad), len(want))
	}
	for i, b := range bad {
		if b.File != file || b.Line != want[i].line || !strings.Contains(b.Err.Error(), want[i].msg) {
			t.Errorf("bad[%d] = %q (file %q line %d), want %s:%d with %q", i, b.Error(), b.File, b.Line, file, want[i].line, want[i].msg)
		}
		if !strings.HasPrefix(b.Error(), file+":") {
			t.Errorf("bad[%d].Error() = %q, want prefix %q", i, b.Error(), file+":")
		}
	}
}

func TestInputJSONLGood(t *testing.T) {
	p := writeInputFile(t, "data.jsonl", "\ufeff"+`{"text": "hello world", "p": "Q: ", "extra": 1}

{"text": "caf\u00e9 \"quoted\"", "p": ""}
   
{"input_ids": [1, 2, 3], "p": "x"}
{"input_ids": [0, 4.0], "text": "kept", "p": "y"}`+"\r\n"+`{"text": "no newline at end", "p": "z", "input_ids": null}`)
	rows, bad, err := Read(p, Options{PromptField: "p"})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, nil)
	want := []Row{
		{Index: 0, Line: 1, Text: "hello world", Prompt: "Q: "},
		{Index: 1, Line: 3, Text: `café "quoted"`, Prompt: ""},
		{Index: 2, Line: 5, Prompt: "x", IDs: []int64{1, 2, 3}},
		{Index: 3, Line: 6, Text: "kept", Prompt: "y", IDs: []int64{0, 4}},
		{Index: 4, Line: 7, Text: "no newline at end", Prompt: "z"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows =\n%+v\nwant\n%+v", rows, want)
	}

	// Other extensions and a custom text field.
	for _, name := range []string{"a.ndjson", "a.json", "a.JSONL"} {
		p := writeInputFile(t, name, `{"body": "x"}`+"\n")
		rows, bad, err := Read(p, Options{TextField: "body"})
		if err != nil || len(bad) != 0 || len(rows) != 1 || rows[0].Text != "x" {
			t.Errorf("%s: rows %+v bad %v err %v", name, rows, bad, err)
		}
	}
}

func TestInputJSONLBadRows(t *testing.T) {
	lines := []string{
		`{"text": "ok 1"}`,                       // 1
		``,                                       // 2 blank
		`{"text": "broken`,                       // 3 malformed
		`  `,                                     // 4 blank
		`{"other": "x"}`,                         // 5 missing
		`["text", "x"]`,                          // 6 not an object
		`{"text": 5}`,                            // 7 number
		`{"text": ""}`,                           // 8 empty
		`{"text": " \t\n "}`,                     // 9 whitespace only
		`{"text": "ok 2"}`,                       // 10
		`{"input_ids": [1, 1.5]}`,                // 11 float id
		`{"input_ids": [1, "2"]}`,                // 12 string id
		`{"input_ids": [3, -1]}`,                 // 13 negative id
		`{"input_ids": []}`,                      // 14 empty ids
		`{"input_ids": "1 2 3"}`,                 // 15 not an array
		`{"text": null}`,                         // 16 null text
		`"just a string"`,                        // 17 not an object
		`{"text": "a"} trailing`,                 // 18 malformed
		`{"text": "no prefix"}`,                  // 19 missing prefix
		`{"text": "bad prefix", "prefix": 3}`,    // 20 prefix not a string
		`{"text": "ok 3", "prefix": ""}`,         // 21 empty prefix is fine
		`{"input_ids": [7], "prefix": "p"}`,      // 22 ok
		`{"text": ["a"], "prefix": "p"}`,         // 23 text is an array
		`{"input_ids": [1e30], "prefix": "p"}`,   // 24 out of range
		`{"input_ids": {"a": 1}, "prefix": "p"}`, // 25 object
	}
	p := writeInputFile(t, "data.jsonl", strings.Join(lines, "\n")+"\n\n")
	rows, bad, err := Read(p, Options{PromptField: "prefix"})
	if err != nil {
		t.Fatal(err)
	}
	// Lines 1 and 10 lack the prefix too; check them without it below.
	checkBad(t, p, bad, []badAt{
		{1, `field "prefix" is missing`},
		{3, "malformed JSON"},
		{5, `field "text" is missing`},
		{6, "JSON array, not an object"},
		{7, `field "text" is a number, not a string`},
		{8, "empty text"},
		{9, "empty text"},
		{10, `field "prefix" is missing`},
		{11, `field "input_ids": element [1] is 1.5`},
		{12, `field "input_ids": element [1] is a string`},
		{13, `field "input_ids": element [1] is -1`},
		{14, `field "input_ids" is empty`},
		{15, `field "input_ids" is a string, not an array`},
		{16, `field "text" is missing`},
		{17, "JSON string, not an object"},
		{18, "malformed JSON"},
		{19, `field "prefix" is missing`},
		{20, `field "prefix" is a number, not a string`},
		{23, `field "text" is a array, not a string`},
		{24, `field "input_ids": element [0] is 1e30`},
		{25, `field "input_ids" is a object, not an array`},
	})
	want := []Row{
		{Index: 18, Line: 21, Text: "ok 3"},
		{Index: 19, Line: 22, Prompt: "p", IDs: []int64{7}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
	// Index counts bad rows but not blank lines.
	if bad[1].Index != 1 || bad[2].Index != 2 || bad[7].Index != 7 {
		t.Errorf("indexes %d %d %d, want 1 2 7", bad[1].Index, bad[2].Index, bad[7].Index)
	}

	// Without a prefix field, lines 1 and 10 are good.
	rows, _, err = Read(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 || rows[0].Line != 1 || rows[0].Text != "ok 1" || rows[1].Line != 10 || rows[1].Index != 7 {
		t.Errorf("rows = %+v", rows)
	}

	var re *RowError
	if e := error(bad[0]); !errors.As(e, &re) || re.Index != 0 {
		t.Errorf("errors.As failed on %v", e)
	}
	if got, want := (&RowError{File: "data.jsonl", Line: 7, Err: errors.New(`field "text" is missing`)}).Error(), `data.jsonl:7: field "text" is missing`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestInputJSONLStdin(t *testing.T) {
	in := "{\"text\": \"a\"}\n\n{\"text\": 1}\n{\"input_ids\": [5, 6]}\n"
	rows, bad, err := readJSONL(stdinName, strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, stdinName, bad, []badAt{{3, "not a string"}})
	want := []Row{{Index: 0, Line: 1, Text: "a"}, {Index: 2, Line: 4, IDs: []int64{5, 6}}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
	if f, err := PickFormat("-", ""); err != nil || f != "jsonl" {
		t.Errorf(`PickFormat("-") = %q, %v`, f, err)
	}
}

func TestInputJSONLLongLine(t *testing.T) {
	// A line longer than the limit is a bad row; reading goes on after it.
	in := "{\"text\": \"a\"}\n{\"text\": \"" + strings.Repeat("x", 100) + "\"}\n{\"text\": \"b\"}"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	var long []int
	for i := 1; ; i++ {
		line, tooLong, err := readLine(br, nil, 40)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tooLong {
			long = append(long, i)
		}
		got = append(got, string(line))
	}
	if want := []string{`{"text": "a"}`, "", `{"text": "b"}`}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(long, []int{2}) {
		t.Errorf("lines %q (too long %v)", got, long)
	}

	// A line of several buffer sizes is read whole.
	big := strings.Repeat("y", 3<<20)
	p := writeInputFile(t, "big.jsonl", "{\"text\": \""+big+"\"}\n{\"text\": \"after\"}\n")
	rows, bad, err := Read(p, Options{})
	if err != nil || len(bad) != 0 || len(rows) != 2 || rows[0].Text != big || rows[1].Line != 2 {
		t.Errorf("big line: %d rows, bad %v, err %v", len(rows), bad, err)
	}
}

func TestInputCSV(t *testing.T) {
	content := "id,text,input_ids,prefix\r\n" + // 1
		"1,plain,,P\r\n" + // 2
		"2,\"multi\nline\n\"\"cell\"\"\",,P\n" + // 3-5
		"3,,,P\n" + // 6: empty text
		"4,\"second\r\nmulti\",,\n" + // 7-8
		"5\n" + // 9: ragged, no text cell
		"\n" + // 10: blank line, skipped by encoding/csv
		"6,,\"[1, 2, 3]\",P\n" + // 11: ids as JSON
		"7,with ids,4 5  6,P\n" + // 12: ids space-separated
		"8,x,1 -2,P\n" + // 13: negative id
		"9,x,[1.5],P\n" + // 14: float id
		"10,x,1 two,P\n" + // 15: not an int
		"11,x,[],P\n" + // 16: empty list
		"12,x,[1,,P\n" + // 17: bad JSON
		"13,only text\n" + // 18: no prefix cell
		"14,\"bad \"quote\",,P\n" + // 19: CSV syntax error
		"15,last,,P" // 20, no final newline
	p := writeInputFile(t, "data.csv", content)
	rows, bad, err := Read(p, Options{PromptField: "prefix"})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{
		{6, "empty text"},
		{9, `field "text" is missing`},
		{13, `field "input_ids": element [1] is -2`},
		{14, `field "input_ids": element [0] is 1.5`},
		{15, `field "input_ids": element [1] is "two"`},
		{16, `field "input_ids" is empty`},
		{17, `field "input_ids" is not a valid JSON array`},
		{18, `field "prefix" is missing`},
		{19, `"`},
	})
	want := []Row{
		{Index: 0, Line: 2, Text: "plain", Prompt: "P"},
		{Index: 1, Line: 3, Text: "multi\nline\n\"cell\"", Prompt: "P"},
		{Index: 3, Line: 7, Text: "second\nmulti", Prompt: ""},
		{Index: 5, Line: 11, Prompt: "P", IDs: []int64{1, 2, 3}},
		{Index: 6, Line: 12, Text: "with ids", Prompt: "P", IDs: []int64{4, 5, 6}},
		{Index: 14, Line: 20, Text: "last", Prompt: "P"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows =\n%+v\nwant\n%+v", rows, want)
	}
	if bad[0].Index != 2 || bad[len(bad)-1].Index != 13 {
		t.Errorf("bad indexes %d, %d, want 2, 13", bad[0].Index, bad[len(bad)-1].Index)
	}
}

func TestInputCSVHeader(t *testing.T) {
	p := writeInputFile(t, "data.csv", "a,b\n1,2\n")
	_, _, err := Read(p, Options{})
	if err == nil || err.Error() != p+`: no column "text" in header [a b]` {
		t.Errorf("err = %v", err)
	}
	p = writeInputFile(t, "data.csv", "text,b\nx,2\n")
	if _, _, err := Read(p, Options{PromptField: "prefix"}); err == nil || !strings.Contains(err.Error(), `no column "prefix"`) {
		t.Errorf("err = %v", err)
	}
	p = writeInputFile(t, "empty.csv", "")
	if _, _, err := Read(p, Options{}); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("err = %v", err)
	}
	// A byte order mark and ids without a text column are fine.
	p = writeInputFile(t, "ids.csv", "\ufeffinput_ids,body\n1 2,\n,\n")
	rows, bad, err := Read(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{{3, `field "text" is missing`}})
	if want := []Row{{Index: 0, Line: 2, IDs: []int64{1, 2}}}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v", rows)
	}
}

func TestInputFormat(t *testing.T) {
	p := writeInputFile(t, "data.txt", `{"text": "x"}`)
	if _, _, err := Read(p, Options{}); err == nil || !strings.Contains(err.Error(), p+`: unknown file extension ".txt"`) {
		t.Errorf("err = %v", err)
	}
	if _, _, err := Read(p, Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("err = %v", err)
	}
	rows, _, err := Read(p, Options{Format: "jsonl"})
	if err != nil || len(rows) != 1 || rows[0].Text != "x" {
		t.Errorf("format override: %+v, %v", rows, err)
	}
	noext := writeInputFile(t, "data", `{"text": "x"}`)
	if _, _, err := Read(noext, Options{}); err == nil || !strings.Contains(err.Error(), "extension") {
		t.Errorf("err = %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.jsonl")
	if _, _, err := Read(missing, Options{}); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

type pqRow struct {
	Text     string  `parquet:"text"`
	Prompt   *string `parquet:"prefix,optional"`
	InputIDs []int64 `parquet:"input_ids,list"`
	Other    float64 `parquet:"other"`
}

func strp(s string) *string { return &s }

func TestInputParquet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data.parquet")
	in := []pqRow{
		{Text: "hello", Prompt: strp("Q: ")},
		{Text: "", Prompt: strp(""), InputIDs: []int64{1, 2, 3}},
		{Text: "   ", Prompt: strp("x")}, // empty text
		{Text: "no prefix"},              // null prefix
		{Text: "neg", Prompt: strp("x"), InputIDs: []int64{4, -5}},
		{Text: "both", Prompt: strp(""), InputIDs: []int64{0}},
	}
	// Small row groups and pages so that reading crosses them.
	if err := parquet.WriteFile(p, in, parquet.MaxRowsPerRowGroup(4), parquet.PageBufferSize(64)); err != nil {
		t.Fatal(err)
	}
	rows, bad, err := Read(p, Options{PromptField: "prefix"})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{
		{3, "empty text"},
		{4, `field "prefix" is missing`},
		{5, `field "input_ids": element [1] is -5`},
	})
	want := []Row{
		{Index: 0, Line: 1, Text: "hello", Prompt: "Q: "},
		{Index: 1, Line: 2, Text: "", Prompt: "", IDs: []int64{1, 2, 3}},
		{Index: 5, Line: 6, Text: "both", Prompt: "", IDs: []int64{0}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows =\n%+v\nwant\n%+v", rows, want)
	}
	if _, _, err := Read(p, Options{PromptField: "nope"}); err == nil || !strings.Contains(err.Error(), `no column "nope" in schema [`) {
		t.Errorf("err = %v", err)
	}
	if _, _, err := Read(p, Options{TextField: "other"}); err == nil || !strings.Contains(err.Error(), `column "other" is DOUBLE, want a string`) {
		t.Errorf("err = %v", err)
	}
}

type pqNullable struct {
	Body     *string `parquet:"body,optional"`
	InputIDs []int32 `parquet:"input_ids,optional,list"`
}

func TestInputParquetNulls(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data.parquet")
	in := []pqNullable{
		{Body: strp("a")},
		{},                                     // null text, no ids
		{InputIDs: []int32{7, 8}},              // ids only
		{Body: strp("b"), InputIDs: []int32{}}, // empty list
		{Body: strp("c")},
	}
	if err := parquet.WriteFile(p, in); err != nil {
		t.Fatal(err)
	}
	rows, bad, err := Read(p, Options{TextField: "body"})
	if err != nil {
		t.Fatal(err)
	}
	// A null or empty list means the row has no ids, like an empty CSV cell.
	checkBad(t, p, bad, []badAt{{2, `field "body" is missing (null)`}})
	want := []Row{
		{Index: 0, Line: 1, Text: "a"},
		{Index: 2, Line: 3, IDs: []int64{7, 8}},
		{Index: 3, Line: 4, Text: "b"},
		{Index: 4, Line: 5, Text: "c"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
}

type pqIDsOnly struct {
	InputIDs []int64 `parquet:"input_ids,list"`
}

func TestInputParquetErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ids.parquet")
	if err := parquet.WriteFile(p, []pqIDsOnly{{InputIDs: []int64{1}}, {}}); err != nil {
		t.Fatal(err)
	}
	rows, bad, err := Read(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{{2, `field "input_ids" is empty and there is no column "text"`}})
	if want := []Row{{Index: 0, Line: 1, IDs: []int64{1}}}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}

	p = filepath.Join(dir, "other.parquet")
	if err := parquet.WriteFile(p, []struct {
		A string `parquet:"a"`
		B int64  `parquet:"b"`
	}{{"x", 1}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(p, Options{}); err == nil || err.Error() != p+`: no column "text" in schema [a b]` {
		t.Errorf("err = %v", err)
	}

	p = writeInputFile(t, "junk.parquet", "this is not a parquet file at all")
	if _, _, err := Read(p, Options{}); err == nil || !strings.Contains(err.Error(), p+": unreadable parquet file") {
		t.Errorf("err = %v", err)
	}

	p = filepath.Join(dir, "strs.parquet")
	if err := parquet.WriteFile(p, []struct {
		Text     string   `parquet:"text"`
		InputIDs []string `parquet:"input_ids,list"`
	}{{"x", []string{"a"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(p, Options{}); err == nil || !strings.Contains(err.Error(), `want a list of int32 or int64`) {
		t.Errorf("err = %v", err)
	}
}

func TestInputStdinPath(t *testing.T) {
	f, err := os.Open(writeInputFile(t, "in", "{\"text\": \"from stdin\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	rows, bad, err := Read("-", Options{})
	if err != nil || len(bad) != 0 || !reflect.DeepEqual(rows, []Row{{Index: 0, Line: 1, Text: "from stdin"}}) {
		t.Errorf("rows %+v bad %v err %v", rows, bad, err)
	}
}

type pqNullElems struct {
	Text     string   `parquet:"text"`
	InputIDs []*int64 `parquet:"input_ids,list"`
}

type pqUint struct {
	Text     string   `parquet:"text"`
	InputIDs []uint32 `parquet:"input_ids,list"`
}

func TestInputParquetElements(t *testing.T) {
	one := int64(1)
	p := filepath.Join(t.TempDir(), "nulls.parquet")
	if err := parquet.WriteFile(p, []pqNullElems{{Text: "a", InputIDs: []*int64{&one, nil}}, {Text: "b", InputIDs: []*int64{&one}}}); err != nil {
		t.Fatal(err)
	}
	rows, bad, err := Read(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkBad(t, p, bad, []badAt{{1, `field "input_ids": element [1] is null`}})
	if want := []Row{{Index: 1, Line: 2, Text: "b", IDs: []int64{1}}}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}

	p = filepath.Join(t.TempDir(), "uint.parquet")
	if err := parquet.WriteFile(p, []pqUint{{Text: "a", InputIDs: []uint32{1, 4000000000}}}); err != nil {
		t.Fatal(err)
	}
	rows, bad, err = Read(p, Options{})
	if err != nil || len(bad) != 0 || len(rows) != 1 || !reflect.DeepEqual(rows[0].IDs, []int64{1, 4000000000}) {
		t.Errorf("rows %+v bad %v err %v", rows, bad, err)
	}
}
