package tokenizer

import (
	"encoding/json"
	"fmt"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization ("normalizer" in
// tokenizer.json). GPT-2 has none; Pythia (GPT-NeoX) uses NFC.
//
// sugarme's normalizers work on its NormalizedString, which tracks the offset
// of every character for alignments we never return; for the Unicode normal
// forms we call golang.org/x/text/unicode/norm, as sugarme does underneath,
// on the plain string.
type normalizer func(string) string

// parseNormalizer builds the normalizer described by raw (a "normalizer"
// object of tokenizer.json; field names it in errors; depth counts the
// Sequences around it). It returns nil for null. Supported: NFC, NFD, NFKC,
// NFKD, and Sequence of those.
func parseNormalizer(raw json.RawMessage, field string, depth int) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxNesting {
		return nil, fmt.Errorf("%s: Sequences nested more than %d deep", field, maxNesting)
	}
	var cfg struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	switch cfg.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Sequence":
		var seq []normalizer
		for i, sub := range cfg.Normalizers {
			n, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i), depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		switch len(seq) {
		case 0:
			return nil, nil
		case 1:
			return seq[0], nil
		}
		return func(s string) string {
			for _, n := range seq {
				s = n(s)
			}
			return s
		}, nil
	case "":
		return nil, fmt.Errorf("%s.type: missing", field)
	}
	return nil, fmt.Errorf("%s.type: unsupported normalizer %q (supported: NFC, NFD, NFKC, NFKD, Sequence)", field, cfg.Type)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}
