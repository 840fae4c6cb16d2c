#!/usr/bin/env bash
# The async benchmarks of the split turn (docs/benchmark.md, "Async servers"), in one command:
#   python_turns.py  200 concurrent turns whose async agent sleeps 0.5 s, through convstate.aio,
#                    next to the blocking API in asyncio.to_thread; SQLite and PostgreSQL
#   http_load.py     500 concurrent chats through examples/http_server (2 I/O threads) against an
#                    upstream that takes 1 s, with /health probed meanwhile; SQLite and PostgreSQL
# Builds build/bench-async (Release: the C library and the HTTP example), starts a throwaway
# PostgreSQL (default durability) on 127.0.0.1, writes bench/results/async.txt, and stops and
# deletes the server on every exit path.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"

scripts/deps.sh postgresql-15 python3
cmake -S . -B build/bench-async -DCMAKE_BUILD_TYPE=Release -DCONVSTATE_BUILD_TESTS=OFF \
    -DCONVSTATE_BUILD_EXAMPLES=ON -DCONVSTATE_BUILD_BENCH=OFF >/dev/null
cmake --build build/bench-async --target convstate_c http_server -j2

# shellcheck source=scripts/pg.sh
source scripts/pg.sh
trap pg_stop EXIT
trap 'pg_stop; exit 130' INT
trap 'pg_stop; exit 143' TERM
PG_DURABLE=1 pg_start

data=build/bench-async/data
rm -rf "$data"
mkdir -p "$data" bench/results
out=bench/results/async.txt
export CONVSTATE_LIBRARY="$repo_root/build/bench-async/lib/libconvstate_c.so"
python=/usr/bin/python3
{
    echo "# bench/async/run.sh on $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    "$python" bench/async/python_turns.py "sqlite3://$repo_root/$data/python.db"
    "$python" bench/async/python_turns.py "$CONVSTATE_TEST_PG_URL"
    "$python" bench/async/http_load.py build/bench-async/examples/http_server/http_server "sqlite3://$repo_root/$data/http.db"
    "$python" bench/async/http_load.py build/bench-async/examples/http_server/http_server "$CONVSTATE_TEST_PG_URL"
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "run.sh: results in $out"
