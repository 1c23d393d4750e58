#!/usr/bin/env bash
# Queue SHARDS tasks of shard.sbatch as a job array, and merge.sbatch to run
# once every task has succeeded.
#
#   WORK=/shared/run1 MODEL=/shared/pythia-70m INPUT=/shared/corpus.jsonl \
#     deploy/slurm/submit.sh 16
set -euo pipefail

shards=${1:-8}
if ! [[ $shards =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SHARDS]  (a positive count, default 8)" >&2
  exit 2
fi
: "${WORK:?set WORK, the shared folder for parts and the merged output}"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK/parts"

# --parsable prints "jobid[;cluster]"; the array's tasks share the job id.
array=$(sbatch --parsable --export=ALL --array="0-$((shards - 1))" "$here/shard.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array job $array ($shards shards), merge job $merge: $WORK/features.safetensors"
