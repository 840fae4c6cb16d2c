#!/usr/bin/env bash
# The benchmark, in one command (see bench/README.md and docs/benchmark.md).
#
#   bench/run.sh                 all scenarios, full scale, 3 runs (takes a while)
#   bench/run.sh --smoke         every scenario shrunk to a few turns (seconds)
#   bench/run.sh [ARGS...]       ARGS go to convstate_bench, e.g. --backend sqlite --scenarios S1,S2
#
# Builds build/bench (Release), starts a throwaway PostgreSQL with its DEFAULT durability
# (fsync=on, synchronous_commit=on) and pg_stat_statements, and a throwaway MariaDB with its
# DEFAULT durability (innodb_flush_log_at_trx_commit=1, doublewrite on, no binary log) and
# MariaDB's default buffer pool and redo log sizes (128M, 96M), both on 127.0.0.1 on free ports,
# runs convstate_bench against them and SQLite files in build/bench/data, and writes
#   bench/results/latest.txt      (bench/results/smoke.txt with --smoke)
#   bench/results/latest-s2.csv   per-turn S2 latencies (smoke-s2.csv with --smoke)
# Both servers and their directories are removed on every exit path. bench/plot.sh draws the CSV.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

smoke=0
args=()
for a in "$@"; do
    if [[ "$a" == --smoke ]]; then smoke=1; else args+=("$a"); fi
done
name=latest
scale=()
if ((smoke)); then
    name=smoke
    scale=(--scale smoke)
fi

scripts/deps.sh postgresql-15 mariadb-server
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench --target convstate_bench -j2

# shellcheck source=bench/servers.sh
source bench/servers.sh

data=build/bench/data
results=bench/results
mkdir -p "$data" "$results"
out="$results/$name.txt"
csv="$results/$name-s2.csv"

{
    echo "# bench/run.sh${*:+ $*} on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -sr)"
    echo "# library: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), uncommitted diff of src/ include/ sha1 $(git diff HEAD -- src include 2>/dev/null | sha1sum | cut -c1-12) ($(git diff HEAD --shortstat -- src include 2>/dev/null | sed 's/^ //'))"
} >"$out.tmp"

status=0
build/bench/bench/convstate_bench "${scale[@]}" --pg-url "$CONVSTATE_TEST_PG_URL" \
    --mariadb-url "$CONVSTATE_TEST_MARIADB_URL" --dir "$data" --csv "$csv" \
    "${args[@]}" | tee -a "$out.tmp" || status=$?
if ((status == 0)); then
    mv "$out.tmp" "$out"
    echo "run.sh: results in $out, per-turn S2 latencies in $csv (bench/plot.sh draws them)"
else
    mv "$out.tmp" "$results/$name-failed.txt"
    echo "run.sh: the benchmark FAILED (exit $status); partial output in $results/$name-failed.txt" >&2
fi
exit "$status"
