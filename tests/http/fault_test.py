#!/usr/bin/env python3
"""Bounded scale-out and fault test for examples/http_server.

Usage: fault_test.py PATH/TO/http_server [--pg-url URL [--pg-ctl-datadir DIR]]
                     [--clients 12] [--turns 25] [--duration 60] [--pg-down 3] [--keep]

Starts (or uses) a PostgreSQL, three server instances on 127.0.0.1 and a load generator whose
clients each own a user and one or two conversations; every request goes to a random instance and
carries an idempotency key, and a failed attempt (connection error, timeout, 5xx) is retried with
the same key, possibly on another instance. During the run one instance is SIGKILLed and
restarted on the same port, and PostgreSQL is restarted once: by default pg_ctl stop -m fast,
3 s down, pg_ctl start (--pg-down S; --pg-down 0 is a plain `pg_ctl restart -m fast`, which the
library's own reconnect-and-retry hides from the clients: no 503 is seen).

Afterwards the database (through psql) and the client log are checked: every acknowledged turn is
stored exactly once (user message K, reply K<US>reply, US = U+001F), seqs are dense 1..last_seq, no reply without
its user message, no message under a conversation of another user, no duplicated keys.

Python 3 standard library only. Exit status 0 only when every check passes.
"""

import argparse
import csv
import http.client
import io
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import httptest

# ---------------------------------------------------------------------------------------------
# Small helpers


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def make_jwt(secret, sub, ttl=3600):
    return httptest.make_token(sub, secret, exp_in=ttl)


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a throwaway durable cluster, mirroring scripts/pg.sh


def pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    if os.access("/usr/lib/postgresql/15/bin/initdb", os.X_OK):
        return "/usr/lib/postgresql/15/bin"
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if d and os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    except OSError:
        pass
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        vers = sorted((v for v in os.listdir(base) if os.access(f"{base}/{v}/bin/initdb", os.X_OK)),
                      key=lambda v: [int(x) if x.isdigit() else 0 for x in v.split(".")])
        if vers:
            return f"{base}/{vers[-1]}/bin"
    raise RuntimeError("no PostgreSQL server binaries found (install postgresql-15)")


def as_owner(argv):
    """The command run as the postgres OS user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


def run_owner(argv, check=True, timeout=120):
    r = subprocess.run(as_owner(argv), cwd="/", capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


class PgCluster:
    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = None
        self.port = None
        self.url = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="convstate-pg.")
        os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        run_owner([f"{self.bindir}/initdb", "-D", self.dir, "-A", "trust", "-E", "UTF8",
                   "--locale=C", "-U", "postgres"])
        for attempt in range(1, 11):
            port = free_port()
            # Durable: fsync, synchronous_commit and full_page_writes stay at their defaults (on).
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k '{self.dir}' -c max_connections=200"
            r = run_owner([f"{self.bindir}/pg_ctl", "-w", "-D", self.dir, "-l", f"{self.dir}/log",
                           "start", "-o", opts], check=False)
            if r.returncode == 0:
                self.port = port
                self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                log(f"PostgreSQL started on 127.0.0.1:{port} (data {self.dir}, fsync on)")
                return
            run_owner([f"{self.bindir}/pg_ctl", "-D", self.dir, "-m", "immediate", "-w", "stop"],
                      check=False)
            log(f"PostgreSQL start on port {port} failed (attempt {attempt}/10)")
        raise RuntimeError("could not start PostgreSQL:\n" + self.log_tail())

    def log_tail(self, n=40):
        try:
            with open(f"{self.dir}/log") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if not self.dir:
            return
        if os.path.exists(f"{self.dir}/postmaster.pid"):
            try:
                r = run_owner([f"{self.bindir}/pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop"],
                              check=False)
                if r.returncode != 0:
                    run_owner([f"{self.bindir}/pg_ctl", "-D", self.dir, "-m", "immediate", "-w",
                               "stop"], check=False)
            except Exception as e:  # noqa: BLE001 - best effort cleanup
                log(f"pg stop: {e}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def pg_restart(bindir, datadir, down=0.0):
    """pg_ctl restart -m fast (the server options come back from postmaster.opts). With down > 0:
    pg_ctl stop -m fast, `down` seconds without a server, pg_ctl start with the same options."""
    t0 = time.monotonic()
    if down <= 0:
        run_owner([f"{bindir}/pg_ctl", "-D", datadir, "-m", "fast", "-w", "-l",
                   f"{datadir}/log.restart", "restart"], timeout=120)
        return time.monotonic() - t0
    # postmaster.opts: /path/postgres "-D" "/data" "-c" "..." ... (readable by the owner only).
    opts_text = run_owner(["cat", f"{datadir}/postmaster.opts"]).stdout
    argv = shlex.split(opts_text)[1:]
    opts = []
    i = 0
    while i < len(argv):
        if argv[i] == "-D":
            i += 2
            continue
        opts.append(argv[i])
        i += 1
    run_owner([f"{bindir}/pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop"], timeout=120)
    time.sleep(down)
    run_owner([f"{bindir}/pg_ctl", "-D", datadir, "-w", "-l", f"{datadir}/log.restart", "start",
               "-o", shlex.join(opts)], timeout=120)
    return time.monotonic() - t0


# The key convstate derives for a keyed turn's reply: the turn's key, U+001F, "reply".
REPLY_SUFFIX = "\x1freply"


def psql_rows(url, sql):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--csv", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}\n{sql}")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    if not rows:
        return []
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:]]


# ---------------------------------------------------------------------------------------------
# Server instances


class Server:
    def __init__(self, binary, index, port, db_url, secret, workdir, threads, pool):
        self.binary = binary
        self.index = index
        self.port = port
        self.db_url = db_url
        self.secret = secret
        self.workdir = workdir
        self.threads = threads
        self.pool = pool
        self.proc = None
        self.generation = 0

    def start(self, timeout=20):
        self.generation += 1
        out = open(os.path.join(self.workdir, f"server{self.index}.{self.generation}.out"), "w+")
        err = open(os.path.join(self.workdir, f"server{self.index}.{self.generation}.err"), "w")
        env = dict(os.environ, CONVSTATE_JWT_SECRET=self.secret)
        argv = [self.binary, "--listen", "127.0.0.1", "--port", str(self.port), "--db", self.db_url,
                "--threads", str(self.threads), "--pool", str(self.pool),
                # A killed instance's keyed turn is run again by a retry after 2 s (until then
                # retries wait for it): short, so the test's kills cost little time.
                "--run-lease", "2"]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=env)
            while time.monotonic() < deadline:
                out.seek(0)
                text = out.read()
                if f"listening on 127.0.0.1:{self.port}" in text:
                    return
                if "listening on" in text:
                    raise RuntimeError(f"server {self.index} listens elsewhere: {text.strip()}")
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"server {self.index} did not print 'listening on' in {timeout}s:"
                                   f"\n{self.stderr_tail(err.name)}")
            # Exited: the port may still be busy after a SIGKILL; try again until the deadline.
            if time.monotonic() >= deadline:
                raise RuntimeError(f"server {self.index} exited {self.proc.returncode}:\n"
                                   + self.stderr_tail(err.name))
            time.sleep(0.2)

    @staticmethod
    def stderr_tail(path, n=1500):
        try:
            with open(path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout=15):
        """SIGTERM; returns the exit status, or None when it had to be SIGKILLed."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        return httptest.stop_process(self.proc, signal.SIGTERM, timeout)


# ---------------------------------------------------------------------------------------------
# Load generator


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0       # HTTP attempts
        self.retried = 0        # attempts after the first of a turn
        self.failed_503 = 0     # attempts answered 503
        self.retried_running = 0  # attempts answered 409: the same keyed turn running elsewhere
        self.codes_503 = {}     # error.code of the 503 answers -> count
        self.failed_5xx = 0     # attempts answered another 5xx
        self.conn_errors = 0    # connection errors / timeouts
        self.unexpected = []    # non-retryable answers (4xx, bad JSON, ...)
        self.acks = []          # dicts: user, conv, key, response, tool_calls, instance
        self.failed_turns = []  # turns given up after all attempts
        self.attempt_log = []   # (t, user, key, instance, outcome)

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def http_request(port, method, path, token, body=None, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Client(threading.Thread):
    def __init__(self, idx, run_id, secret, ports, stats, turns, max_attempts, deadline, t0,
                 faults_done):
        super().__init__(name=f"client{idx}", daemon=True)
        self.faults_done = faults_done
        self.idx = idx
        self.user = f"fault-{run_id}-u{idx}"
        self.token = make_jwt(secret, self.user)
        self.ports = ports
        self.stats = stats
        self.turns = turns
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.t0 = t0
        self.rng = random.Random(f"{run_id}-{idx}")
        self.n_conversations = 1 + idx % 2
        self.conv_ids = [None] * self.n_conversations  # learnt from the first acknowledged turn

    def run(self):
        # At least `turns` turns, and on until the faults are over; never past the deadline.
        turn = 0
        while time.monotonic() < self.deadline and (
                turn < self.turns or not self.faults_done.is_set()):
            slot = self.rng.randrange(self.n_conversations)
            key = f"{self.user}-c{slot}-t{turn}-{secrets.token_hex(4)}"
            self.do_turn(slot, key, turn)
            turn += 1
            time.sleep(self.rng.uniform(0.0, 0.05))

    def do_turn(self, slot, key, turn):
        conv = self.conv_ids[slot]
        body = {"message": f"turn {turn} of client {self.idx}: what is {turn} + {self.idx}?",
                "idempotency_key": key}
        if conv is not None:
            body["conversation_id"] = conv
        backoff = 0.1
        for attempt in range(self.max_attempts):
            if attempt > 0:
                self.stats.add(retried=1)
                time.sleep(backoff + self.rng.uniform(0, backoff))
                backoff = min(backoff * 2, 1.5)
            port = self.rng.choice(self.ports)
            self.stats.add(requests=1)
            t = time.monotonic() - self.t0
            try:
                status, data = http_request(port, "POST", f"/api/{self.user}/chat", self.token, body)
            except (OSError, http.client.HTTPException) as e:
                self.stats.add(conn_errors=1)
                self.record(t, key, port, f"error {type(e).__name__}")
                continue
            self.record(t, key, port, str(status))
            if status == 200:
                try:
                    res = json.loads(data)
                    cid = res["conversation_id"]
                    response = res["response"]
                except (ValueError, KeyError, TypeError) as e:
                    with self.stats.lock:
                        self.stats.unexpected.append(f"{key}: bad 200 body {data[:200]!r} ({e})")
                    return
                with self.stats.lock:
                    self.stats.acks.append({"user": self.user, "conv": cid, "key": key,
                                            "response": response, "port": port,
                                            "created": conv is None, "slot": slot,
                                            "user_seq": res.get("user_seq"),
                                            "reply_seq": res.get("reply_seq"),
                                            "tool_calls": res.get("tool_calls")})
                if conv is None:
                    self.conv_ids[slot] = cid
                elif cid != conv:
                    with self.stats.lock:
                        self.stats.unexpected.append(f"{key}: answered for conversation {cid}, "
                                                     f"sent {conv}")
                return
            if status == 503:
                self.stats.add(failed_503=1)
                try:
                    code = json.loads(data)["error"].get("code")
                except (ValueError, KeyError, TypeError, AttributeError):
                    code = None
                with self.stats.lock:
                    self.stats.codes_503[code] = self.stats.codes_503.get(code, 0) + 1
                continue
            if status == 409 and b"still running" in data:
                # The same keyed turn is running on another instance: retry later, same key.
                self.stats.add(retried_running=1)
                time.sleep(0.2)
                continue
            if status >= 500:
                self.stats.add(failed_5xx=1)
                continue
            with self.stats.lock:
                self.stats.unexpected.append(f"{key}: HTTP {status} {data[:200]!r}")
            return
        with self.stats.lock:
            self.stats.failed_turns.append({"user": self.user, "key": key, "conv": conv})

    def record(self, t, key, port, outcome):
        with self.stats.lock:
            self.stats.attempt_log.append((round(t, 3), self.user, key, port, outcome))


# ---------------------------------------------------------------------------------------------
# Checks


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)
        return ok


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def verify(url, run_id, stats, checks, api_port, secret):
    prefix = f"fault-{run_id}-u"
    like = sql_str(prefix + "%")
    msgs = psql_rows(url, "SELECT user_id, conversation_id, seq, role, idempotency_key, content "
                          f"FROM convstate_messages WHERE user_id LIKE {like} "
                          "ORDER BY user_id, conversation_id, seq")
    convs = psql_rows(url, "SELECT user_id, id, last_seq, create_key FROM convstate_conversations "
                           f"WHERE user_id LIKE {like}")
    # Every message whose conversation id belongs to one of this run's conversations (any user).
    foreign = psql_rows(url, "SELECT m.user_id, m.conversation_id, m.seq FROM convstate_messages m "
                             "JOIN convstate_conversations c ON c.id = m.conversation_id "
                             f"WHERE (c.user_id LIKE {like} OR m.user_id LIKE {like}) "
                             "AND c.user_id <> m.user_id")
    orphans = psql_rows(url, "SELECT m.user_id, m.conversation_id, m.seq FROM convstate_messages m "
                             f"WHERE m.user_id LIKE {like} AND NOT EXISTS (SELECT 1 FROM "
                             "convstate_conversations c WHERE c.user_id = m.user_id "
                             "AND c.id = m.conversation_id)")
    print(f"database: {len(convs)} conversations, {len(msgs)} messages", flush=True)

    # Index messages.
    by_conv = {}
    by_user_key = {}   # (user, key) -> list of (conv, seq, role, content)
    for m in msgs:
        by_conv.setdefault((m["user_id"], m["conversation_id"]), []).append(int(m["seq"]))
        k = m["idempotency_key"]
        if k:
            by_user_key.setdefault((m["user_id"], k), []).append(
                (m["conversation_id"], int(m["seq"]), m["role"], m["content"]))

    # Seqs dense 1..last_seq.
    bad_dense = []
    conv_keys = {(c["user_id"], c["id"]): int(c["last_seq"]) for c in convs}
    for ck, last in conv_keys.items():
        seqs = by_conv.get(ck, [])
        if seqs != list(range(1, last + 1)):
            bad_dense.append(f"{ck[1]}: last_seq={last} seqs={seqs[:5]}..{seqs[-5:]} n={len(seqs)}")
    checks.check("seqs dense 1..last_seq in every conversation", not bad_dense,
                 "; ".join(bad_dense[:5]))
    checks.check("no message without its conversation row", not orphans, str(orphans[:5]))
    checks.check("no message of one user in a conversation of another", not foreign,
                 str(foreign[:5]))

    # Duplicated keys: a key stored more than once for a user (in any of its conversations).
    dup = {k: v for k, v in by_user_key.items() if len(v) > 1}
    duplicated = len(dup)
    # Conversations created more than once for one create key cannot exist (unique index); a key
    # whose turn shows up in two conversations is caught above.
    checks.check("no idempotency key stored twice", duplicated == 0,
                 "; ".join(f"{k}: {v}" for k, v in list(dup.items())[:5]))

    # No reply without its user message, in the same conversation, after it.
    bad_reply = []
    for (user, key), rows in by_user_key.items():
        if key.endswith(REPLY_SUFFIX):
            base = key[: -len(REPLY_SUFFIX)]
            users = by_user_key.get((user, base), [])
            if not any(u[0] == r[0] and u[1] < r[1] and u[2] == "user" for r in rows for u in users):
                bad_reply.append(key)
    checks.check("no reply without its user message (before it, same conversation)",
                 not bad_reply, ", ".join(bad_reply[:5]))

    # Every acknowledged turn stored exactly once: K (role user) and its reply key (role assistant),
    # in the conversation the response named, reply content == response.
    lost = []
    mismatched = []
    for a in stats.acks:
        u = by_user_key.get((a["user"], a["key"]), [])
        r = by_user_key.get((a["user"], a["key"] + REPLY_SUFFIX), [])
        if len(u) == 0 or len(r) == 0:
            lost.append(a["key"])
            continue
        if len(u) > 1 or len(r) > 1:
            continue  # counted as duplicated
        if u[0][0] != a["conv"] or r[0][0] != a["conv"]:
            mismatched.append(f"{a['key']}: stored in {u[0][0]}/{r[0][0]}, acked {a['conv']}")
        elif u[0][2] != "user" or r[0][2] != "assistant":
            mismatched.append(f"{a['key']}: roles {u[0][2]}/{r[0][2]}")
        elif a["user_seq"] is not None and (u[0][1], r[0][1]) != (a["user_seq"], a["reply_seq"]):
            mismatched.append(f"{a['key']}: stored at seqs {u[0][1]}/{r[0][1]}, acked "
                              f"{a['user_seq']}/{a['reply_seq']}")
        elif r[0][3] != a["response"]:
            mismatched.append(f"{a['key']}: reply {r[0][3][:60]!r} != response {a['response'][:60]!r}")
    checks.check("every acknowledged turn's user message and reply stored", not lost,
                 ", ".join(lost[:5]))
    checks.check("acknowledged turns stored in the acknowledged conversation with the same reply",
                 not mismatched, "; ".join(mismatched[:5]))

    # Acknowledged keys are unique in the client log (retries of one key ack the same result).
    ack_keys = [a["key"] for a in stats.acks]
    checks.check("each turn acknowledged once in the client log", len(ack_keys) == len(set(ack_keys)))

    # Each client slot maps to one conversation: retries of a creating turn did not create two.
    slot_convs = {}
    for a in stats.acks:
        slot_convs.setdefault((a["user"], a["slot"]), set()).add(a["conv"])
    split = {k: v for k, v in slot_convs.items() if len(v) > 1}
    checks.check("a client's conversation keeps one id across instances", not split, str(split)[:300])

    # Conversations per user: one per slot that was ever acknowledged, plus at most one per
    # failed creating turn (its outcome is unknown to the client).
    extra = []
    per_user = {}
    for (user, cid) in conv_keys:
        per_user.setdefault(user, set()).add(cid)
    failed_creates = {}
    for f in stats.failed_turns:
        if f["conv"] is None:
            failed_creates[f["user"]] = failed_creates.get(f["user"], 0) + 1
    for user, cids in per_user.items():
        acked = {c for (u, _), s in slot_convs.items() if u == user for c in s}
        if len(cids - acked) > failed_creates.get(user, 0):
            extra.append(f"{user}: {len(cids)} stored, {len(acked)} acknowledged")
    checks.check("no conversation created twice", not extra, "; ".join(extra[:5]))

    # The HTTP read path agrees with the database for one conversation per user (paged).
    api_bad = []
    sample = {}
    for a in stats.acks:
        sample.setdefault(a["user"], a["conv"])
    for user, cid in sorted(sample.items()):
        token = make_jwt(secret, user)
        seqs = []
        after = 0
        for _ in range(1000):
            try:
                st, data = http_request(api_port, "GET", f"/api/{user}/conversations/"
                                        f"{urllib.parse.quote(cid)}/messages?after_seq={after}&limit=7",
                                        token)
            except (OSError, http.client.HTTPException) as e:
                api_bad.append(f"{user}: {e}")
                break
            if st != 200:
                api_bad.append(f"{user}: HTTP {st} {data[:120]!r}")
                break
            doc = json.loads(data)
            if isinstance(doc, list):
                page = doc
            else:
                page = doc.get("items", doc.get("messages", []))
            if not page:
                break
            seqs.extend(int(m["seq"]) for m in page)
            after = seqs[-1]
        want = by_conv.get((user, cid), [])
        if seqs != want and not any(x.startswith(user) for x in api_bad):
            api_bad.append(f"{user}/{cid}: API seqs n={len(seqs)}, database n={len(want)}")
    checks.check("GET messages (paged) matches the database", not api_bad, "; ".join(api_bad[:5]))
    return len(lost), duplicated


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("server", help="path to the http_server binary")
    ap.add_argument("--pg-url", help="use this PostgreSQL instead of starting one")
    ap.add_argument("--pg-ctl-datadir", help="data directory of --pg-url's server, for the restart")
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--turns", type=int, default=25, help="turns per client")
    ap.add_argument("--duration", type=float, default=60.0, help="load phase bound, seconds")
    ap.add_argument("--attempts", type=int, default=10, help="attempts per turn")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--kill-at", type=float, default=3.0, help="SIGKILL an instance after N s")
    ap.add_argument("--pg-restart-at", type=float, default=8.0, help="restart PostgreSQL after N s")
    ap.add_argument("--pg-down", type=float, default=3.0,
                    help="0: pg_ctl restart -m fast; S > 0: stop -m fast, S seconds down, start")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()

    server_bin = os.path.abspath(args.server)
    if not os.access(server_bin, os.X_OK):
        print(f"fault_test: {server_bin} is not an executable", file=sys.stderr)
        return 2
    if shutil.which("psql") is None:
        print("fault_test: psql not found (install postgresql-client)", file=sys.stderr)
        return 2

    workdir = tempfile.mkdtemp(prefix="convstate-fault.")
    pg = None
    servers = []
    checks = Checks()
    interrupted = False
    rc = 1
    # SIGTERM (ctest timeout) behaves like Ctrl-C: unwind through finally.
    def on_sigterm(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        if args.pg_url:
            url = args.pg_url
            pg_datadir = args.pg_ctl_datadir
            bindir = pg_bindir() if pg_datadir else None
        else:
            pg = PgCluster()
            pg.start()
            url, pg_datadir, bindir = pg.url, pg.dir, pg.bindir

        secret = secrets.token_urlsafe(32)
        run_id = secrets.token_hex(4)
        ports = []
        for i in range(3):
            p = free_port()
            while p in ports:
                p = free_port()
            ports.append(p)
        for i, p in enumerate(ports):
            s = Server(server_bin, i, p, url, secret, workdir, args.threads, args.pool)
            servers.append(s)
            s.start()  # one at a time: the first applies the schema
            log(f"server {i} listening on 127.0.0.1:{p} (pid {s.proc.pid})")

        # Health before load.
        for s in servers:
            st, _ = http_request(s.port, "GET", "/healthz", "x")
            checks.check(f"server {s.index} /healthz is 200 before the run", st == 200, f"HTTP {st}")

        stats = Stats()
        t0 = time.monotonic()
        deadline = t0 + args.duration
        faults_done = threading.Event()
        clients = [Client(i, run_id, secret, ports, stats, args.turns, args.attempts, deadline, t0,
                          faults_done) for i in range(args.clients)]
        for c in clients:
            c.start()

        # Faults, on the main thread, while the clients run.
        events = []
        victim = servers[1]
        time.sleep(args.kill_at)
        victim.kill()
        events.append(f"t={time.monotonic() - t0:.1f}s SIGKILL server {victim.index}")
        log(events[-1])
        time.sleep(2.0)
        victim.start()
        events.append(f"t={time.monotonic() - t0:.1f}s server {victim.index} restarted on port "
                      f"{victim.port}")
        log(events[-1])
        wait = args.pg_restart_at - (time.monotonic() - t0)
        if wait > 0:
            time.sleep(wait)
        if pg_datadir:
            took = pg_restart(bindir, pg_datadir, args.pg_down)
            how = "restart -m fast" if args.pg_down <= 0 else f"stop -m fast, {args.pg_down:g}s down, start"
            events.append(f"t={time.monotonic() - t0:.1f}s PostgreSQL restarted ({how}, {took:.1f}s)")
        else:
            events.append("PostgreSQL restart skipped: --pg-url given without --pg-ctl-datadir")
        log(events[-1])
        # Give the clients a few seconds against the recovered system, then let them finish.
        time.sleep(2.0)
        faults_done.set()

        for c in clients:
            c.join(timeout=max(0.0, deadline + 30 - time.monotonic()))
        hung = [c.name for c in clients if c.is_alive()]
        elapsed = time.monotonic() - t0
        log(f"load finished in {elapsed:.1f}s")
        checks.check("load generator finished in bounded time", not hung, ", ".join(hung))

        # Every instance answers again after the faults.
        for s in servers:
            ok = False
            for _ in range(50):
                try:
                    st, _ = http_request(s.port, "GET", "/healthz", "x", timeout=2)
                    if st == 200:
                        ok = True
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            checks.check(f"server {s.index} /healthz is 200 after the faults", ok)

        with stats.lock:
            acks = list(stats.acks)
        turns_started = len(acks) + len(stats.failed_turns) + len(stats.unexpected)
        checks.check("no unexpected (non-retryable) answers", not stats.unexpected,
                     "; ".join(stats.unexpected[:5]))
        checks.check("some turns acknowledged", len(acks) > 0)
        # A 503 says which: the database is unavailable, or a write's outcome is unknown (retry
        # with the same key). The PostgreSQL stop gives the first kind.
        checks.check("every 503 names its kind (storage_unavailable or outcome_unknown)",
                     set(stats.codes_503) <= {"storage_unavailable", "outcome_unknown"}, str(stats.codes_503))
        if stats.failed_503:
            checks.check("the database stop answered 503 storage_unavailable",
                         stats.codes_503.get("storage_unavailable", 0) > 0, str(stats.codes_503))
        checks.check("every turn acknowledged within its attempts", not stats.failed_turns,
                     f"{len(stats.failed_turns)} given up: "
                     + ", ".join(f["key"] for f in stats.failed_turns[:5]))

        lost, duplicated = verify(url, run_id, stats, checks, servers[0].port, secret)

        # Graceful shutdown.
        for s in servers:
            code = s.terminate()
            checks.check(f"server {s.index} exits 0 on SIGTERM", code == 0, f"status {code}")

        with open(os.path.join(workdir, "attempts.log"), "w") as f:
            for row in stats.attempt_log:
                f.write(" ".join(map(str, row)) + "\n")
        with open(os.path.join(workdir, "acks.log"), "w") as f:
            for a in acks:
                f.write(json.dumps(a) + "\n")

        print("events: " + "; ".join(events))
        print(f"turns={turns_started} conn_errors={stats.conn_errors} other_5xx={stats.failed_5xx} "
              f"given_up={len(stats.failed_turns)} elapsed={elapsed:.1f}s")
        print(f"requests={stats.requests} acknowledged={len(acks)} retried={stats.retried} "
              f"failed_503={stats.failed_503} {stats.codes_503} waited_409={stats.retried_running} lost={lost} duplicated={duplicated}")
        rc = 0 if (lost == 0 and duplicated == 0 and checks.failed == 0) else 1
    except KeyboardInterrupt:
        interrupted = True
        print("fault_test: interrupted", file=sys.stderr)
        rc = 130
    except Exception as e:  # noqa: BLE001 - report, clean up, fail
        checks.check("test harness", False, f"{type(e).__name__}: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in servers:
            try:
                s.terminate(timeout=5)
            except Exception:  # noqa: BLE001
                pass
        if rc != 0 and not interrupted:
            for s in servers:
                path = os.path.join(workdir, f"server{s.index}.{s.generation}.err")
                try:
                    with open(path) as f:
                        tail = f.read()[-1500:]
                    if tail.strip():
                        print(f"--- server {s.index} stderr tail ---\n{tail}", file=sys.stderr)
                except OSError:
                    pass
            if pg:
                print(f"--- PostgreSQL log tail ---\n{pg.log_tail(20)}", file=sys.stderr)
        if pg:
            pg.stop()
        if args.keep or rc not in (0, 130):
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return rc


if __name__ == "__main__":
    sys.exit(main())
