# shellcheck shell=bash
# Throwaway MariaDB server for tests. Source this file, then:
#
#   trap maria_stop EXIT
#   maria_start       # exports CONVSTATE_TEST_MARIADB_URL, MARIADB_PORT_STARTED, MARIADB_DIR_STARTED
#   ...
#   maria_stop        # safe to call twice or when nothing was started
#
# CONVSTATE_TEST_MARIADB_URL is mysql://convstate:convstate@127.0.0.1:PORT/convstate_test. The
# user `convstate`@`127.0.0.1` owns convstate_test and may create and drop any other database
# whose name starts with `convstate_` (one per test). The server's root user has no password
# and is reachable over the Unix socket only: mariadb --no-defaults -uroot -S "$MARIADB_SOCKET_STARTED".
# Also exported: MARIADB_PID_STARTED (the mariadbd process) and MARIADB_SOCKET_STARTED.
#
# Environment:
#   MARIADB_BINDIR     directory holding mariadbd, mariadb-install-db, mariadb and mariadb-admin
#                      (default: PATH, then /usr/sbin and /usr/bin)
#   MARIADB_DURABLE=1  keep innodb_flush_log_at_trx_commit=1 and the doublewrite buffer
#                      (for crash/durability tests)
#   MARIADB_EXTRA_OPTS extra server options, split on blanks and appended (later options win),
#                      e.g. "--max-connections=500 --sql-mode=ANSI" (default: none)
#   MARIADB_START_TIMEOUT seconds to wait for the server to accept connections (default: 60)
#
# The server is Debian 12's mariadb-server (10.11; install it with scripts/deps.sh mariadb-server).
# It runs with --no-defaults, so nothing under /etc/mysql is read, with its data directory, Unix
# socket, pid file, error log and tmpdir inside its own temp dir, and listens on 127.0.0.1 only,
# on a random free port in 20000-60000. As root, mariadb-install-db and the server run as the
# `mysql` OS user (--user=mysql), which then owns the temp dir.
#
# This file is meant to be sourced and therefore does not change the caller's shell options;
# the functions work with and without `set -euo pipefail`.

# Print the path of MariaDB program $1 (mariadbd, mariadb-install-db, mariadb, mariadb-admin) or fail.
_maria_bin() {
    local name=$1 d
    if [[ -n "${MARIADB_BINDIR:-}" ]]; then
        if [[ -x "$MARIADB_BINDIR/$name" ]]; then
            printf '%s\n' "$MARIADB_BINDIR/$name"
            return 0
        fi
        echo "mariadb.sh: no $name in MARIADB_BINDIR=$MARIADB_BINDIR" >&2
        return 1
    fi
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for d in /usr/sbin /usr/bin; do
        if [[ -x "$d/$name" ]]; then
            printf '%s\n' "$d/$name"
            return 0
        fi
    done
    echo "mariadb.sh: $name not found (install mariadb-server: scripts/deps.sh mariadb-server)" >&2
    return 1
}

# Succeeds when nothing listens on TCP port $1.
_maria_port_free() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [[ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# Print a random free port in 20000-60000.
_maria_pick_port() {
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
        if _maria_port_free "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    echo "mariadb.sh: could not find a free port" >&2
    return 1
}

# Succeeds when process $1 exists and is not a zombie.
_maria_alive() {
    local pid=$1 stat
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# Succeeds when process $1 is alive and is the mariadbd started on data directory $2/data, so
# that a recycled pid never gets a signal from us.
_maria_ours() {
    local pid=$1 dir=$2 cmdline
    _maria_alive "$pid" || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 0
    cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $'\n'"$cmdline"$'\n' == *$'\n'"--datadir=$dir/data"$'\n'* ]]
}

# Wait up to $2 seconds for process $1 to exit; fails if it is still there.
_maria_wait_exit() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        _maria_alive "$pid" || return 0
        sleep 0.1
    done
    ! _maria_alive "$pid"
}

# Stop mariadbd $1 (on temp dir $2): mariadb-admin shutdown over the socket, then SIGTERM, then
# SIGKILL, each given time to take effect. Only signals the process if it is still ours.
_maria_kill() {
    local pid=$1 dir=$2 admin
    _maria_ours "$pid" "$dir" || return 0
    if admin=$(_maria_bin mariadb-admin 2>/dev/null); then
        if command -v timeout >/dev/null 2>&1; then
            (cd / && timeout 40 "$admin" --no-defaults --protocol=socket --socket="$dir/mariadb.sock" \
                -uroot --connect-timeout=5 --shutdown-timeout=30 shutdown) >/dev/null 2>&1 || true
        else
            (cd / && "$admin" --no-defaults --protocol=socket --socket="$dir/mariadb.sock" \
                -uroot --connect-timeout=5 --shutdown-timeout=30 shutdown) >/dev/null 2>&1 || true
        fi
        _maria_wait_exit "$pid" 30 && return 0
    fi
    _maria_ours "$pid" "$dir" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    _maria_wait_exit "$pid" 30 && return 0
    _maria_ours "$pid" "$dir" || return 0
    echo "mariadb.sh: mariadbd $pid did not stop; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    _maria_wait_exit "$pid" 10 || true
    return 0
}

# Print the tail of the server's logs of the last start attempt in $1 to stderr.
_maria_log_tail() {
    local dir=$1
    tail -n 40 "$dir/error.log" >&2 2>/dev/null || true
    if [[ -s "$dir/server.out" ]]; then
        tail -n 20 "$dir/server.out" >&2 2>/dev/null || true
    fi
}

maria_start() {
    if [[ -n "${MARIADB_DIR_STARTED:-}" ]]; then
        echo "mariadb.sh: a server is already running in $MARIADB_DIR_STARTED (port ${MARIADB_PORT_STARTED:-?})" >&2
        return 1
    fi

    local mariadbd installdb client dir sock port attempt pid deadline state out f
    local -a user_opt=() opts=() extra=()
    mariadbd=$(_maria_bin mariadbd) || return 1
    installdb=$(_maria_bin mariadb-install-db) || return 1
    client=$(_maria_bin mariadb) || return 1

    dir=$(mktemp -d -t convstate-mariadb.XXXXXX) || return 1
    chmod 700 "$dir"
    sock="$dir/mariadb.sock"
    if ((${#sock} > 100)); then
        echo "mariadb.sh: socket path $sock is too long for a Unix socket (set TMPDIR shorter)" >&2
        rm -rf "$dir"
        return 1
    fi
    mkdir "$dir/tmp"
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! id -u mysql >/dev/null 2>&1; then
            echo "mariadb.sh: running as root but there is no 'mysql' user" >&2
            rm -rf "$dir"
            return 1
        fi
        chown mysql: "$dir" "$dir/tmp"
        if ! runuser -u mysql -- test -w "$dir" 2>/dev/null; then
            echo "mariadb.sh: the mysql user cannot reach $dir (is TMPDIR inside a private directory?)" >&2
            rm -rf "$dir"
            return 1
        fi
        user_opt=(--user=mysql)
    fi
    # From here on maria_stop (e.g. from the caller's EXIT trap) cleans up a half-started server.
    export MARIADB_DIR_STARTED="$dir"

    # Options shared by the bootstrap run and the server; --no-defaults must come first.
    opts=(--no-defaults "${user_opt[@]}" --datadir="$dir/data" --tmpdir="$dir/tmp"
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M)
    if ! out=$(cd / && "$installdb" "${opts[@]}" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve 2>&1); then
        printf '%s\n' "$out" >&2
        echo "mariadb.sh: mariadb-install-db failed" >&2
        maria_stop
        return 1
    fi

    opts+=(--socket="$sock" --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log"
        --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin --max-connections=200
        --max-allowed-packet=64M --character-set-server=utf8mb4 --collation-server=utf8mb4_bin)
    if [[ "${MARIADB_DURABLE:-0}" != 1 ]]; then
        opts+=(--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0)
    fi
    if [[ -n "${MARIADB_EXTRA_OPTS:-}" ]]; then
        read -r -a extra <<<"$MARIADB_EXTRA_OPTS"
    fi

    state=failed
    for ((attempt = 1; attempt <= 10; attempt++)); do
        port=$(_maria_pick_port) || break
        # As root, the log is created by mariadbd after it became mysql: do not create it here.
        rm -f "$dir/error.log" "$dir/server.out"
        # Started from a command substitution so that the server is not a child of the caller's
        # shell (a plain `wait` there must not wait for it), with every fd beyond 2 closed so that
        # it holds none of the caller's pipes open.
        pid=$(
            cd / || exit 1
            for f in /proc/self/fd/*; do
                f=${f##*/}
                if [[ "$f" =~ ^[0-9]+$ ]] && ((f > 2)); then eval "exec $f>&-"; fi
            done
            "$mariadbd" "${opts[@]}" --port="$port" "${extra[@]}" </dev/null >"$dir/server.out" 2>&1 &
            echo "$!"
        ) || pid=
        if [[ -z "$pid" ]]; then
            echo "mariadb.sh: could not spawn $mariadbd" >&2
            break
        fi
        export MARIADB_PID_STARTED="$pid"

        deadline=$((SECONDS + ${MARIADB_START_TIMEOUT:-60}))
        state=timeout
        while :; do
            if (cd / && "$client" --no-defaults --protocol=socket --socket="$sock" -uroot \
                --connect-timeout=2 -e 'SELECT 1') >/dev/null 2>&1; then
                state=up
                break
            fi
            if ! _maria_alive "$pid"; then
                state=died
                break
            fi
            if ((SECONDS >= deadline)); then
                break
            fi
            sleep 0.1
        done

        if [[ "$state" == up ]]; then
            break
        fi
        if [[ "$state" == died ]] &&
            grep -qE 'Address already in use|Bind on TCP/IP port' "$dir/error.log" "$dir/server.out" 2>/dev/null; then
            echo "mariadb.sh: start on port $port failed (attempt $attempt/10)" >&2
            unset MARIADB_PID_STARTED
            state=failed
            continue
        fi
        break
    done

    if [[ "$state" != up ]]; then
        if [[ "$state" == timeout ]]; then
            echo "mariadb.sh: MariaDB did not accept connections within ${MARIADB_START_TIMEOUT:-60} s; server log tail:" >&2
        else
            echo "mariadb.sh: could not start MariaDB; server log tail:" >&2
        fi
        _maria_log_tail "$dir"
        maria_stop
        return 1
    fi

    # `convstate\_%` is a database-name pattern: `\_` is a literal underscore, `%` any suffix.
    if ! out=$( (cd / && "$client" --no-defaults --protocol=socket --socket="$sock" -uroot) 2>&1 <<'EOF'
CREATE DATABASE convstate_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'convstate'@'127.0.0.1' IDENTIFIED BY 'convstate';
GRANT ALL PRIVILEGES ON convstate_test.* TO 'convstate'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `convstate\_%`.* TO 'convstate'@'127.0.0.1';
EOF
    ); then
        printf '%s\n' "$out" >&2
        echo "mariadb.sh: creating the test database and user failed" >&2
        maria_stop
        return 1
    fi

    export MARIADB_PORT_STARTED="$port"
    export MARIADB_SOCKET_STARTED="$sock"
    export CONVSTATE_TEST_MARIADB_URL="mysql://convstate:convstate@127.0.0.1:$port/convstate_test"
    echo "mariadb.sh: MariaDB started on 127.0.0.1:$port (data $dir)"
    return 0
}

maria_stop() {
    local dir=${MARIADB_DIR_STARTED:-} pid=${MARIADB_PID_STARTED:-}
    if [[ -z "$dir" ]]; then
        return 0
    fi
    if [[ -z "$pid" && -s "$dir/mariadbd.pid" ]]; then
        pid=$(cat "$dir/mariadbd.pid" 2>/dev/null) || pid=
    fi
    if [[ -n "$pid" ]]; then
        _maria_kill "$pid" "$dir"
    fi
    rm -rf "$dir"
    unset MARIADB_DIR_STARTED MARIADB_PORT_STARTED MARIADB_PID_STARTED MARIADB_SOCKET_STARTED \
        CONVSTATE_TEST_MARIADB_URL
    return 0
}
