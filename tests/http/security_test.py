#!/usr/bin/env python3
"""Security and behaviour test of examples/http_server (Python 3 standard library only).

    security_test.py PATH/TO/http_server

Starts the server on a free port with a temporary SQLite database and runs a table of requests,
each with its expected status; then, when CONVSTATE_TEST_PG_URL is set, runs the same table
against that PostgreSQL database (with fresh user ids, so the database may be shared). Also
checks the happy path, idempotent retries, cross-user isolation, SQL injection strings, the
token's claims (duplicate keys, NumericDate ranges, --jwt-audience/--jwt-issuer), the request log
(valid UTF-8 JSON, the authenticated subject only) and graceful shutdown on SIGTERM. Prints
"N passed, M failed" and exits nonzero on any failure.
"""
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import httptest
from httptest import b64url

SECRET = "test-secret-" + uuid.uuid4().hex
check = httptest.Checks()


# --- tokens -----------------------------------------------------------------------------------

def make_token(sub, secret=SECRET, **kwargs):
    return httptest.make_token(sub, secret, **kwargs)


def alg_none_token(sub):
    now = int(time.time())
    return (b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." +
            b64url(json.dumps({"sub": sub, "exp": now + 3600}).encode()) + ".")


HS256_HEADER = '{"alg":"HS256","typ":"JWT"}'


def raw_token(payload_text, header_text=HS256_HEADER, secret=SECRET):
    """A correctly signed token from exact JSON texts; {exp} in them becomes now + 1 h."""
    exp = str(int(time.time()) + 3600)
    return httptest.sign_raw(header_text.replace("{exp}", exp), payload_text.replace("{exp}", exp), secret)


def jwt_claim_rows(A, B, path):
    """Table rows for the claim checks: duplicate keys, NumericDate types and ranges."""
    now = int(time.time())
    big = 18446744073709551615  # 2^64 - 1
    return [
        # A duplicate key is refused wherever it is: last-wins would let "sub" or "alg" say two things.
        ("duplicate sub (last one is the path's user)", "GET", path, raw_token(f'{{"sub":"{B}","sub":"{A}","exp":{{exp}}}}'), None, 401),
        ("duplicate sub (first one is the path's user)", "GET", path, raw_token(f'{{"sub":"{A}","sub":"{B}","exp":{{exp}}}}'), None, 401),
        ("duplicate sub, one escaped", "GET", path, raw_token(f'{{"sub":"{B}","s\\u0075b":"{A}","exp":{{exp}}}}'), None, 401),
        ("duplicate exp", "GET", path, raw_token(f'{{"sub":"{A}","exp":1,"exp":{{exp}}}}'), None, 401),
        ("duplicate key in a nested claim", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"x":{{"k":1, "k" :2}}}}'), None, 401),
        ("duplicate alg (none, then HS256)", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}}}}', '{"alg":"none","alg":"HS256"}'), None, 401),
        ("duplicate alg (HS256 twice)", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}}}}', '{"alg":"HS256","alg":"HS256"}'), None, 401),
        ("duplicate typ in the header", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}}}}', '{"alg":"HS256","typ":"JWT","typ":"x"}'), None, 401),
        ("same key in two objects is fine", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"x":{{"sub":1}},"y":[{{"sub":2}}]}}'), None, 200),
        # exp / nbf / iat: integers in a sane range, nothing else.
        ("exp 2^64-1", "GET", path, raw_token(f'{{"sub":"{A}","exp":{big}}}'), None, 401),
        ("exp 2^63", "GET", path, raw_token(f'{{"sub":"{A}","exp":9223372036854775808}}'), None, 401),
        ("exp 2^53", "GET", path, raw_token(f'{{"sub":"{A}","exp":9007199254740992}}'), None, 401),
        ("exp 2^53-1 (largest accepted)", "GET", path, raw_token(f'{{"sub":"{A}","exp":9007199254740991}}'), None, 200),
        ("exp a fraction", "GET", path, raw_token(f'{{"sub":"{A}","exp":{now + 3600}.5}}'), None, 401),
        ("exp in exponent form", "GET", path, raw_token(f'{{"sub":"{A}","exp":{now + 3600}e0}}'), None, 401),
        ("exp 1e300", "GET", path, raw_token(f'{{"sub":"{A}","exp":1e300}}'), None, 401),
        ("exp true", "GET", path, raw_token(f'{{"sub":"{A}","exp":true}}'), None, 401),
        ("exp null", "GET", path, raw_token(f'{{"sub":"{A}","exp":null}}'), None, 401),
        ("exp 0", "GET", path, raw_token(f'{{"sub":"{A}","exp":0}}'), None, 401),
        ("nbf -1", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"nbf":-1}}'), None, 401),
        ("nbf a fraction", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"nbf":{now - 10}.5}}'), None, 401),
        ("nbf a string", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"nbf":"{now - 10}"}}'), None, 401),
        ("nbf in the past", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"nbf":{now - 10}}}'), None, 200),
        ("iat 2^64-1", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"iat":{big}}}'), None, 401),
        ("iat a string", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"iat":"yesterday"}}'), None, 401),
        ("iat a fraction", "GET", path, raw_token(f'{{"sub":"{A}","exp":{{exp}},"iat":{now}.25}}'), None, 401),
        ("aud and iss unchecked when not configured", "GET", path,
         make_token(A, claims={"aud": ["x", 1], "iss": 7}), None, 200),
    ]


# --- the server -------------------------------------------------------------------------------

def Server(binary, db_url, extra_env=None, args=()):
    return httptest.Server(binary, db_url, SECRET, extra_env=extra_env, args=args)


def q(s):
    return urllib.parse.quote(s, safe="")


# --- the suite --------------------------------------------------------------------------------

SQLI = ["' OR '1'='1", "'; DROP TABLE convstate_messages; --", "\" OR 1=1 --",
        "1; DELETE FROM convstate_conversations", "x') UNION SELECT * FROM convstate_messages --"]


def snapshot(srv, user, token):
    """Everything a user has, via the API: conversations and their messages."""
    st, page = srv.request("GET", f"/api/{q(user)}/conversations?limit=100", token=token)
    assert st == 200, (st, page)
    out = {}
    for c in page["items"]:
        st, msgs = srv.request("GET", f"/api/{q(user)}/conversations/{c['id']}/messages?limit=1000", token=token)
        assert st == 200, (st, msgs)
        out[c["id"]] = (c["last_seq"], [(m["seq"], m["role"], m["content"]) for m in msgs["items"]])
    return out


def sqlite_counts(path):
    if path is None:
        return None
    con = sqlite3.connect(path)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("convstate_conversations", "convstate_messages"))
    finally:
        con.close()


def run_suite(binary, db_url, label, sqlite_path=None):
    print(f"== {label}: {db_url.split('@')[-1]}", flush=True)
    tag = uuid.uuid4().hex[:8]
    A, B = f"alice-{tag}", f"bob-{tag}"
    ta, tb = make_token(A), make_token(B)
    srv = Server(binary, db_url)
    try:
        st, body = srv.request("GET", "/healthz")
        check(f"{label}: healthz", st == 200 and body == {"status": "ok"}, (st, body))

        # ---- happy path ----
        st, r1 = srv.request("POST", f"/api/{A}/chat", {"message": "Hello there"}, ta)
        check(f"{label}: chat creates a conversation", st == 200 and r1.get("conversation_id"), (st, r1))
        conv = r1["conversation_id"]
        st, r2 = srv.request("POST", f"/api/{A}/chat", {"message": "what is 6*7?", "conversation_id": conv}, ta)
        check(f"{label}: chat continues it", st == 200 and r2["conversation_id"] == conv and "42" in r2["response"], (st, r2))
        check(f"{label}: tool call visible", st == 200 and any(c["function"]["name"] == "calculator" for c in r2["tool_calls"]), r2)
        st, msgs = srv.request("GET", f"/api/{A}/conversations/{conv}/messages", token=ta)
        check(f"{label}: messages listed", st == 200 and [m["role"] for m in msgs["items"]] ==
              ["user", "assistant", "user", "assistant", "tool", "assistant"], (st, msgs))
        st, page = srv.request("GET", f"/api/{A}/conversations/{conv}/messages?after_seq=2&limit=2", token=ta)
        check(f"{label}: messages paginated", st == 200 and [m["seq"] for m in page["items"]] == [3, 4]
              and page["next_after_seq"] == 4, (st, page))

        # Idempotent retry: same response, nothing duplicated.
        key = "key-" + uuid.uuid4().hex
        st, i1 = srv.request("POST", f"/api/{A}/chat", {"message": "what is 2+3?", "conversation_id": conv, "idempotency_key": key}, ta)
        st2, i2 = srv.request("POST", f"/api/{A}/chat", {"message": "what is 2+3?", "conversation_id": conv, "idempotency_key": key}, ta)
        check(f"{label}: idempotent retry same response", st == st2 == 200 and i1["response"] == i2["response"] ==
              "2+3 = 5" and i2["replayed"] and i1["reply_seq"] == i2["reply_seq"], (i1, i2))
        st, msgs = srv.request("GET", f"/api/{A}/conversations/{conv}/messages", token=ta)
        check(f"{label}: idempotent retry not duplicated", st == 200 and len(msgs["items"]) == 10, len(msgs["items"]))
        # A creating turn with a key creates one conversation only.
        key2 = "create-" + uuid.uuid4().hex
        st, c1 = srv.request("POST", f"/api/{A}/chat", {"message": "hi", "idempotency_key": key2}, ta)
        st2, c2 = srv.request("POST", f"/api/{A}/chat", {"message": "hi", "idempotency_key": key2}, ta)
        check(f"{label}: idempotent create", st == st2 == 200 and c1["conversation_id"] == c2["conversation_id"], (c1, c2))

        st, page = srv.request("GET", f"/api/{A}/conversations?limit=1", token=ta)
        check(f"{label}: list page 1", st == 200 and len(page["items"]) == 1 and page["next_cursor"], (st, page))
        st, page2 = srv.request("GET", f"/api/{A}/conversations?limit=1&cursor={q(page['next_cursor'])}", token=ta)
        check(f"{label}: list page 2", st == 200 and len(page2["items"]) == 1 and page2["items"][0]["id"] != page["items"][0]["id"]
              and page2["next_cursor"] is None, (st, page2))

        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        statuses = [srv.request("GET", f"/api/{A}/conversations", token=ta, conn=conn)[0] for _ in range(3)]
        statuses.append(srv.request("GET", "/nope", conn=conn)[0])
        statuses.append(srv.request("GET", "/healthz", conn=conn)[0])
        conn.close()
        check(f"{label}: keep-alive", statuses == [200, 200, 200, 404, 200], statuses)

        # ---- the table: (name, method, path, token, body, expected status(es), expected field) ----
        now = int(time.time())
        forged = make_token(A, secret="not-the-secret-" + tag)
        sig_flipped = ta[:-2] + ("A" if ta[-2] != "A" else "B") + ta[-1]
        padded = ta + "="
        hs512 = make_token(A, alg="HS512", digest=hashlib.sha512)
        hs512_sig256 = make_token(A, alg="HS512")
        lower_alg = make_token(A, alg="hs256")
        rs256 = make_token(A, alg="RS256")
        no_alg = make_token(A, header={"typ": "JWT"})
        big_body = {"message": "x" * (2 << 20)}
        nested = '{"message":"x","deep":' + "[" * 200 + "]" * 200 + "}"
        cpath = f"/api/{A}/conversations/{conv}/messages"
        chat = f"/api/{A}/chat"
        ghost = str(uuid.uuid4())
        table = [
            # authentication
            ("missing token", "GET", cpath, None, None, 401),
            ("empty bearer", "GET", cpath, "", None, 401),
            ("malformed token", "GET", cpath, "not-a-jwt", None, 401),
            ("malformed token three parts", "GET", cpath, "a.b.c", None, 401),
            ("token four parts", "GET", cpath, ta + ".x", None, 401),
            ("expired token", "GET", cpath, make_token(A, exp_in=-10), None, 401),
            ("nbf in the future", "GET", cpath, make_token(A, nbf_in=600), None, 401),
            ("exp missing", "GET", cpath, make_token(A, drop=("exp",)), None, 401),
            ("exp not a number", "GET", cpath, make_token(A, claims={"exp": str(now + 3600)}), None, 401),
            ("sub missing", "GET", cpath, make_token(A, drop=("sub",)), None, 401),
            ("forged signature", "GET", cpath, forged, None, 401),
            ("signature bit flipped", "GET", cpath, sig_flipped, None, 401),
            ("base64 padding", "GET", cpath, padded, None, 401),
            ("alg none", "GET", cpath, alg_none_token(A), None, 401),
            ("alg none with HMAC signature", "GET", cpath, make_token(A, alg="none"), None, 401),
            ("alg HS512", "GET", cpath, hs512, None, 401),
            ("alg HS512 with SHA-256 signature", "GET", cpath, hs512_sig256, None, 401),
            ("alg hs256 lower case", "GET", cpath, lower_alg, None, 401),
            ("alg RS256", "GET", cpath, rs256, None, 401),
            ("alg missing", "GET", cpath, no_alg, None, 401),
            ("Basic scheme", "GET", cpath, None, None, 401, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}),
            # authorisation: B's token on A's paths, B's paths with A's ids
            ("sub differs from path user (read)", "GET", cpath, tb, None, 403),
            ("sub differs from path user (list)", "GET", f"/api/{A}/conversations", tb, None, 403),
            ("sub differs from path user (delete)", "DELETE", f"/api/{A}/conversations/{conv}", tb, None, 403),
            ("sub differs from path user (chat)", "POST", chat, tb, {"message": "hi", "conversation_id": conv}, 403),
            ("foreign conversation messages", "GET", f"/api/{B}/conversations/{conv}/messages", tb, None, 404),
            ("foreign conversation delete", "DELETE", f"/api/{B}/conversations/{conv}", tb, None, 404),
            ("foreign conversation chat", "POST", f"/api/{B}/chat", tb, {"message": "hi", "conversation_id": conv}, 404),
            ("missing conversation", "GET", f"/api/{A}/conversations/{ghost}/messages", ta, None, 404),
            ("missing conversation delete", "DELETE", f"/api/{A}/conversations/{ghost}", ta, None, 404),
            # bodies
            ("bad JSON", "POST", chat, ta, b'{"message": ', 400, "body"),
            ("body not an object", "POST", chat, ta, b'["message"]', 400, "body"),
            ("empty body", "POST", chat, ta, b"", 400, "body"),
            ("missing message field", "POST", chat, ta, {"conversation_id": conv}, 400, "message"),
            ("message not a string", "POST", chat, ta, {"message": 42}, 400, "message"),
            ("conversation_id not a string", "POST", chat, ta, {"message": "hi", "conversation_id": 7}, 400, "conversation_id"),
            ("idempotency_key not a string", "POST", chat, ta, {"message": "hi", "idempotency_key": []}, 400, "idempotency_key"),
            ("invalid UTF-8 body", "POST", chat, ta, b'{"message": "\xff\xfe bad"}', 400),
            ("lone surrogate escape", "POST", chat, ta, b'{"message": "\\ud800"}', 400),
            ("overlong UTF-8", "POST", chat, ta, b'{"message": "\xc0\xaf"}', 400),
            ("deeply nested JSON", "POST", chat, ta, nested.encode(), 400, "body"),
            ("huge body", "POST", chat, ta, big_body, 413),
            ("empty conversation_id", "POST", chat, ta, {"message": "hi", "conversation_id": ""}, 400, "conversation_id"),
            ("overlong idempotency key", "POST", chat, ta, {"message": "hi", "idempotency_key": "k" * 5000}, 400, "idempotency_key"),
            # routes and methods
            ("unknown route", "GET", "/nope", None, None, 404),
            ("unknown api route", "GET", f"/api/{A}/settings", ta, None, 404),
            ("too many segments", "GET", f"/api/{A}/conversations/{conv}/messages/1", ta, None, 404),
            ("bad percent escape", "GET", f"/api/{A}/conversations/%zz/messages", ta, None, 400),
            ("wrong method on chat", "GET", chat, ta, None, 405),
            ("wrong method on list", "POST", f"/api/{A}/conversations", ta, {}, 405),
            ("wrong method on conversation", "PUT", f"/api/{A}/conversations/{conv}", ta, {}, 405),
            ("wrong method on messages", "DELETE", cpath, ta, None, 405),
            ("wrong method on healthz", "POST", "/healthz", None, {}, 405),
            # query parameters
            ("limit not a number", "GET", f"/api/{A}/conversations?limit=ten", ta, None, 400, "limit"),
            ("limit zero", "GET", f"/api/{A}/conversations?limit=0", ta, None, 400, "limit"),
            ("limit negative", "GET", f"/api/{A}/conversations?limit=-1", ta, None, 400, "limit"),
            ("limit too big", "GET", f"/api/{A}/conversations?limit=101", ta, None, 400, "limit"),
            ("bad cursor", "GET", f"/api/{A}/conversations?cursor=zzz", ta, None, 400, "cursor"),
            ("after_seq not a number", "GET", f"{cpath}?after_seq=x", ta, None, 400, "after_seq"),
            ("messages limit too big", "GET", f"{cpath}?limit=10001", ta, None, 400, "limit"),
        ]
        table += jwt_claim_rows(A, B, cpath)
        # SQL injection in every field: refused or treated as plain data.
        for i, s in enumerate(SQLI):
            table += [
                (f"sqli conversation id [{i}] messages", "GET", f"/api/{A}/conversations/{q(s)}/messages", ta, None, (400, 404)),
                (f"sqli conversation id [{i}] delete", "DELETE", f"/api/{A}/conversations/{q(s)}", ta, None, (400, 404)),
                (f"sqli conversation id [{i}] chat", "POST", chat, ta, {"message": "hi", "conversation_id": s}, (400, 404)),
                (f"sqli cursor [{i}]", "GET", f"/api/{A}/conversations?cursor={q(s)}", ta, None, 400, "cursor"),
                (f"sqli limit [{i}]", "GET", f"/api/{A}/conversations?limit={q(s)}", ta, None, 400, "limit"),
                (f"sqli after_seq [{i}]", "GET", f"{cpath}?after_seq={q(s)}", ta, None, 400, "after_seq"),
                (f"sqli messages limit [{i}]", "GET", f"{cpath}?limit={q(s)}", ta, None, 400, "limit"),
                (f"sqli user id, A's token [{i}]", "GET", f"/api/{q(s)}/conversations", ta, None, 403),
            ]

        before = snapshot(srv, A, ta)
        before_counts = sqlite_counts(sqlite_path)
        for row in table:
            name, method, path, token, body, want = row[:6]
            extra = row[6] if len(row) > 6 else None
            headers = extra if isinstance(extra, dict) else None
            field = extra if isinstance(extra, str) else None
            try:
                st, data = srv.request(method, path, body, token, headers=headers)
            except (ConnectionError, http.client.HTTPException) as e:
                st, data = None, repr(e)
            wants = want if isinstance(want, tuple) else (want,)
            ok = st in wants
            if ok and st >= 400:
                err = data.get("error") if isinstance(data, dict) else None
                ok = bool(err) and err.get("status") == st and isinstance(err.get("message"), str)
                if ok and field is not None:
                    ok = err.get("field") == field
            check(f"{label}: {name}", ok, f"-> {st} {data!r:.300} (want {want}{', field ' + field if field else ''})")
        after = snapshot(srv, A, ta)
        check(f"{label}: refused requests left A's data unchanged", before == after)
        check(f"{label}: refused requests left the tables unchanged", before_counts == sqlite_counts(sqlite_path),
              (before_counts, sqlite_counts(sqlite_path)))

        # SQL injection as data: stored and returned verbatim, nothing else touched.
        for i, s in enumerate(SQLI):
            st, r = srv.request("POST", chat, {"message": s, "conversation_id": conv, "idempotency_key": s}, ta)
            ok = st == 200
            if ok:
                st, m = srv.request("GET", f"{cpath}?after_seq={r['user_seq'] - 1}&limit=1", token=ta)
                ok = st == 200 and m["items"][0]["content"] == s and m["items"][0].get("idempotency_key") == s
            check(f"{label}: sqli message and idempotency key [{i}] stored verbatim", ok, (st, r))
            sub = s + tag
            tok = make_token(sub)
            st, r = srv.request("POST", f"/api/{q(sub)}/chat", {"message": s}, tok)
            ok = st == 200
            if ok:
                st, page = srv.request("GET", f"/api/{q(sub)}/conversations", token=tok)
                ok = st == 200 and len(page["items"]) == 1 and page["items"][0]["user_id"] == sub
            check(f"{label}: sqli user id [{i}] is just a user", ok, (st, r))
        st, other = srv.request("GET", f"/api/{B}/conversations", token=tb)
        check(f"{label}: B sees none of A's conversations", st == 200 and other["items"] == [], (st, other))
        after2 = snapshot(srv, A, ta)
        check(f"{label}: A's other conversations intact", {k: v for k, v in after2.items() if k != conv} ==
              {k: v for k, v in before.items() if k != conv})

        # A chunked body over the limit is refused too (no Content-Length to check up front).
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        try:
            conn.request("POST", chat, body=(b"x" * 65536 for _ in range(40)), encode_chunked=True,
                         headers={"Authorization": "Bearer " + ta, "Content-Type": "application/json"})
            st = conn.getresponse().status
        except (ConnectionError, http.client.HTTPException) as e:
            st = repr(e)
        finally:
            conn.close()
        check(f"{label}: huge chunked body", st == 413, st)
        # Oversized headers.
        st, _ = srv.request("GET", "/healthz", headers={"X-Filler": "a" * 20000})
        check(f"{label}: oversized headers", st == 431, st)

        # Delete, then it is gone.
        st, _ = srv.request("DELETE", f"/api/{A}/conversations/{conv}", token=ta)
        check(f"{label}: delete", st == 204, st)
        st, _ = srv.request("GET", cpath, token=ta)
        check(f"{label}: deleted conversation is gone", st == 404, st)
        st, _ = srv.request("DELETE", f"/api/{A}/conversations/{conv}", token=ta)
        check(f"{label}: delete twice", st == 404, st)

        # Concurrency: parallel turns on one conversation all succeed; seqs stay dense.
        st, r = srv.request("POST", chat, {"message": "start"}, ta)
        conv2 = r["conversation_id"]
        results = []

        def worker(n):
            results.append(srv.request("POST", chat, {"message": f"what is {n}+1?", "conversation_id": conv2}, ta)[0])
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        st, msgs = srv.request("GET", f"/api/{A}/conversations/{conv2}/messages?limit=1000", token=ta)
        check(f"{label}: concurrent turns", results == [200] * 8 and st == 200 and
              [m["seq"] for m in msgs["items"]] == list(range(1, 2 + 8 * 4 + 1)), (results, len(msgs["items"])))

    finally:
        code = srv.stop()
    check(f"{label}: SIGTERM exits 0", code == 0, code)
    records, bad = parse_log(srv)
    requests = [r for r in records if "event" not in r]
    check(f"{label}: one JSON log line per request", requests and not bad and all(
        r.keys() >= {"ts", "method", "path", "status", "ms", "user"} for r in requests), bad[:3])


def parse_log(srv):
    """The server's stderr lines as JSON objects, and the lines that are not valid UTF-8 JSON."""
    records, bad = [], []
    for line in srv.log:
        try:
            r = json.loads(line.decode("utf-8"))
            if not isinstance(r, dict):
                raise ValueError("not an object")
            records.append(r)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included
            bad.append(line[:200])
    return records, bad


def raw_request(port, request_bytes, timeout=10):
    """Sends request_bytes as is on a new connection; the response's status (None if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def test_log(binary, db_url):
    """The log names the authenticated subject only, and every line is valid JSON in UTF-8
    whatever bytes the request carried."""
    label = "log"
    tag = uuid.uuid4().hex[:8]
    A, B = f"alice-{tag}", f"bob-{tag}"
    ta = make_token(A)
    srv = Server(binary, db_url)
    sent = []  # (what, status, expected user)
    try:
        def get(what, path, token, want_user):
            st, _ = srv.request("GET", path, token=token)
            sent.append((what, path, st, want_user))
        get("own data", f"/api/{A}/conversations", ta, A)
        get("another user's data", f"/api/{B}/conversations", ta, A)
        get("no token", f"/api/{A}/conversations", None, "")
        get("forged token", f"/api/{A}/conversations", make_token(A, secret="not-the-secret-" + tag), "")
        get("expired token", f"/api/{A}/conversations", make_token(A, exp_in=-10), "")
        get("percent-encoded bytes that are not UTF-8", "/api/%FF%FE/conversations", ta, A)
        get("percent-encoded quote and control bytes", "/api/%22%0A%00%1B%5C/conversations", ta, A)
        for what, target in [("raw bytes that are not UTF-8", b"/api/\xff\xfe\xc0\xaf/conversations"),
                             ("raw UTF-8", "/api/\u00e5\U0001F600/conversations".encode()),
                             ("raw quote and backslash", b'/api/"\\/conversations')]:
            st = raw_request(srv.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                             ta.encode() + b"\r\nConnection: close\r\n\r\n")
            sent.append((what, None, st, None))
        st, _ = srv.request("GET", "/healthz")
        sent.append(("healthz", "/healthz", st, ""))
    finally:
        code = srv.stop()
    check(f"{label}: SIGTERM exits 0", code == 0, code)
    records, bad = parse_log(srv)
    check(f"{label}: every stderr line is JSON in valid UTF-8", srv.log and not bad, bad[:3])
    requests = [r for r in records if "event" not in r]
    check(f"{label}: one line per request", len(requests) == len(sent), (len(requests), len(sent)))
    for (what, path, st, want_user), r in zip(sent, requests):
        ok = r.get("status") == st and (path is None or r.get("path") == path)
        if want_user is not None:
            ok = ok and r.get("user", "") == want_user
        else:  # the path's "user" was never authenticated as such
            ok = ok and r.get("user") in ("", A)
        check(f"{label}: {what} -> {st}, logged user {want_user!r}", ok, r)


def test_jwt_policy(binary, db_url):
    """--jwt-audience / --jwt-issuer (and their environment variables): the token must carry them."""
    label = "jwt policy"
    tag = uuid.uuid4().hex[:8]
    A = f"alice-{tag}"
    path = f"/api/{A}/conversations"
    aud, iss = "chat-api-" + tag, "https://issuer.example/" + tag
    good = {"aud": aud, "iss": iss}
    rows = [
        ("aud and iss right", good, 200),
        ("aud in an array", {"aud": ["other", aud], "iss": iss}, 200),
        ("aud missing", {"iss": iss}, 401),
        ("aud wrong", {"aud": "other", "iss": iss}, 401),
        ("aud array without it", {"aud": ["other", aud + "x"], "iss": iss}, 401),
        ("aud empty array", {"aud": [], "iss": iss}, 401),
        ("aud array with a non-string", {"aud": [aud, 1], "iss": iss}, 401),
        ("aud a number", {"aud": 7, "iss": iss}, 401),
        ("aud a prefix", {"aud": aud[:-1], "iss": iss}, 401),
        ("iss missing", {"aud": aud}, 401),
        ("iss wrong", {"aud": aud, "iss": iss + "/"}, 401),
        ("iss in an array", {"aud": aud, "iss": [iss]}, 401),
    ]
    for how, args, env in [("flags", ("--jwt-audience", aud, "--jwt-issuer", iss), None),
                           ("env", (), {"CONVSTATE_JWT_AUDIENCE": aud, "CONVSTATE_JWT_ISSUER": iss})]:
        try:
            srv = Server(binary, db_url, extra_env=env, args=args)
        except RuntimeError as e:
            check(f"{label} ({how}): server starts", False, str(e)[:300])
            continue
        try:
            for name, claims, want in rows:
                st, data = srv.request("GET", path, token=make_token(A, claims=claims))
                check(f"{label} ({how}): {name}", st == want, f"-> {st} {data!r:.200} (want {want})")
            st, data = srv.request("GET", path, token=raw_token(
                f'{{"sub":"{A}","exp":{{exp}},"aud":"other","aud":"{aud}","iss":"{iss}"}}'))
            check(f"{label} ({how}): duplicate aud", st == 401, st)
        finally:
            code = srv.stop()
        check(f"{label} ({how}): SIGTERM exits 0", code == 0, code)
    # Only aud: iss is not required.
    try:
        srv = Server(binary, db_url, args=("--jwt-audience", aud))
        try:
            st, _ = srv.request("GET", path, token=make_token(A, claims={"aud": aud}))
            check(f"{label}: audience alone does not require iss", st == 200, st)
        finally:
            srv.stop()
    except RuntimeError as e:
        check(f"{label}: audience alone: server starts", False, str(e)[:300])


def test_startup_and_shutdown(binary, db_url):
    label = "process"
    # No secret: refuses to start.
    env = {k: v for k, v in os.environ.items() if k != "CONVSTATE_JWT_SECRET"}
    p = subprocess.run([binary, "--port", "0", "--db", db_url], env=env, capture_output=True, text=True, timeout=30)
    check(f"{label}: refuses to start without CONVSTATE_JWT_SECRET", p.returncode != 0 and "listening" not in p.stdout,
          (p.returncode, p.stdout))

    # SIGTERM with idle keep-alive connections and requests in flight: every request that was
    # accepted gets a complete response, and the process exits 0.
    srv = Server(binary, db_url)
    user = "term-" + uuid.uuid4().hex[:8]
    tok = make_token(user)
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    st, _ = srv.request("GET", "/healthz", conn=idle)
    statuses, errors = [], []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                statuses.append(srv.request("POST", f"/api/{user}/chat", {"message": "what is 1+1?"}, tok)[0])
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                errors.append(e)
                return
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    code = srv.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    check(f"{label}: SIGTERM under load exits 0", code == 0, code)
    check(f"{label}: requests in flight completed", statuses and all(s == 200 for s in statuses), statuses[-5:])
    try:
        s2 = socket_refused(srv.port)
    except Exception:
        s2 = False
    check(f"{label}: no longer listening", s2)
    idle.close()

    srv = Server(binary, db_url)
    check(f"{label}: SIGINT exits 0", srv.stop(signal.SIGINT) == 0)


def test_metrics(binary, db_url):
    """GET /metrics: the library's counters in Prometheus text, growing with the requests; the
    library's own log lines reach the server's JSON log (info: open, migrate; no content)."""
    label = "metrics"
    tag = uuid.uuid4().hex[:8]
    A = f"alice-{tag}"
    ta = make_token(A)
    secret_text = f"metrics-secret-content-{tag}"
    srv = Server(binary, db_url)
    try:
        for i in range(3):
            st, _ = srv.request("POST", f"/api/{A}/chat", {"message": f"{secret_text} {i}"}, token=ta)
            check(f"{label}: chat {i} answered", st == 200, st)
        st, body = srv.request("GET", "/metrics")
        text = body.decode() if isinstance(body, bytes) else str(body)
        check(f"{label}: 200", st == 200, st)
        lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        count = lambda op: float(lines.get(f'convstate_operation_duration_seconds_count{{operation="{op}"}}', "-1"))
        began = count("begin_turn")
        check(f"{label}: three turns begun and completed",
              began == 3 and count("complete_turn") == 3, (began, count("complete_turn")))
        check(f"{label}: the +Inf bucket equals the count",
              float(lines.get('convstate_operation_duration_seconds_bucket{operation="begin_turn",le="+Inf"}', -1)) == began)
        check(f"{label}: buckets are cumulative",
              float(lines.get('convstate_operation_duration_seconds_bucket{operation="begin_turn",le="5e-05"}', -1))
              <= float(lines.get('convstate_operation_duration_seconds_bucket{operation="begin_turn",le="10"}', -1)))
        check(f"{label}: counters present", float(lines.get("convstate_statements_total", -1)) > 0
              and "convstate_pool_acquisitions_total" in lines and "convstate_pool_wait_seconds_count" in lines)
        check(f"{label}: TYPE lines", "# TYPE convstate_operation_duration_seconds histogram" in text)
        st, _ = srv.request("POST", "/metrics", {})
        check(f"{label}: POST is refused", st == 405, st)
    finally:
        srv.stop()
    records, bad = parse_log(srv)
    library = [r for r in records if r.get("event") == "convstate"]
    check(f"{label}: the library logs through the server's log",
          any(r.get("level") == "info" and r.get("message", "").startswith("opened the ") for r in library), library[:3])
    check(f"{label}: no message content in the log", not any(secret_text in line for line in srv.log_text()))


def socket_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "server.db")
        url = "sqlite3://" + path
        run_suite(binary, url, "sqlite", sqlite_path=path)
        test_log(binary, url)
        test_metrics(binary, url)
        test_jwt_policy(binary, url)
        test_startup_and_shutdown(binary, url)
        print(f"sqlite: {check.summary()}", flush=True)
    pg = os.environ.get("CONVSTATE_TEST_PG_URL")
    if pg:
        before = check.passed, len(check.failed)
        run_suite(binary, pg, "postgres")
        print(f"postgres: {check.passed - before[0]} passed, {len(check.failed) - before[1]} failed", flush=True)
    else:
        print("postgres: skipped (CONVSTATE_TEST_PG_URL not set)")
    print(check.summary())
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
