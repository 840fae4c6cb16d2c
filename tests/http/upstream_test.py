#!/usr/bin/env python3
"""examples/http_server with a model behind it: the demo agent and an OpenAI-compatible upstream
(the fake in fake_upstream.py), answered whole or streamed as Server-Sent Events; a slow model
that blocks no other request; failing, cut and abandoned streams, which fail the turn so that a
keyed retry runs it again at once.

Usage: upstream_test.py PATH/TO/http_server     (SQLite; PostgreSQL too with CONVSTATE_TEST_PG_URL)
"""
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid

import httptest
from fake_upstream import FakeUpstream

SECRET = "upstream-test-secret-0123456789"


def stream_events(port, path, body, token, stop_after=None):
    """POSTs body and reads the event stream: (status, content type, [(event, data)]). With
    stop_after=n, closes the connection after n events (a client that goes away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    resp = conn.getresponse()
    events, name = [], None
    try:
        if resp.status != 200 or not resp.getheader("Content-Type", "").startswith("text/event-stream"):
            return resp.status, resp.getheader("Content-Type"), resp.read()
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if stop_after is not None and len(events) >= stop_after:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                    break
        return resp.status, resp.getheader("Content-Type"), events
    finally:
        conn.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def run_suite(binary, url, label, check):
    user = f"up-{label}-{uuid.uuid4()}"
    token = httptest.make_token(user, SECRET)
    chat = f"/api/{user}/chat"

    def roles(srv, conversation):
        st, page = srv.request("GET", f"/api/{user}/conversations/{conversation}/messages", token=token)
        return [m["role"] for m in page["items"]] if st == 200 else st

    # -- the demo agent, streamed ----------------------------------------------------------------
    srv = httptest.Server(binary, url, SECRET, threads=1)
    try:
        st, ctype, evs = stream_events(srv.port, chat, {"message": "what is 6*7?", "stream": True}, token)
        check(f"{label} demo stream: 200 text/event-stream", st == 200 and ctype.startswith("text/event-stream"),
              (st, ctype))
        names = [e for e, _ in evs]
        check(f"{label} demo stream: begin, chunks, done", names[0] == "begin" and names[-1] == "done"
              and names.count("chunk") >= 1, names)
        done = evs[-1][1]
        text = "".join(d["content"] for e, d in evs if e == "chunk")
        check(f"{label} demo stream: chunks make the stored reply", text == done.get("response") == "6*7 = 42",
              (text, done))
        check(f"{label} demo stream: the agent's tool call is stored", roles(srv, done["conversation_id"]) ==
              ["user", "assistant", "tool", "assistant"], roles(srv, done["conversation_id"]))
        st, body = srv.request("POST", chat, {"message": "again", "conversation_id": done["conversation_id"],
                                              "stream": "yes"}, token=token)
        check(f"{label} stream must be a boolean", st == 400 and body["error"].get("field") == "stream", body)
    finally:
        code = srv.stop()
        check(f"{label} SIGTERM: the server exits 0", code == 0, code)

    # -- an upstream ------------------------------------------------------------------------------
    with FakeUpstream(slow_seconds=1.0) as up:
        srv = httptest.Server(binary, url, SECRET, threads=1, args=("--upstream", up.url, "--upstream-model", "m1"))
        try:
            st, body = srv.request("POST", chat, {"message": "hello"}, token=token)
            check(f"{label} upstream: 200 with its reply", st == 200 and body["response"] == "upstream: hello", body)
            sent = up.requests[-1]
            check(f"{label} upstream: model, stream false, messages in chat format",
                  sent["model"] == "m1" and sent["stream"] is False
                  and sent["messages"] == [{"role": "user", "content": "hello"}], sent)
            c = body["conversation_id"]

            st, _, evs = stream_events(srv.port, chat, {"message": "stream it", "conversation_id": c,
                                                        "stream": True}, token)
            chunks = [d["content"] for e, d in evs if e == "chunk"]
            check(f"{label} upstream stream: one chunk per upstream piece", chunks == ["ups", "tre", "am:", " st",
                                                                                        "rea", "m i", "t"], chunks)
            check(f"{label} upstream stream: done with seqs", evs[-1][0] == "done" and evs[-1][1]["user_seq"] == 3
                  and evs[-1][1]["reply_seq"] == 4, evs[-1])
            check(f"{label} upstream stream: the window went upstream", [m["content"] for m in
                  up.requests[-1]["messages"]] == ["hello", "upstream: hello", "stream it"], up.requests[-1])

            # A slow model holds no thread: with one I/O thread, /health and another user's
            # conversation list answer while two slow turns wait on the upstream.
            results = []
            before = len(up.requests)
            threads = [threading.Thread(target=lambda: results.append(
                srv.request("POST", chat, {"message": "slow one", "conversation_id": c}, token=token)))
                for _ in range(2)]
            for t in threads:
                t.start()
            in_flight = wait_for(lambda: len(up.requests) >= before + 2)
            st_health, _ = srv.request("GET", "/health")
            st_list, _ = srv.request("GET", f"/api/{user}/conversations", token=token)
            still_waiting = len(results) == 0
            for t in threads:
                t.join()
            check(f"{label} slow upstream: /health and a list answered while both turns waited",
                  in_flight and st_health == 200 and st_list == 200 and still_waiting,
                  (in_flight, st_health, st_list, still_waiting))
            check(f"{label} slow upstream: both turns stored", sorted(r[0] for r in results) == [200, 200], results)

            # Failing upstream: 502 model_failed, the user message stays, a keyed retry reruns it.
            body = {"message": "please fail", "conversation_id": c, "idempotency_key": "kf-" + label}
            n = len(up.requests)
            st, err = srv.request("POST", chat, body, token=token)
            check(f"{label} failing upstream: 502 model_failed", st == 502 and err["error"].get("code") ==
                  "model_failed", err)
            st, _ = srv.request("POST", chat, body, token=token, timeout=10)
            check(f"{label} failing upstream: the keyed retry runs again at once", st == 502 and
                  len(up.requests) == n + 2, (st, len(up.requests) - n))
            st, _, evs = stream_events(srv.port, chat, {**body, "stream": True}, token)
            check(f"{label} failing upstream, streamed: an error event", evs and evs[-1][0] == "error"
                  and evs[-1][1]["error"]["code"] == "model_failed", evs)
            st, _, evs = stream_events(srv.port, chat, {"message": "cut me", "conversation_id": c, "stream": True},
                                       token)
            check(f"{label} a stream cut before [DONE]: an error event", evs and evs[-1][0] == "error", evs)
            r = roles(srv, c)
            # hello, stream it, the two slow ones (in either order), then the keyed failure (stored
            # once for its three attempts) and the cut stream: user messages only.
            check(f"{label} failed turns stored only their user messages",
                  r[:4] == ["user", "assistant"] * 2 and sorted(r[4:8]) == ["assistant"] * 2 + ["user"] * 2
                  and r[8:] == ["user", "user"], r)

            # A client that goes away mid-stream: the turn is failed; its keyed retry runs at once.
            key = "kd-" + label
            body = {"message": "drip slowly please", "conversation_id": c, "idempotency_key": key, "stream": True}
            st, _, evs = stream_events(srv.port, chat, body, token, stop_after=2)
            check(f"{label} abandoned stream: begin and a chunk arrived", [e for e, _ in evs] == ["begin", "chunk"],
                  evs)
            logged = wait_for(lambda: any(b'"status":499' in line for line in srv.log))
            check(f"{label} abandoned stream: logged as 499", logged, srv.log[-3:])
            r = roles(srv, c)
            check(f"{label} abandoned stream: the user message stays, no reply", r[-1] == "user" and
                  len(r) == 11, r)
            st, again = srv.request("POST", chat, {**body, "stream": False}, token=token, timeout=10)
            check(f"{label} abandoned stream: the keyed retry completes it", st == 200 and again["user_seq"] ==
                  len(r) and again["response"] == "upstream: drip slowly please", (st, again))
        finally:
            code = srv.stop()
            check(f"{label} SIGTERM: the server exits 0", code == 0, code)

    srv = httptest.Server(binary, url, SECRET, threads=1, args=("--upstream", "http://127.0.0.1:9/v1/chat"))
    try:
        st, err = srv.request("POST", chat, {"message": "anyone?"}, token=token)
        check(f"{label} unreachable upstream: 502", st == 502 and err["error"].get("code") == "model_failed", err)
    finally:
        code = srv.stop()
        check(f"{label} SIGTERM: the server exits 0", code == 0, code)


def main():
    binary = sys.argv[1]
    check = httptest.Checks()
    with tempfile.TemporaryDirectory(prefix="convstate-upstream-") as tmp:
        run_suite(binary, "sqlite3://" + os.path.join(tmp, "server.db"), "sqlite", check)
    pg = os.environ.get("CONVSTATE_TEST_PG_URL")
    if pg:
        run_suite(binary, pg, "postgres", check)
    elif os.environ.get("CONVSTATE_REQUIRE_PG") == "1":
        check("postgres: CONVSTATE_TEST_PG_URL is set", False)
    else:
        print("postgres: skipped (CONVSTATE_TEST_PG_URL not set)")
    print(check.summary())
    return 0 if not check.failed else 1


if __name__ == "__main__":
    sys.exit(main())
