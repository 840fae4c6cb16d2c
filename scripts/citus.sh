# shellcheck shell=bash
# A throwaway Citus cluster for tests: a coordinator and two workers, each its own PostgreSQL 15
# on 127.0.0.1. Source scripts/pg.sh first (for its helpers), then this file:
#
#   citus_source            # prints the directory holding the Citus source tarball, or fails
#   citus_install           # builds and installs Citus into PostgreSQL 15 unless it is there
#   trap citus_stop EXIT
#   citus_start             # exports CONVSTATE_TEST_CITUS_URL (the coordinator)
#   citus_stop              # safe to call twice or when nothing was started
#
# PG_DURABLE=1 keeps fsync and synchronous_commit on (as scripts/pg.sh; for benchmarks).
#
# The source is citus-13.2.2.tar.gz (and its build fix for Debian's PostgreSQL 15.18,
# citus-13.2.2-pg15.18.patch) in $CONVSTATE_CITUS_SOURCE, or else ../shared/vendor beside the
# repository. Citus is not packaged in Debian 12, so it is built from that source (3-5 minutes
# on 2 cores) into build/citus and installed with `make install` (needs root: it writes
# PostgreSQL's lib/ and share/ directories).

CITUS_VERSION=13.2.2

citus_source() {
    local repo_root dir
    repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    for dir in "${CONVSTATE_CITUS_SOURCE:-}" "$repo_root/../shared/vendor"; do
        if [[ -n "$dir" && -f "$dir/citus-$CITUS_VERSION.tar.gz" ]]; then
            (cd "$dir" && pwd)
            return 0
        fi
    done
    return 1
}

citus_install() {
    local bindir libdir src repo_root build
    bindir=$(_pg_bindir) || return 1
    libdir=$("$bindir/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
    if [[ -f "$libdir/citus.so" ]]; then
        return 0
    fi
    src=$(citus_source) || {
        echo "citus.sh: no Citus source (set CONVSTATE_CITUS_SOURCE or put ../shared/vendor beside the repository)" >&2
        return 1
    }
    repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    "$repo_root/scripts/deps.sh" postgresql-15 postgresql-server-dev-15 liblz4-dev libzstd-dev libkrb5-dev \
        libcurl4-openssl-dev patch make || return 1
    build="$repo_root/build/citus"
    rm -rf "$build"
    mkdir -p "$build"
    echo "citus.sh: building Citus $CITUS_VERSION from $src (a few minutes)"
    tar -xzf "$src/citus-$CITUS_VERSION.tar.gz" -C "$build" || return 1
    (
        cd "$build/citus-$CITUS_VERSION" &&
            { [[ ! -f "$src/citus-$CITUS_VERSION-pg15.18.patch" ]] || patch -p1 <"$src/citus-$CITUS_VERSION-pg15.18.patch"; } &&
            PG_CONFIG="$bindir/pg_config" ./configure --without-libcurl >"$build/configure.log" 2>&1 &&
            make -j2 >"$build/make.log" 2>&1 &&
            make install >"$build/install.log" 2>&1
    ) || {
        echo "citus.sh: the Citus build failed; logs in $build" >&2
        tail -n 30 "$build"/*.log >&2 2>/dev/null || true
        return 1
    }
    echo "citus.sh: Citus $CITUS_VERSION installed into $libdir"
}

# Starts one node: initdb, then the server with Citus preloaded. Prints "dir port".
_citus_node() {
    local bindir=$1 dir port attempt opts
    dir=$(mktemp -d -t convstate-citus.XXXXXX) || return 1
    chmod 700 "$dir"
    [[ "$(id -u)" -eq 0 ]] && chown postgres: "$dir"
    _pg_as_owner "$bindir/initdb" -D "$dir" -A trust -E UTF8 --locale=C -U postgres >/dev/null 2>&1 || {
        echo "citus.sh: initdb failed" >&2
        rm -rf "$dir"
        return 1
    }
    for ((attempt = 1; attempt <= 10; attempt++)); do
        port=$(_pg_pick_port) || break
        opts="-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c max_connections=300"
        opts+=" -c shared_preload_libraries=citus"
        [[ "${PG_DURABLE:-0}" == 1 ]] || opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        opts+=" -c max_prepared_transactions=200"
        if _pg_as_owner "$bindir/pg_ctl" -w -D "$dir" -l "$dir/log" start -o "$opts" >/dev/null 2>&1; then
            printf '%s %s\n' "$dir" "$port"
            return 0
        fi
        _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
    done
    echo "citus.sh: a node did not start; log tail:" >&2
    tail -n 20 "$dir/log" >&2 2>/dev/null || true
    rm -rf "$dir"
    return 1
}

_citus_sql() { # port sql
    _pg_as_owner "$(_pg_bindir)/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

citus_start() {
    local bindir node dirs=() ports=() i
    if [[ -n "${CITUS_DIRS_STARTED:-}" ]]; then
        echo "citus.sh: a cluster is already running" >&2
        return 1
    fi
    bindir=$(_pg_bindir) || return 1
    for i in 0 1 2; do
        node=$(_citus_node "$bindir") || { CITUS_DIRS_STARTED="${dirs[*]}" citus_stop; return 1; }
        dirs+=("${node% *}")
        ports+=("${node#* }")
    done
    export CITUS_DIRS_STARTED="${dirs[*]}"
    for i in 0 1 2; do
        _citus_sql "${ports[$i]}" "CREATE EXTENSION citus" >/dev/null || { citus_stop; return 1; }
    done
    _citus_sql "${ports[0]}" "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" >/dev/null &&
        _citus_sql "${ports[0]}" "SELECT citus_add_node('127.0.0.1', ${ports[1]})" >/dev/null &&
        _citus_sql "${ports[0]}" "SELECT citus_add_node('127.0.0.1', ${ports[2]})" >/dev/null || {
        citus_stop
        return 1
    }
    export CITUS_PORTS_STARTED="${ports[*]}"
    export CONVSTATE_TEST_CITUS_URL="postgresql://postgres@127.0.0.1:${ports[0]}/postgres"
    echo "citus.sh: Citus coordinator on 127.0.0.1:${ports[0]}, workers on ${ports[1]} and ${ports[2]}"
}

citus_stop() {
    local dir bindir
    [[ -z "${CITUS_DIRS_STARTED:-}" ]] && return 0
    bindir=$(_pg_bindir 2>/dev/null) || bindir=
    for dir in $CITUS_DIRS_STARTED; do
        if [[ -n "$bindir" && -f "$dir/postmaster.pid" ]]; then
            _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 ||
                _pg_as_owner "$bindir/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$dir"
    done
    unset CITUS_DIRS_STARTED CITUS_PORTS_STARTED CONVSTATE_TEST_CITUS_URL
    return 0
}
