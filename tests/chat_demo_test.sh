#!/usr/bin/env bash
# The chat demo: a conversation continued across processes, tool calls visible, another user
# refused, interactive mode on standard input. Any of the chat examples (C++, C, Python, Rust).
# Usage: chat_demo_test.sh WORK_DIR COMMAND [ARG...]
set -euo pipefail
mkdir -p "$1"
db="sqlite3://$1/chat-demo-test.db"
rm -f "$1"/chat-demo-test.db*
shift
cmd=("$@")

fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("${cmd[@]}" --db "$db" --message "Hello" --message "What is 6*7?")
id=$(printf '%s\n' "$out" | sed -n 's/^conversation: \([0-9a-f-]*\) .*/\1/p' | head -n 1)
[[ -n $id ]] || fail "no conversation id printed"
grep -q '\[tool call call_3\] calculator({"expression":"6\*7"})' <<<"$out" || fail "no tool call shown: $out"
grep -q '\[tool result call_3\] 42' <<<"$out" || fail "no tool result shown: $out"
grep -q 'assistant> 6\*7 = 42' <<<"$out" || fail "wrong reply: $out"

out=$("${cmd[@]}" --db "$db" --conversation "$id" --message "Remember me?")
grep -q "conversation: $id (6 messages so far)" <<<"$out" || fail "not continued: $out"
grep -q 'Before that you said "What is 6\*7?"' <<<"$out" || fail "history not loaded: $out"

status=0
err=$("${cmd[@]}" --db "$db" --user mallory --conversation "$id" --message "x" 2>&1) || status=$?
[[ $status == 3 ]] || fail "another user got status $status: $err"
grep -q "not found" <<<"$err" || fail "another user: $err"

out=$(printf 'hi\nwhat is 2+2\n/history\n/quit\n' | "${cmd[@]}" --db "$db" --user bob)
grep -q 'assistant> 2+2 = 4' <<<"$out" || fail "interactive: $out"
grep -q '#1 user: hi' <<<"$out" || fail "interactive history: $out"
echo "chat demo test passed"
