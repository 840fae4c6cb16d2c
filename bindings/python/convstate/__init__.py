"""convstate — stateless conversation handling for chat and agent servers (Python binding).

A thin, standard-library-only (ctypes) wrapper over the convstate C API. A process keeps no
conversation in memory: every call loads from and persists to SQLite or PostgreSQL.

    import convstate

    with convstate.Database("sqlite3:///tmp/chat.db") as db:
        r = db.turn("alice", "hello", lambda history, user, conv: "hi!")
        r2 = db.turn("alice", "again", my_agent, conversation_id=r["conversation_id"])

Messages and conversations are plain dicts in the OpenAI chat format (see the C header
``convstate.h`` for the fields). Errors are :class:`ConvstateError` subclasses, one per C status.

A :class:`Database` may be shared by any number of threads (it holds a connection pool); the
native calls release the GIL.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import inspect
import json
import logging
import threading
from ctypes import byref, c_int, c_int64, c_uint64, c_void_p
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from . import _native
from ._native import LibraryError

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentError",
    "AgentReply",
    "Conflict",
    "ConvstateError",
    "Database",
    "InternalError",
    "InvalidArgument",
    "LibraryError",
    "NotFound",
    "OutcomeUnknown",
    "Status",
    "StorageError",
    "library_version",
    "status_name",
]

Json = dict[str, Any]
#: What an agent may return: the reply's content, or a dict
#: ``{"content": str, "tool_calls": [...], "intermediate": [message, ...], "metadata": {...}}``.
AgentReply = Union[str, Mapping[str, Any]]
#: ``agent(history, user_id, conversation_id) -> AgentReply``
Agent = Callable[[list[Json], str, str], AgentReply]


# --------------------------------------------------------------------------------------------
# Errors


class Status(enum.IntEnum):
    """convstate_status."""

    OK = _native.OK
    NOT_FOUND = _native.NOT_FOUND
    INVALID_ARGUMENT = _native.INVALID_ARGUMENT
    CONFLICT = _native.CONFLICT
    STORAGE_ERROR = _native.STORAGE_ERROR
    OUTCOME_UNKNOWN = _native.OUTCOME_UNKNOWN
    AGENT_ERROR = _native.AGENT_ERROR
    INTERNAL_ERROR = _native.INTERNAL_ERROR


class ConvstateError(Exception):
    """Base of every convstate error. ``status`` is the C status code, ``message`` its text."""

    default_status = Status.INTERNAL_ERROR

    def __init__(self, message: str, status: Optional[int] = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        st = self.default_status if status is None else status
        try:
            st = Status(st)
        except ValueError:
            pass
        self.status: int = st
        self.field = field

    def __str__(self) -> str:
        return self.message


class NotFound(ConvstateError):
    """Missing, or another user's (indistinguishable)."""

    default_status = Status.NOT_FOUND


class InvalidArgument(ConvstateError, ValueError):
    """Bad input; nothing was written. ``field`` names the offending field ("" if unknown)."""

    default_status = Status.INVALID_ARGUMENT


class Conflict(ConvstateError):
    """expected_last_seq mismatch, or a concurrent turn rejected."""

    default_status = Status.CONFLICT


class StorageError(ConvstateError):
    """The database failed after bounded retries."""

    default_status = Status.STORAGE_ERROR


class OutcomeUnknown(StorageError):
    """The connection was lost during COMMIT of an unkeyed write: it may or may not be stored."""

    default_status = Status.OUTCOME_UNKNOWN


class AgentError(ConvstateError):
    """The agent failed; only the user message of the turn is stored. When the agent raised a
    Python exception, it is this error's ``__cause__``."""

    default_status = Status.AGENT_ERROR


class InternalError(ConvstateError):
    """Anything else (e.g. out of memory)."""

    default_status = Status.INTERNAL_ERROR


_BY_STATUS: dict[int, type[ConvstateError]] = {
    Status.NOT_FOUND: NotFound,
    Status.INVALID_ARGUMENT: InvalidArgument,
    Status.CONFLICT: Conflict,
    Status.STORAGE_ERROR: StorageError,
    Status.OUTCOME_UNKNOWN: OutcomeUnknown,
    Status.AGENT_ERROR: AgentError,
    Status.INTERNAL_ERROR: InternalError,
}


def _last_error(status: int) -> ConvstateError:
    """The error of the call that just failed with ``status`` on this thread. Must be called
    before any other convstate call on this thread (the C strings are valid until then)."""
    lib = _native.lib()
    message = (lib.convstate_last_error() or b"").decode("utf-8", "replace")
    field = (lib.convstate_last_error_field() or b"").decode("utf-8", "replace")
    cls = _BY_STATUS.get(status, ConvstateError)
    if not message:
        message = (lib.convstate_status_name(status) or b"convstate error").decode("utf-8", "replace")
    return cls(message, status, field if status == Status.INVALID_ARGUMENT else "")


def status_name(status: int) -> str:
    """The C library's stable name for a status ("CONVSTATE_NOT_FOUND"…)."""
    return _native.lib().convstate_status_name(int(status)).decode("utf-8")


def library_version() -> str:
    """The version of the loaded native library ("MAJOR.MINOR.PATCH")."""
    return _native.lib().convstate_version_string().decode("utf-8")


# --------------------------------------------------------------------------------------------
# Argument conversion


def _text(value: Optional[str], field: str, *, optional: bool = False) -> Optional[bytes]:
    if value is None:
        if optional:
            return None
        # The C API reports NULL required arguments itself; say which one here.
        raise InvalidArgument(f"{field} is required", field=field)
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    if "\0" in value:
        # A C string would silently end at the NUL.
        raise InvalidArgument(f"{field} contains a NUL character", field=field)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(f"{field} is not valid Unicode text: {e}", field=field) from None


def _json(value: Any, field: str, *, kind: type = object) -> bytes:
    if kind is not object and not isinstance(value, kind):
        raise TypeError(f"{field} must be a {kind.__name__}, not {type(value).__name__}")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as e:  # NaN/Infinity, circular references
        raise InvalidArgument(f"{field} is not JSON-serialisable: {e}", field=field) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidArgument(f"{field} is not valid Unicode text: {e}", field=field) from None


def _opt_json_object(value: Optional[Mapping[str, Any]], field: str) -> Optional[bytes]:
    if value is None:
        return None
    return _json(dict(value) if isinstance(value, Mapping) else value, field, kind=dict)


def _uint(value: int, field: str, bits: int = 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    if value < 0 or value >= 1 << bits:
        raise InvalidArgument(f"{field} must be between 0 and {(1 << bits) - 1}", field=field)
    return value


def _sint(value: int, field: str, bits: int = 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise InvalidArgument(f"{field} is out of range", field=field)
    return value


def _expected(value: Optional[int]) -> Optional[Any]:
    if value is None:
        return None
    return byref(c_int64(_sint(value, "expected_last_seq")))


_WINDOW_KINDS = {
    "all": _native.WINDOW_ALL,
    "last": _native.WINDOW_LAST_MESSAGES,
    "last_messages": _native.WINDOW_LAST_MESSAGES,
    "tokens": _native.WINDOW_TOKEN_BUDGET,
    "token_budget": _native.WINDOW_TOKEN_BUDGET,
}


_ROLES = {"system": 0, "user": 1, "assistant": 2, "tool": 3, "developer": 4}


def _window(
    kind: str = "all",
    max_messages: int = 0,
    token_budget: int = 0,
    keep_system: bool = True,
    from_summary: bool = True,
    summary_role: str = "system",
) -> _native.Window:
    if kind not in _WINDOW_KINDS:
        raise InvalidArgument(
            f"window kind must be one of 'all', 'last', 'tokens', not {kind!r}", field="window.kind"
        )
    if summary_role not in _ROLES:
        raise InvalidArgument(f"summary_role must be one of {', '.join(_ROLES)}", field="window.summary_role")
    return _native.Window(
        _native.WINDOW_VERSION,
        _WINDOW_KINDS[kind],
        _uint(max_messages, "window.max_messages"),
        _sint(token_budget, "window.token_budget"),
        1 if keep_system else 0,
        1 if from_summary else 0,
        _ROLES[summary_role],
    )


def _milliseconds(seconds: Optional[float], field: str) -> int:
    """Seconds as the C ABI's milliseconds; None is 0 (the library's default)."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 86400:
        raise InvalidArgument(f"{field} must be a number of seconds in (0, 86400]", field=field)
    return max(1, round(seconds * 1000))


def _window_from_dict(spec: Optional[Mapping[str, Any]]) -> Optional[_native.Window]:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise TypeError(f"window must be a dict like {{'kind': 'last', 'max_messages': 50}}, not {type(spec).__name__}")
    unknown = set(spec) - {"kind", "max_messages", "token_budget", "keep_system", "from_summary", "summary_role"}
    if unknown:
        raise InvalidArgument(f"unknown window field(s): {', '.join(sorted(unknown))}", field="window")
    return _window(**spec)


# --------------------------------------------------------------------------------------------
# The database


_LEVELS = ((logging.DEBUG, 0), (logging.INFO, 1), (logging.WARNING, 2), (logging.ERROR, 3))


def _to_convstate_level(level: int) -> int:
    """The least convstate level that a Python logging level lets through."""
    for py, ours in _LEVELS:
        if level <= py:
            return ours
    return 3


def _log_forwarder(logger: logging.Logger) -> Callable[[Any, int, bytes], None]:
    python_level = {ours: py for py, ours in _LEVELS}

    def forward(_context: Any, level: int, message: bytes) -> None:
        try:
            logger.log(python_level.get(level, logging.ERROR), "%s", message.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - a logging failure must not reach C
            pass

    return forward


class Database:
    """A convstate database: a pool of connections to SQLite or PostgreSQL.

    ``url``: ``sqlite3:///abs/path.db``, ``sqlite3://relative.db`` or
    ``postgresql://user:password@host:port/dbname?sslmode=…`` (any libpq URL, several hosts
    included). Thread-safe; use it as a context manager or call :meth:`close` (which waits for
    calls running on other threads).

    ``prepared_statements=False`` sends PostgreSQL statements unprepared, for a
    transaction-pooling proxy such as pgbouncer. ``pool_timeout_ms`` bounds the wait for a free
    connection, ``statement_timeout_ms`` a PostgreSQL statement. The ``max_*`` limits are the
    input limits (0: the default).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        busy_timeout_ms: int = 10000,
        connect_timeout_ms: int = 10000,
        migrate_on_open: bool = True,
        max_retries: int = 8,
        max_content_bytes: int = 0,
        prepared_statements: bool = True,
        pool_timeout_ms: int = 30000,
        statement_timeout_ms: int = 30000,
        max_user_id_bytes: int = 0,
        max_id_bytes: int = 0,
        max_title_bytes: int = 0,
        max_metadata_bytes: int = 0,
        max_tool_calls: int = 0,
        max_batch: int = 0,
        logger: Optional[logging.Logger] = None,
        log_level: int = logging.INFO,
    ) -> None:
        self._handle: Optional[int] = None
        self._cv = threading.Condition()
        self._active = 0
        self._closing = False
        self._local = threading.local()
        lib = _native.lib()
        options = _native.DbOptions(
            _native.DB_OPTIONS_VERSION,
            _uint(pool_size, "pool_size", 32),
            _uint(busy_timeout_ms, "busy_timeout_ms", 32),
            _uint(connect_timeout_ms, "connect_timeout_ms", 32),
            1 if migrate_on_open else 0,
            _sint(max_retries, "max_retries", 32),
            _uint(max_content_bytes, "max_content_bytes"),
            1 if prepared_statements else 0,
            _uint(pool_timeout_ms, "pool_timeout_ms", 32),
            _uint(statement_timeout_ms, "statement_timeout_ms", 32),
            _uint(max_user_id_bytes, "max_user_id_bytes"),
            _uint(max_id_bytes, "max_id_bytes"),
            _uint(max_title_bytes, "max_title_bytes"),
            _uint(max_metadata_bytes, "max_metadata_bytes"),
            _uint(max_tool_calls, "max_tool_calls"),
            _uint(max_batch, "max_batch"),
        )
        # The library's log messages go to `logger` (debug/info/warning/error map to Python's
        # levels); the callback object lives as long as this handle.
        self._log_callback = None
        if logger is not None:
            if isinstance(log_level, bool) or not isinstance(log_level, int):
                raise InvalidArgument("log_level must be a logging level (an int)", field="log_level")
            self._log_callback = _native.LOG_FN(_log_forwarder(logger))
            options.log = ctypes.cast(self._log_callback, c_void_p)
            options.log_level = _to_convstate_level(log_level)
        handle = c_void_p()
        status = lib.convstate_db_open(_text(url, "url"), byref(options), byref(handle))
        if status != _native.OK:
            raise _last_error(status)
        self._handle = handle.value

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the pool. Waits for calls in progress on other threads; idempotent."""
        with self._cv:
            if self._handle is None:
                return
            if getattr(self._local, "depth", 0):
                raise InvalidArgument(
                    "close() called from inside a call on this database (e.g. from an agent)", field="db"
                )
            self._closing = True
            self._cv.wait_for(lambda: self._active == 0)
            handle, self._handle = self._handle, None
        _native.lib().convstate_db_close(handle)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_handle", None) is not None and self._active == 0:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:  # never shows the URL: it may hold a password
        return f"<convstate.Database {'closed' if self.closed else 'open'}>"

    @contextlib.contextmanager
    def _use(self) -> Iterator[int]:
        with self._cv:
            if self._handle is None or self._closing:
                raise InvalidArgument("the database is closed", field="db")
            self._active += 1
            handle = self._handle
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield handle
        finally:
            self._local.depth -= 1
            with self._cv:
                self._active -= 1
                if self._active == 0:
                    self._cv.notify_all()

    def _call(self, name: str, *args: Any) -> None:
        """Calls ``name(handle, *args)``; raises on a non-OK status."""
        with self._use() as handle:
            status = getattr(_native.lib(), name)(handle, *args)
            if status != _native.OK:
                raise _last_error(status)

    def _call_json(self, name: str, *args: Any) -> Any:
        """Calls ``name(handle, *args, &out)`` and returns the parsed JSON result."""
        lib = _native.lib()
        out = c_void_p()
        with self._use() as handle:
            status = getattr(lib, name)(handle, *args, byref(out))
            if status != _native.OK:
                error = _last_error(status)  # read before convstate_free (a convstate call)
                _native.take_string(out)
                raise error
        text = _native.take_string(out)
        return None if text is None else json.loads(text)

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Applies pending migrations (idempotent; safe from several processes at once)."""
        self._call("convstate_db_migrate")

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        out = c_int()
        self._call("convstate_db_schema_version", byref(out))
        return out.value

    def stats(self) -> dict:
        """What this handle has done since it was opened: ``statements`` (round trips, BEGIN and
        COMMIT included), ``transactions`` (write transactions committed), ``retries``;
        ``operations``: per operation ("append", "turn", …) ``calls``, ``errors`` and a
        ``latency`` histogram (``count``, ``sum_us``, ``counts`` per bucket of ``bounds_us``, the
        last one unbounded); ``pool``: ``acquisitions``, ``waits``, ``timeouts`` and the ``wait``
        histogram."""
        return self._call_json("convstate_db_stats_json")

    # -- conversations ----------------------------------------------------------------------

    def create_conversation(
        self, user_id: str, title: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None
    ) -> Json:
        """Creates a conversation: {"id","user_id","title","metadata","last_seq",
        "created_at_us","updated_at_us","external_key"} (external_key None)."""
        return self._call_json(
            "convstate_conversation_create",
            _text(user_id, "user_id"),
            _text(title, "title", optional=True),
            _opt_json_object(metadata, "metadata"),
        )

    def get_or_create_conversation(
        self,
        user_id: str,
        external_key: str,
        title: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> tuple[Json, bool]:
        """The user's conversation with the host's own key (unique per user), created with
        title and metadata if there is none: (conversation, created). Callers racing with one
        new key get one conversation; its id is derived from the user and the key."""
        result = self._call_json(
            "convstate_conversation_get_or_create",
            _text(user_id, "user_id"),
            _text(external_key, "external_key"),
            _text(title, "title", optional=True),
            _opt_json_object(metadata, "metadata"),
        )
        return result["conversation"], result["created"]

    def fork_conversation(
        self,
        user_id: str,
        conversation_id: str,
        at_seq: int,
        title: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        external_key: Optional[str] = None,
    ) -> Json:
        """A new conversation holding copies of messages 1..at_seq (and the summaries covering at
        most at_seq), with "forked_from": {"conversation_id","seq"}; title and metadata default
        to the source's. Edit a message: fork before it and run the turn there; regenerate a
        reply: fork at its user message and run ``turn(..., regenerate=True)``."""
        return self._call_json(
            "convstate_conversation_fork",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _sint(at_seq, "at_seq"),
            _text(title, "title", optional=True),
            _opt_json_object(metadata, "metadata"),
            _text(external_key, "external_key", optional=True),
        )

    def forks(self, user_id: str, conversation_id: str) -> list[Json]:
        """The conversations forked from this one, oldest first."""
        return self._call_json(
            "convstate_conversation_forks", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def get_conversation_by_key(self, user_id: str, external_key: str) -> Json:
        """The user's conversation with this external key; :class:`NotFound` if there is none."""
        return self._call_json(
            "convstate_conversation_get_by_key", _text(user_id, "user_id"), _text(external_key, "external_key")
        )

    def get_conversation(self, user_id: str, conversation_id: str) -> Json:
        """The conversation; :class:`NotFound` if missing or another user's."""
        return self._call_json(
            "convstate_conversation_get", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def list_conversations(self, user_id: str, cursor: Optional[str] = None, limit: int = 20) -> Json:
        """One page, most recently updated first: {"items": [...], "next_cursor": str or None}.
        limit: 1..100; pass the previous page's next_cursor to continue."""
        return self._call_json(
            "convstate_conversation_list",
            _text(user_id, "user_id"),
            _text(cursor, "cursor", optional=True),
            _sint(limit, "limit", 32),
        )

    def iter_conversations(self, user_id: str, page_size: int = 100) -> Iterator[Json]:
        """Every conversation of the user, page by page."""
        cursor: Optional[str] = None
        while True:
            page = self.list_conversations(user_id, cursor, page_size)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def rename_conversation(self, user_id: str, conversation_id: str, title: str) -> Json:
        """Sets the title; returns the updated conversation."""
        return self._call_json(
            "convstate_conversation_rename",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _text(title, "title"),
        )

    def set_conversation_metadata(self, user_id: str, conversation_id: str, metadata: Mapping[str, Any]) -> Json:
        """Replaces the metadata (a JSON object); returns the updated conversation."""
        if metadata is None:
            raise InvalidArgument("metadata is required", field="metadata")
        return self._call_json(
            "convstate_conversation_set_metadata",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _opt_json_object(metadata, "metadata"),
        )

    def delete_conversation(self, user_id: str, conversation_id: str) -> None:
        """Deletes the conversation and its messages."""
        self._call(
            "convstate_conversation_delete", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def delete_all(self, user_id: str) -> int:
        """Deletes everything of the user; returns the number of conversations deleted."""
        out = c_uint64()
        self._call("convstate_conversation_delete_all", _text(user_id, "user_id"), byref(out))
        return out.value

    def purge(
        self,
        older_than_us: int,
        user_id: Optional[str] = None,
        batch_size: int = 100,
        dry_run: bool = False,
    ) -> Json:
        """Retention: hard-deletes every conversation (of ``user_id``, or of every user) not
        updated since ``older_than_us`` (UTC microseconds), with its messages, in transactions
        of ``batch_size`` conversations. A conversation that receives a turn meanwhile is kept;
        each goes whole or not at all. Returns ``{"conversations": n, "messages": m}`` — what
        was deleted, or with ``dry_run`` what would be."""
        if isinstance(older_than_us, bool) or not isinstance(older_than_us, int):
            raise InvalidArgument("older_than must be an integer (microseconds)", field="older_than")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
            raise InvalidArgument("batch_size must be 1..10000", field="batch_size")
        conversations, messages = c_uint64(), c_uint64()
        self._call(
            "convstate_conversations_purge",
            older_than_us,
            None if user_id is None else _text(user_id, "user_id"),
            batch_size,
            1 if dry_run else 0,
            byref(conversations),
            byref(messages),
        )
        return {"conversations": conversations.value, "messages": messages.value}

    # -- messages ---------------------------------------------------------------------------

    def append(
        self,
        user_id: str,
        conversation_id: str,
        message: Mapping[str, Any],
        expected_last_seq: Optional[int] = None,
    ) -> Json:
        """Appends one message {"role","content","name"?,"tool_calls"?,"tool_call_id"?,
        "metadata"?,"token_count"?,"idempotency_key"?}; returns it as stored (with "seq",
        "conversation_id", "created_at_us"). With expected_last_seq, appends only if the
        conversation's last seq equals it (else :class:`Conflict`). A message whose
        idempotency_key is stored already is returned as stored, not appended."""
        return self._call_json(
            "convstate_message_append",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _json(dict(message) if isinstance(message, Mapping) else message, "message", kind=dict),
            _expected(expected_last_seq),
        )

    def append_batch(
        self,
        user_id: str,
        conversation_id: str,
        messages: Sequence[Mapping[str, Any]],
        expected_last_seq: Optional[int] = None,
    ) -> list[Json]:
        """Appends messages atomically with consecutive seqs; returns them as stored."""
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
            raise TypeError(f"messages must be a list of dicts, not {type(messages).__name__}")
        return self._call_json(
            "convstate_message_append_batch",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _json([dict(m) if isinstance(m, Mapping) else m for m in messages], "messages"),
            _expected(expected_last_seq),
        )

    def load_all(self, user_id: str, conversation_id: str) -> list[Json]:
        """Every message, in seq order."""
        return self._call_json(
            "convstate_message_load_all", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def load_last(self, user_id: str, conversation_id: str, n: int) -> list[Json]:
        """The last n messages, in seq order."""
        return self._call_json(
            "convstate_message_load_last",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _uint(n, "n"),
        )

    def load_after(self, user_id: str, conversation_id: str, after_seq: int, limit: int = 100) -> list[Json]:
        """Up to limit (1..10000) messages with seq > after_seq."""
        return self._call_json(
            "convstate_message_load_after",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _sint(after_seq, "after_seq"),
            _uint(limit, "limit"),
        )

    def load_before(self, user_id: str, conversation_id: str, before_seq: int, limit: int = 100) -> list[Json]:
        """Up to limit (1..10000) messages with seq < before_seq, the ones just before it."""
        return self._call_json(
            "convstate_message_load_before",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _sint(before_seq, "before_seq"),
            _uint(limit, "limit"),
        )

    def count(self, user_id: str, conversation_id: str) -> int:
        """The number of messages in the conversation."""
        out = c_int64()
        self._call(
            "convstate_message_count", _text(user_id, "user_id"), _text(conversation_id, "conversation_id"), byref(out)
        )
        return out.value

    def usage(self, user_id: str, conversation_id: str) -> Json:
        """Sums of the usage the conversation's replies reported (a reply's "usage": {"model",
        "prompt_tokens","completion_tokens","cached_tokens","reasoning_tokens"}, all optional):
        {"replies","prompt_tokens",…,"by_model":[{"model",…}]}."""
        return self._call_json(
            "convstate_usage", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def usage_since(self, user_id: str, since_us: int) -> Json:
        """The user's usage recorded at or after since_us (UTC microseconds), as :meth:`usage`."""
        return self._call_json("convstate_usage_since", _text(user_id, "user_id"), _sint(since_us, "since_us"))

    def add_summary(
        self,
        user_id: str,
        conversation_id: str,
        covers_through_seq: int,
        content: str,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Json:
        """Stores a summary of messages 1..covers_through_seq (nothing is deleted; the same
        covers_through_seq again replaces it) and returns it: {"conversation_id",
        "covers_through_seq","content","metadata","created_at_us"}. Windows then start from the
        latest summary. Never moves the last seq or blocks a turn (PostgreSQL). A boundary inside
        a tool-call group, or past the last message, is :class:`InvalidArgument`."""
        return self._call_json(
            "convstate_summary_add",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _sint(covers_through_seq, "covers_through_seq"),
            _text(content, "content"),
            _opt_json_object(metadata, "metadata"),
        )

    def summaries(self, user_id: str, conversation_id: str) -> list[Json]:
        """The conversation's summaries, by covers_through_seq."""
        return self._call_json(
            "convstate_summary_list", _text(user_id, "user_id"), _text(conversation_id, "conversation_id")
        )

    def truncate(
        self, user_id: str, conversation_id: str, after_seq: int, expected_last_seq: Optional[int] = None
    ) -> int:
        """Undo: deletes the messages with seq > after_seq atomically and moves the last seq back
        (seqs stay dense). Returns how many messages this call removed (0 at or past the end).
        With expected_last_seq, nothing happens unless the last seq equals it (else
        :class:`Conflict`), so concurrent undos of one exchange remove it once. An after_seq
        inside a tool-call group is :class:`InvalidArgument` (field "after_seq")."""
        removed = c_int64()
        self._call(
            "convstate_message_truncate",
            _text(user_id, "user_id"),
            _text(conversation_id, "conversation_id"),
            _sint(after_seq, "after_seq"),
            _expected(expected_last_seq),
            byref(removed),
        )
        return removed.value

    def window(
        self,
        user_id: str,
        conversation_id: str,
        kind: str = "all",
        max_messages: int = 0,
        token_budget: int = 0,
        keep_system: bool = True,
        from_summary: bool = True,
        summary_role: str = "system",
    ) -> list[Json]:
        """The window a turn would show the agent now. kind: "all", "last" (the last
        max_messages) or "tokens" (as many of the newest as fit token_budget). Leading system
        messages are kept when keep_system; tool-call groups are never split. With
        from_summary, the latest summary (:meth:`add_summary`) stands for the messages it
        covers: it follows the kept system messages as one message without a "seq", of role
        summary_role."""
        w = _window(kind, max_messages, token_budget, keep_system, from_summary, summary_role)
        return self._call_json(
            "convstate_window_load", _text(user_id, "user_id"), _text(conversation_id, "conversation_id"), byref(w)
        )

    # -- the turn ---------------------------------------------------------------------------

    def turn(
        self,
        user_id: str,
        message: str,
        agent: Agent,
        *,
        conversation_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        title: Optional[str] = None,
        conversation_metadata: Optional[Mapping[str, Any]] = None,
        message_metadata: Optional[Mapping[str, Any]] = None,
        window: Optional[Mapping[str, Any]] = None,
        reject_concurrent: bool = False,
        run_lease: Optional[float] = None,
        duplicate_wait: Optional[float] = None,
        flush_user_message: bool = False,
        conversation_key: Optional[str] = None,
        regenerate: bool = False,
    ) -> Json:
        """Runs one stateless turn: resolve (or create, when conversation_id is None) the
        conversation, store the user message, load the window, call
        ``agent(history, user_id, conversation_id)`` and store its output atomically.

        The agent returns the reply content (a str) or a dict with "content" and optionally
        "tool_calls" (OpenAI format), "intermediate" (assistant tool-call and tool messages,
        stored before the reply, in order) and "metadata" (of the reply). An exception in the
        agent fails the turn with :class:`AgentError` (the exception is its ``__cause__``);
        only the user message stays stored.

        ``window``: None (all messages) or a dict such as ``{"kind": "last", "max_messages": 50}``
        or ``{"kind": "tokens", "token_budget": 4000, "keep_system": True}``.

        ``run_lease`` (seconds, default 120): how long a running turn counts as alive — its
        ``reject_concurrent`` mark and a keyed turn's claim on its agent run; a turn whose process
        died is taken over after it. ``duplicate_wait`` (seconds, default 30): how long a keyed
        turn waits while an identical turn (same key) runs elsewhere before :class:`Conflict`.

        ``conversation_key``: the host's own id for the conversation (a session or thread id,
        unique per user), in place of ``conversation_id``: the turn continues the user's
        conversation with this key, or creates it (with ``title`` and ``conversation_metadata``).

        ``message`` may be a list of OpenAI content parts (``{"type": "text", ...}``,
        ``image_url``, ``input_audio``, ``file``) instead of a str.

        ``regenerate``: run the turn without a new user message (pass ``message=""``): the
        agent answers the conversation's last message, which must be a user message — in a fork
        made at it (:meth:`fork_conversation`), or after a failed turn.

        ``flush_user_message`` (PostgreSQL): make the user message's commit wait for its WAL
        flush too (two flushes per turn). By default the reply's commit flushes it: a server
        crash before the turn completes may lose the user message, never a completed turn.

        Returns {"conversation_id","reply","tool_calls","user_seq","reply_seq","created",
        "replayed"}."""
        if not callable(agent):
            raise TypeError("agent must be callable: agent(history, user_id, conversation_id)")
        lib = _native.lib()
        options, strings = _turn_options(
            conversation_id, idempotency_key, title, conversation_metadata, message_metadata, window,
            reject_concurrent, run_lease, duplicate_wait, flush_user_message, conversation_key, regenerate,
            message,
        )
        user = _text(user_id, "user_id")
        text = _message_text(message)
        raised: list[BaseException] = []

        def callback(_context: Any, history_json: Optional[bytes], cb_user: Optional[bytes],
                     cb_conversation: Optional[bytes], reply: Optional[int]) -> int:
            # Nothing may escape: ctypes would print it and return 0 (= OK) to C.
            try:
                history = json.loads((history_json or b"[]").decode("utf-8"))
                result = agent(
                    history, (cb_user or b"").decode("utf-8"), (cb_conversation or b"").decode("utf-8")
                )
                _fill_reply(lib, reply, result)
                return _native.OK
            except BaseException as e:  # noqa: B902 — KeyboardInterrupt/SystemExit re-raised below
                raised.append(e)
                try:
                    lib.convstate_reply_set_error(reply, _describe(e).encode("utf-8", "replace"))
                except BaseException:
                    pass
                return _native.AGENT_ERROR

        c_agent = _native.AGENT_FN(callback)
        out = c_void_p()
        with self._use() as handle:
            status = lib.convstate_turn(handle, user, text, byref(options), c_agent, None, byref(out))
            if status != _native.OK:
                error = _last_error(status)
                _native.take_string(out)
                cause = raised[-1] if raised else None
                if cause is not None and not isinstance(cause, Exception):
                    raise cause  # KeyboardInterrupt, SystemExit…: the turn failed, re-raise as is
                if cause is not None and isinstance(error, AgentError):
                    raise error from cause
                raise error
        del c_agent, strings
        result = _native.take_string(out)
        return json.loads(result) if result is not None else {}

    def begin_turn(
        self,
        user_id: str,
        message: str,
        *,
        conversation_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        title: Optional[str] = None,
        conversation_metadata: Optional[Mapping[str, Any]] = None,
        message_metadata: Optional[Mapping[str, Any]] = None,
        window: Optional[Mapping[str, Any]] = None,
        reject_concurrent: bool = False,
        run_lease: Optional[float] = None,
        duplicate_wait: Optional[float] = None,
        flush_user_message: bool = False,
        conversation_key: Optional[str] = None,
        regenerate: bool = False,
    ) -> Json:
        """The first half of a split turn (options as :meth:`turn`): store the user message and
        load the window, committed. Returns {"conversation_id","user_seq","created","history",
        "token","completed"}: run the model on ``history``, then call :meth:`complete_turn` or
        :meth:`fail_turn` with ``token`` — from any thread, process or server instance. When a
        keyed retry finds the turn completed, ``token`` is None and ``completed`` holds the stored
        result (as :meth:`turn` returns it, ``replayed`` True)."""
        options, strings = _turn_options(
            conversation_id, idempotency_key, title, conversation_metadata, message_metadata, window,
            reject_concurrent, run_lease, duplicate_wait, flush_user_message, conversation_key, regenerate,
            message,
        )
        result = self._call_json(
            "convstate_turn_begin", _text(user_id, "user_id"), _message_text(message), byref(options)
        )
        del strings
        return result

    def complete_turn(self, user_id: str, token: str, reply: AgentReply) -> Json:
        """Stores a begun turn's reply (a str, or a dict as an agent returns it) atomically and
        returns the result as :meth:`turn` does. Completing again stores nothing and returns the
        stored result (``replayed`` True). An invalid reply raises :class:`InvalidArgument`
        naming the field and leaves the turn pending; another user's token, or a deleted
        conversation, raises :class:`NotFound`."""
        return self._call_json(
            "convstate_turn_complete", _text(user_id, "user_id"), _text(token, "token"), _reply_json(reply)
        )

    def fail_turn(self, user_id: str, token: str, reason: Optional[str] = None) -> None:
        """Ends a begun turn without a reply: the user message stays, a ``reject_concurrent``
        mark is cleared and a keyed turn is released so that its retry runs at once. ``reason``
        is checked but not stored. Failing a completed turn changes nothing."""
        self._call(
            "convstate_turn_fail", _text(user_id, "user_id"), _text(token, "token"),
            _text(reason, "reason", optional=True),
        )


def _turn_options(
    conversation_id: Optional[str],
    idempotency_key: Optional[str],
    title: Optional[str],
    conversation_metadata: Optional[Mapping[str, Any]],
    message_metadata: Optional[Mapping[str, Any]],
    window: Optional[Mapping[str, Any]],
    reject_concurrent: bool,
    run_lease: Optional[float],
    duplicate_wait: Optional[float],
    flush_user_message: bool,
    conversation_key: Optional[str],
    regenerate: bool,
    message: Any,
) -> tuple[_native.TurnOptions, list[Any]]:
    """convstate_turn_options, and what it points to (keep that alive until the call returns)."""
    win = _window_from_dict(window)
    strings = [
        _text(conversation_id, "conversation_id", optional=True),
        _text(idempotency_key, "idempotency_key", optional=True),
        _text(title, "title", optional=True),
        _opt_json_object(conversation_metadata, "conversation_metadata"),
        _opt_json_object(message_metadata, "message_metadata"),
    ]
    key = _text(conversation_key, "conversation_key", optional=True)
    parts = _json(list(message), "message", kind=list) if isinstance(message, (list, tuple)) else None
    options = _native.TurnOptions(
        _native.TURN_OPTIONS_VERSION,
        *strings,
        ctypes.pointer(win) if win is not None else None,
        1 if reject_concurrent else 0,
        _milliseconds(run_lease, "run_lease"),
        _milliseconds(duplicate_wait, "duplicate_wait"),
        1 if flush_user_message else 0,
        key,
        1 if regenerate else 0,
        parts,
    )
    return options, [strings, key, parts, win]


def _message_text(message: Any) -> bytes:
    """A turn's message: a str, or a content-part list (sent as message_parts_json, text "")."""
    if isinstance(message, (list, tuple)):
        return b""
    return _text(message, "message")


def _reply_json(reply: AgentReply) -> bytes:
    """A reply as convstate_turn_complete takes it: a str is the content."""
    if isinstance(reply, str):
        return _json({"content": reply}, "reply")
    if not isinstance(reply, Mapping):
        raise TypeError(f"a reply is a str or a dict with 'content', not {type(reply).__name__}")
    return _json(dict(reply), "reply")


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _reply_call(lib: ctypes.CDLL, name: str, reply: Optional[int], data: bytes) -> None:
    status = getattr(lib, name)(reply, data)
    if status != _native.OK:
        raise _last_error(status)


def _fill_reply(lib: ctypes.CDLL, reply: Optional[int], result: AgentReply) -> None:
    if isinstance(result, str):
        _reply_call(lib, "convstate_reply_set_content", reply, _text(result, "content"))
        return
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: close it rather than leave a warning behind
        raise TypeError("the agent returned an awaitable: an async agent needs convstate.aio.AsyncDatabase")
    if not isinstance(result, Mapping):
        raise TypeError(
            f"the agent must return a str or a dict with 'content', not {type(result).__name__}"
        )
    unknown = set(result) - {"content", "tool_calls", "intermediate", "metadata", "usage"}
    if unknown:
        raise InvalidArgument(f"unknown reply field(s): {', '.join(sorted(unknown))}", field="reply")
    for message in result.get("intermediate") or []:
        _reply_call(lib, "convstate_reply_add_message", reply, _json(message, "intermediate", kind=dict))
    content = result.get("content")
    _reply_call(lib, "convstate_reply_set_content", reply, _text("" if content is None else content, "content"))
    if result.get("tool_calls"):
        _reply_call(lib, "convstate_reply_set_tool_calls", reply, _json(list(result["tool_calls"]), "tool_calls"))
    if result.get("metadata") is not None:
        _reply_call(lib, "convstate_reply_set_metadata", reply, _opt_json_object(result["metadata"], "metadata"))
    if result.get("usage") is not None:
        _reply_call(lib, "convstate_reply_set_usage", reply, _json(result["usage"], "usage", kind=dict))
