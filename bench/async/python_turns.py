#!/usr/bin/env python3
"""N concurrent turns whose agent awaits a 0.5 s "model", through convstate.aio, on one backend.

    python_turns.py URL [--turns 200] [--model-seconds 0.5]

Prints one line per variant: `python impl=aio ...` (await db.turn with an async def agent) and
`python impl=to_thread ...` (the workaround without convstate.aio: the blocking Database.turn in
asyncio.to_thread, whose default executor has min(32, cores + 4) threads), with the wall time of
all N turns and what was stored checked.
"""
import argparse
import asyncio
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))

import convstate  # noqa: E402
from convstate.aio import AsyncDatabase  # noqa: E402


def backend_of(url):
    return "sqlite" if url.startswith("sqlite") else "postgres"


async def aio_run(url, turns, model_seconds):
    async def agent(history, user, conversation):
        await asyncio.sleep(model_seconds)
        return "re: " + history[-1]["content"]

    async with AsyncDatabase(url, pool_size=4) as db:
        user = f"bench-aio-{uuid.uuid4()}"
        start = time.perf_counter()
        results = await asyncio.gather(*(db.turn(user, f"m{i}", agent) for i in range(turns)))
        wall = time.perf_counter() - start
        assert all(r["reply"] == f"re: m{i}" and r["reply_seq"] == 2 for i, r in enumerate(results))
        return wall


async def to_thread_run(url, turns, model_seconds):
    def agent(history, user, conversation):
        time.sleep(model_seconds)  # a blocking model call, as the sync API requires
        return "re: " + history[-1]["content"]

    with convstate.Database(url, pool_size=4) as db:
        user = f"bench-thread-{uuid.uuid4()}"
        start = time.perf_counter()
        results = await asyncio.gather(*(asyncio.to_thread(db.turn, user, f"m{i}", agent) for i in range(turns)))
        wall = time.perf_counter() - start
        assert all(r["reply"] == f"re: m{i}" for i, r in enumerate(results))
        return wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--model-seconds", type=float, default=0.5)
    a = ap.parse_args()
    b = backend_of(a.url)
    aio = asyncio.run(aio_run(a.url, a.turns, a.model_seconds))
    print(f"python impl=aio backend={b} turns={a.turns} model_s={a.model_seconds} wall_s={aio:.3f}", flush=True)
    thread = asyncio.run(to_thread_run(a.url, a.turns, a.model_seconds))
    print(f"python impl=to_thread backend={b} turns={a.turns} model_s={a.model_seconds} wall_s={thread:.3f}")
    print(f"ratio=to_thread/aio backend={b} wall_s={thread / aio:.2f}")


if __name__ == "__main__":
    main()
