package tokenizer

import (
	"runtime"
	"testing"
)

// BenchmarkEncode encodes the reference texts (reference.jsonl and
// extra_reference.jsonl) and reports tokens/s:
//
//   - single: one goroutine calling Encode, word cache warm (tokens/s per core);
//   - single-nocache: the same with the word cache off (every word merged);
//   - batch: EncodeBatch over all texts, on GOMAXPROCS goroutines.
func BenchmarkEncode(b *testing.B) {
	tok := loadGPT2(b)
	var texts []string
	tokens := 0
	for _, c := range allReference(b) {
		texts = append(texts, c.Text)
		tokens += len(c.IDs)
	}
	report := func(b *testing.B, loops int) {
		b.ReportMetric(float64(tokens*loops)/b.Elapsed().Seconds(), "tokens/s")
	}

	b.Run("single", func(b *testing.B) {
		loops := 0
		for b.Loop() {
			for _, s := range texts {
				tok.Encode(s)
			}
			loops++
		}
		report(b, loops)
	})
	b.Run("single-nocache", func(b *testing.B) {
		plain := withoutCache(tok)
		loops := 0
		for b.Loop() {
			for _, s := range texts {
				plain.Encode(s)
			}
			loops++
		}
		report(b, loops)
	})
	b.Run("batch", func(b *testing.B) {
		loops := 0
		for b.Loop() {
			tok.EncodeBatch(texts)
			loops++
		}
		report(b, loops)
		b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "goroutines")
	})
}
