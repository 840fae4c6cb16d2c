#!/usr/bin/env bash
# Build convstate and run the whole test suite against SQLite, a throwaway PostgreSQL and a
# throwaway MariaDB.
#
# Three build trees:
#   build/test   Debug with ASan+UBSan: the C++ suite, the C API test, the examples
#   build/plain  RelWithDebInfo, no sanitizers: the C API test under valgrind, the Python and
#                Rust bindings (they load the library as shipped), the C/Python/Rust examples,
#                the installed package, the HTTP example's tests
#   build/tsan   Debug with ThreadSanitizer: the C++ tests where threads and processes meet
#   build/fuzz   clang with libFuzzer, ASan and UBSan: each fuzz target for 30 s (tests/fuzz;
#                scripts/fuzz.sh runs them longer)
#
# Usage: scripts/test.sh [CTEST_ARG...]     e.g. scripts/test.sh -R sqlite
# Environment: PG_DURABLE=1 (see scripts/pg.sh)
set -euo pipefail

start_time=$SECONDS
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

# Test-only tools on top of the build dependencies: PostgreSQL and MariaDB servers, valgrind, Debian's own
# Rust toolchain (the minimum supported; tests/CMakeLists.txt uses it even when another cargo
# comes first on PATH), Python with venv for the installed-package tests, Doxygen for the API
# reference (built with warnings as errors), clang with libFuzzer's runtime for the fuzz targets,
# help2man for the convstate command's man page.
scripts/deps.sh postgresql-15 valgrind cargo python3 python3-venv doxygen python3-fastapi python3-uvicorn python3-httpx python3-jwt pgbouncer \
    mariadb-server clang-14 libclang-rt-14-dev help2man

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DCONVSTATE_SANITIZE=ON -DCONVSTATE_BUILD_TESTS=ON -DCONVSTATE_BUILD_EXAMPLES=ON
cmake --build build/test -j2
cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVSTATE_BUILD_TESTS=ON -DCONVSTATE_BUILD_EXAMPLES=ON \
    -DCONVSTATE_BUILD_CXX_TESTS=OFF
cmake --build build/plain -j2
# ThreadSanitizer on the tests where threads and processes meet (tsan.sqlite, tsan.postgres,
# tsan.mariadb).
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DCONVSTATE_TSAN=ON -DCONVSTATE_BUILD_TESTS=ON \
    -DCONVSTATE_BUILD_EXAMPLES=OFF -DCONVSTATE_BUILD_BENCH=OFF
cmake --build build/tsan -j2 --target convstate_tests convstate_test_worker
CC=clang-14 CXX=clang++-14 cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVSTATE_FUZZ=ON \
    -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_EXAMPLES=OFF -DCONVSTATE_BUILD_BENCH=OFF
cmake --build build/fuzz -j2

# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/mariadb.sh
source scripts/mariadb.sh
# Install the traps before starting so the servers are stopped on every exit
# path (test failure, error, Ctrl-C, kill).
stop_servers() { pg_stop; maria_stop; }
trap stop_servers EXIT
trap 'stop_servers; exit 130' INT
trap 'stop_servers; exit 143' TERM
pg_start
maria_start

status=0
log=$(mktemp)
trap 'stop_servers; rm -f "$log"' EXIT
ctest --test-dir build/test --output-on-failure "$@" 2>&1 | tee -a "$log" || status=$?
ctest --test-dir build/plain --output-on-failure "$@" 2>&1 | tee -a "$log" || status=$?
ctest --test-dir build/tsan --output-on-failure -R '^tsan\.' "$@" 2>&1 | tee -a "$log" || status=$?
ctest --test-dir build/fuzz --output-on-failure "$@" 2>&1 | tee -a "$log" || status=$?

# One closing line over every build tree, from CTest's own summaries
# ("N% tests passed, F tests failed out of T").
read -r total failed < <(sed -n 's/.* tests passed, \([0-9]*\) tests failed out of \([0-9]*\)$/\2 \1/p' "$log" |
    awk '{ t += $1; f += $2 } END { print t + 0, f + 0 }')
echo "test.sh: finished in $((SECONDS - start_time)) s (ctest exit status $status)"
echo "test.sh: $((total - failed)) passed, $failed failed"
exit "$status"
