"""examples/python/fastapi_app.py through FastAPI's TestClient, on SQLite and (with
CONVSTATE_TEST_PG_URL) PostgreSQL: JWT checks, the chat turn, retries, streaming (SSE), an
upstream model (the fake in fake_upstream.py: streaming, slow, failing), and a stream the
client abandons.

    CONVSTATE_LIBRARY=build/<dir>/lib/libconvstate_c.so python3 tests/http/fastapi_test.py
"""
import asyncio
import json
import os
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
sys.path.insert(0, HERE)

import jwt  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import fastapi_app  # noqa: E402
from fake_upstream import FakeUpstream  # noqa: E402

SECRET = "test-secret-0123456789abcdef"


def token(sub, secret=SECRET, exp_in=3600):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + exp_in}, secret, algorithm="HS256")


def events(text):
    """Server-Sent Events as (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((fields["event"], json.loads(fields["data"])))
    return out


class _Cases:
    url = ""
    upstream = None

    def make_client(self, upstream_url=None):
        os.environ["CONVSTATE_DB"] = self.url
        os.environ["CONVSTATE_JWT_SECRET"] = SECRET
        if upstream_url:
            os.environ["CONVSTATE_UPSTREAM"] = upstream_url
        else:
            os.environ.pop("CONVSTATE_UPSTREAM", None)
        return TestClient(fastapi_app.create_app())

    def setUp(self):
        self.user = f"fa-{uuid.uuid4()}"
        self.auth = {"Authorization": "Bearer " + token(self.user)}

    def test_auth(self):
        with self.make_client() as client:
            path = f"/api/{self.user}/chat"
            self.assertEqual(client.post(path, json={"message": "hi"}).status_code, 401)
            for bad in (token(self.user, secret="another-secret-0123456789"), token(self.user, exp_in=-60), "x.y.z"):
                r = client.post(path, json={"message": "hi"}, headers={"Authorization": "Bearer " + bad})
                self.assertEqual(r.status_code, 401, r.text)
            r = client.post(path, json={"message": "hi"}, headers={"Authorization": "Bearer " + token("mallory")})
            self.assertEqual(r.status_code, 403)
            self.assertEqual(client.get("/health").json(), {"status": "ok"})

    def test_chat_continue_retry_and_isolation(self):
        with self.make_client() as client:
            path = f"/api/{self.user}/chat"
            first = client.post(path, json={"message": "what is 6*7?"}, headers=self.auth).json()
            self.assertEqual(first["response"], "6*7 = 42")
            self.assertTrue(first["created"])
            c = first["conversation_id"]
            body = {"message": "thanks", "conversation_id": c, "idempotency_key": "k1"}
            second = client.post(path, json=body, headers=self.auth).json()
            self.assertEqual((second["user_seq"], second["reply_seq"]), (3, 4))
            self.assertIn('Before that you said "what is 6*7?"', second["response"])
            retry = client.post(path, json=body, headers=self.auth).json()
            self.assertTrue(retry["replayed"])
            self.assertEqual(retry["reply_seq"], 4)
            stored = client.get(f"/api/{self.user}/conversations/{c}/messages", headers=self.auth).json()
            self.assertEqual([m["seq"] for m in stored], [1, 2, 3, 4])
            # Another user's conversation is not found, with that user's own valid token.
            other = "fa-other-" + str(uuid.uuid4())
            r = client.post(f"/api/{other}/chat", json={"message": "x", "conversation_id": c},
                            headers={"Authorization": "Bearer " + token(other)})
            self.assertEqual(r.status_code, 404)
            r = client.post(path, json={"message": "x", "conversation_id": "c" * 300}, headers=self.auth)
            self.assertEqual((r.status_code, r.json()["error"]["field"]), (422, "conversation_id"))

    def test_streaming(self):
        with self.make_client() as client:
            r = client.post(f"/api/{self.user}/chat", json={"message": "hello there", "stream": True}, headers=self.auth)
            self.assertEqual(r.status_code, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/event-stream"))
            evs = events(r.text)
            self.assertEqual(evs[0][0], "begin")
            self.assertEqual(evs[-1][0], "done")
            chunks = [d["content"] for e, d in evs if e == "chunk"]
            self.assertGreater(len(chunks), 1)
            done = evs[-1][1]
            self.assertEqual(done["response"], "".join(chunks))
            stored = client.get(f"/api/{self.user}/conversations/{done['conversation_id']}/messages",
                                headers=self.auth).json()
            self.assertEqual(stored[-1]["content"], "".join(chunks))

    def test_upstream_model(self):
        with FakeUpstream(slow_seconds=0.3) as upstream, self.make_client(upstream.url) as client:
            path = f"/api/{self.user}/chat"
            r = client.post(path, json={"message": "slow hello"}, headers=self.auth).json()
            self.assertEqual(r["response"], "upstream: slow hello")
            self.assertEqual(upstream.requests[-1]["messages"][-1], {"role": "user", "content": "slow hello"})
            c = r["conversation_id"]
            evs = events(client.post(path, json={"message": "stream it", "conversation_id": c, "stream": True},
                                     headers=self.auth).text)
            self.assertEqual(evs[-1][1]["response"], "upstream: stream it")
            # The model saw the whole window, oldest first.
            self.assertEqual([m["content"] for m in upstream.requests[-1]["messages"]],
                             ["slow hello", "upstream: slow hello", "stream it"])
            # A failing upstream: 502, the user message stored, no reply; a keyed retry reruns.
            body = {"message": "please fail", "conversation_id": c, "idempotency_key": "kf"}
            r = client.post(path, json=body, headers=self.auth)
            self.assertEqual(r.status_code, 502)
            self.assertEqual(r.json()["error"]["kind"], "AgentError")
            evs = events(client.post(path, json={**body, "stream": True}, headers=self.auth).text)
            self.assertEqual(evs[-1][0], "error")
            stored = client.get(f"/api/{self.user}/conversations/{c}/messages", headers=self.auth).json()
            self.assertEqual([m["role"] for m in stored], ["user", "assistant", "user", "assistant", "user"])

    def test_abandoned_stream_fails_the_turn(self):
        async def body():
            from convstate.aio import AsyncDatabase

            db = AsyncDatabase(self.url)
            os.environ["CONVSTATE_JWT_SECRET"] = SECRET
            os.environ.pop("CONVSTATE_UPSTREAM", None)
            model = fastapi_app.Model(fastapi_app.Settings())
            try:
                options = {"idempotency_key": "k-gone", "duplicate_wait": 0.2}
                turn = await db.begin_turn(self.user, "a long answer please " * 5, **options)
                stream = fastapi_app.streamed_events(turn, model)
                self.assertTrue((await stream.__anext__()).startswith(b"event: begin"))
                self.assertTrue((await stream.__anext__()).startswith(b"event: chunk"))
                await stream.aclose()  # what the server does when the client disconnects
                stored = await db.load_all(self.user, turn.conversation_id)
                self.assertEqual([m["role"] for m in stored], ["user"])
                # Failed, not left running: the keyed retry begins at once.
                again = await db.begin_turn(self.user, "a long answer please " * 5, **options)
                self.assertEqual(again.user_seq, turn.user_seq)
                await again.complete("done")
            finally:
                await model.close()
                await db.close()

        asyncio.run(body())


class SQLiteFastAPITest(_Cases, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="convstate-fastapi-")
        cls.url = "sqlite3://" + os.path.join(cls.tmp.name, "chat.db")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()


class PostgreSQLFastAPITest(_Cases, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url = os.environ.get("CONVSTATE_TEST_PG_URL", "")
        if not cls.url:
            if os.environ.get("CONVSTATE_REQUIRE_PG") == "1":
                raise RuntimeError("CONVSTATE_REQUIRE_PG=1 but CONVSTATE_TEST_PG_URL is not set")
            raise unittest.SkipTest("CONVSTATE_TEST_PG_URL is not set")


if __name__ == "__main__":
    unittest.main(verbosity=2)
