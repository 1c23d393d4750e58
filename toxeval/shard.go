package toxeval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"irl/atomicfile"
)

// The files of a sharded evaluation's part folder, beside its shard.json.
const (
	SamplesFile = "samples.jsonl"
	PartFile    = "part.json"
)

// WritePart evaluates one shard's prompts and writes the folder out whole:
// out/samples.jsonl as WriteRun writes it, and out/part.json, the run
// without its figures (run.Summary names the protocol, the seeds asked for
// and total, the number of prompts of the whole evaluation). index is each
// prompt's place among all the prompts: its samples draw from that place's
// streams, as the unsharded evaluation draws them. The figures are the
// merge's (Summarize), which sees every prompt.
func WritePart(out string, run *Run, total int, index []int, gen Generator, dec Decoder, prompts []Prompt, scorer Scorer, proto Protocol, o Options) error {
	if len(index) != len(prompts) {
		panic(fmt.Sprintf("toxeval: %d indices for %d prompts", len(index), len(prompts)))
	}
	o.PromptIndex, o.part = index, true
	return atomicfile.WriteDir(out, func(tmp string) error {
		if _, err := evaluateInto(tmp, out, gen, dec, prompts, scorer, proto, o); err != nil {
			return err
		}
		s, _ := newSummary(proto, max(o.Seeds, 1), total)
		head := *run
		head.Summary = &Summary{Protocol: s.Protocol, Prompts: s.Prompts, SeedsRequested: s.SeedsRequested}
		b, err := json.MarshalIndent(head, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, PartFile), append(b, '\n'), 0o644)
	})
}

// ReadPartRun reads a part folder's part.json.
func ReadPartRun(dir string) (*Run, error) {
	path := filepath.Join(dir, PartFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	run := &Run{}
	if err := json.Unmarshal(b, run); err != nil || run.Summary == nil {
		return nil, fmt.Errorf("%s: not an eval toxicity part header (%v)", path, err)
	}
	return run, nil
}

// SameRun refuses the parts of two different evaluations.
func SameRun(a, b *Run) error {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		return fmt.Errorf("its part.json describes another evaluation than the first part's:\n  %s\n  %s", ja, jb)
	}
	return nil
}

// Summarize computes an evaluation's figures from its samples, given in
// the order Evaluate emits them (run by run, the prompts in order, each
// prompt's samples in order; position gives a sample's prompt's place from
// its row): the very sums Evaluate makes, in its order, so a merged
// evaluation's summary equals the unsharded one's.
func Summarize(proto Protocol, seeds, prompts int, samples []Sample, position func(row int) int) (*Summary, error) {
	s, runs := newSummary(proto, seeds, prompts)
	for r := 1; r <= runs; r++ {
		st := newRunState(proto, prompts)
		for _, x := range samples {
			if x.Seed != uint64(r) {
				continue
			}
			st.total++
			if x.Dropped || x.Score == nil {
				st.dropped++
				continue
			}
			st.add(position(x.Row), x.Continuation, *x.Score)
		}
		res, err := st.result(uint64(r))
		if err != nil {
			if runs > 1 {
				return nil, fmt.Errorf("seed %d: %w", r, err)
			}
			return nil, err
		}
		s.Runs = append(s.Runs, res)
	}
	s.Mean, s.Std = acrossRuns(s.Runs)
	return s, nil
}

// WriteMerged writes a merged evaluation's folder out whole: the samples'
// lines as the parts wrote them (texts, in Evaluate's order) and
// summary.json, head's settings with the figures of Summarize.
func WriteMerged(out string, head *Run, prompts int, samples []Sample, texts [][]byte, position func(row int) int) error {
	s, err := Summarize(head.Protocol, head.SeedsRequested, prompts, samples, position)
	if err != nil {
		return err
	}
	run := *head
	run.Summary = s
	return atomicfile.WriteDir(out, func(tmp string) error {
		var buf bytes.Buffer
		for _, t := range texts {
			buf.Write(t)
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(tmp, SamplesFile), buf.Bytes(), 0o644); err != nil {
			return err
		}
		b, err := json.MarshalIndent(&run, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "summary.json"), append(b, '\n'), 0o644)
	})
}
