#!/usr/bin/env python3
"""examples/http_server under a slow model: C concurrent chats against an upstream that takes
S seconds (tests/http/fake_upstream.py), with a `/health` probe every 20 ms meanwhile.

    http_load.py PATH/TO/http_server DB_URL [--chats 500] [--upstream-seconds 1] [--threads 2]

Each chat is its own user and connection, sent at once; every answer is checked (200, the
upstream's reply, user_seq 1 / reply_seq 2). Prints one `http` line: wall time, chats/s,
p50/p99 chat latency, and p50/p99/max of the /health probes taken while chats were in flight.
Python 3 standard library only (asyncio streams as the client).
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "http"))

import httptest  # noqa: E402
from fake_upstream import FakeUpstream  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"


async def request(port, method, path, body=None, token=None):
    """(status, body bytes) of one HTTP/1.1 request on a new connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(data)}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.split(b"\r\n\r\n", 1)[1]


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def load(port, chats):
    users = [f"load-{uuid.uuid4()}" for _ in range(chats)]
    tokens = [httptest.make_token(u, SECRET) for u in users]
    latencies = []

    async def chat(i):
        t0 = time.perf_counter()
        status, body = await request(port, "POST", f"/api/{users[i]}/chat", {"message": f"slow {i}"}, tokens[i])
        latencies.append(time.perf_counter() - t0)
        answer = json.loads(body)
        assert status == 200 and answer["response"] == f"upstream: slow {i}" and answer["reply_seq"] == 2, body

    # The probe runs in a process of its own, so that this event loop's work on 500 answers
    # does not count as the server's latency.
    stop = multiprocessing.Event()
    results = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe, args=(port, stop, results))
    prober.start()
    await asyncio.sleep(0.1)
    start = time.perf_counter()
    await asyncio.gather(*(chat(i) for i in range(chats)))
    wall = time.perf_counter() - start
    stop.set()
    health = results.get(timeout=30)
    prober.join()
    return wall, latencies, health


def probe(port, stop, results):
    """GET /health every 20 ms until stop; puts the list of latencies (s) on results."""
    import http.client

    out = []
    while not stop.is_set():
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        assert status == 200
        out.append(time.perf_counter() - t0)
        time.sleep(0.02)
    results.put(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("db_url")
    ap.add_argument("--chats", type=int, default=500)
    ap.add_argument("--upstream-seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    backend = "sqlite" if a.db_url.startswith("sqlite") else "postgres"
    with FakeUpstream(slow_seconds=a.upstream_seconds) as up:
        srv = httptest.Server(a.binary, a.db_url, SECRET, threads=a.threads,
                              args=("--upstream", up.url, "--pool", "4", "--max-connections", "4096"))
        try:
            wall, lat, health = asyncio.run(load(srv.port, a.chats))
        finally:
            code = srv.stop()
        assert code == 0, f"the server exited {code}"
    ms = lambda s: f"{s * 1000:.1f}"  # noqa: E731
    print(f"http backend={backend} chats={a.chats} upstream_s={a.upstream_seconds} threads={a.threads} "
          f"wall_s={wall:.3f} chats_per_s={a.chats / wall:.1f} p50_ms={ms(statistics.median(lat))} "
          f"p99_ms={ms(pct(lat, 99))} health_probes={len(health)} health_p50_ms={ms(statistics.median(health))} "
          f"health_p99_ms={ms(pct(health, 99))} health_max_ms={ms(max(health))}")


if __name__ == "__main__":
    main()
