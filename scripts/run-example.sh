#!/usr/bin/env bash
# Build (RelWithDebInfo) and run the main convstate example: the stateless chat demo on an
# embedded SQLite file (convstate-demo.db in the current directory).
#
# Usage: scripts/run-example.sh               a scripted tour: three separate processes share
#                                             one conversation through the database
#        scripts/run-example.sh --interactive chat on standard input
#        scripts/run-example.sh ARG...        run chat_demo with these arguments
# Environment: BUILD_DIR (default build/release; relative paths are taken from the repo root)
set -euo pipefail

EXAMPLE=chat_demo
DB=sqlite3://convstate-demo.db

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-build/release}
[[ "$build_dir" == /* ]] || build_dir=$repo_root/$build_dir

"$repo_root/scripts/deps.sh"

# The example needs only the build dependencies: no tests, no benchmark (they need test-only tools).
cmake -S "$repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCONVSTATE_BUILD_TESTS=OFF -DCONVSTATE_BUILD_BENCH=OFF -DCONVSTATE_BUILD_EXAMPLES=ON
cmake --build "$build_dir" -j2 --target "$EXAMPLE"
demo=$build_dir/examples/$EXAMPLE

if (($# == 1)) && [[ $1 == --interactive ]]; then
    exec "$demo" --db "$DB"
elif (($# > 0)); then
    exec "$demo" "$@"
fi

echo "== process 1: a new conversation"
out=$("$demo" --db "$DB" --message "Hello!" --message "What is 12*(3+4) - 2?")
printf '%s\n' "$out"
id=$(printf '%s\n' "$out" | sed -n 's/^conversation: \([0-9a-f-]*\) .*/\1/p' | head -n 1)
echo
echo "== process 2: the same conversation, continued by a new process (nothing was kept in memory)"
"$demo" --db "$DB" --conversation "$id" --message "What time is it?" --message "Thanks, that is all."
echo
echo "== process 3: another user cannot open it"
status=0
"$demo" --db "$DB" --user mallory --conversation "$id" --message "Let me read that" || status=$?
echo "(exit status $status: refused)"
echo
echo "Chat yourself: $demo --db $DB --conversation $id"
