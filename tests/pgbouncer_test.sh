#!/usr/bin/env bash
# The C++ suite's store, message, turn and window cases through pgbouncer in transaction
# pooling mode, with DatabaseOptions::prepared_statements off (CONVSTATE_TEST_PREPARED=0).
#
#   tests/pgbouncer_test.sh CONVSTATE_TESTS [doctest args...]
#
# Needs CONVSTATE_TEST_PG_URL (the server behind pgbouncer; scripts/test.sh sets it) and
# Debian's pgbouncer (scripts/deps.sh pgbouncer). Starts pgbouncer on 127.0.0.1 and stops it on
# every exit path.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tests=$1
shift
: "${CONVSTATE_TEST_PG_URL:?is not set: run the suite with scripts/test.sh}"
# shellcheck source=scripts/pg.sh
source "$repo_root/scripts/pg.sh"
# shellcheck source=scripts/pgbouncer.sh
source "$repo_root/scripts/pgbouncer.sh"
trap pgbouncer_stop EXIT
trap 'pgbouncer_stop; exit 130' INT
trap 'pgbouncer_stop; exit 143' TERM
pgbouncer_start "$CONVSTATE_TEST_PG_URL"
# Every case of these areas; the cases that open a Database themselves with prepared statements
# on (database: ..., defect: ...) or need a server of their own are not among them.
cases='conversations*,messages*,turn*,window*,split turn*,summaries*,truncate*,fork*,external keys*,usage*,isolation*,concurrency*,content parts*,roles*'
CONVSTATE_TEST_BACKEND=postgres CONVSTATE_TEST_PG_URL="$PGBOUNCER_URL" CONVSTATE_TEST_PREPARED=0 \
    "$tests" --no-intro=false "-tc=$cases" "$@"
