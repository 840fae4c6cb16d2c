#!/usr/bin/env bash
# The HTTP load figure: chat turns/s and p50/p99 latency of examples/http_server with 1 instance
# and with 3 instances against one durable PostgreSQL (fsync on), measured with wrk.
#
# Usage: tests/http/load.sh PATH/TO/http_server [--duration S] [--connections N]
#                           [--conversations N] [--threads N] [--pool N] [--pg-url URL]
#
# A benchmark, not a test: it asserts nothing about timings. It exits nonzero only when it cannot
# run (or when requests failed, which makes the figure meaningless). Each configuration runs on a
# fresh set of pre-created conversations of one user; every request is a keyed turn continuing one
# of them (demo agent, no tool call). wrk: `scripts/deps.sh wrk`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

server=${1:?usage: load.sh PATH/TO/http_server [--duration S] [--connections N] ...}
shift
server=$(realpath "$server")
duration=20
connections=24
conversations=96
threads=8
pool=8
pg_url=
while (($#)); do
    case $1 in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --conversations) conversations=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --pool) pool=$2; shift 2 ;;
    --pg-url) pg_url=$2; shift 2 ;;
    *) echo "load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

command -v wrk >/dev/null || { echo "load.sh: wrk not found (scripts/deps.sh wrk)" >&2; exit 2; }
command -v psql >/dev/null || { echo "load.sh: psql not found" >&2; exit 2; }

work=$(mktemp -d -t convstate-load.XXXXXX)
pids=()
stop_servers() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
# shellcheck source=scripts/pg.sh disable=SC1091
source "$root/scripts/pg.sh"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    stop_servers
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "$pg_url" ]]; then
    PG_DURABLE=1 pg_start >/dev/null
    pg_url=$CONVSTATE_TEST_PG_URL
fi

read -r secret user token < <(python3 - <<'EOF'
import base64, hashlib, hmac, json, secrets, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret, sub = secrets.token_urlsafe(32), "load-" + secrets.token_hex(4)
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 86400}).encode())
s = b64(hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(secret, sub, f"{h}.{p}.{s}")
EOF
)
export CONVSTATE_JWT_SECRET=$secret

# Start one instance on a free port; sets $started_port (not a subshell: $pids must be kept).
start_server() {
    local i=$1 out=$work/server$1.out port
    "$server" --listen 127.0.0.1 --port 0 --db "$pg_url" --threads "$threads" --pool "$pool" \
        >"$out" 2>"$work/server$i.err" &
    pids+=($!)
    for _ in $(seq 200); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
        if [[ -n "$port" ]]; then
            started_port=$port
            return 0
        fi
        sleep 0.05
    done
    echo "load.sh: server $i did not start:" >&2
    tail -n 20 "$work/server$i.err" >&2
    return 1
}

# Create $conversations conversations (first turn each) through the given port; prints the ids,
# comma-separated. One python3 process: a pyenv shim costs about a second per start.
create_conversations() {
    python3 - "$1" "$2" "$user" "$token" "$conversations" <<'EOF'
import json, sys, urllib.request
port, run, user, token, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ids = []
for i in range(n):
    body = json.dumps({"message": "hello", "idempotency_key": f"{run}-create-{i}"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/{user}/chat", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        ids.append(json.load(resp)["conversation_id"])
print(",".join(ids))
EOF
}

results=()
status=0
for n in 1 3; do
    ports=()
    for ((i = 0; i < n; i++)); do
        start_server "$i"
        ports+=("$started_port")
    done
    run="r$n-$(date +%s)"
    convs=$(create_conversations "${ports[0]}" "$run")
    wrk_threads=3
    ((connections >= wrk_threads)) || wrk_threads=$connections
    out=$(
        IFS=,
        LOAD_TOKEN=$token LOAD_USER=$user LOAD_CONVS=$convs LOAD_PORTS="${ports[*]}" \
            LOAD_THREADS=$wrk_threads LOAD_RUN=$run \
            wrk -t "$wrk_threads" -c "$connections" -d "${duration}s" --timeout 10s \
            -s "$here/load.lua" "http://127.0.0.1:${ports[0]}/"
    )
    line=$(grep '^RESULT ' <<<"$out" || true)
    if [[ -z "$line" ]]; then
        echo "load.sh: wrk printed no result:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    declare -A r=()
    for kv in ${line#RESULT }; do
        r[${kv%%=*}]=${kv#*=}
    done
    errors=$((r[non2xx] + r[connect] + r[read] + r[write] + r[timeout]))
    ((errors == 0)) || status=1
    rate=$(awk -v q="${r[requests]}" -v us="${r[duration_us]}" 'BEGIN { printf "%.0f", q / (us / 1e6) }')
    p50=$(awk -v us="${r[p50_us]}" 'BEGIN { printf "%.1f", us / 1000 }')
    p99=$(awk -v us="${r[p99_us]}" 'BEGIN { printf "%.1f", us / 1000 }')
    # Rows actually stored by this run (keyed turns: user message + reply each).
    stored=$(psql -X -qAt -d "$pg_url" -c \
        "SELECT count(*) FROM convstate_messages WHERE user_id = '$user' AND idempotency_key LIKE '$run-%' AND idempotency_key NOT LIKE '$run-create-%'")
    results+=("| $n | $connections | $duration | ${r[requests]} | $rate | $p50 | $p99 | $errors | $stored |")
    stop_servers
done

nproc_=$(nproc)
echo
echo "http_server load: keyed chat turns continuing $conversations conversations of one user, demo agent"
echo "(no tool call), wrk $wrk_threads threads / $connections connections, ${duration} s per row, --threads $threads"
echo "--pool $pool per instance, one PostgreSQL with fsync on; all on one host with $nproc_ cores."
echo "turns = completed by wrk; messages stored = rows of the run (2 per turn, plus turns still in"
echo "flight when wrk stopped); errors = non-2xx + socket errors."
echo
echo "| instances | connections | seconds | turns | turns/s | p50 ms | p99 ms | errors | messages stored |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${results[@]}"
if ((status != 0)); then
    echo "load.sh: some requests failed (errors column); the figures are not meaningful" >&2
fi
exit "$status"
