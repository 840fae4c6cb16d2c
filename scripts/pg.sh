# shellcheck shell=bash
# Throwaway PostgreSQL cluster for tests. Source this file, then:
#
#   trap pg_stop EXIT
#   pg_start          # exports CONVSTATE_TEST_PG_URL, PGPORT_STARTED, PGDIR_STARTED
#   ...
#   pg_stop           # safe to call twice or when nothing was started
#
# Environment:
#   PG_BINDIR    directory holding initdb/pg_ctl (default: autodetect, prefers 15)
#   PG_DURABLE=1 keep fsync/synchronous_commit/full_page_writes on
#                (for crash/durability tests)
#   PG_EXTRA_OPTS extra server options appended to pg_ctl's -o, e.g.
#                "-c shared_preload_libraries=pg_stat_statements" (default: none)
#
# As root, initdb and the server run as the `postgres` OS user (initdb refuses
# root). The cluster listens on 127.0.0.1 only, on a random free port in
# 20000-60000, with its Unix socket inside its own temp dir.
#
# This file is meant to be sourced and therefore does not change the caller's
# shell options; the functions work with and without `set -euo pipefail`.

# Print the PostgreSQL bin directory (with initdb and pg_ctl) or fail.
_pg_bindir() {
    local d cand
    if [[ -n "${PG_BINDIR:-}" ]]; then
        printf '%s\n' "$PG_BINDIR"
        return 0
    fi
    if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
        printf '%s\n' /usr/lib/postgresql/15/bin
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n "$d" && -x "$d/initdb" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    cand=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -n "$cand" ]]; then
        printf '%s\n' "${cand%/initdb}"
        return 0
    fi
    echo "pg.sh: no PostgreSQL server binaries found (install postgresql-15)" >&2
    return 1
}

# Run a command as the postgres OS user when we are root, directly otherwise.
# Runs from / so that the postgres user never lacks access to the cwd.
_pg_as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Succeeds when nothing listens on TCP port $1.
_pg_port_free() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [[ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# Print a random free port in 20000-60000.
_pg_pick_port() {
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
        if _pg_port_free "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    echo "pg.sh: could not find a free port" >&2
    return 1
}

pg_start() {
    if [[ -n "${PGDIR_STARTED:-}" ]]; then
        echo "pg.sh: a cluster is already running in $PGDIR_STARTED (port ${PGPORT_STARTED:-?})" >&2
        return 1
    fi

    local bindir dir out port attempt opts
    bindir=$(_pg_bindir) || return 1

    dir=$(mktemp -d -t convstate-pg.XXXXXX) || return 1
    chmod 700 "$dir"
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! id -u postgres >/dev/null 2>&1; then
            echo "pg.sh: running as root but there is no 'postgres' user" >&2
            rm -rf "$dir"
            return 1
        fi
        chown postgres: "$dir"
    fi

    if ! out=$(_pg_as_owner "$bindir/initdb" -D "$dir" -A trust -E UTF8 --locale=C -U postgres 2>&1); then
        printf '%s\n' "$out" >&2
        echo "pg.sh: initdb failed" >&2
        rm -rf "$dir"
        return 1
    fi

    for ((attempt = 1; attempt <= 10; attempt++)); do
        port=$(_pg_pick_port) || break
        opts="-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c max_connections=200"
        if [[ "${PG_DURABLE:-0}" != 1 ]]; then
            opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        fi
        if [[ -n "${PG_EXTRA_OPTS:-}" ]]; then
            opts+=" $PG_EXTRA_OPTS"
        fi
        if _pg_as_owner "$bindir/pg_ctl" -w -D "$dir" -l "$dir/log" start -o "$opts" >/dev/null 2>&1; then
            export PGDIR_STARTED="$dir"
            export PGPORT_STARTED="$port"
            export CONVSTATE_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
            echo "pg.sh: PostgreSQL started on 127.0.0.1:$port (data $dir)"
            return 0
        fi
        # A failed start may still have left a half-started server behind.
        _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
        echo "pg.sh: start on port $port failed (attempt $attempt/10)" >&2
    done

    echo "pg.sh: could not start PostgreSQL; server log tail:" >&2
    tail -n 40 "$dir/log" >&2 2>/dev/null || true
    rm -rf "$dir"
    return 1
}

pg_stop() {
    local dir=${PGDIR_STARTED:-} bindir
    if [[ -z "$dir" ]]; then
        return 0
    fi
    if [[ -f "$dir/postmaster.pid" ]]; then
        bindir=$(_pg_bindir 2>/dev/null) || bindir=
        if [[ -n "$bindir" ]]; then
            if ! _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1; then
                _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
            fi
        fi
    fi
    rm -rf "$dir"
    unset PGDIR_STARTED PGPORT_STARTED CONVSTATE_TEST_PG_URL
    return 0
}
