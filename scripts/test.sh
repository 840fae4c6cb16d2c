#!/usr/bin/env bash
# Build convstate and run the whole test suite against SQLite and a throwaway PostgreSQL.
#
# Two build trees:
#   build/test   Debug with ASan+UBSan: the C++ suite, the C API test, the examples
#   build/plain  RelWithDebInfo, no sanitizers: the C API test under valgrind, the Python and
#                Rust bindings (they load the library as shipped), the C/Python/Rust examples
#
# Usage: scripts/test.sh [CTEST_ARG...]     e.g. scripts/test.sh -R sqlite
# Environment: PG_DURABLE=1 (see scripts/pg.sh)
set -euo pipefail

start_time=$SECONDS
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

extra=()
# Rust: a rustup toolchain if there is one, else Debian's cargo.
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        extra+=(cargo)
    fi
fi
command -v python3 >/dev/null 2>&1 || extra+=(python3)
scripts/deps.sh postgresql-15 valgrind "${extra[@]}"

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DCONVSTATE_SANITIZE=ON -DCONVSTATE_BUILD_TESTS=ON -DCONVSTATE_BUILD_EXAMPLES=ON
cmake --build build/test -j2
cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVSTATE_BUILD_TESTS=ON -DCONVSTATE_BUILD_EXAMPLES=ON \
    -DCONVSTATE_BUILD_CXX_TESTS=OFF
cmake --build build/plain -j2

# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# Install the traps before starting so the cluster is stopped on every exit
# path (test failure, error, Ctrl-C, kill).
trap pg_stop EXIT
trap 'pg_stop; exit 130' INT
trap 'pg_stop; exit 143' TERM
pg_start

status=0
ctest --test-dir build/test --output-on-failure "$@" || status=$?
ctest --test-dir build/plain --output-on-failure "$@" || status=$?

echo "test.sh: finished in $((SECONDS - start_time)) s (ctest exit status $status)"
exit "$status"
