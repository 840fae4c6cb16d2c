#!/usr/bin/env bash
# Build convstate with sanitizers and run the whole test suite against
# SQLite and a throwaway PostgreSQL cluster.
#
# Usage: scripts/test.sh [CTEST_ARG...]     e.g. scripts/test.sh -R sqlite
# Environment: BUILD_DIR (default build/test), PG_DURABLE=1 (see scripts/pg.sh)
set -euo pipefail

start_time=$SECONDS
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

build_dir=${BUILD_DIR:-build/test}

scripts/deps.sh postgresql-15 valgrind

cmake -S . -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCONVSTATE_SANITIZE=ON \
    -DCONVSTATE_BUILD_TESTS=ON
cmake --build "$build_dir" -j2

# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# Install the traps before starting so the cluster is stopped on every exit
# path (test failure, error, Ctrl-C, kill).
trap pg_stop EXIT
trap 'pg_stop; exit 130' INT
trap 'pg_stop; exit 143' TERM
pg_start

status=0
ctest --test-dir "$build_dir" --output-on-failure "$@" || status=$?

echo "test.sh: finished in $((SECONDS - start_time)) s (ctest exit status $status)"
exit "$status"
