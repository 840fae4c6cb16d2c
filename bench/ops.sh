#!/usr/bin/env bash
# Operations at scale (docs/benchmark.md): `convstate import`, `export` and `purge` of a
# 1,000,000-message store on SQLite, PostgreSQL and MariaDB (both servers with their default
# durability), with each command's peak RSS. Builds the command in build/bench (Release); writes
# bench/results/ops.txt.
#
#   bench/ops.sh [--messages N] [--per-conversation K]
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
scripts/deps.sh postgresql-15 mariadb-server python3 time
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench --target convstate_cli -j2
# shellcheck source=bench/servers.sh
source bench/servers.sh
work=build/bench/ops
mkdir -p "$work" bench/results
out=bench/results/ops.txt
{
    echo "# bench/ops.sh${*:+ $*} on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    /usr/bin/python3 bench/ops.py build/bench/bin/convstate "$work" "sqlite=sqlite3://$work/store" \
        "postgres=$CONVSTATE_TEST_PG_URL" "mariadb=$CONVSTATE_TEST_MARIADB_URL" "$@"
} | tee "$out.tmp"
mv "$out.tmp" "$out"
