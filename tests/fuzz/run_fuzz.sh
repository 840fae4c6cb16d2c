#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (tests/fuzz/CMakeLists.txt, scripts/fuzz.sh).
#   run_fuzz.sh TARGET WORKDIR SEED_CORPUS DICT SECONDS [LIBFUZZER_ARGS...]
# WORKDIR/corpus collects what the run finds (seeded from SEED_CORPUS, which is read only);
# a crashing input is written to WORKDIR as crash-* and the script exits non-zero.
set -euo pipefail
mkdir -p "$2/corpus"
target=$(realpath "$1") work=$(realpath "$2") seeds=$(realpath "$3") dict=$(realpath "$4") seconds=$5
shift 5
cd "$work"
# -rss_limit_mb: a leak or runaway allocation fails the run instead of the machine; -timeout: an
# input that runs for 20 s is a hang (a defect: fuzz_url found one), written as timeout-*.
"$target" -max_total_time="$seconds" -dict="$dict" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds"
