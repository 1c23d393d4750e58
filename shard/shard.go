package shard

import (
	"fmt"
	"strconv"
	"strings"
)

// Spec is one shard of a run: rows whose index i has i mod Count == Index.
//
// Rows are dealt round-robin rather than cut into contiguous ranges: input
// files are often ordered (by source, by length, by date), and dealing
// spreads every kind of row over every shard, so the shards take about the
// same time and the slowest one does not hold up the merge. The merge sorts
// by row index either way.
type Spec struct {
	Index, Count int
	// From says where the shard came from: "--shard", or the environment
	// variables read.
	From string
}

// String is "I/N".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Has reports whether row i belongs to the shard.
func (s Spec) Has(i int) bool { return i%s.Count == s.Index }

// Parse reads "I/N" (0 ≤ I < N).
func Parse(v string) (Spec, error) {
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("--shard %q: want I/N, the shard's index from 0 and the number of shards (e.g. 2/7)", v)
	}
	if n < 1 || i < 0 || i >= n {
		return Spec{}, fmt.Errorf("--shard %q: the index must be in 0…N−1 and N at least 1", v)
	}
	return Spec{Index: i, Count: n, From: "--shard"}, nil
}

// The environment variables Resolve reads.
const (
	SlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	SlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	SlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	SlurmTaskStep  = "SLURM_ARRAY_TASK_STEP"
	K8sIndex       = "JOB_COMPLETION_INDEX"
)

// Off is the --shard value that runs unsharded even inside a job array.
const Off = "off"

// Resolve finds the shard: flag (--shard I/N, or "off"), else a Slurm job
// array's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (the index counted
// from SLURM_ARRAY_TASK_MIN, so arrays numbered 1-N work too), else a
// Kubernetes Indexed Job's JOB_COMPLETION_INDEX with shards (--shards N),
// which Kubernetes does not export. nil means unsharded.
func Resolve(flag string, shards int, getenv func(string) string) (*Spec, error) {
	switch flag {
	case Off:
		return nil, nil
	case "":
	default:
		s, err := Parse(flag)
		if err != nil {
			return nil, err
		}
		if shards != 0 && shards != s.Count {
			return nil, fmt.Errorf("--shard %s and --shards %d disagree", flag, shards)
		}
		return &s, nil
	}
	if id := getenv(SlurmTaskID); id != "" {
		return slurm(id, getenv)
	}
	if idx := getenv(K8sIndex); idx != "" {
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 {
			return nil, fmt.Errorf("%s=%q: want a non-negative integer", K8sIndex, idx)
		}
		if shards < 1 {
			return nil, fmt.Errorf("%s=%s is set (a Kubernetes Indexed Job) but not --shards: give --shards N, the Job's completions (or --shard off to run unsharded)", K8sIndex, idx)
		}
		if i >= shards {
			return nil, fmt.Errorf("%s=%d is not below --shards %d", K8sIndex, i, shards)
		}
		return &Spec{Index: i, Count: shards, From: fmt.Sprintf("%s=%d and --shards %d", K8sIndex, i, shards)}, nil
	}
	if shards != 0 {
		return nil, fmt.Errorf("--shards %d needs %s (a Kubernetes Indexed Job) or --shard I/N", shards, K8sIndex)
	}
	return nil, nil
}

func slurm(id string, getenv func(string) string) (*Spec, error) {
	num := func(name string, def int) (int, error) {
		v := getenv(name)
		if v == "" {
			if def >= 0 {
				return def, nil
			}
			return 0, fmt.Errorf("%s=%s is set but not %s: is this a Slurm job array (sbatch --array)?", SlurmTaskID, id, name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q: want a non-negative integer", name, v)
		}
		return n, nil
	}
	task, err := num(SlurmTaskID, -1)
	if err != nil {
		return nil, err
	}
	count, err := num(SlurmTaskCount, -1)
	if err != nil {
		return nil, err
	}
	lo, err := num(SlurmTaskMin, 0)
	if err != nil {
		return nil, err
	}
	step, err := num(SlurmTaskStep, 1)
	if err != nil {
		return nil, err
	}
	if step != 1 {
		return nil, fmt.Errorf("%s=%d: the array must number its tasks without gaps (--array=0-%d), or give --shard", SlurmTaskStep, step, count-1)
	}
	i := task - lo
	if count < 1 || i < 0 || i >= count {
		return nil, fmt.Errorf("%s=%d with %s=%d and %s=%d is not a task of a gapless array: give --shard", SlurmTaskID, task, SlurmTaskMin, lo, SlurmTaskCount, count)
	}
	return &Spec{Index: i, Count: count, From: fmt.Sprintf("%s=%d, %s=%d, %s=%d", SlurmTaskID, task, SlurmTaskMin, lo, SlurmTaskCount, count)}, nil
}

// Pick lists the indices in [0, n) that belong to the shard (all of them
// for a nil shard).
func (s *Spec) Pick(n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if s == nil || s.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Out puts the shard's index into an output path: "{shard}" becomes I, so
// one command line serves every task of an array.
func (s *Spec) Out(path string) string {
	if s == nil {
		return path
	}
	return strings.ReplaceAll(path, "{shard}", strconv.Itoa(s.Index))
}
