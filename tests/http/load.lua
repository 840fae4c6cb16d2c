-- wrk script for tests/http/load.sh: POST chat turns that continue a set of conversations.
--
-- Environment (set by load.sh):
--   LOAD_TOKEN    a valid HS256 bearer token for LOAD_USER
--   LOAD_USER     the user owning every conversation
--   LOAD_CONVS    comma-separated conversation ids (pre-created)
--   LOAD_PORTS    comma-separated ports of the instances on 127.0.0.1; wrk thread i talks to
--                 instance i mod #ports (wrk runs one connection set per thread)
--   LOAD_THREADS  the -t given to wrk
--   LOAD_RUN      a per-run prefix for the idempotency keys
-- Each thread continues its own share of the conversations round-robin; every request carries
-- a new idempotency key. done() prints one machine-readable RESULT line.

local function split(s)
    local out = {}
    for item in string.gmatch(s or "", "[^,]+") do out[#out + 1] = item end
    return out
end

local next_id = 1

function setup(thread)
    local ports = split(os.getenv("LOAD_PORTS"))
    local port = ports[(next_id - 1) % #ports + 1]
    thread.addr = wrk.lookup("127.0.0.1", port)[1]
    thread:set("id", next_id)
    next_id = next_id + 1
end

local mine, path, headers, run
local n = 0

function init(args)
    local nthreads = tonumber(os.getenv("LOAD_THREADS"))
    mine = {}
    for i, c in ipairs(split(os.getenv("LOAD_CONVS"))) do
        if (i - 1) % nthreads == id - 1 then mine[#mine + 1] = c end
    end
    path = "/api/" .. os.getenv("LOAD_USER") .. "/chat"
    headers = {
        ["Authorization"] = "Bearer " .. os.getenv("LOAD_TOKEN"),
        ["Content-Type"] = "application/json",
    }
    run = os.getenv("LOAD_RUN")
end

function request()
    n = n + 1
    local conv = mine[(n - 1) % #mine + 1]
    local body = string.format(
        '{"message":"hello, this is message %d","conversation_id":"%s","idempotency_key":"%s-%d-%d"}',
        n, conv, run, id, n)
    return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), summary.errors.status, summary.errors.connect, summary.errors.read,
        summary.errors.write, summary.errors.timeout))
end
