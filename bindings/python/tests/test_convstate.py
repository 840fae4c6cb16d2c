"""Tests of the convstate Python binding, on SQLite and (when configured) PostgreSQL and MariaDB.

    CONVSTATE_LIBRARY=$PWD/build/<dir>/lib/libconvstate_c.so \
    CONVSTATE_TEST_PG_URL=postgresql://… CONVSTATE_TEST_MARIADB_URL=mysql://… \
        python3 -m unittest discover -s bindings/python/tests -v

Without CONVSTATE_TEST_PG_URL the PostgreSQL cases are skipped, unless CONVSTATE_REQUIRE_PG=1,
which makes them fail; the same for MariaDB with CONVSTATE_TEST_MARIADB_URL and
CONVSTATE_REQUIRE_MARIADB. The source tree next to this file is tested (set
CONVSTATE_TEST_INSTALLED=1 to test the installed package instead). Every test uses its own user
ids, so the cases can share one PostgreSQL database with anything else.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import unittest
import uuid

if os.environ.get("CONVSTATE_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import convstate  # noqa: E402
from convstate import (  # noqa: E402
    AgentError,
    Conflict,
    ConvstateError,
    Database,
    InternalError,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    Status,
    StorageError,
)


# The servers of the PostgreSQL and MariaDB cases: the variable holding the URL, the variable
# that makes it mandatory, and how to start one.
SERVERS = {
    "pg": ("CONVSTATE_TEST_PG_URL", "CONVSTATE_REQUIRE_PG", "source scripts/pg.sh; pg_start"),
    "mariadb": ("CONVSTATE_TEST_MARIADB_URL", "CONVSTATE_REQUIRE_MARIADB", "source scripts/mariadb.sh; maria_start"),
}


def server_url(cls, backend: str) -> str:
    """The test server's URL for `backend`. Without one the class is skipped, or, when the server
    is required, its tests fail (cls.missing_reason)."""
    var, require, start = SERVERS[backend]
    url = os.environ.get(var, "")
    if not url:
        if os.environ.get(require) == "1":
            cls.missing_reason = f"{require}=1 but {var} is not set"
        else:
            raise unittest.SkipTest(f"{var} is not set ({start})")
    return url


def new_user(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4()}"


def msg(role: str, content: str, **extra) -> dict:
    return {"role": role, "content": content, **extra}


def tool_call(call_id: str, name: str, arguments: str = "{}") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ErrorTypesTest(unittest.TestCase):
    """The exception hierarchy (needs the library only for status_name)."""

    def test_hierarchy_and_statuses(self) -> None:
        expected = {
            NotFound: Status.NOT_FOUND,
            InvalidArgument: Status.INVALID_ARGUMENT,
            Conflict: Status.CONFLICT,
            StorageError: Status.STORAGE_ERROR,
            OutcomeUnknown: Status.OUTCOME_UNKNOWN,
            AgentError: Status.AGENT_ERROR,
            InternalError: Status.INTERNAL_ERROR,
        }
        for cls, status in expected.items():
            e = cls("boom")
            self.assertIsInstance(e, ConvstateError)
            self.assertEqual(e.status, status)
            self.assertEqual(e.message, "boom")
            self.assertEqual(convstate.status_name(status), "CONVSTATE_" + status.name)
        self.assertTrue(issubclass(OutcomeUnknown, StorageError))
        self.assertEqual(len(set(expected.values())), 7)

    def test_library_version(self) -> None:
        self.assertEqual(convstate.library_version(), "0.1.0")
        self.assertEqual(convstate.__version__, "0.1.0")


class _Cases:
    """The tests proper; mixed into one TestCase per backend."""

    backend = ""
    missing_reason = ""  # set when the backend is required but not configured
    db: Database

    # -- fixtures ---------------------------------------------------------------------------

    @classmethod
    def make_url(cls) -> str:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        cls.url = cls.make_url()
        if cls.missing_reason:
            return
        cls.db = Database(cls.url, pool_size=4)

    @classmethod
    def tearDownClass(cls) -> None:
        if "db" in cls.__dict__:
            cls.db.close()

    def setUp(self) -> None:
        if self.missing_reason:
            self.fail(self.missing_reason)
        self.user = new_user(self.backend)
        self.other = new_user(self.backend + "-other")

    def tearDown(self) -> None:
        if not self.missing_reason and not self.db.closed:
            self.db.delete_all(self.user)
            self.db.delete_all(self.other)

    def conversation(self, **kw) -> str:
        return self.db.create_conversation(self.user, **kw)["id"]

    # -- database ---------------------------------------------------------------------------

    def test_open_close_context_manager(self) -> None:
        with Database(self.url, pool_size=1, migrate_on_open=False) as db:
            self.assertFalse(db.closed)
            self.assertGreaterEqual(db.schema_version, 1)
            db.migrate()  # idempotent
            db.migrate()
            c = db.create_conversation(self.user, "in a with block")
            self.assertEqual(db.get_conversation(self.user, c["id"])["title"], "in a with block")
        self.assertTrue(db.closed)
        db.close()  # twice is fine
        with self.assertRaises(InvalidArgument) as cm:
            db.count(self.user, c["id"])
        self.assertEqual(cm.exception.field, "db")
        self.assertIn("closed", repr(db))
        # Another handle on the same database sees what the first one wrote.
        db2 = Database(self.url)
        try:
            self.assertEqual(db2.get_conversation(self.user, c["id"])["id"], c["id"])
        finally:
            db2.close()

    def test_bad_url_is_invalid_argument_on_url(self) -> None:
        for url in ["nope://x", "", "sqlite3://", "not a url"]:
            with self.subTest(url=url):
                with self.assertRaises(InvalidArgument) as cm:
                    Database(url)
                self.assertEqual(cm.exception.field, "url")
                self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.message)

    def test_bad_options(self) -> None:
        with self.assertRaises(InvalidArgument) as cm:
            Database(self.url, pool_size=-1)
        self.assertEqual(cm.exception.field, "pool_size")
        with self.assertRaises(TypeError):
            Database(self.url, pool_size="4")  # type: ignore[arg-type]

    def test_max_content_bytes(self) -> None:
        with Database(self.url, max_content_bytes=10) as db:
            cid = db.create_conversation(self.user)["id"]
            db.append(self.user, cid, msg("user", "0123456789"))
            with self.assertRaises(InvalidArgument) as cm:
                db.append(self.user, cid, msg("user", "01234567890"))
            self.assertEqual(cm.exception.field, "content")
            self.assertEqual(db.count(self.user, cid), 1)

    def test_version_2_options_and_stats(self) -> None:
        with Database(self.url, max_title_bytes=4, max_batch=2, prepared_statements=False,
                      pool_timeout_ms=5000, statement_timeout_ms=5000) as db:
            with self.assertRaises(InvalidArgument) as cm:
                db.create_conversation(self.user, "five!")
            self.assertEqual(cm.exception.field, "title")
            before = db.stats()
            self.assertEqual(set(before), {"statements", "transactions", "retries", "bounds_us", "operations", "pool"})
            cid = db.create_conversation(self.user, "four")["id"]
            with self.assertRaises(InvalidArgument) as cm:
                db.append_batch(self.user, cid, [msg("user", "a"), msg("user", "b"), msg("user", "c")])
            self.assertEqual(cm.exception.field, "messages")
            after = db.stats()
            self.assertGreater(after["statements"], before["statements"])
            self.assertGreaterEqual(after["transactions"], before["transactions"] + 1)
            self.assertEqual(after["retries"], 0)
        with self.assertRaises(InvalidArgument) as cm:
            Database(self.url, statement_timeout_ms=0)
        self.assertEqual(cm.exception.field, "statement_timeout")

    def test_logger_and_operation_stats(self) -> None:
        records = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append((record.levelno, record.getMessage()))

        logger = logging.getLogger(f"convstate-test-{self.backend}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Collect())
        with Database(self.url, logger=logger, log_level=logging.INFO) as db:
            self.assertTrue(any(level == logging.INFO and text.startswith("opened the ") for level, text in records),
                            records)
            self.assertFalse(any(level < logging.INFO for level, _ in records))
            cid = db.create_conversation(self.user)["id"]
            db.append(self.user, cid, msg("user", "SECRET-CONTENT"))
            with self.assertRaises(NotFound):
                db.append(self.user, "missing", msg("user", "SECRET-CONTENT"))
            stats = db.stats()
            self.assertEqual(stats["operations"]["append"]["calls"], 2)
            self.assertEqual(stats["operations"]["append"]["errors"], 1)
            latency = stats["operations"]["append"]["latency"]
            self.assertEqual(sum(latency["counts"]), latency["count"])
            self.assertEqual(len(latency["counts"]), len(stats["bounds_us"]) + 1)
            self.assertGreaterEqual(stats["pool"]["acquisitions"], 3)
        self.assertFalse(any("SECRET-CONTENT" in text for _, text in records))
        with self.assertRaises(InvalidArgument) as cm:
            Database(self.url, logger=logger, log_level="loud")
        self.assertEqual(cm.exception.field, "log_level")

    # -- conversations ----------------------------------------------------------------------

    def test_conversation_crud(self) -> None:
        c = self.db.create_conversation(self.user, "First", {"topic": "tests", "n": 1})
        self.assertEqual(c["user_id"], self.user)
        self.assertEqual(c["title"], "First")
        self.assertEqual(c["metadata"], {"topic": "tests", "n": 1})
        self.assertEqual(c["last_seq"], 0)
        self.assertGreater(c["created_at_us"], 0)
        self.assertEqual(self.db.get_conversation(self.user, c["id"]), c)

        bare = self.db.create_conversation(self.user)
        self.assertEqual(bare["title"], "")
        self.assertEqual(bare["metadata"], {})

        renamed = self.db.rename_conversation(self.user, c["id"], "Renamed")
        self.assertEqual(renamed["title"], "Renamed")
        self.assertGreaterEqual(renamed["updated_at_us"], c["updated_at_us"])
        updated = self.db.set_conversation_metadata(self.user, c["id"], {"topic": "other"})
        self.assertEqual(updated["metadata"], {"topic": "other"})
        self.assertEqual(self.db.get_conversation(self.user, c["id"])["title"], "Renamed")

        self.db.append(self.user, c["id"], msg("user", "hi"))
        self.db.delete_conversation(self.user, c["id"])
        with self.assertRaises(NotFound):
            self.db.get_conversation(self.user, c["id"])
        with self.assertRaises(NotFound):
            self.db.load_all(self.user, c["id"])
        with self.assertRaises(NotFound):
            self.db.delete_conversation(self.user, c["id"])
        self.assertEqual(self.db.get_conversation(self.user, bare["id"])["id"], bare["id"])

    def test_conversation_invalid_arguments(self) -> None:
        with self.assertRaises(InvalidArgument) as cm:
            self.db.create_conversation("")
        self.assertEqual(cm.exception.field, "user_id")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.create_conversation(self.user, "t", {"x": float("nan")})
        self.assertEqual(cm.exception.field, "metadata")
        with self.assertRaises(TypeError):
            self.db.create_conversation(self.user, "t", ["not", "an", "object"])  # type: ignore[arg-type]
        with self.assertRaises(InvalidArgument) as cm:
            self.db.get_conversation(self.user, "bad\0id")
        self.assertEqual(cm.exception.field, "conversation_id")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.list_conversations(self.user, limit=0)
        self.assertEqual(cm.exception.field, "limit")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.list_conversations(self.user, cursor="not-a-cursor")
        self.assertEqual(cm.exception.field, "cursor")
        self.assertEqual(self.db.list_conversations(self.user)["items"], [])

    def test_list_pagination(self) -> None:
        ids = [self.conversation(title=f"c{i}") for i in range(5)]
        seen, sizes, cursor = [], [], None
        while True:
            page = self.db.list_conversations(self.user, cursor=cursor, limit=2)
            sizes.append(len(page["items"]))
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
        self.assertEqual(sizes, [2, 2, 1])
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(len(set(seen)), 5)
        # Most recently updated first: touching the oldest moves it to the front.
        self.db.append(self.user, ids[0], msg("user", "bump"))
        first = self.db.list_conversations(self.user, limit=1)["items"][0]
        self.assertEqual(first["id"], ids[0])
        self.assertEqual(sorted(c["id"] for c in self.db.iter_conversations(self.user, page_size=3)), sorted(ids))
        self.assertEqual(self.db.list_conversations(self.user, limit=100)["next_cursor"], None)

    def test_delete_all(self) -> None:
        for _ in range(3):
            cid = self.conversation()
            self.db.append(self.user, cid, msg("user", "x"))
        kept = self.db.create_conversation(self.other)["id"]
        self.assertEqual(self.db.delete_all(self.user), 3)
        self.assertEqual(self.db.list_conversations(self.user)["items"], [])
        self.assertEqual(self.db.delete_all(self.user), 0)
        self.assertEqual(self.db.get_conversation(self.other, kept)["id"], kept)

    def test_purge(self) -> None:
        old = self.conversation()
        self.db.append(self.user, old, msg("user", "one"))
        self.db.append(self.user, old, msg("user", "two"))
        self.conversation()
        kept = self.db.create_conversation(self.other)["id"]
        future = 2**62
        dry = self.db.purge(future, user_id=self.user, batch_size=1, dry_run=True)
        self.assertEqual(dry, {"conversations": 2, "messages": 2})
        self.assertEqual(self.db.count(self.user, old), 2)
        self.assertEqual(self.db.purge(future, user_id=self.user, batch_size=1), dry)
        with self.assertRaises(NotFound):
            self.db.get_conversation(self.user, old)
        self.assertEqual(self.db.get_conversation(self.other, kept)["id"], kept)
        self.assertEqual(self.db.purge(0, user_id=self.other), {"conversations": 0, "messages": 0})
        for kwargs, field in (
            ({"older_than_us": -1}, "older_than"),
            ({"older_than_us": future, "batch_size": 0}, "batch_size"),
            ({"older_than_us": "soon"}, "older_than"),
            ({"older_than_us": future, "user_id": ""}, "user_id"),
        ):
            with self.assertRaises(InvalidArgument) as bad:
                self.db.purge(**kwargs)
            self.assertEqual(bad.exception.field, field)
        self.assertEqual(self.db.get_conversation(self.other, kept)["id"], kept)

    def test_isolation_between_users(self) -> None:
        cid = self.conversation(title="mine")
        self.db.append(self.user, cid, msg("user", "secret"))
        with self.assertRaises(NotFound) as foreign:
            self.db.get_conversation(self.other, cid)
        missing_id = str(uuid.uuid4())
        with self.assertRaises(NotFound) as missing:
            self.db.get_conversation(self.other, missing_id)
        # Indistinguishable from a missing conversation (same message apart from the id).
        self.assertEqual(foreign.exception.message.replace(cid, "ID"), missing.exception.message.replace(missing_id, "ID"))
        calls = []
        for call in [
            lambda: self.db.load_all(self.other, cid),
            lambda: self.db.load_last(self.other, cid, 5),
            lambda: self.db.count(self.other, cid),
            lambda: self.db.append(self.other, cid, msg("user", "intrusion")),
            lambda: self.db.rename_conversation(self.other, cid, "pwned"),
            lambda: self.db.set_conversation_metadata(self.other, cid, {"x": 1}),
            lambda: self.db.delete_conversation(self.other, cid),
            lambda: self.db.window(self.other, cid),
            lambda: self.db.turn(self.other, "hi", lambda *a: calls.append(a) or "no", conversation_id=cid),
        ]:
            with self.assertRaises(NotFound):
                call()
        self.assertEqual(calls, [])
        self.assertEqual(self.db.list_conversations(self.other)["items"], [])
        self.assertEqual(self.db.delete_all(self.other), 0)
        c = self.db.get_conversation(self.user, cid)
        self.assertEqual((c["title"], c["last_seq"]), ("mine", 1))
        self.assertEqual([m["content"] for m in self.db.load_all(self.user, cid)], ["secret"])

    # -- messages ---------------------------------------------------------------------------

    def test_append_and_batch(self) -> None:
        cid = self.conversation()
        m1 = self.db.append(self.user, cid, msg("system", "be brief"))
        self.assertEqual((m1["seq"], m1["conversation_id"], m1["role"]), (1, cid, "system"))
        m2 = self.db.append(self.user, cid, msg("user", "hello", name="alice", metadata={"ip": "x"}, token_count=3))
        self.assertEqual(m2["seq"], 2)
        self.assertEqual((m2["name"], m2["metadata"], m2["token_count"]), ("alice", {"ip": "x"}, 3))
        batch = self.db.append_batch(
            self.user,
            cid,
            [
                msg("assistant", "", tool_calls=[tool_call("c1", "calc", '{"e":"1+1"}')]),
                msg("tool", "2", tool_call_id="c1", name="calc"),
                msg("assistant", "1+1 = 2"),
            ],
        )
        self.assertEqual([m["seq"] for m in batch], [3, 4, 5])
        self.assertEqual(batch[0]["tool_calls"], [tool_call("c1", "calc", '{"e":"1+1"}')])
        self.assertEqual(batch[1]["tool_call_id"], "c1")
        self.assertEqual(self.db.count(self.user, cid), 5)
        self.assertEqual(self.db.get_conversation(self.user, cid)["last_seq"], 5)
        self.assertEqual(self.db.load_all(self.user, cid)[2:], batch)
        with self.assertRaises(InvalidArgument) as cm:  # an empty batch is refused by the library
            self.db.append_batch(self.user, cid, [])
        self.assertEqual(cm.exception.field, "messages")

    def test_conversation_keys(self) -> None:
        conv, created = self.db.get_or_create_conversation(self.user, "thread-1", title="t")
        self.assertTrue(created)
        self.assertEqual((conv["external_key"], conv["title"]), ("thread-1", "t"))
        again, created = self.db.get_or_create_conversation(self.user, "thread-1")
        self.assertFalse(created)
        self.assertEqual(again["id"], conv["id"])
        self.assertEqual(self.db.get_conversation_by_key(self.user, "thread-1")["id"], conv["id"])
        with self.assertRaises(NotFound):
            self.db.get_conversation_by_key(self.user, "no-such-key")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.get_or_create_conversation(self.user, "")
        self.assertEqual(cm.exception.field, "external_key")

        r = self.db.turn(self.user, "hi", lambda h, u, c: "ok", conversation_key="thread-2", title="keyed")
        self.assertTrue(r["created"])
        r2 = self.db.turn(self.user, "again", lambda h, u, c: str(len(h)), conversation_key="thread-2")
        self.assertEqual((r2["conversation_id"], r2["created"], r2["reply"]), (r["conversation_id"], False, "3"))
        self.assertEqual(self.db.get_conversation(self.user, r["conversation_id"])["title"], "keyed")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.turn(self.user, "x", lambda h, u, c: "", conversation_key="k", conversation_id=r["conversation_id"])
        self.assertEqual(cm.exception.field, "conversation_key")
        pending = self.db.begin_turn(self.user, "split", conversation_key="thread-2")
        self.assertEqual(pending["conversation_id"], r["conversation_id"])
        self.assertEqual(self.db.complete_turn(self.user, pending["token"], "done")["reply_seq"], 6)

    def test_developer_role_is_kept_like_system(self) -> None:
        cid = self.conversation()
        self.db.append_batch(
            self.user, cid, [msg("developer", "answer in French")] + [msg("user", f"m{i}") for i in range(5)]
        )
        window = self.db.window(self.user, cid, kind="last", max_messages=2)
        self.assertEqual([(m["seq"], m["role"]) for m in window], [(1, "developer"), (5, "user"), (6, "user")])

    def test_summaries(self) -> None:
        cid = self.conversation()
        self.db.append_batch(self.user, cid, [msg("system", "s")] + [msg("user", f"m{i}") for i in range(2, 11)])
        s = self.db.add_summary(self.user, cid, 6, "first five", metadata={"by": "test"})
        self.assertEqual((s["covers_through_seq"], s["content"], s["metadata"]), (6, "first five", {"by": "test"}))
        self.assertEqual([x["covers_through_seq"] for x in self.db.summaries(self.user, cid)], [6])
        window = self.db.window(self.user, cid, kind="last", max_messages=2)
        self.assertEqual([m.get("seq") for m in window], [1, None, 9, 10])
        self.assertEqual(window[1]["content"], "first five")
        as_user = self.db.window(self.user, cid, summary_role="user", keep_system=False)
        self.assertEqual((as_user[0]["role"], len(as_user)), ("user", 5))
        self.assertEqual(len(self.db.window(self.user, cid, from_summary=False)), 10)
        seen: list = []
        self.db.turn(self.user, "next", lambda h, u, c: seen.extend(h) or "ok", conversation_id=cid,
                     window={"kind": "last", "max_messages": 2, "from_summary": True})
        self.assertEqual([m.get("seq") for m in seen], [1, None, 10, 11])
        with self.assertRaises(InvalidArgument) as cm:
            self.db.add_summary(self.user, cid, 99, "past the end")
        self.assertEqual(cm.exception.field, "covers_through_seq")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.window(self.user, cid, summary_role="wizard")
        self.assertEqual(cm.exception.field, "window.summary_role")
        self.assertEqual(self.db.truncate(self.user, cid, 5), 7)
        self.assertEqual(self.db.summaries(self.user, cid), [])

    def test_fork_and_regenerate(self) -> None:
        r = self.db.turn(self.user, "2+2?", lambda h, u, c: "4")
        self.db.turn(self.user, "3+3?", lambda h, u, c: "6", conversation_id=r["conversation_id"])
        fork = self.db.fork_conversation(self.user, r["conversation_id"], 3, title="regenerated")
        self.assertEqual(fork["forked_from"], {"conversation_id": r["conversation_id"], "seq": 3})
        self.assertEqual((fork["title"], fork["last_seq"]), ("regenerated", 3))
        self.assertEqual([f["id"] for f in self.db.forks(self.user, r["conversation_id"])], [fork["id"]])
        again = self.db.turn(self.user, "", lambda h, u, c: f"six, for {h[-1]['content']}", conversation_id=fork["id"],
                             regenerate=True)
        self.assertEqual((again["user_seq"], again["reply_seq"], again["reply"]), (3, 4, "six, for 3+3?"))
        with self.assertRaises(InvalidArgument) as cm:
            self.db.fork_conversation(self.user, r["conversation_id"], 99)
        self.assertEqual(cm.exception.field, "at_seq")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.turn(self.user, "", lambda h, u, c: "x", conversation_id=fork["id"], regenerate=True)
        self.assertEqual(cm.exception.field, "regenerate")
        with self.assertRaises(NotFound):
            self.db.forks("someone-else", r["conversation_id"])

    def test_usage(self) -> None:
        r = self.db.turn(self.user, "q", lambda h, u, c: {"content": "a", "usage": {"model": "m", "prompt_tokens": 12,
                                                                                   "completion_tokens": 3}})
        pending = self.db.begin_turn(self.user, "q2", conversation_id=r["conversation_id"])
        self.db.complete_turn(self.user, pending["token"], {"content": "b", "usage": {"prompt_tokens": 5}})
        report = self.db.usage(self.user, r["conversation_id"])
        self.assertEqual((report["replies"], report["prompt_tokens"], report["completion_tokens"]), (2, 17, 3))
        self.assertEqual([m["model"] for m in report["by_model"]], [None, "m"])
        self.assertEqual(self.db.usage_since(self.user, 0)["replies"], 2)
        with self.assertRaises(AgentError):
            self.db.turn(self.user, "q3", lambda h, u, c: {"content": "x", "usage": {"prompt_tokens": -1}},
                         conversation_id=r["conversation_id"])
        with self.assertRaises(NotFound):
            self.db.usage("someone-else", r["conversation_id"])

    def test_content_parts(self) -> None:
        parts = [{"type": "text", "text": "what is this? é"},
                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
        seen: list = []
        r = self.db.turn(self.user, parts, lambda h, u, c: seen.append(h[-1]["content"]) or "a logo")
        self.assertEqual(seen, [parts])
        stored = self.db.load_all(self.user, r["conversation_id"])
        self.assertEqual(stored[0]["content"], parts)
        appended = self.db.append(self.user, r["conversation_id"], {"role": "user", "content": [{"type": "text", "text": "t"}]})
        self.assertEqual(appended["content"], [{"type": "text", "text": "t"}])
        with self.assertRaises(InvalidArgument) as cm:
            self.db.append(self.user, r["conversation_id"], {"role": "assistant", "content": [
                {"type": "image_url", "image_url": {"url": "https://x"}}]})
        self.assertEqual(cm.exception.field, "content[0].type")

    def test_truncate(self) -> None:
        cid = self.conversation()
        self.db.append_batch(
            self.user,
            cid,
            [
                msg("user", "q"),
                msg("assistant", "", tool_calls=[tool_call("c1", "calc", "{}")]),
                msg("tool", "2", tool_call_id="c1"),
                msg("assistant", "a"),
            ],
        )
        with self.assertRaises(InvalidArgument) as cm:  # the call would lose its result
            self.db.truncate(self.user, cid, 2)
        self.assertEqual(cm.exception.field, "after_seq")
        with self.assertRaises(Conflict):
            self.db.truncate(self.user, cid, 3, expected_last_seq=9)
        self.assertEqual(self.db.truncate(self.user, cid, 3, expected_last_seq=4), 1)
        self.assertEqual(self.db.truncate(self.user, cid, 3), 0)
        self.assertEqual(self.db.truncate(self.user, cid, 1), 2)
        self.assertEqual([m["seq"] for m in self.db.load_all(self.user, cid)], [1])
        self.assertEqual(self.db.append(self.user, cid, msg("user", "again"))["seq"], 2)
        with self.assertRaises(NotFound):
            self.db.truncate("someone-else", cid, 0)
        self.assertEqual(self.db.count(self.user, cid), 2)

    def test_batch_is_atomic_and_names_the_field(self) -> None:
        cid = self.conversation()
        self.db.append(self.user, cid, msg("user", "one"))
        with self.assertRaises(InvalidArgument) as cm:
            self.db.append_batch(self.user, cid, [msg("user", "two"), msg("tool", "no call id"), msg("user", "x")])
        self.assertEqual(cm.exception.field, "messages[1].tool_call_id")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.append(self.user, cid, msg("wizard", "x"))
        self.assertEqual(cm.exception.field, "role")
        self.assertEqual(self.db.count(self.user, cid), 1)
        with self.assertRaises(TypeError):
            self.db.append_batch(self.user, cid, msg("user", "not a list"))  # type: ignore[arg-type]

    def test_idempotency_keys(self) -> None:
        cid = self.conversation()
        a = self.db.append(self.user, cid, msg("user", "first", idempotency_key="req-1"))
        b = self.db.append(self.user, cid, msg("user", "different content", idempotency_key="req-1"))
        self.assertEqual(b["seq"], a["seq"])
        self.assertEqual(b["content"], "first")
        self.assertEqual(self.db.count(self.user, cid), 1)
        batch = self.db.append_batch(
            self.user, cid, [msg("user", "again", idempotency_key="req-1"), msg("user", "new", idempotency_key="req-2")]
        )
        self.assertEqual([(m["seq"], m["content"]) for m in batch], [(1, "first"), (2, "new")])
        self.assertEqual(self.db.count(self.user, cid), 2)
        # Keys are per conversation.
        other = self.conversation()
        self.assertEqual(self.db.append(self.user, other, msg("user", "x", idempotency_key="req-1"))["seq"], 1)

    def test_expected_last_seq(self) -> None:
        cid = self.conversation()
        self.assertEqual(self.db.append(self.user, cid, msg("user", "a"), expected_last_seq=0)["seq"], 1)
        self.assertEqual(self.db.append(self.user, cid, msg("user", "b"), expected_last_seq=1)["seq"], 2)
        with self.assertRaises(Conflict) as cm:
            self.db.append(self.user, cid, msg("user", "stale"), expected_last_seq=1)
        self.assertEqual(cm.exception.status, Status.CONFLICT)
        with self.assertRaises(Conflict):
            self.db.append_batch(self.user, cid, [msg("user", "c"), msg("user", "d")], expected_last_seq=0)
        batch = self.db.append_batch(self.user, cid, [msg("user", "c"), msg("user", "d")], expected_last_seq=2)
        self.assertEqual([m["seq"] for m in batch], [3, 4])
        self.assertEqual(self.db.count(self.user, cid), 4)

    def test_loads(self) -> None:
        cid = self.conversation()
        self.db.append_batch(self.user, cid, [msg("user" if i % 2 else "assistant", f"m{i}") for i in range(1, 11)])
        seqs = lambda ms: [m["seq"] for m in ms]  # noqa: E731
        self.assertEqual(seqs(self.db.load_all(self.user, cid)), list(range(1, 11)))
        self.assertEqual(seqs(self.db.load_last(self.user, cid, 3)), [8, 9, 10])
        self.assertEqual(seqs(self.db.load_last(self.user, cid, 50)), list(range(1, 11)))
        self.assertEqual(self.db.load_last(self.user, cid, 0), [])
        self.assertEqual(seqs(self.db.load_after(self.user, cid, 5, 3)), [6, 7, 8])
        self.assertEqual(seqs(self.db.load_after(self.user, cid, 8)), [9, 10])
        self.assertEqual(self.db.load_after(self.user, cid, 10, 5), [])
        self.assertEqual(seqs(self.db.load_before(self.user, cid, 5, 2)), [3, 4])
        self.assertEqual(seqs(self.db.load_before(self.user, cid, 3, 100)), [1, 2])
        self.assertEqual(self.db.load_all(self.user, cid)[4]["content"], "m5")
        self.assertEqual(self.db.count(self.user, cid), 10)
        with self.assertRaises(InvalidArgument) as cm:
            self.db.load_after(self.user, cid, 0, 0)
        self.assertEqual(cm.exception.field, "limit")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.load_last(self.user, cid, -1)
        self.assertEqual(cm.exception.field, "n")
        empty = self.conversation()
        self.assertEqual(self.db.load_all(self.user, empty), [])
        self.assertEqual(self.db.count(self.user, empty), 0)

    def test_unicode_round_trip(self) -> None:
        user = new_user("ユーザー-ü")
        try:
            title = "Ünïcödé 🎉 — 你好"
            meta = {"emoji": "🎈", "nested": {"ключ": ["значение", 1, 2.5, True, None]}, "q": "\"'\\"}
            c = self.db.create_conversation(user, title, meta)
            self.assertEqual((c["title"], c["metadata"], c["user_id"]), (title, meta, user))
            texts = [
                "héllo wörld — 你好 🌍 👩‍👩‍👧 e\u0301",
                "\u202eRTL\u202c עברית العربية",
                "tabs\tnewlines\n\"quotes\" \\backslash\\ {json: [1]}",
                "\U0001F600" * 100,
                "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u2028 \ufeff",
            ]
            stored = self.db.append_batch(user, c["id"], [msg("user", t, metadata={"t": t}) for t in texts])
            loaded = self.db.load_all(user, c["id"])
            self.assertEqual([m["content"] for m in loaded], texts)
            self.assertEqual([m["metadata"]["t"] for m in loaded], texts)
            self.assertEqual(loaded, stored)
            r = self.db.turn(user, "Grüße 👋", lambda h, u, cid: f"echo: {h[-1]['content']} ✓", conversation_id=c["id"])
            self.assertEqual(r["reply"], "echo: Grüße 👋 ✓")
            self.assertEqual(self.db.load_last(user, c["id"], 1)[0]["content"], "echo: Grüße 👋 ✓")
            with self.assertRaises(InvalidArgument) as cm:
                self.db.append(user, c["id"], msg("user", "bad \ud800 surrogate"))
            self.assertEqual(cm.exception.field, "message")
            with self.assertRaises(InvalidArgument) as cm:
                self.db.append(user, c["id"], msg("user", "nul \0 byte"))
            self.assertEqual(cm.exception.field, "content")
        finally:
            self.db.delete_all(user)

    # -- windows ----------------------------------------------------------------------------

    def test_window_kinds(self) -> None:
        cid = self.conversation()
        self.db.append(self.user, cid, msg("system", "sys", token_count=5))
        self.db.append_batch(
            self.user, cid, [msg("user" if i % 2 else "assistant", f"m{i}", token_count=10) for i in range(1, 11)]
        )
        seqs = lambda ms: [m["seq"] for m in ms]  # noqa: E731
        self.assertEqual(seqs(self.db.window(self.user, cid)), list(range(1, 12)))
        self.assertEqual(seqs(self.db.window(self.user, cid, "all", keep_system=False)), list(range(1, 12)))
        self.assertEqual(seqs(self.db.window(self.user, cid, "last", max_messages=3)), [1, 9, 10, 11])
        self.assertEqual(seqs(self.db.window(self.user, cid, "last", max_messages=3, keep_system=False)), [9, 10, 11])
        # 35 tokens: the system message (5) and three of 10.
        self.assertEqual(seqs(self.db.window(self.user, cid, "tokens", token_budget=35)), [1, 9, 10, 11])
        # The newest unit is always kept, even over budget.
        self.assertEqual(seqs(self.db.window(self.user, cid, "tokens", token_budget=1, keep_system=False)), [11])
        with self.assertRaises(InvalidArgument) as cm:
            self.db.window(self.user, cid, "newest")
        self.assertEqual(cm.exception.field, "window.kind")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.window(self.user, cid, "last", max_messages=0)
        self.assertEqual(cm.exception.field, "window.max_messages")

    def test_window_never_splits_tool_calls(self) -> None:
        cid = self.conversation()
        self.db.append_batch(
            self.user,
            cid,
            [
                msg("user", "what is 1+1?"),
                msg("assistant", "", tool_calls=[tool_call("c1", "calc")]),
                msg("tool", "2", tool_call_id="c1"),
                msg("assistant", "2"),
            ],
        )
        # The last 2 would start at the tool result: the group is dropped whole.
        window = self.db.window(self.user, cid, "last", max_messages=2)
        self.assertEqual([m["seq"] for m in window], [4])
        window = self.db.window(self.user, cid, "last", max_messages=3)
        self.assertEqual([m["role"] for m in window], ["assistant", "tool", "assistant"])

    # -- the turn ---------------------------------------------------------------------------

    def test_turn_creates_then_continues(self) -> None:
        seen = []

        def agent(history, user_id, conversation_id):
            seen.append(([(m["role"], m["content"]) for m in history], user_id, conversation_id))
            return f"reply to {history[-1]['content']}"

        r1 = self.db.turn(
            self.user,
            "hello",
            agent,
            title="Greeting",
            conversation_metadata={"channel": "test"},
            message_metadata={"client": "unittest"},
        )
        self.assertTrue(r1["created"])
        self.assertFalse(r1["replayed"])
        self.assertEqual((r1["reply"], r1["user_seq"], r1["reply_seq"], r1["tool_calls"]), ("reply to hello", 1, 2, []))
        cid = r1["conversation_id"]
        self.assertEqual(seen[0], ([("user", "hello")], self.user, cid))
        c = self.db.get_conversation(self.user, cid)
        self.assertEqual((c["title"], c["metadata"], c["last_seq"]), ("Greeting", {"channel": "test"}, 2))
        self.assertEqual(self.db.load_all(self.user, cid)[0]["metadata"], {"client": "unittest"})

        r2 = self.db.turn(self.user, "again", agent, conversation_id=cid)
        self.assertFalse(r2["created"])
        self.assertEqual((r2["conversation_id"], r2["user_seq"], r2["reply_seq"]), (cid, 3, 4))
        self.assertEqual(
            seen[1][0], [("user", "hello"), ("assistant", "reply to hello"), ("user", "again")]
        )
        self.assertEqual(
            [(m["seq"], m["role"], m["content"]) for m in self.db.load_all(self.user, cid)],
            [(1, "user", "hello"), (2, "assistant", "reply to hello"), (3, "user", "again"), (4, "assistant", "reply to again")],
        )
        with self.assertRaises(NotFound):
            self.db.turn(self.user, "x", agent, conversation_id=str(uuid.uuid4()))
        self.assertEqual(len(seen), 2)

    def test_turn_tool_calls_and_intermediate_messages(self) -> None:
        def agent(history, user_id, conversation_id):
            seq = history[-1]["seq"]
            call = tool_call(f"call_{seq}", "calculator", '{"expression":"6*7"}')
            return {
                "intermediate": [
                    msg("assistant", "", tool_calls=[call]),
                    msg("tool", "42", tool_call_id=call["id"], name="calculator"),
                ],
                "content": "6*7 = 42",
                "metadata": {"model": "demo", "latency_ms": 3},
            }

        r = self.db.turn(self.user, "what is 6*7?", agent)
        cid = r["conversation_id"]
        self.assertEqual((r["user_seq"], r["reply_seq"], r["reply"]), (1, 4, "6*7 = 42"))
        stored = self.db.load_all(self.user, cid)
        self.assertEqual([m["role"] for m in stored], ["user", "assistant", "tool", "assistant"])
        self.assertEqual(stored[1]["tool_calls"][0]["function"], {"name": "calculator", "arguments": '{"expression":"6*7"}'})
        self.assertEqual((stored[2]["tool_call_id"], stored[2]["content"]), ("call_1", "42"))
        self.assertEqual(stored[3]["metadata"], {"model": "demo", "latency_ms": 3})

        # Tool calls on the final reply (for the client to run) come back in the result.
        calls = [tool_call("client_1", "open_url", '{"url":"https://example.com"}')]
        r2 = self.db.turn(self.user, "open it", lambda *a: {"content": "", "tool_calls": calls}, conversation_id=cid)
        self.assertEqual(r2["tool_calls"], calls)
        self.assertEqual(self.db.load_last(self.user, cid, 1)[0]["tool_calls"], calls)

    def test_agent_exception_becomes_agent_error(self) -> None:
        cid = self.conversation()

        def agent(history, user_id, conversation_id):
            raise ValueError("the model is on fire")

        with self.assertRaises(AgentError) as cm:
            self.db.turn(self.user, "hello?", agent, conversation_id=cid)
        e = cm.exception
        self.assertEqual(e.status, Status.AGENT_ERROR)
        self.assertIn("the model is on fire", e.message)
        self.assertIn("ValueError", e.message)
        self.assertIsInstance(e.__cause__, ValueError)
        stored = self.db.load_all(self.user, cid)
        self.assertEqual([(m["role"], m["content"]) for m in stored], [("user", "hello?")])
        # The library still works on this thread afterwards.
        self.assertEqual(self.db.turn(self.user, "ok?", lambda *a: "yes", conversation_id=cid)["reply_seq"], 3)

    def test_bad_agent_output_is_agent_error(self) -> None:
        cid = self.conversation()
        bad_replies = [
            42,
            None,
            {"content": "x", "intermediate": [msg("user", "agents cannot say this")]},
            {"content": "x", "tool_calls": [{"id": "broken"}]},
            {"content": "x", "unknown_field": 1},
            {"content": "x", "metadata": ["not", "an", "object"]},
        ]
        for reply in bad_replies:
            with self.subTest(reply=reply):
                with self.assertRaises(AgentError):
                    self.db.turn(self.user, "hi", lambda *a, r=reply: r, conversation_id=cid)
        self.assertEqual([m["role"] for m in self.db.load_all(self.user, cid)], ["user"] * len(bad_replies))

    def test_keyboard_interrupt_in_agent_is_reraised(self) -> None:
        cid = self.conversation()

        def agent(*a):
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            self.db.turn(self.user, "hi", agent, conversation_id=cid)
        self.assertEqual(self.db.count(self.user, cid), 1)

    def test_idempotent_turn_retry(self) -> None:
        calls = []

        def agent(history, user_id, conversation_id):
            calls.append(len(history))
            return f"answer {len(calls)}"

        key = f"req-{uuid.uuid4()}"
        r1 = self.db.turn(self.user, "hi", agent, idempotency_key=key)
        r2 = self.db.turn(self.user, "hi", agent, idempotency_key=key)  # a client retry, creating turn
        self.assertEqual(calls, [1])
        self.assertTrue(r2["replayed"])
        self.assertEqual(
            (r2["conversation_id"], r2["reply"], r2["user_seq"], r2["reply_seq"]),
            (r1["conversation_id"], r1["reply"], r1["user_seq"], r1["reply_seq"]),
        )
        cid = r1["conversation_id"]
        self.assertEqual(self.db.count(self.user, cid), 2)
        self.assertEqual(len(self.db.list_conversations(self.user)["items"]), 1)

        # A retry after an agent failure runs the agent again, without a second user message.
        key2 = f"req-{uuid.uuid4()}"
        fail = [True]

        def flaky(history, user_id, conversation_id):
            calls.append(len(history))
            if fail[0]:
                fail[0] = False
                raise RuntimeError("transient model error")
            return "recovered"

        with self.assertRaises(AgentError):
            self.db.turn(self.user, "second", flaky, conversation_id=cid, idempotency_key=key2)
        r3 = self.db.turn(self.user, "second", flaky, conversation_id=cid, idempotency_key=key2)
        self.assertEqual((r3["reply"], r3["user_seq"], r3["reply_seq"], r3["replayed"]), ("recovered", 3, 4, False))
        r4 = self.db.turn(self.user, "second", flaky, conversation_id=cid, idempotency_key=key2)
        self.assertTrue(r4["replayed"])
        self.assertEqual(calls, [1, 3, 3])
        self.assertEqual([m["content"] for m in self.db.load_all(self.user, cid)], ["hi", "answer 1", "second", "recovered"])

    def test_turn_window(self) -> None:
        cid = self.conversation()
        self.db.append(self.user, cid, msg("system", "you are a test"))
        self.db.append_batch(self.user, cid, [msg("user" if i % 2 else "assistant", f"m{i}") for i in range(1, 7)])
        seen = []
        agent = lambda h, u, c: seen.append([m["content"] for m in h]) or "ok"  # noqa: E731
        self.db.turn(self.user, "now", agent, conversation_id=cid, window={"kind": "last", "max_messages": 2})
        self.assertEqual(seen[-1], ["you are a test", "m6", "now"])
        self.db.turn(
            self.user, "again", agent, conversation_id=cid,
            window={"kind": "last", "max_messages": 3, "keep_system": False},
        )
        self.assertEqual(seen[-1], ["now", "ok", "again"])
        self.db.turn(self.user, "tok", agent, conversation_id=cid, window={"kind": "tokens", "token_budget": 1})
        self.assertEqual(seen[-1], ["you are a test", "tok"])
        self.db.turn(self.user, "all", agent, conversation_id=cid, window={"kind": "all"})
        self.assertEqual(len(seen[-1]), 14)
        with self.assertRaises(InvalidArgument) as cm:
            self.db.turn(self.user, "x", agent, conversation_id=cid, window={"kind": "last", "max": 2})
        self.assertEqual(cm.exception.field, "window")
        self.assertEqual(len(seen), 4)

    def test_reject_concurrent_from_inside_an_agent(self) -> None:
        cid = self.conversation()
        inner = []

        def outer_agent(history, user_id, conversation_id):
            # Re-entrant use of the database from the agent: another turn on the same
            # conversation while this one runs is rejected.
            try:
                self.db.turn(user_id, "intruder", lambda *a: "no", conversation_id=conversation_id, reject_concurrent=True)
            except Conflict as e:
                inner.append(e)
            return "outer done"

        r = self.db.turn(self.user, "go", outer_agent, conversation_id=cid, reject_concurrent=True)
        self.assertEqual(r["reply"], "outer done")
        self.assertEqual(len(inner), 1)
        self.assertEqual(inner[0].status, Status.CONFLICT)
        self.assertEqual([m["content"] for m in self.db.load_all(self.user, cid)], ["go", "outer done"])
        # The marker is cleared: the next turn goes through.
        self.assertEqual(self.db.turn(self.user, "next", lambda *a: "fine", conversation_id=cid, reject_concurrent=True)["reply"], "fine")

    def test_keyed_duplicate_waits_for_the_running_turn(self) -> None:
        cid = self.conversation()
        inner = []

        def outer_agent(history, user_id, conversation_id):
            # The same keyed turn, started while this one runs its agent: it waits
            # duplicate_wait, then Conflict (the agent is never run twice at once for one key).
            try:
                self.db.turn(user_id, "same", lambda *a: "twice", conversation_id=conversation_id,
                             idempotency_key="py-dup", duplicate_wait=0.2)
            except Conflict as e:
                inner.append(e)
            return "once"

        r = self.db.turn(self.user, "same", outer_agent, conversation_id=cid, idempotency_key="py-dup")
        self.assertEqual(r["reply"], "once")
        self.assertEqual(len(inner), 1)
        self.assertIn("still running", inner[0].message)
        # Completed: a retry replays it.
        again = self.db.turn(self.user, "same", lambda *a: "never", conversation_id=cid, idempotency_key="py-dup",
                             run_lease=60)
        self.assertTrue(again["replayed"])
        self.assertEqual(again["reply"], "once")
        for bad in (0, -1, 86401, "1", True):
            with self.assertRaises(InvalidArgument) as cm:
                self.db.turn(self.user, "x", lambda *a: "y", conversation_id=cid, run_lease=bad)
            self.assertEqual(cm.exception.field, "run_lease")

    def test_flush_user_message_either_way_stores_the_turn(self) -> None:
        for flush in (True, False):
            r = self.db.turn(self.user, f"flush {flush}", lambda *a: "ok", flush_user_message=flush)
            self.assertEqual((r["user_seq"], r["reply_seq"]), (1, 2))
            t = self.db.begin_turn(self.user, "split", conversation_id=r["conversation_id"], flush_user_message=flush)
            self.assertEqual(self.db.complete_turn(self.user, t["token"], "done")["reply_seq"], 4)

    def test_turn_invalid_arguments(self) -> None:
        with self.assertRaises(InvalidArgument) as cm:
            self.db.turn("", "hi", lambda *a: "x")
        self.assertEqual(cm.exception.field, "user_id")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.turn(self.user, "a\0b", lambda *a: "x")
        self.assertEqual(cm.exception.field, "message")
        with self.assertRaises(TypeError):
            self.db.turn(self.user, "hi", "not callable")  # type: ignore[arg-type]
        self.assertEqual(self.db.list_conversations(self.user)["items"], [])

    # -- threads ----------------------------------------------------------------------------

    def test_threads_share_one_database(self) -> None:
        threads_n, turns_n = 4, 5
        errors: list[BaseException] = []
        results: dict[int, tuple[str, list[int], set[int]]] = {}
        barrier = threading.Barrier(threads_n)

        def worker(i: int) -> None:
            try:
                seen_lengths: list[int] = []
                agent_threads: set[int] = set()

                def agent(history, user_id, conversation_id):
                    agent_threads.add(threading.get_ident())
                    seen_lengths.append(len(history))
                    assert history[-1]["content"].startswith(f"t{i}-"), history[-1]
                    return f"r{i}-{len(history)}"

                barrier.wait()
                cid = None
                for k in range(turns_n):
                    r = self.db.turn(self.user, f"t{i}-{k}", agent, conversation_id=cid)
                    cid = r["conversation_id"]
                results[i] = (cid, seen_lengths, agent_threads - {threading.get_ident()})
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), threads_n)
        self.assertEqual(len({cid for cid, _, _ in results.values()}), threads_n)
        for i, (cid, lengths, foreign_threads) in results.items():
            self.assertEqual(lengths, [1, 3, 5, 7, 9])
            self.assertEqual(foreign_threads, set())  # the agent ran on the calling thread
            stored = self.db.load_all(self.user, cid)
            self.assertEqual([m["seq"] for m in stored], list(range(1, 2 * turns_n + 1)))
            self.assertEqual(stored[-1]["content"], f"r{i}-9")

    def test_threads_on_one_conversation(self) -> None:
        cid = self.conversation()
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                for k in range(3):
                    self.db.turn(self.user, f"q{i}.{k}", lambda h, u, c: "a" + h[-1]["content"][1:], conversation_id=cid)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        stored = self.db.load_all(self.user, cid)
        self.assertEqual([m["seq"] for m in stored], list(range(1, 25)))
        # Each reply comes after its own user message.
        position = {m["content"]: m["seq"] for m in stored}
        for i in range(4):
            for k in range(3):
                self.assertLess(position[f"q{i}.{k}"], position[f"a{i}.{k}"])

    def test_close_waits_for_other_threads(self) -> None:
        db = Database(self.url)
        cid = db.create_conversation(self.user)["id"]
        started, release = threading.Event(), threading.Event()
        out = {}

        def agent(*a):
            started.set()
            release.wait(30)
            return "late but stored"

        t = threading.Thread(target=lambda: out.setdefault("r", db.turn(self.user, "slow", agent, conversation_id=cid)))
        t.start()
        self.assertTrue(started.wait(30))
        closer = threading.Thread(target=db.close)
        closer.start()
        closer.join(0.3)
        self.assertTrue(closer.is_alive())  # waiting for the turn
        release.set()
        t.join(30)
        closer.join(30)
        self.assertTrue(db.closed)
        self.assertEqual(out["r"]["reply"], "late but stored")
        self.assertEqual(self.db.count(self.user, cid), 2)


class SQLiteTest(_Cases, unittest.TestCase):
    backend = "sqlite"

    @classmethod
    def make_url(cls) -> str:
        cls.tmpdir = tempfile.mkdtemp(prefix="convstate-py-")
        return "sqlite3://" + os.path.join(cls.tmpdir, "test.db")

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        shutil.rmtree(cls.tmpdir, ignore_errors=True)


class PostgreSQLTest(_Cases, unittest.TestCase):
    backend = "pg"

    @classmethod
    def make_url(cls) -> str:
        return server_url(cls, cls.backend)


class MariaDBTest(_Cases, unittest.TestCase):
    backend = "mariadb"

    @classmethod
    def make_url(cls) -> str:
        return server_url(cls, cls.backend)


if __name__ == "__main__":
    unittest.main()
