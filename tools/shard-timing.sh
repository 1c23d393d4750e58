#!/usr/bin/env bash
# Wall time of irl features on one process against two shards run at once
# and merged, on this machine, and whether the merge equals the unsharded
# file. On a 2-core machine this shows sharding's overhead (each shard
# reads and hashes the whole input, opens its own session), not scale.
#
#   tools/shard-timing.sh [ROWS] [TOKENS]      (default 2000 rows of 64 tokens)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000}
tokens=${2:-64}
make -s build
irl=$PWD/bin/irl
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$irl" model init --shape pythia-70m --vocab-size 50304 --seed 1 --out "$dir/model" >/dev/null
awk -v n="$rows" -v t="$tokens" 'BEGIN { srand(1); for (i = 0; i < n; i++) { printf "{\"input_ids\": ["; for (j = 0; j < t; j++) printf "%s%d", (j ? "," : ""), int(rand() * 50000); print "]}" } }' >"$dir/rows.jsonl"
cores=$(nproc)
seconds() { date +%s.%N; }

t0=$(seconds)
"$irl" features --model "$dir/model" --input "$dir/rows.jsonl" --out "$dir/one.safetensors" --threads "$cores" --quiet
t1=$(seconds)
for i in 0 1; do
  "$irl" features --model "$dir/model" --input "$dir/rows.jsonl" --out "$dir/parts/p-{shard}.safetensors" \
    --shard "$i/2" --threads $((cores / 2 > 0 ? cores / 2 : 1)) --quiet &
done
wait
t2=$(seconds)
"$irl" merge --out "$dir/merged.safetensors" --quiet "$dir/parts"
t3=$(seconds)
same=no
cmp -s "$dir/one.safetensors" "$dir/merged.safetensors" && same=yes
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v r="$rows" -v t="$tokens" -v k="$cores" -v s="$same" 'BEGIN {
  printf "features, pythia-70m shape, %d rows x %d tokens, %d cores\n", r, t, k
  printf "  1 process (%d threads):           %6.2f s  %7.0f tokens/s\n", k, b - a, r * t / (b - a)
  printf "  2 shards at once (%d thread each): %6.2f s  %7.0f tokens/s\n", k / 2, c - b, r * t / (c - b)
  printf "  merge:                            %6.2f s\n", d - c
  printf "  merged file equals the unsharded one: %s\n", s
}'
