#!/usr/bin/env python3
"""Failover to a synchronous standby under keyed turns: nothing acknowledged is lost or doubled.

Starts its own primary and a streaming-replication standby (both Debian's PostgreSQL, both on
127.0.0.1, fsync and synchronous_commit on, the standby named in synchronous_standby_names, so
a commit is acknowledged only once the standby has flushed it). Client threads send keyed turns
through the Python binding, all through one multi-host URL

    postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres?target_session_attrs=read-write

retrying an attempt that failed with the same key until it is acknowledged. Mid-load the
primary — the postmaster and every process it started — is killed with SIGKILL, and the standby
is promoted (pg_ctl promote). The library finds the new primary by itself: no client is told.

Afterwards, on the promoted server, for every acknowledged turn: its user message and reply are
stored exactly once, at the acknowledged seqs; every conversation's seqs are dense. Prints the
time to recover (from the kill to the first acknowledged turn begun after it) and the errors clients saw
meanwhile, by kind.

Usage: failover_test.py [--clients 8] [--before 2.0] [--after 3.0]
       (CONVSTATE_LIBRARY names libconvstate_c)
"""
import argparse
import collections
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "http"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bindings", "python"))

import convstate  # noqa: E402
from crash_test import kill_server  # noqa: E402
from fault_test import PgCluster, free_port, log, run_owner  # noqa: E402

US = "\x1f"
STANDBY_NAME = "convstate_standby"


def psql(cluster_port, sql, bindir):
    return run_owner([f"{bindir}/psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(cluster_port), "-U",
                      "postgres", "-d", "postgres", "-c", sql]).stdout.strip()


class Standby:
    """A streaming-replication standby of `primary`, made with pg_basebackup."""

    def __init__(self, primary):
        self.primary = primary
        self.bindir = primary.bindir
        self.dir = None
        self.port = None

    def start(self):
        parent = tempfile.mkdtemp(prefix="convstate-standby.")
        os.chmod(parent, 0o700)
        if os.geteuid() == 0:
            shutil.chown(parent, "postgres", "postgres")
        self.dir = os.path.join(parent, "data")
        run_owner([f"{self.bindir}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                   "-D", self.dir, "-R", "-X", "stream", "-c", "fast"], timeout=300)
        for _ in range(10):
            port = free_port()
            # cluster_name names the standby to the primary (its walreceiver's application_name).
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k '{self.dir}' -c max_connections=200"
                    f" -c cluster_name={STANDBY_NAME}")
            r = run_owner([f"{self.bindir}/pg_ctl", "-w", "-D", self.dir, "-l", f"{self.dir}/log", "start", "-o",
                           opts], check=False)
            if r.returncode == 0:
                self.port = port
                log(f"standby started on 127.0.0.1:{port}")
                return
        raise RuntimeError("could not start the standby")

    def stop(self):
        if not self.dir:
            return
        if os.path.exists(f"{self.dir}/postmaster.pid"):
            run_owner([f"{self.bindir}/pg_ctl", "-D", self.dir, "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(os.path.dirname(self.dir), ignore_errors=True)
        self.dir = None


def client(url, n, stop, acked, errors, problems):
    user = f"failover-user-{n}"
    db = convstate.Database(url, pool_size=1, max_retries=2, connect_timeout_ms=2000)
    conversation = None
    i = 0
    try:
        while not stop.is_set():
            key = f"{user}-turn-{i}"
            while True:  # this turn until it is acknowledged (same key every attempt)
                started = time.monotonic()
                try:
                    r = db.turn(user, f"message {i}", lambda h, u, c: f"reply {len(h)}",
                                conversation_id=conversation, idempotency_key=key)
                    break
                except convstate.ConvstateError as e:
                    errors.append((time.monotonic(), type(e).__name__))
                    if not isinstance(e, (convstate.StorageError, convstate.Conflict)):
                        problems.append(f"{user} turn {i}: {type(e).__name__}: {e}")
                        return
                    if stop.is_set() and time.monotonic() > stop.deadline:
                        problems.append(f"{user} turn {i}: still failing at the end: {e}")
                        return
                    time.sleep(0.05)
            if conversation is None:
                conversation = r["conversation_id"]
            acked.append((started, time.monotonic(), user, r["conversation_id"], key, r["user_seq"], r["reply_seq"]))
            i += 1
    finally:
        db.close()


def check_stored(url, acked):
    failures = []
    db = convstate.Database(url)
    by_conv = collections.defaultdict(list)
    for _, _, user, conv, key, user_seq, reply_seq in acked:
        by_conv[(user, conv)].append((key, user_seq, reply_seq))
    lost = doubled = 0
    for (user, conv), turns in by_conv.items():
        messages = db.load_all(user, conv)
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            failures.append(f"{conv}: seqs not dense 1..n: {seqs[:20]}")
        keys = collections.defaultdict(list)
        for m in messages:
            if m.get("idempotency_key"):
                keys[m["idempotency_key"]].append(m["seq"])
        for key, user_seq, reply_seq in turns:
            for k, seq in ((key, user_seq), (key + US + "reply", reply_seq)):
                found = keys.get(k, [])
                if not found:
                    lost += 1
                elif len(found) > 1:
                    doubled += 1
                if found != [seq]:
                    failures.append(f"{k!r}: stored at {found}, acknowledged at {seq}")
    db.close()
    return failures, lost, doubled, len(by_conv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--before", type=float, default=2.0, help="seconds of load before the kill")
    ap.add_argument("--after", type=float, default=3.0, help="seconds of load after the first recovery")
    a = ap.parse_args()
    primary = PgCluster()
    standby = Standby(primary)
    failures = []
    try:
        primary.start()
        standby.start()
        psql(primary.port, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'", primary.bindir)
        psql(primary.port, "SELECT pg_reload_conf()", primary.bindir)
        deadline = time.monotonic() + 60
        while psql(primary.port, "SELECT sync_state FROM pg_stat_replication", primary.bindir) != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            time.sleep(0.1)
        log("standby streaming, synchronous")
        url = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
               "?target_session_attrs=read-write")
        convstate.Database(url).close()  # the schema

        stop = threading.Event()
        stop.deadline = float("inf")
        acked, errors, problems = [], [], []
        threads = [threading.Thread(target=client, args=(url, n, stop, acked, errors, problems))
                   for n in range(a.clients)]
        for t in threads:
            t.start()
        time.sleep(a.before)
        before = len(acked)
        kill_server(primary)
        killed_at = time.monotonic()  # every process of the primary is gone
        log(f"primary killed with SIGKILL after {before} acknowledged turns")
        run_owner([f"{standby.bindir}/pg_ctl", "-D", standby.dir, "-w", "promote"], timeout=120)
        promoted_at = time.monotonic()
        log(f"standby promoted {promoted_at - killed_at:.2f} s after the kill")
        # Recovered: a turn whose (successful) attempt began after the kill was acknowledged.
        def recovered():
            return [done for started, done, *_ in acked if started > killed_at]
        deadline = time.monotonic() + 60
        while not recovered():
            if time.monotonic() > deadline:
                failures.append("no turn was acknowledged within 60 s of the kill")
                break
            time.sleep(0.01)
        time.sleep(a.after)
        stop.deadline = time.monotonic() + 60
        stop.set()
        for t in threads:
            t.join(timeout=120)
        failures += problems

        stored_failures, lost, doubled, conversations = check_stored(url, acked)
        failures += stored_failures
        kinds = collections.Counter(kind for t, kind in errors if t >= killed_at)
        recover_s = (min(recovered()) - killed_at) if recovered() else float("nan")
        after = len(acked) - before
        print(f"failover test: {len(acked)} acknowledged turns in {conversations} conversations "
              f"({before} before the kill, {after} after); lost={lost} duplicated={doubled}; "
              f"time to recover {recover_s:.2f} s (promotion took {promoted_at - killed_at:.2f} s); "
              f"errors clients saw meanwhile: {dict(kinds) or 'none'}")
        if before < a.clients or after < a.clients:
            failures.append(f"too few turns ({before} before, {after} after): the load did not run")
    finally:
        standby.stop()
        primary.stop()
    for f in failures[:30]:
        print("FAIL", f)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
