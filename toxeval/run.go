package toxeval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"irl/atomicfile"
)

// Run is an evaluation's summary.json: what was evaluated, how, and the
// results (Summary).
type Run struct {
	Model            string            `json:"model"`
	Scorer           string            `json:"scorer"`
	ScorerInfo       map[string]string `json:"scorer_info,omitempty"`
	ScoreIs          string            `json:"score_is"`
	Input            string            `json:"input"`
	PromptField      string            `json:"prompt_field"`
	ChallengingOnly  bool              `json:"challenging_only,omitempty"`
	Split            string            `json:"split"`
	EvalFrac         float64           `json:"eval_frac,omitempty"`
	SplitSeed        *uint64           `json:"split_seed,omitempty"`
	MaxPrompts       int               `json:"max_prompts,omitempty"`
	PromptsTruncated int               `json:"prompts_truncated"`
	SkippedRows      int               `json:"skipped_rows"`
	BatchSize        int               `json:"batch_size"`
	*Summary
}

// The sides Select picks.
const (
	SplitAll   = "all"
	SplitEval  = "eval"
	SplitTrain = "train"
)

// Select picks the prompts an evaluation takes: with split "eval" or
// "train", that side of the official split (Split, evalFrac and seed as
// numpy's), then the first max (0: all).
func Select(ps []Prompt, split string, evalFrac float64, seed uint32, max int) ([]Prompt, error) {
	switch split {
	case SplitAll:
	case SplitEval, SplitTrain:
		train, eval, err := Split(len(ps), evalFrac, seed)
		if err != nil {
			return nil, fmt.Errorf("split %s: %w", split, err)
		}
		side := eval
		if split == SplitTrain {
			side = train
		}
		picked := make([]Prompt, len(side))
		for i, j := range side {
			picked[i] = ps[j]
		}
		ps = picked
	default:
		return nil, fmt.Errorf("split %q: want all, eval or train", split)
	}
	if max < 0 {
		return nil, fmt.Errorf("max_prompts %d must not be negative", max)
	}
	if max > 0 && max < len(ps) {
		ps = ps[:max]
	}
	return ps, nil
}

// WriteRun evaluates the policy gen (its tokenizer dec) on prompts under
// proto and writes the folder out whole: out/samples.jsonl, one line per
// continuation as it is scored, and out/summary.json, run with its Summary
// filled in. The folder is built aside and renamed into place, so a failed
// evaluation leaves no out (or the one that was there).
func WriteRun(out string, run *Run, gen Generator, dec Decoder, prompts []Prompt, scorer Scorer, proto Protocol, o Options) error {
	return atomicfile.WriteDir(out, func(tmp string) error {
		var err error
		if run.Summary, err = evaluateInto(tmp, out, gen, dec, prompts, scorer, proto, o); err != nil {
			return err
		}
		b, err := json.MarshalIndent(run, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "summary.json"), append(b, '\n'), 0o644)
	})
}

// evaluateInto runs Evaluate, writing every continuation to
// tmp/samples.jsonl as it is scored (out is the folder tmp becomes, for
// the errors). An error of the evaluation (the scorer's, the generator's)
// is returned as it is, not as one of writing the file it was filling.
func evaluateInto(tmp, out string, gen Generator, dec Decoder, prompts []Prompt, scorer Scorer, proto Protocol, o Options) (*Summary, error) {
	final := filepath.Join(out, SamplesFile)
	f, err := os.Create(filepath.Join(tmp, SamplesFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	o.Emit = func(s Sample) error {
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("writing %s: %w", final, err)
		}
		return nil
	}
	s, err := Evaluate(gen, dec, prompts, scorer, proto, o)
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", final, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", final, err)
	}
	return s, nil
}
