#!/usr/bin/env bash
# Build (RelWithDebInfo) and run the main convstate example.
#
# Usage: scripts/run-example.sh [EXAMPLE_ARG...]
#   Without arguments the example runs with sqlite3://convstate-demo.db
#   (a database file in the current directory).
# Environment: BUILD_DIR (default build/release; relative paths are taken
#              from the repo root)
set -euo pipefail

EXAMPLE=quickstart

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-build/release}
[[ "$build_dir" == /* ]] || build_dir=$repo_root/$build_dir

"$repo_root/scripts/deps.sh"

cmake -S "$repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir" -j2 --target "$EXAMPLE"

if (($# == 0)); then
    set -- "sqlite3://convstate-demo.db"
fi
exec "$build_dir/examples/$EXAMPLE" "$@"
