"""Tests of convstate.aio (asyncio) on SQLite and (when configured) PostgreSQL and MariaDB; see
test_convstate.py for how to run them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import sys
import tempfile
import unittest
import uuid

if os.environ.get("CONVSTATE_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from convstate import AgentError, Conflict, InvalidArgument, NotFound  # noqa: E402
from convstate.aio import AsyncDatabase  # noqa: E402
from test_convstate import server_url  # noqa: E402  (discover puts this directory on sys.path)


class _RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    """Installed as the loop's default executor: convstate.aio must never use it."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        raise AssertionError("convstate.aio used the event loop's default executor")


class _Cases:
    backend = ""
    url = ""
    missing_reason = ""

    def setUp(self) -> None:
        if self.missing_reason:
            self.fail(self.missing_reason)  # type: ignore[attr-defined]
        self.user = f"aio-{self.backend}-{uuid.uuid4()}"

    def run_async(self, coro_fn) -> None:
        async def main() -> None:
            asyncio.get_running_loop().set_default_executor(_RefusingExecutor())
            db = AsyncDatabase(self.url, pool_size=4)
            try:
                await coro_fn(db)
            finally:
                await db.close()

        asyncio.run(main())

    def test_async_agents_run_concurrently_without_blocking_the_loop(self) -> None:
        in_flight = 0
        most = 0
        all_waiting: asyncio.Event

        async def agent(history, user, conversation):
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 200:
                all_waiting.set()
            # Each agent waits until all 200 are waiting (bounded: a library that held a thread or
            # a connection per running agent would never get there, and the test fails).
            await asyncio.wait_for(all_waiting.wait(), timeout=60)
            in_flight -= 1
            return {"content": "re: " + history[-1]["content"], "metadata": {"n": len(history)}}

        async def body(db: AsyncDatabase) -> None:
            nonlocal all_waiting
            all_waiting = asyncio.Event()
            results = await asyncio.gather(*(db.turn(self.user, f"m{i}", agent) for i in range(200)))
            # Every agent was waiting at once: none held a thread or a connection.
            self.assertEqual(most, 200)
            for i, r in enumerate(results):
                self.assertEqual(r["reply"], f"re: m{i}")
                self.assertEqual((r["user_seq"], r["reply_seq"]), (1, 2))
                self.assertEqual(await db.count(self.user, r["conversation_id"]), 2)
            # A plain function works too, and continues a conversation.
            c = results[0]["conversation_id"]
            r = await db.turn(self.user, "sync", lambda h, u, cid: f"{len(h)} messages", conversation_id=c)
            self.assertEqual(r["reply"], "3 messages")

        self.run_async(body)

    def test_streaming_form_completes_and_fails(self) -> None:
        async def body(db: AsyncDatabase) -> None:
            async with db.begin_turn(self.user, "stream me") as t:
                self.assertTrue(t.created)
                self.assertEqual([m["content"] for m in t.history], ["stream me"])
                chunks = []
                for part in ("hel", "lo"):
                    await asyncio.sleep(0)
                    chunks.append(part)
                r = await t.complete("".join(chunks))
            self.assertEqual(r["reply"], "hello")
            c = t.conversation_id

            # An exception in the block fails the turn: the user message stays, no reply.
            with self.assertRaises(RuntimeError):
                async with db.begin_turn(self.user, "boom", conversation_id=c):
                    raise RuntimeError("model down")
            self.assertEqual([m["role"] for m in await db.load_all(self.user, c)], ["user", "assistant", "user"])

            # The token is the whole state: another AsyncDatabase completes the turn.
            t2 = await db.begin_turn(self.user, "elsewhere", conversation_id=c)
            other = AsyncDatabase(self.url, pool_size=1)
            try:
                done = await other.complete_turn(self.user, t2.token, {"content": "from another instance"})
                self.assertEqual(done["reply_seq"], 5)
                again = await other.complete_turn(self.user, t2.token, "twice")
                self.assertTrue(again["replayed"])
                with self.assertRaises(NotFound):
                    await other.complete_turn("someone-else", t2.token, "x")
            finally:
                await other.close()
            with self.assertRaises(InvalidArgument) as cm:
                await db.complete_turn(self.user, "not a token", "x")
            self.assertEqual(cm.exception.field, "turn_token")

        self.run_async(body)

    def test_cancelled_turn_is_failed_and_its_keyed_retry_runs_at_once(self) -> None:
        started = asyncio.Event()

        async def slow_agent(history, user, conversation):
            started.set()
            await asyncio.sleep(30)
            return "never"

        async def body(db: AsyncDatabase) -> None:
            options = {"idempotency_key": "k-cancel", "duplicate_wait": 0.2}
            task = asyncio.create_task(db.turn(self.user, "hi", slow_agent, **options))
            await started.wait()
            task.cancel()  # the client went away
            with self.assertRaises(asyncio.CancelledError):
                await task
            # Released: the retry runs its agent now instead of waiting for the lease.
            r = await db.turn(self.user, "hi", lambda h, u, c: "second try", **options)
            self.assertEqual(r["reply"], "second try")
            self.assertFalse(r["replayed"])
            self.assertEqual(await db.count(self.user, r["conversation_id"]), 2)
            replay = await db.turn(self.user, "hi", slow_agent, **options)
            self.assertTrue(replay["replayed"])

        self.run_async(body)

    def test_agent_errors_and_reject_policy(self) -> None:
        async def failing(history, user, conversation):
            raise ValueError("no model")

        async def bad_reply(history, user, conversation):
            return {"contents": "typo"}

        async def body(db: AsyncDatabase) -> None:
            conv = await db.create_conversation(self.user, title="t")
            with self.assertRaises(AgentError) as cm:
                await db.turn(self.user, "a", failing, conversation_id=conv["id"])
            self.assertIsInstance(cm.exception.__cause__, ValueError)
            with self.assertRaises(AgentError):
                await db.turn(self.user, "b", bad_reply, conversation_id=conv["id"])
            # Both failed turns released their reject marks.
            t = await db.begin_turn(self.user, "c", conversation_id=conv["id"], reject_concurrent=True)
            with self.assertRaises(Conflict):
                await db.begin_turn(self.user, "d", conversation_id=conv["id"], reject_concurrent=True)
            await t.fail("gave up")
            await (await db.begin_turn(self.user, "e", conversation_id=conv["id"], reject_concurrent=True)).complete("ok")
            self.assertEqual(await db.count(self.user, conv["id"]), 5)

        self.run_async(body)


class SQLiteAioTest(_Cases, unittest.TestCase):
    backend = "sqlite"

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmpdir = tempfile.mkdtemp(prefix="convstate-aio-")
        cls.url = "sqlite3://" + os.path.join(cls.tmpdir, "test.db")

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmpdir, ignore_errors=True)


class PostgreSQLAioTest(_Cases, unittest.TestCase):
    backend = "pg"

    @classmethod
    def setUpClass(cls) -> None:
        cls.url = server_url(cls, cls.backend)


class MariaDBAioTest(_Cases, unittest.TestCase):
    backend = "mariadb"

    @classmethod
    def setUpClass(cls) -> None:
        cls.url = server_url(cls, cls.backend)


if __name__ == "__main__":
    unittest.main()
