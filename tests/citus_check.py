#!/usr/bin/env python3
"""The library's operations on a Citus coordinator, each statement a single-shard query.

    citus_check.py COORDINATOR_URL        (run by tests/citus_test.sh; CONVSTATE_LIBRARY names
                                           libconvstate_c)

Opens the database once plainly (migrating it, which distributes the tables), then runs every
operation through a URL that sets citus.multi_task_query_log_level = error: the coordinator then
refuses any statement whose plan has more than one task (touches more than one shard), so an
operation that passes sent only single-shard (router) statements. Checks: 8 threads x 200 turns
on one conversation stay dense 1..3200, each reply after its own user message; keyed
turns replay; a split turn completes; appends, batches, windows, lists, loads, summaries, a
fork, an undo and the usage ledger work.
"""
import os
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

import convstate  # noqa: E402

THREADS, TURNS = 8, 200


def main():
    url = sys.argv[1]
    convstate.Database(url).close()  # migrates and distributes
    strict = url + ("&" if "?" in url else "?") + "options=" + urllib.parse.quote(
        "-c citus.multi_task_query_log_level=error")
    failures = []
    db = convstate.Database(strict, pool_size=THREADS)
    user = "citus-user"
    conv = db.create_conversation(user, "shared")["id"]

    errors = []

    def client(n):
        try:
            for i in range(TURNS):
                db.turn(user, f"t{n}-{i}", lambda h, u, c: f"r:{h[-1]['content']}", conversation_id=conv)
        except convstate.ConvstateError as e:
            errors.append(f"thread {n}: {type(e).__name__}: {e}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    failures += errors[:5]
    messages = db.load_all(user, conv)
    seqs = [m["seq"] for m in messages]
    if seqs != list(range(1, 2 * THREADS * TURNS + 1)):
        failures.append(f"seqs not dense 1..{2 * THREADS * TURNS}: {len(seqs)} messages")
    # Turns of different threads interleave; each reply comes after its own user message.
    user_seq = {m["content"]: m["seq"] for m in messages if m["role"] == "user"}
    replies = [m for m in messages if m["role"] == "assistant"]
    if len(user_seq) != THREADS * TURNS or len(replies) != THREADS * TURNS:
        failures.append(f"{len(user_seq)} user messages and {len(replies)} replies, expected {THREADS * TURNS} each")
    for r in replies:
        if user_seq.get(r["content"][2:], r["seq"]) >= r["seq"]:
            failures.append(f"seq {r['seq']}: a reply without its user message before it")
            break
    print(f"citus: {THREADS} threads x {TURNS} turns on one conversation in {elapsed:.1f} s "
          f"({THREADS * TURNS / elapsed:.0f} turns/s), {len(seqs)} messages, dense: {seqs == list(range(1, len(seqs) + 1))}")

    # Everything else a host does, on conversations of several users (several shards).
    for n in range(4):
        u = f"citus-other-{n}"
        first = db.turn(u, "hello", lambda h, uu, c: "hi", idempotency_key=f"k{n}", title="t")
        again = db.turn(u, "hello", lambda h, uu, c: "never", idempotency_key=f"k{n}")
        if not again.get("replayed") or again["reply_seq"] != first["reply_seq"]:
            failures.append(f"{u}: a keyed retry was not a replay: {again}")
        cid = first["conversation_id"]
        db.append(u, cid, {"role": "user", "content": "more"})
        db.append_batch(u, cid, [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}])
        begun = db.begin_turn(u, "split", conversation_id=cid)
        db.complete_turn(u, begun["token"], {"content": "done", "usage": {"model": "m", "prompt_tokens": 3}})
        db.add_summary(u, cid, 2, "the first exchange")
        window = db.window(u, cid, kind="last", max_messages=3)
        if window[-1]["content"] != "done":
            failures.append(f"{u}: window ends with {window[-1]}")
        fork = db.fork_conversation(u, cid, 4, title="fork")
        if db.count(u, fork["id"]) != 4 or len(db.forks(u, cid)) != 1:
            failures.append(f"{u}: the fork is wrong")
        if db.truncate(u, fork["id"], 2) != 2:
            failures.append(f"{u}: truncate removed the wrong number of messages")
        if db.usage(u, cid).get("replies") != 1:
            failures.append(f"{u}: usage {db.usage(u, cid)}")
        db.load_last(u, cid, 2)
        db.summaries(u, cid)
        if len(db.list_conversations(u)["items"]) != 2:
            failures.append(f"{u}: list {db.list_conversations(u)}")
        db.delete_conversation(u, fork["id"])
    print("citus: keyed, split, append, batch, window, summary, fork, truncate, usage, list, delete: done")

    db.close()
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
