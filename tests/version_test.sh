#!/usr/bin/env bash
# The version is defined once, in include/convstate/version.h; the Python and Rust packages
# (whose manifests and lockfiles cannot include it) must say the same, everywhere they say it.
# Usage: version_test.sh SOURCE_DIR
set -euo pipefail
src=$1
get() { sed -n "s/^#define CONVSTATE_VERSION_$1 \([0-9]*\)$/\1/p" "$src/include/convstate/version.h"; }
version="$(get MAJOR).$(get MINOR).$(get PATCH)"
fail=0
check() {
    if [[ $2 == "$version" ]]; then echo "ok   $1: $2"; else echo "FAIL $1 says '$2', version.h says $version"; fail=1; fi
}
check bindings/python/pyproject.toml "$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/bindings/python/pyproject.toml")"
check bindings/rust/Cargo.toml "$(sed -n '0,/^version = /s/^version = "\(.*\)"$/\1/p' "$src/bindings/rust/Cargo.toml")"
rs() { sed -n "s/^pub const CONVSTATE_VERSION_$1: c_int = \([0-9]*\);$/\1/p" "$src/bindings/rust/src/sys.rs"; }
check bindings/rust/src/sys.rs "$(rs MAJOR).$(rs MINOR).$(rs PATCH)"
check bindings/python/convstate/__init__.py "$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/bindings/python/convstate/__init__.py")"
py() { sed -n "s/^HEADER_VERSION_$1 = \([0-9]*\)$/\1/p" "$src/bindings/python/convstate/_native.py"; }
check bindings/python/convstate/_native.py "$(py MAJOR).$(py MINOR).$(py PATCH)"
for lock in bindings/rust/Cargo.lock examples/rust/Cargo.lock; do
    check "$lock" "$(sed -n '/^name = "convstate"$/{n;s/^version = "\(.*\)"$/\1/p}' "$src/$lock")"
done
exit "$fail"
