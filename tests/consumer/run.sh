#!/usr/bin/env bash
# Uses convstate the way its users do, and runs what it builds.
#
#   run.sh install BUILD_DIR WORK_DIR SOURCE_DIR
#       installs BUILD_DIR into WORK_DIR/prefix (a staged install, nowhere the system looks), then
#       against that prefix only: C and C++ programs through find_package and through
#       pkg-config, the Python package in a venv (pip install, the library found by
#       CONVSTATE_LIBRARY, and a wheel that bundles the library), and the Rust example crate.
#       Environment: PYTHON (default python3), CARGO/RUSTC/RUSTDOC (default: skip Rust).
#   run.sh subdirectory SOURCE_DIR WORK_DIR
#       builds the C and C++ programs with add_subdirectory of the source tree.
set -euo pipefail
mode=$1 from=$2 work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$work"
mkdir -p "$work"

if [[ $mode == subdirectory ]]; then
    cmake -S "$here" -B "$work/build" -DCONVSTATE_SOURCE_DIR="$from" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$work/build" -j2 >/dev/null
    "$work/build/consumer_cpp" "sqlite3://$work/cpp.db"
    "$work/build/consumer_c" "sqlite3://$work/c.db"
    echo "consumer (add_subdirectory): C and C++ ok"
    exit 0
fi

source_dir=$4
prefix=$work/prefix
cmake --install "$from" --prefix "$prefix" >/dev/null
# The build tree must not be reachable from what runs below.
export -n LD_LIBRARY_PATH 2>/dev/null || true
libdir=$(cd "$prefix" && find . -name libconvstate_c.so -printf '%h\n' | head -n 1)
libdir=$prefix/${libdir#./}

# 1. find_package
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
"$work/build/consumer_cpp" "sqlite3://$work/cpp.db"
"$work/build/consumer_c" "sqlite3://$work/c.db"
echo "consumer (find_package): C and C++ ok"

# 2. pkg-config: compile, link and run with nothing but its flags (plus an rpath to the prefix).
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists --print-errors convstate
cflags=$(pkg-config --cflags convstate)
libs=$(pkg-config --libs convstate)
pc_libdir=$(pkg-config --variable=libdir convstate)
[[ $(cd "$pc_libdir" && pwd -P) == $(cd "$libdir" && pwd -P) ]] || {
    echo "convstate.pc names libdir $pc_libdir, not the staged $libdir" >&2
    exit 1
}
# shellcheck disable=SC2086  # pkg-config output is a list of flags
cc -std=c99 -Wall -Werror $cflags "$here/consumer.c" -o "$work/pc_c" $libs -Wl,-rpath,"$pc_libdir"
# shellcheck disable=SC2086
c++ -std=c++20 -Wall -Werror $cflags "$here/consumer.cpp" -o "$work/pc_cpp" $libs -Wl,-rpath,"$pc_libdir"
"$work/pc_cpp" "sqlite3://$work/pc-cpp.db"
"$work/pc_c" "sqlite3://$work/pc-c.db"
echo "consumer (pkg-config): C and C++ ok"

# 3. Python: a venv (Debian's pip refuses system installs), pip install of the source package,
#    the library from the staged prefix; then a wheel that carries the library itself.
python=${PYTHON:-python3}
check_py='import convstate, sys
with convstate.Database(sys.argv[1]) as db:
    r = db.turn("consumer-py", "hi", lambda history, user, conv: "hello")
    assert r["reply"] == "hello" and r["reply_seq"] == 2, r
    print("python", convstate.__file__, r["conversation_id"])'
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-index --no-cache-dir "$source_dir/bindings/python"
(cd "$work" && CONVSTATE_LIBRARY=$libdir/libconvstate_c.so "$work/venv/bin/python" -c "$check_py" "sqlite3://$work/py.db")
"$python" -m venv "$work/venv-bundled"
"$work/venv-bundled/bin/pip" wheel -q --no-index --no-cache-dir -w "$work/wheels" \
    --config-settings bundle-libdir="$libdir" "$source_dir/bindings/python"
wheel=$(ls "$work"/wheels/convstate-*.whl)
case $wheel in
    *-py3-none-linux_*.whl) ;;
    *) echo "the bundled wheel is not tagged for this platform: $wheel" >&2; exit 1 ;;
esac
"$work/venv-bundled/bin/pip" install -q --no-index "$wheel"
(cd "$work" && env -u CONVSTATE_LIBRARY "$work/venv-bundled/bin/python" -c "$check_py" "sqlite3://$work/py-bundled.db")
echo "consumer (python venv): pip install with CONVSTATE_LIBRARY ok; bundled wheel $(basename "$wheel") ok"

# 4. Rust: the example crate (and through it the convstate crate) linked against the prefix.
if [[ -n ${CARGO:-} ]]; then
    out=$(cd "$work" && CONVSTATE_LIB_DIR=$libdir CARGO_TARGET_DIR=$work/cargo \
        "$CARGO" run --quiet --offline -j2 --manifest-path "$source_dir/examples/rust/Cargo.toml" -- \
        --db "sqlite3://$work/rust.db" --message "what is 6*7?")
    printf '%s\n' "$out"
    grep -q '42' <<<"$out" || { echo "the Rust example did not answer 42" >&2; exit 1; }
    # Not `ldd | grep -q`: under pipefail, grep leaving at its first match can kill ldd with
    # SIGPIPE and fail the pipeline (it did, once, in CI).
    loads=$(ldd "$work/cargo/debug/chat_demo")
    grep -q "$libdir/libconvstate_c.so" <<<"$loads" || {
        printf 'the Rust example does not load libconvstate_c from the staged prefix:\n%s\n' "$loads" >&2
        exit 1
    }
    echo "consumer (rust): ok"
else
    echo "consumer (rust): skipped (CARGO not set)"
fi
