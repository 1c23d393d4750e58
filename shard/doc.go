// Package shard splits a batch command's rows among the tasks of a job
// array and joins their parts again exactly.
//
// A shard is "I/N": the rows whose index i has i mod N = I (Spec). It comes
// from --shard, or from the scheduler's environment (Resolve): a Slurm job
// array's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, or a Kubernetes
// Indexed Job's JOB_COMPLETION_INDEX with the shard count given. Each task
// writes its part and then a Manifest beside it: the command, the shard,
// the input file's SHA-256, the model's fingerprint, the settings, the rows
// it was given and the hash of the part's data. Check refuses parts that
// are missing, repeated, changed or of another run; MergeTensors and
// MergeLines put the rows back in the input's order.
//
// The merge equals the unsharded output byte for byte only if a row's
// output does not depend on the other rows it was computed with. The
// commands make it so (sampling streams keyed by row, reductions that do
// not group their terms by batch or padding), and cmd/irl's tests hold
// every sharded command to it.
package shard
