#!/usr/bin/env python3
"""Robustness test of examples/http_server (Python 3 standard library only).

    robustness_test.py PATH/TO/http_server

What one client, or many, must not be able to do to the process:
  - crash it or burn its CPU with an expression for the demo calculator;
  - make it spin when it runs out of file descriptors, or hold more connections than
    --max-connections;
  - make one page of messages arbitrarily large (the page check runs on PostgreSQL too when
    CONVSTATE_TEST_PG_URL is set);
  - keep it alive after a second SIGTERM, or past --shutdown-timeout, while a turn waits on a
    database lock.
Each server runs on a free port of 127.0.0.1 with a temporary SQLite database. Prints
"N passed, M failed" and exits nonzero on any failure.
"""
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import httptest

SECRET = "test-secret-" + uuid.uuid4().hex
check = httptest.Checks()


def token(sub):
    return httptest.make_token(sub, SECRET)


def start(binary, db_url, label, **kwargs):
    """A server, or None (and a failed check) when it does not start."""
    try:
        return httptest.Server(binary, db_url, SECRET, **kwargs)
    except RuntimeError as e:
        check(f"{label}: server starts", False, e)
        return None


def alive(srv, timeout=5):
    """The process runs and answers /healthz."""
    if srv.proc.poll() is not None:
        return False
    try:
        return srv.request("GET", "/healthz", timeout=timeout)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


# --- 1. the demo calculator -------------------------------------------------------------------

def test_calculator(binary, db_url):
    label = "calculator"
    servers = [start(binary, db_url, label)]
    if not servers[0]:
        return
    codes = []  # exit statuses of servers that stopped answering, then of the last one
    user = "calc-" + uuid.uuid4().hex[:8]
    tok = token(user)

    def chat(message, timeout=120):
        if not alive(servers[-1]):  # it crashed on the previous case: go on with a fresh one
            codes.append(servers[-1].stop(timeout=10))
            servers.append(start(binary, db_url, label))
        t0 = time.monotonic()
        try:
            st, r = servers[-1].request("POST", f"/api/{user}/chat", {"message": message}, tok, timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            st, r = None, repr(e)
        return st, r, time.monotonic() - t0

    try:
        # A megabyte of spaces around an expression costs no more than reading it.
        st, r, spent = chat(" " * 1_000_000 + "1+1" + " " * 40_000)
        check(f"{label}: 1 MB of spaces trimmed in linear time", st == 200 and isinstance(r, dict) and
              r.get("response") == "1+1 = 2" and spent < 2.0, (st, f"{spent:.2f} s"))
        cases = [
            # (name, message, what the end of the reply must hold)
            ("150000 unary minuses", "-" * 150000 + "1+1", "error: expression"),
            ("1000 unary minuses (short enough, too deep)", "-" * 1000 + "1+1", "error: expression nested"),
            ("100 nested parentheses", "(" * 100 + "1" + ")" * 100 + "+1", "error: expression nested"),
            ("65 nested parentheses", "(" * 65 + "1" + ")" * 65 + "+1", "error: expression nested"),
            ("60 nested parentheses", "(" * 60 + "2" + ")" * 60 + "*3", "= 6"),
            ("a 100000-character expression", "1+" * 50000 + "1", "error: expression longer"),
            ("a 4000-character expression", "1+" * 2000 + "1", "= 2001"),
        ]
        for name, message, want in cases:
            st, r, _ = chat(message)
            ok = st == 200 and isinstance(r, dict) and want in r.get("response", "")[-80:]
            check(f"{label}: {name} answered as a calculator result", ok,
                  (st, r.get("response", "")[-120:] if isinstance(r, dict) else r))
            check(f"{label}: {name}: the server is still up", alive(servers[-1]))
    finally:
        codes.append(servers[-1].stop())
    check(f"{label}: never crashed, SIGTERM exits 0", codes == [0], codes)


# --- 2. connections: a cap, and no spinning when out of file descriptors ----------------------

def serves_within(srv, seconds):
    """/healthz answers 200 on a new connection within seconds (tries again until then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if alive(srv, timeout=max(0.5, min(2.0, deadline - time.monotonic()))):
            return True
        time.sleep(0.1)
    return False


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(port, timeout=5):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def http_get(sock, path="/healthz"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def read_status(sock, timeout):
    """The status of the next response on sock, or None when nothing came within timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        return int(head.split(b" ", 2)[1])
    except (socket.timeout, OSError):
        return None


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    socks.clear()


def test_max_connections(binary, db_url):
    label = "max-connections"
    cap = 4
    srv = start(binary, db_url, label, args=("--max-connections", str(cap)), threads=2)
    if not srv:
        return
    held, waiting = [], []
    try:
        for _ in range(cap):
            s = connect(srv.port)
            http_get(s)
            held.append(s)
        check(f"{label}: {cap} connections served", [read_status(s, 5) for s in held] == [200] * cap)
        # Past the cap, new connections wait in the listen queue: no answer while all are held.
        for _ in range(3):
            s = connect(srv.port)
            http_get(s)
            waiting.append(s)
        before = cpu_seconds(srv.pid)
        check(f"{label}: a connection past the cap waits", read_status(waiting[0], 1.0) is None)
        check(f"{label}: no CPU spent while waiting", cpu_seconds(srv.pid) - before < 0.3)
        # The connections it holds are still served.
        http_get(held[1])
        check(f"{label}: held connections still served", read_status(held[1], 5) == 200)
        # One closes: the first waiting one is accepted and answered.
        held.pop(0).close()
        check(f"{label}: a waiting connection is served once one closes", read_status(waiting[0], 5) == 200)
        check(f"{label}: still at the cap", read_status(waiting[1], 0.5) is None)
        close_all(held)
        check(f"{label}: the others are served once all close",
              [read_status(s, 5) for s in waiting[1:]] == [200, 200])
        close_all(waiting)
        check(f"{label}: serves new connections afterwards", serves_within(srv, 5))
        # Again, many times over: the count does not drift.
        for _ in range(3):
            socks = [connect(srv.port) for _ in range(cap * 3)]
            for s in socks:
                http_get(s)
            statuses = [read_status(s, 0.2) for s in socks]
            close_all(socks)
            if statuses.count(200) > cap:
                break
        check(f"{label}: never more than {cap} served at once", statuses.count(200) <= cap, statuses)
        check(f"{label}: serves after bursts", serves_within(srv, 5))
    finally:
        close_all(held)
        close_all(waiting)
        code = srv.stop()
    check(f"{label}: SIGTERM exits 0", code == 0, code)


def test_emfile(binary, db_url):
    label = "emfile"
    # How many descriptors the server needs on its own (database files, epoll, pipes, listener).
    srv = start(binary, db_url, label, threads=2)
    if not srv:
        return
    try:
        alive(srv)
        base = open_fds(srv.pid)
    finally:
        srv.stop()
    limit = base + 6

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    srv = start(binary, db_url, label, threads=2, preexec_fn=low_limit)
    if not srv:
        return
    socks = []
    try:
        check(f"{label}: serves under a low descriptor limit", alive(srv))
        # More connections than descriptors: the server accepts a few, then accept fails (EMFILE)
        # with the rest still queued.
        for _ in range(limit + 20):
            socks.append(connect(srv.port))
        time.sleep(0.5)
        check(f"{label}: the descriptor limit is reached", open_fds(srv.pid) >= limit - 1, (open_fds(srv.pid), limit))
        before = cpu_seconds(srv.pid)
        time.sleep(2.0)
        spent = cpu_seconds(srv.pid) - before
        check(f"{label}: low CPU while accept fails", spent < 0.3, f"{spent:.2f} s of CPU in 2 s")
        check(f"{label}: still running", srv.proc.poll() is None)
        close_all(socks)
        check(f"{label}: serves again once connections close", serves_within(srv, 10))
    finally:
        close_all(socks)
        code = srv.stop()
    check(f"{label}: SIGTERM exits 0", code == 0, code)
    records = []
    for line in srv.log:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    check(f"{label}: accept errors logged as JSON events", any(r.get("event") == "accept_error" for r in records))


# --- 3. a page of messages is capped in bytes -------------------------------------------------

PAGE_CAP = 4 << 20


def test_page_bytes(binary, db_url, label):
    srv = start(binary, db_url, label, args=("--max-body", str(6 << 20)))
    if not srv:
        return
    user = "pages-" + uuid.uuid4().hex[:8]
    tok = token(user)
    try:
        # A few large messages: users' ~0.9 MB, the demo agent's replies quote two of them.
        sent = []
        conv = None
        for i in range(3):
            text = chr(ord("a") + i) * 900_000
            body = {"message": text} if conv is None else {"message": text, "conversation_id": conv}
            st, r = srv.request("POST", f"/api/{user}/chat", body, tok)
            if st != 200:
                break
            conv = r["conversation_id"]
            sent.append(text)
        check(f"{label}: large messages stored", len(sent) == 3)
        if len(sent) != 3:
            return
        pages = walk(srv, user, tok, conv, limit=100)
        seqs = [m["seq"] for p in pages for m in p[1]["items"]]
        check(f"{label}: pages hold every message once, in order", seqs == list(range(1, 7)), seqs)
        check(f"{label}: the first page stops early", len(pages) >= 2 and len(pages[0][1]["items"]) < 6,
              [len(p[1]["items"]) for p in pages])
        check(f"{label}: no page over the cap (unless it holds one message)",
              all(size <= PAGE_CAP + 4096 or len(page["items"]) == 1 for size, page in pages),
              [size for size, _ in pages])
        check(f"{label}: next_after_seq continues where a page stopped",
              all(p["next_after_seq"] == p["items"][-1]["seq"] for _, p in pages[:-1]) and
              pages[-1][1]["next_after_seq"] is None, [p["next_after_seq"] for _, p in pages])
        users = [m["content"] for p in pages for m in p[1]["items"] if m["role"] == "user"]
        check(f"{label}: content intact", users == sent)
        # limit still applies, and small pages are unaffected.
        st, p = srv.request("GET", f"/api/{user}/conversations/{conv}/messages?limit=1", token=tok)
        check(f"{label}: limit=1", st == 200 and [m["seq"] for m in p["items"]] == [1] and p["next_after_seq"] == 1)
        # One message larger than the cap is a page of its own (paging always advances).
        st, r = srv.request("POST", f"/api/{user}/chat", {"message": "z" * (5 << 20)}, tok)
        check(f"{label}: a 5 MB message stored", st == 200, st)
        if st == 200:
            pages = walk(srv, user, tok, r["conversation_id"], limit=100)
            check(f"{label}: a message over the cap is a page of its own",
                  [[m["seq"] for m in p["items"]] for _, p in pages] == [[1], [2]], [size for size, _ in pages])
    finally:
        code = srv.stop()
    check(f"{label}: SIGTERM exits 0", code == 0, code)


def walk(srv, user, tok, conv, limit):
    """Every page of a conversation's messages: [(body bytes, parsed page)] (at most 20 pages)."""
    pages, after = [], 0
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        try:
            conn.request("GET", f"/api/{user}/conversations/{conv}/messages?after_seq={after}&limit={limit}",
                         headers={"Authorization": "Bearer " + tok})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            break
        page = json.loads(raw)
        pages.append((len(raw), page))
        if page["next_after_seq"] is None:
            break
        after = page["next_after_seq"]
    return pages


# --- 4. shutdown while a turn waits on the database -------------------------------------------

def hold_write_lock(path):
    """A connection holding SQLite's write lock on path (BEGIN IMMEDIATE), until closed."""
    con = sqlite3.connect(path, isolation_level=None, timeout=5)
    con.execute("BEGIN IMMEDIATE")
    return con


def blocked_turn(srv, user, tok):
    """Starts a chat request in a thread; it blocks in the server on the database lock."""
    def run():
        try:
            srv.request("POST", f"/api/{user}/chat", {"message": "what is 1+1?"}, tok, timeout=60)
        except (OSError, http.client.HTTPException):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_exit(proc, seconds):
    """(exit status, seconds taken), or (None, seconds) if it was still running (then SIGKILLed)."""
    t0 = time.monotonic()
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    return code, time.monotonic() - t0


def wait_exit_after(srv, sig, seconds):
    srv.proc.send_signal(sig)
    return wait_exit(srv.proc, seconds)


@contextlib.contextmanager
def stuck_turn(binary, tmp, name, label, **start_kw):
    """A server whose one turn in flight waits on the SQLite write lock, which the test holds.
    Yields (server, status of a first chat before the lock), or None if the server did not start;
    afterwards the lock is released, the server stopped and the turn's thread joined."""
    path = os.path.join(tmp, name + ".db")
    srv = start(binary, "sqlite3://" + path, label, **start_kw)
    if not srv:
        yield None
        return
    user = "stop-" + uuid.uuid4().hex[:8]
    tok = token(user)
    st, _ = srv.request("POST", f"/api/{user}/chat", {"message": "hello"}, tok)
    lock = hold_write_lock(path)
    t = None
    try:
        t = blocked_turn(srv, user, tok)
        time.sleep(0.5)
        yield srv, st
    finally:
        lock.rollback()
        lock.close()
        srv.stop(timeout=5)
        if t is not None:
            t.join(timeout=5)


def test_shutdown(binary, tmp):
    label = "shutdown"
    for threads in (4, 1):
        with stuck_turn(binary, tmp, f"shutdown-{threads}", label, threads=threads) as stuck:
            if not stuck:
                return
            srv, st = stuck
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            check(f"{label} ({threads} threads): the first SIGTERM waits for the turn", srv.proc.poll() is None)
            srv.proc.send_signal(signal.SIGTERM)
            code, spent = wait_exit(srv.proc, 2.0)
            check(f"{label} ({threads} threads): a second SIGTERM exits within 2 s, non-zero",
                  code is not None and code != 0, (code, f"{spent:.2f} s"))
        check(f"{label} ({threads} threads): the first chat worked", st == 200, st)

    # A second SIGINT after SIGTERM too.
    with stuck_turn(binary, tmp, "shutdown-int", label) as stuck:
        if stuck:
            srv, _ = stuck
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            srv.proc.send_signal(signal.SIGINT)
            code, spent = wait_exit(srv.proc, 2.0)
            check(f"{label}: SIGINT after SIGTERM exits within 2 s, non-zero", code is not None and code != 0,
                  (code, f"{spent:.2f} s"))

    # One SIGTERM: the graceful shutdown gives up after --shutdown-timeout.
    with stuck_turn(binary, tmp, "shutdown-timeout", label, args=("--shutdown-timeout", "2")) as stuck:
        if stuck:
            srv, _ = stuck
            srv.proc.send_signal(signal.SIGTERM)
            code, spent = wait_exit(srv.proc, 4.0)
            check(f"{label}: --shutdown-timeout 2 bounds the graceful shutdown (non-zero exit)",
                  code is not None and code != 0 and 1.5 <= spent <= 4.0, (code, f"{spent:.2f} s"))
    if stuck:
        events = [json.loads(line).get("event") for line in stuck[0].log if line.startswith(b"{")]
        check(f"{label}: the timeout is logged", "shutdown_timeout" in events, events)

    # Without a stuck turn, one SIGTERM is still a clean exit 0.
    srv = start(binary, "sqlite3://" + os.path.join(tmp, "shutdown-clean.db"), label,
                extra_env={"CONVSTATE_SHUTDOWN_TIMEOUT": "5"})
    if srv:
        user = "stop-" + uuid.uuid4().hex[:8]
        srv.request("POST", f"/api/{user}/chat", {"message": "hello"}, token(user))
        code, spent = wait_exit_after(srv, signal.SIGTERM, 5.0)
        check(f"{label}: SIGTERM with nothing in flight exits 0", code == 0, (code, f"{spent:.2f} s"))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite3://" + os.path.join(tmp, "server.db")
        test_calculator(binary, url)
        test_max_connections(binary, url)
        test_emfile(binary, url)
        test_page_bytes(binary, url, "pages sqlite")
        test_shutdown(binary, tmp)
        pg = os.environ.get("CONVSTATE_TEST_PG_URL")
        if pg:
            test_page_bytes(binary, pg, "pages postgres")
        else:
            print("postgres: skipped (CONVSTATE_TEST_PG_URL not set)")
    print(check.summary())
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
