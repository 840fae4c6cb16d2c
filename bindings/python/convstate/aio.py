"""convstate for asyncio: every call awaitable, the event loop never blocked.

    from convstate.aio import AsyncDatabase

    async with AsyncDatabase("sqlite3:///tmp/chat.db") as db:
        r = await db.turn("alice", "hello", my_async_agent)       # agent may be async def
        async with db.begin_turn("alice", "more", conversation_id=r["conversation_id"]) as t:
            async for chunk in model.stream(t.history):             # stream it to the client…
                ...
            await t.complete(full_text)                             # …then store it

The native calls run on a thread pool of this database's own, with as many threads as the
connection pool has connections (never asyncio's default executor, which other code shares and
which is small on small machines). Model calls are awaited on the event loop itself, so a
thousand turns waiting on their models hold no thread and no connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Union

from . import AgentError, AgentReply, Database, InvalidArgument, Json, _describe

__all__ = ["AsyncAgent", "AsyncDatabase", "PendingTurn"]

#: ``agent(history, user_id, conversation_id)`` returning an AgentReply, or an awaitable of one.
AsyncAgent = Callable[[list[Json], str, str], Union[AgentReply, Awaitable[AgentReply]]]

# Database methods that become coroutines as they are (same arguments, same results).
_PLAIN = (
    "migrate", "schema_version", "create_conversation", "get_conversation", "list_conversations",
    "rename_conversation", "set_conversation_metadata", "delete_conversation", "delete_all", "purge", "append",
    "append_batch", "load_all", "load_last", "load_after", "load_before", "count", "window",
    "complete_turn", "fail_turn",
)


class PendingTurn:
    """A begun turn (see :meth:`AsyncDatabase.begin_turn`). ``history`` is the window to give
    the model; end the turn with :meth:`complete` or :meth:`fail`. Used as an async context
    manager, an exception (or cancellation) in the block fails the turn, and leaving the block
    without completing it fails it too."""

    def __init__(self, db: "AsyncDatabase", user_id: str, begun: Json) -> None:
        self._db = db
        self.user_id = user_id
        self.conversation_id: str = begun["conversation_id"]
        self.user_seq: int = begun["user_seq"]
        self.created: bool = begun["created"]
        self.history: list[Json] = begun["history"]
        #: The turn token: pass it to complete_turn/fail_turn from anywhere (None if completed).
        self.token: Optional[str] = begun["token"]
        #: A keyed retry of a completed turn: its stored result (there is nothing to run).
        self.completed: Optional[Json] = begun["completed"]
        self.result: Optional[Json] = self.completed
        self._ended = self.completed is not None

    async def complete(self, reply: AgentReply) -> Json:
        """Stores the reply (a str, or a dict as an agent returns it); returns the result."""
        if self.token is None:
            raise InvalidArgument("this turn was completed before it began (see .completed)", field="turn_token")
        self.result = await self._db.complete_turn(self.user_id, self.token, reply)
        self._ended = True
        return self.result

    async def fail(self, reason: Optional[str] = None) -> None:
        """Ends the turn without a reply: the user message stays; a keyed retry runs at once."""
        if self._ended:
            return
        await self._db.fail_turn(self.user_id, self.token, reason)  # type: ignore[arg-type]
        self._ended = True

    async def __aenter__(self) -> "PendingTurn":
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if self._ended:
            return
        reason = _describe(exc) if exc is not None else "the turn was left without a reply"
        # Shielded: a cancelled request (a client that went away) still records its failure.
        await asyncio.shield(self.fail(reason))


class _BeginTurn:
    """``await db.begin_turn(…)`` or ``async with db.begin_turn(…) as t``."""

    def __init__(self, start: Callable[[], Awaitable[PendingTurn]]) -> None:
        self._start = start
        self._turn: Optional[PendingTurn] = None

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> PendingTurn:
        self._turn = await self._start()
        return self._turn

    async def __aexit__(self, *exc: Any) -> None:
        assert self._turn is not None
        await self._turn.__aexit__(*exc)


class AsyncDatabase:
    """A :class:`convstate.Database` whose every method is a coroutine. Arguments of
    ``__init__`` are Database's; ``threads`` (default: ``pool_size``) sizes the thread pool that
    runs the native calls."""

    def __init__(self, url: str, *, pool_size: int = 4, threads: Optional[int] = None, **options: Any) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidArgument("threads must be a positive int", field="threads")
        self.sync = Database(url, pool_size=pool_size, **options)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads or pool_size, thread_name_prefix="convstate-aio"
        )

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- lifetime ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Waits for calls in progress, then closes the pool; idempotent."""
        await self._run(self.sync.close)
        self._executor.shutdown(wait=True)

    @property
    def closed(self) -> bool:
        return self.sync.closed

    async def __aenter__(self) -> "AsyncDatabase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<convstate.aio.AsyncDatabase {'closed' if self.closed else 'open'}>"

    # -- the turn ---------------------------------------------------------------------------

    def begin_turn(self, user_id: str, message: str, **options: Any) -> _BeginTurn:
        """Stores the user message and loads the window (options as Database.turn); returns a
        :class:`PendingTurn`. ``await`` it, or use it as ``async with``, which fails the turn if
        the block raises (or is cancelled) before :meth:`PendingTurn.complete`."""

        async def start() -> PendingTurn:
            return PendingTurn(self, user_id, await self._run(self.sync.begin_turn, user_id, message, **options))

        return _BeginTurn(start)

    async def turn(self, user_id: str, message: str, agent: AsyncAgent, **options: Any) -> Json:
        """Database.turn for asyncio: ``agent(history, user_id, conversation_id)`` may be an
        ``async def`` (awaited on the event loop, holding no thread or connection) or a plain
        function. Its exception fails the turn with :class:`AgentError` (the exception is the
        ``__cause__``); the user message stays stored. Returns what Database.turn returns."""
        if not callable(agent):
            raise TypeError("agent must be callable: agent(history, user_id, conversation_id)")
        async with self.begin_turn(user_id, message, **options) as t:
            if t.completed is not None:
                return t.completed
            try:
                reply = agent(t.history, user_id, t.conversation_id)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception as e:
                await t.fail(_describe(e))
                raise AgentError(_describe(e)) from e
            try:
                return await t.complete(reply)
            except (InvalidArgument, TypeError) as e:
                await t.fail(_describe(e))
                raise AgentError(f"the agent's output is invalid: {e}") from e

    async def iter_conversations(self, user_id: str, page_size: int = 100) -> AsyncIterator[Json]:
        """Every conversation of the user, most recently updated first, page by page."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_conversations(user_id, cursor=cursor, limit=page_size)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if not cursor:
                return


def _coroutine_of(name: str) -> Callable[..., Awaitable[Any]]:
    method = getattr(Database, name)

    @functools.wraps(method)
    async def call(self: AsyncDatabase, *args: Any, **kwargs: Any) -> Any:
        return await self._run(getattr(self.sync, name), *args, **kwargs)

    return call


for _name in _PLAIN:
    setattr(AsyncDatabase, _name, _coroutine_of(_name))
del _name
