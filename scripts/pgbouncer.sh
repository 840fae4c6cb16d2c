# shellcheck shell=bash
# A throwaway pgbouncer (Debian's, transaction pooling) in front of a test PostgreSQL. Source
# scripts/pg.sh first (for its helpers), then this file:
#
#   trap pgbouncer_stop EXIT
#   pgbouncer_start URL   # URL: postgresql://user@127.0.0.1:PORT/db of the server behind it;
#                         # exports PGBOUNCER_URL (the same database through pgbouncer)
#   ...
#   pgbouncer_stop        # safe to call twice or when nothing was started
#
# pgbouncer listens on 127.0.0.1 only, on a random free port, and serves every database of the
# server (`* =`) to any user without a password (auth_type = trust: a test server, on
# 127.0.0.1). The libpq startup parameter `options` (statement_timeout and the like) is
# ignored, as pgbouncer cannot apply it per transaction: set such limits on the server or its
# roles when running behind a pooler. As root it runs as the `postgres` OS user (pgbouncer
# refuses root).

pgbouncer_start() {
    local url=$1 user host port db dir bport attempt pid
    if [[ -n "${PGBOUNCER_DIR_STARTED:-}" ]]; then
        echo "pgbouncer.sh: already running (port ${PGBOUNCER_PORT_STARTED:-?})" >&2
        return 1
    fi
    if [[ ! "$url" =~ ^postgresql://([^@/]+)@([^:/]+):([0-9]+)/([^?]+)$ ]]; then
        echo "pgbouncer.sh: expected postgresql://user@host:port/db, got '$url'" >&2
        return 1
    fi
    user=${BASH_REMATCH[1]} host=${BASH_REMATCH[2]} port=${BASH_REMATCH[3]} db=${BASH_REMATCH[4]}
    command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || {
        echo "pgbouncer.sh: pgbouncer is not installed (scripts/deps.sh pgbouncer)" >&2
        return 1
    }
    dir=$(mktemp -d -t convstate-pgbouncer.XXXXXX) || return 1
    chmod 700 "$dir"
    printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
    for ((attempt = 1; attempt <= 10; attempt++)); do
        bport=$(_pg_pick_port) || break
        cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 400
default_pool_size = 40
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
        [[ "$(id -u)" -eq 0 ]] && chown -R postgres: "$dir"
        _pg_as_owner "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 || true
        for ((i = 0; i < 100; i++)); do
            [[ -s "$dir/pgbouncer.pid" ]] && ! _pg_port_free "$bport" && break
            sleep 0.05
        done
        pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
        if [[ -n "$pid" ]] && ! _pg_port_free "$bport"; then
            export PGBOUNCER_DIR_STARTED="$dir" PGBOUNCER_PORT_STARTED="$bport" PGBOUNCER_PID_STARTED="$pid"
            export PGBOUNCER_URL="postgresql://$user@127.0.0.1:$bport/$db"
            echo "pgbouncer.sh: pgbouncer (transaction pooling) on 127.0.0.1:$bport in front of $host:$port"
            return 0
        fi
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null
        echo "pgbouncer.sh: start on port $bport failed (attempt $attempt/10)" >&2
    done
    echo "pgbouncer.sh: could not start pgbouncer; log tail:" >&2
    tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    return 1
}

pgbouncer_stop() {
    local dir=${PGBOUNCER_DIR_STARTED:-} pid=${PGBOUNCER_PID_STARTED:-} i
    [[ -z "$dir" ]] && return 0
    if [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -rf "$dir"
    unset PGBOUNCER_DIR_STARTED PGBOUNCER_PORT_STARTED PGBOUNCER_PID_STARTED PGBOUNCER_URL
    return 0
}
