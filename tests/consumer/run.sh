#!/usr/bin/env bash
# Builds and runs tests/consumer against convstate: `install BUILD_DIR WORK_DIR` installs the
# built tree into WORK_DIR/prefix and uses find_package (and checks convstate.pc);
# `subdirectory SOURCE_DIR WORK_DIR` uses add_subdirectory.
set -euo pipefail
mode=$1 from=$2 work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$work"
mkdir -p "$work"
if [[ $mode == install ]]; then
    cmake --install "$from" --prefix "$work/prefix" >/dev/null
    PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig" \
        pkg-config --exists --print-errors convstate
    cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
else
    cmake -S "$here" -B "$work/build" -DCONVSTATE_SOURCE_DIR="$from" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$work/build" -j2 >/dev/null
"$work/build/consumer_cpp" "sqlite3://$work/cpp.db"
"$work/build/consumer_c" "sqlite3://$work/c.db"
echo "consumer ($mode): ok"
