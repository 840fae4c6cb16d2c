#!/usr/bin/env bash
# Every program answers --help with its usage on stdout and exit status 0, and a bad argument
# with the usage on stderr and exit status 2.
#
# Usage: help_test.sh NAME COMMAND [ARG...]     (COMMAND ARG... runs the program)
set -uo pipefail
name=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

"$@" --help >"$work/out" 2>"$work/err" </dev/null
status=$?
if ((status != 0)) || ! grep -q '^usage: ' "$work/out" || [[ -s $work/err ]]; then
    echo "FAIL $name --help: exit $status (want 0), usage on stdout: $(grep -c '^usage: ' "$work/out"), stderr: $(head -c 300 "$work/err")"
    fail=1
fi

"$@" --no-such-option >"$work/out" 2>"$work/err" </dev/null
status=$?
if ((status != 2)) || ! grep -q 'usage: ' "$work/err" || [[ -s $work/out ]]; then
    echo "FAIL $name --no-such-option: exit $status (want 2), usage on stderr: $(grep -c 'usage: ' "$work/err"), stdout: $(head -c 300 "$work/out")"
    fail=1
fi

((fail == 0)) && echo "$name: --help and a bad argument answered as documented"
exit "$fail"
