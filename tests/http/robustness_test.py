#!/usr/bin/env python3
"""Robustness test of examples/http_server (Python 3 standard library only).

    robustness_test.py PATH/TO/http_server

What one client, or many, must not be able to do to the process:
  - crash it or burn its CPU with an expression for the demo calculator.
Each server runs on a free port of 127.0.0.1 with a temporary SQLite database. Prints
"N passed, M failed" and exits nonzero on any failure.
"""
import http.client
import os
import sys
import tempfile
import time
import uuid

import httptest

SECRET = "test-secret-" + uuid.uuid4().hex
PASSED = 0
FAILED = []


def check(name, ok, detail=""):
    global PASSED
    if ok:
        PASSED += 1
        if os.environ.get("VERBOSE"):
            print(f"ok   {name} {detail}", flush=True)
    else:
        FAILED.append(name)
        print(f"FAIL {name} {str(detail)[:400]}", flush=True)


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


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite3://" + os.path.join(tmp, "server.db")
        test_calculator(binary, url)
    print(f"{PASSED} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
