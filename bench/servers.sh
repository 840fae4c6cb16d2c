# Sourced by bench/run.sh and bench/ops.sh from the repository root: starts a throwaway
# PostgreSQL and MariaDB for a benchmark (durable, with the servers' default sizes; PostgreSQL
# with pg_stat_statements) and stops them on every exit path. Exports what scripts/pg.sh and
# scripts/mariadb.sh export (CONVSTATE_TEST_PG_URL, CONVSTATE_TEST_MARIADB_URL, …).
# shellcheck shell=bash
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/mariadb.sh
source scripts/mariadb.sh
# shellcheck disable=SC2317  # invoked by the traps
stop_servers() {
    maria_stop
    pg_stop
}
trap stop_servers EXIT
trap 'stop_servers; exit 130' INT
trap 'stop_servers; exit 143' TERM
PG_DURABLE=1 PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements" pg_start
# scripts/mariadb.sh shrinks the buffer pool and the redo log for tests; give the benchmark
# MariaDB 10.11's defaults back (PostgreSQL runs with its default shared_buffers too).
MARIADB_DURABLE=1 MARIADB_EXTRA_OPTS="--innodb-buffer-pool-size=128M --innodb-log-file-size=96M" maria_start
