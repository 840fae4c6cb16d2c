#!/usr/bin/env python3
"""Database crashes under keyed turns: nothing acknowledged is lost or stored twice.

Starts its own database server (--backend postgres, the default, or mariadb) and runs client
threads that each send keyed turns through the Python binding, retrying an attempt that failed
with the same key until it is acknowledged. Meanwhile the server is killed with SIGKILL at random
moments (--kills, default 30) and started again, losing whatever it had not flushed:

- postgres (fsync and synchronous_commit on): the whole server — the postmaster and every process
  it started — is killed and started again, losing whatever WAL it had not flushed: a user message
  committed without waiting for its flush (OrchestratorOptions::flush_user_message off, the
  default) may vanish, an acknowledged turn may not.
- mariadb (tests/maria_cluster.py; innodb_flush_log_at_trx_commit=1 and the doublewrite buffer
  at their defaults): mariadbd is killed and started again on the same port and data directory
  (InnoDB crash recovery). Every commit waits for its redo log flush, so an acknowledged turn
  may not vanish either.

Afterwards, for every acknowledged turn: its user message and its reply are stored exactly once,
with the acknowledged seqs; every conversation's seqs are dense 1..last_seq and every reply
follows its user message.

Usage: crash_test.py [--backend postgres|mariadb] [--kills 30] [--clients 6] [--unsafe-server]
       (CONVSTATE_LIBRARY names libconvstate_c)
"""
import argparse
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "http"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

import convstate  # noqa: E402
from fault_test import PgCluster, log, run_owner  # noqa: E402
from maria_cluster import MariaCluster  # noqa: E402

US = "\x1f"


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def kill_server(cluster):
    """SIGKILL the postmaster and every process it started (a server crash); returns once they
    are all gone (so that a new server can take the shared memory and the port)."""
    pid = int(run_owner(["head", "-1", f"{cluster.dir}/postmaster.pid"]).stdout.strip())
    victims = [pid] + children_of(pid)
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in victims:
        while os.path.exists(f"/proc/{p}"):
            time.sleep(0.01)


def crash(cluster, extra_opts=""):
    """A server crash (kill_server), then the server started again."""
    kill_server(cluster)
    opts = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k '{cluster.dir}' -c max_connections=200 {extra_opts}"
    run_owner([f"{cluster.bindir}/pg_ctl", "-w", "-D", cluster.dir, "-l", f"{cluster.dir}/log", "start", "-o", opts])


def client(url, n, stop, acked, errors):
    user = f"crash-user-{n}"
    db = convstate.Database(url, pool_size=1, max_retries=2, connect_timeout_ms=2000)
    conversation = None
    i = 0
    try:
        while not stop.is_set():
            key = f"{user}-turn-{i}"
            while True:  # this turn until it is acknowledged (same key every attempt)
                try:
                    r = db.turn(user, f"message {i}", lambda h, u, c: f"reply {len(h)}",
                                conversation_id=conversation, idempotency_key=key)
                    break
                except convstate.ConvstateError as e:
                    if not isinstance(e, (convstate.StorageError, convstate.Conflict)):
                        errors.append(f"{user} turn {i}: {type(e).__name__}: {e}")
                        return
                    if stop.is_set() and time.monotonic() > stop.deadline:
                        return
                    time.sleep(0.05)
            if conversation is None:
                conversation = r["conversation_id"]
            elif r["conversation_id"] != conversation:
                errors.append(f"{user} turn {i} went to conversation {r['conversation_id']}")
            acked.append((user, r["conversation_id"], key, r["user_seq"], r["reply_seq"]))
            i += 1
    finally:
        db.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("postgres", "mariadb"), default="postgres")
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--clients", type=int, default=6)
    # Shows that the check catches losses: the server restarted so that commits do not wait for
    # their flush (postgres: synchronous_commit=off; mariadb: innodb_flush_log_at_trx_commit=0),
    # so acknowledged turns can be lost (this run is expected to FAIL).
    ap.add_argument("--unsafe-server", action="store_true")
    a = ap.parse_args()
    if a.backend == "postgres":
        cluster = PgCluster()
        unsafe = "-c synchronous_commit=off -c wal_writer_delay=1000"
        restart = lambda: crash(cluster, unsafe if a.unsafe_server else "")  # noqa: E731
    else:
        cluster = MariaCluster("convstate_crash")
        unsafe = ["--innodb-flush-log-at-trx-commit=0"]
        restart = lambda: cluster.crash(unsafe if a.unsafe_server else [])  # noqa: E731
    failures = []
    stop = threading.Event()
    stop.deadline = float("inf")
    threads = []
    interrupted = False

    # SIGTERM (e.g. ctest's timeout) behaves like Ctrl-C: unwind through finally, which stops the
    # server and removes its directory.
    def on_sigterm(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        cluster.start()
        convstate.Database(cluster.url).close()  # the schema
        acked, errors = [], []
        threads = [threading.Thread(target=client, args=(cluster.url, n, stop, acked, errors)) for n in range(a.clients)]
        for t in threads:
            t.start()
        rng = random.Random(12345)
        for k in range(a.kills):
            time.sleep(rng.uniform(0.05, 0.6))
            before = len(acked)
            restart()
            log(f"crash {k + 1}/{a.kills}: {before} turns acknowledged so far")
        time.sleep(1.0)  # some turns after the last crash
        stop.deadline = time.monotonic() + 60
        stop.set()
        for t in threads:
            t.join(timeout=120)
        failures += errors

        # Check from the database.
        db = convstate.Database(cluster.url)
        by_conv = {}
        for user, conv, key, user_seq, reply_seq in acked:
            by_conv.setdefault((user, conv), []).append((key, user_seq, reply_seq))
        for (user, conv), turns in by_conv.items():
            messages = db.load_all(user, conv)
            seqs = [m["seq"] for m in messages]
            if seqs != list(range(1, len(seqs) + 1)):
                failures.append(f"{conv}: seqs not dense 1..n: {seqs[:20]}")
            keys = {}
            for m in messages:
                if m.get("idempotency_key"):
                    keys.setdefault(m["idempotency_key"], []).append(m["seq"])
            for key, user_seq, reply_seq in turns:
                if keys.get(key) != [user_seq]:
                    failures.append(f"{key}: user message at {keys.get(key)}, acknowledged at {user_seq}")
                if keys.get(key + US + "reply") != [reply_seq]:
                    failures.append(f"{key}: reply at {keys.get(key + US + 'reply')}, acknowledged at {reply_seq}")
            for m in messages:
                k = m.get("idempotency_key") or ""
                if k.endswith(US + "reply") and not keys.get(k[: -len(US + "reply")]):
                    failures.append(f"{k}: a reply without its user message")
        db.close()
        total = len(acked)
        print(f"crash test: {a.kills} server crashes, {total} acknowledged turns in {len(by_conv)} conversations, "
              f"{len(failures)} problems")
        if total < a.clients * 5:
            failures.append(f"only {total} turns acknowledged: the load did not run")
    except KeyboardInterrupt:
        interrupted = True
        print("crash test: interrupted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Client threads still running (an interrupted run) give up at their next failed attempt.
        stop.deadline = 0.0
        stop.set()
        cluster.stop()
        for t in threads:
            t.join(timeout=30)
    if interrupted:
        return 130
    for f in failures[:30]:
        print("FAIL", f)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
