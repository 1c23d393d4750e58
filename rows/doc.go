// Package rows reads the row files every command takes: JSON lines, CSV with
// a header, or Parquet, picked by extension ("-" reads JSON lines from
// stdin). A row has a text field, optionally a prompt field and pre-tokenized
// input_ids, and, on request, all its other fields as metadata that outputs
// can echo. A bad row is reported with its file and line, never silently
// changed: invalid UTF-8 is a bad row, not U+FFFD.
//
// Encode turns rows into token ids with one set of rules that features,
// scoring, fine-tuning, generation and PPO share: prompt joining,
// truncation, EOS, vocabulary checks. WriteTable writes rows back out, as
// JSON lines or CSV, for a person to read.
//
// Files: read.go (Row, Options, Read and the format rule), jsonl.go, csv.go
// and parquet.go (one reader each), encode.go, write.go.
package rows
