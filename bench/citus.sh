#!/usr/bin/env bash
# S1 and S3 of the benchmark (docs/benchmark.md) through a Citus coordinator with two workers,
# next to single-node PostgreSQL, both with default durability, convstate only (the floor's
# tables would not be distributed). Builds Citus when missing (scripts/citus.sh); writes
# bench/results/citus.txt.
#
#   bench/citus.sh [convstate_bench ARGS...]
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/citus.sh
source scripts/citus.sh
citus_source >/dev/null || { echo "bench/citus.sh: no Citus source (see scripts/citus.sh)" >&2; exit 1; }
citus_install
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench --target convstate_bench -j2
trap 'citus_stop; pg_stop' EXIT
trap 'citus_stop; pg_stop; exit 130' INT
trap 'citus_stop; pg_stop; exit 143' TERM
export PG_DURABLE=1
pg_start
citus_start
out=bench/results/citus.txt
bench=(build/bench/bench/convstate_bench --backend postgres --scenarios S1,S3 --impl convstate --default-malloc "$@")
{
    echo "# bench/citus.sh on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# single-node PostgreSQL:"
    "${bench[@]}" --pg-url "$CONVSTATE_TEST_PG_URL" | grep -E '^(impl|# postgres)'
    echo "# Citus 13.2.2, a coordinator and two workers (all on this machine):"
    workers=${CITUS_PORTS_STARTED#* }
    "${bench[@]}" --pg-url "$CONVSTATE_TEST_CITUS_URL" --citus-workers "${workers// /,}" | grep -E '^(impl|# postgres|# citus)'
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "bench/citus.sh: results in $out"
