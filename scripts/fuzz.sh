#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang 14 with ASan and UBSan) in build/fuzz and runs
# each for a while: the long runs that the test suite's 30-second ones stand in for.
#
# Usage: scripts/fuzz.sh [--runs N] [SECONDS [TARGET...]]
#   SECONDS  per target (default 600); TARGET: fuzz_json, fuzz_url, fuzz_c_api, fuzz_import (default: all)
#   --runs N stop a target after N executions if that comes before SECONDS
# What a run finds is kept in build/fuzz/tests/fuzz/work/TARGET/corpus (reused by the next run);
# a crashing input is written there as crash-* and the script exits non-zero. To replay one:
#   build/fuzz/tests/fuzz/TARGET build/fuzz/tests/fuzz/work/TARGET/crash-...
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

extra=()
if [[ ${1:-} == --runs ]]; then
    [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --runs needs a number of executions" >&2; exit 2; }
    extra=(-runs="$2")
    shift 2
fi
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_json fuzz_url fuzz_c_api fuzz_import)

scripts/deps.sh clang-14 libclang-rt-14-dev
CC=clang-14 CXX=clang++-14 cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVSTATE_FUZZ=ON \
    -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_EXAMPLES=OFF -DCONVSTATE_BUILD_BENCH=OFF >/dev/null
cmake --build build/fuzz -j2 --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
    echo "== $t for $seconds s"
    TMPDIR="$repo_root/build/fuzz" tests/fuzz/run_fuzz.sh "$repo_root/build/fuzz/tests/fuzz/$t" \
        "$repo_root/build/fuzz/tests/fuzz/work/$t" tests/fuzz/corpus/"$t" tests/fuzz/json.dict "$seconds" "${extra[@]}" || status=$?
done
exit "$status"
