#!/usr/bin/env bash
# convstate on Citus: a coordinator and two workers on 127.0.0.1 (scripts/citus.sh builds Citus
# from its source when it is not installed, and starts and stops the cluster).
#
#   tests/citus_test.sh check            (CONVSTATE_LIBRARY names libconvstate_c)
#   tests/citus_test.sh suite CONVSTATE_TESTS [doctest args...]
#   (exit 77: skipped, no Citus source)
#
# suite: the C++ suite's PostgreSQL cases with the coordinator as their server; each case's
# fresh database gets Citus on every node, so migrate() distributes its tables.
# check:
# 1. Opening a Database migrates and distributes every table by user_id, co-located.
# 2. tests/citus_check.py runs the library's operations (8 threads x 200 turns on one
#    conversation, keyed and split turns, appends, windows, lists, summaries, forks, undo, usage)
#    with citus.multi_task_query_log_level = error: the server refuses any statement that would
#    touch more than one shard, so every statement they send is a single-shard (router) query.
# 3. EXPLAIN of the hot path's statement shapes on the coordinator shows one task each.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/citus.sh
source scripts/citus.sh
if ! citus_source >/dev/null; then
    echo "citus: skipped: no Citus source (set CONVSTATE_CITUS_SOURCE, or put ../shared/vendor beside the repository)"
    exit 77
fi
citus_install
trap citus_stop EXIT
trap 'citus_stop; exit 130' INT
trap 'citus_stop; exit 143' TERM
citus_start
coordinator=${CITUS_PORTS_STARTED%% *}
mode=${1:-check}
if [[ "$mode" == suite ]]; then
    tests=$2
    shift 2
    workers=${CITUS_PORTS_STARTED#* }
    CONVSTATE_TEST_BACKEND=postgres CONVSTATE_TEST_PG_URL="$CONVSTATE_TEST_CITUS_URL" \
        CONVSTATE_TEST_CITUS_WORKERS="${workers// /,}" "$tests" --no-intro=false "$@"
    exit $?
fi

python=${PYTHON:-/usr/bin/python3}
"$python" tests/citus_check.py "$CONVSTATE_TEST_CITUS_URL"

sql() { _citus_sql "$coordinator" "$1"; }
echo "citus: distributed tables (table, column, co-location group):"
sql "SELECT logicalrelid::text, column_to_column_name(logicalrelid, partkey), colocationid FROM pg_dist_partition ORDER BY 1" |
    sed 's/^/  /'
groups=$(sql "SELECT COUNT(DISTINCT colocationid) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'convstate_%'")
tables=$(sql "SELECT COUNT(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'convstate_%' AND column_to_column_name(logicalrelid, partkey) = 'user_id'")
[[ "$tables" == 4 && "$groups" == 1 ]] || { echo "citus: FAIL: expected 4 tables distributed by user_id in one co-location group"; exit 1; }

# The check of tests/citus_check.py works: a statement over every shard is refused.
if PGOPTIONS='-c citus.multi_task_query_log_level=error' sql "SELECT COUNT(*) FROM convstate_messages" >/dev/null 2>&1; then
    echo "citus: FAIL: a multi-shard query was not refused under citus.multi_task_query_log_level = error"
    exit 1
fi
echo "citus: a multi-shard query is refused under citus.multi_task_query_log_level = error (as the check relies on)"

# The shapes of a turn's reads and writes, planned on the coordinator: one task each.
status=0
while IFS= read -r statement; do
    plan=$(sql "EXPLAIN $statement")
    tasks=$(grep -o 'Task Count: [0-9]*' <<<"$plan" | head -1)
    if [[ "$tasks" != "Task Count: 1" ]]; then
        echo "citus: FAIL: not a single-shard plan ($tasks): $statement"
        status=1
    else
        echo "citus: router plan (Task Count: 1): ${statement:0:90}"
    fi
done <<'SQL'
UPDATE convstate_conversations SET last_seq = last_seq + 1 WHERE user_id = 'u' AND id = 'c' RETURNING last_seq
INSERT INTO convstate_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at) VALUES ('u', 'c', 1, 'user', 'x', '{}', 0)
SELECT seq, content FROM convstate_messages WHERE user_id = 'u' AND conversation_id = 'c' AND seq > 0 AND seq <= 50 ORDER BY seq
SELECT id FROM convstate_conversations WHERE user_id = 'u' ORDER BY updated_at DESC, id DESC LIMIT 20
WITH conv AS (UPDATE convstate_conversations SET last_seq = last_seq + 1 WHERE user_id = 'u' AND id = 'c' RETURNING last_seq) INSERT INTO convstate_messages (user_id, conversation_id, seq, role, content, metadata_json, created_at) SELECT 'u', 'c', last_seq, 'user', 'x', '{}', 0 FROM conv RETURNING seq
SQL
exit "$status"
