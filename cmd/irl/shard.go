package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/neox"
	"irl/reward"
	"irl/rows"
	"irl/shard"
	"irl/toxeval"
)

// shardHelp is the help the sharded commands share.
const shardHelp = `
Shards: --shard I/N processes only the rows whose index i has i mod N = I, and
writes them as a part (OUT, and OUT.shard.json naming the shard, the input's
sha256, the model's fingerprint, the settings and the rows) for irl merge,
which writes what the unsharded command writes, byte for byte. "{shard}" in
--out becomes I. Without --shard, a Slurm job array's SLURM_ARRAY_TASK_ID and
SLURM_ARRAY_TASK_COUNT are read, or a Kubernetes Indexed Job's
JOB_COMPLETION_INDEX with --shards N; the command says which it used, and
--shard off runs unsharded inside such a job. See deploy/.`

// shardFlags are --shard and --shards.
func shardFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "shard", Usage: "I/N: process the rows i with i mod N = I as a part for irl merge; off: unsharded even in a job array", DefaultText: "from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX, else none"},
		&cli.IntFlag{Name: "shards", Usage: "with a Kubernetes Indexed Job: the number of shards (the Job's completions)"},
	}
}

// notSettings are the flags that do not shape a part's content: where it
// goes, how it runs, and the input and model, which the manifest
// identifies by hash and fingerprint.
var notSettings = map[string]bool{
	"out": true, "shard": true, "shards": true, "quiet": true, "overwrite": true,
	"threads": true, "batch-size": true, "ort-lib": true, "input": true, "model": true, "help": true,
}

// part is a sharded run's shard and the manifest it will write.
type part struct {
	spec *shard.Spec
	m    shard.Manifest
}

// openShard finds the command's shard (nil: unsharded) and starts its
// manifest. A part needs an input file every shard reads alike.
func openShard(c *cli.Context, command string) (*part, error) {
	spec, err := shard.Resolve(c.String("shard"), c.Int("shards"), os.Getenv)
	if err != nil || spec == nil {
		return nil, err
	}
	input := c.String("input")
	if input == "" || input == "-" {
		return nil, fmt.Errorf("shard %s (from %s) needs --input FILE: every shard reads the same file", spec, spec.From)
	}
	sum, err := atomicfile.SHA256(input)
	if err != nil {
		return nil, err
	}
	settings := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if !notSettings[name] {
			settings[name] = fmt.Sprint(c.Value(name))
		}
	}
	if !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, "shard %s (from %s)\n", spec, spec.From)
	}
	return &part{spec: spec, m: shard.Manifest{
		Command: command, Shard: spec.Index, Shards: spec.Count, From: spec.From,
		Input: input, InputSHA256: sum, Settings: settings,
	}}, nil
}

// model records the model in the manifest.
func (p *part) model(src *neox.Source) {
	if p != nil && src != nil {
		p.m.Model, p.m.ModelFingerprint = filepath.Clean(src.Path), src.Fingerprint
	}
}

// reward records a reward's identity (its files' and models'
// fingerprints) among the settings, so parts scored by different rewards
// do not merge.
func (p *part) reward(src reward.Source) error {
	if p == nil {
		return nil
	}
	id, err := reward.Identity(src)
	if err != nil {
		return err
	}
	for k, v := range id {
		p.m.Settings["reward identity "+k] = v
	}
	return nil
}

// out is --out with {shard} filled in. The parts' folder is made if
// missing: every task of an array writes into it, and the first to start
// cannot know it is first.
func (p *part) out(out string) string {
	if p == nil {
		return out
	}
	out = p.spec.Out(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	return out
}

// rows keeps the shard's rows of those read (good rows and bad ones, each
// with its index among the input's data rows).
func (p *part) rows(rs []rows.Row, bad []*rows.RowError) ([]rows.Row, []*rows.RowError) {
	if p == nil {
		return rs, bad
	}
	total := len(rs) + len(bad)
	p.m.Total = total
	p.m.Units = p.spec.Pick(total)
	p.m.Rows = p.m.Units
	var keep []rows.Row
	for _, r := range rs {
		if p.spec.Has(r.Index) {
			keep = append(keep, r)
		}
	}
	var keepBad []*rows.RowError
	for _, b := range bad {
		if p.spec.Has(b.Index) {
			keepBad = append(keepBad, b)
		}
	}
	return keep, keepBad
}

// prompts keeps the shard's prompts of an evaluation's selected ones,
// dealt by their place among them.
func (p *part) prompts(ps []toxeval.Prompt, model string) ([]toxeval.Prompt, error) {
	src, err := neox.Open(model)
	if err != nil {
		return nil, err
	}
	p.model(src)
	p.m.Total = len(ps)
	p.m.Units = p.spec.Pick(len(ps))
	p.m.Rows = make([]int, len(p.m.Units))
	for k, i := range p.m.Units {
		p.m.Rows[k] = ps[i].Row
	}
	return pick(ps, p.m.Units), nil
}

// readRows reads --input's rows with o (and --input-format), keeps the
// shard's, and takes its bad rows as --skip-bad says: stopping at the
// first, or keeping them to report.
func readRows(c *cli.Context, pt *part, o rows.Options) ([]rows.Row, *rows.Bad, error) {
	o.Format = c.String("input-format")
	rs, badRows, err := rows.Read(c.String("input"), o)
	if err != nil {
		return nil, nil, err
	}
	rs, badRows = pt.rows(rs, badRows)
	bad := &rows.Bad{Skip: c.Bool("skip-bad")}
	if err := bad.AddAll(badRows); err != nil {
		return nil, nil, err
	}
	return rs, bad, nil
}

// empty reports a shard given no rows (more shards than rows): it writes
// its manifest alone, so the merge knows it ran.
func (p *part) empty(out string, folder bool) (bool, error) {
	if p == nil || len(p.m.Units) > 0 {
		return false, nil
	}
	fmt.Fprintf(os.Stderr, "shard %s has no rows (the input has %d): wrote its manifest alone\n", p.spec, p.m.Total)
	if folder {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return true, err
		}
	}
	return true, p.m.Write(shard.ManifestPath(out, folder), "", folder, "")
}

// finish writes the manifest of the part written at out (a file, or a
// folder holding dataFile).
func (p *part) finish(out string, folder bool, dataFile string) error {
	if p == nil {
		return nil
	}
	return p.m.Write(shard.ManifestPath(out, folder), out, folder, dataFile)
}

// refuse fails a flag value a sharded run cannot honour.
func (p *part) refuse(cond bool, why string) error {
	if p != nil && cond {
		return fmt.Errorf("shard %s: %s", p.spec, why)
	}
	return nil
}
