#!/usr/bin/env python3
"""A stateless chat endpoint on FastAPI: the classic `POST /api/{user_id}/chat` with JWT auth and
an async model call, with convstate holding the conversation.

Each request: verify the bearer token (HS256; its `sub` must be the `{user_id}` of the path),
begin the turn (the user message is stored and committed, the window loaded), await the model
on the event loop, complete the turn (the reply stored), answer. No conversation is kept in the
process: run any number of workers or instances behind a load balancer.

    CONVSTATE_JWT_SECRET=… CONVSTATE_DB=sqlite3:///tmp/chat.db \\
        python3 examples/python/fastapi_app.py --port 8000

The model is the demo agent of chat.py (a calculator and a clock tool, no network) unless
CONVSTATE_UPSTREAM names an OpenAI-compatible chat-completions URL (CONVSTATE_UPSTREAM_MODEL,
CONVSTATE_UPSTREAM_KEY), called with httpx. With `"stream": true` the reply comes as
Server-Sent Events, one `chunk` event per piece and a final `done` event with the stored seqs;
a client that goes away mid-stream leaves its user message stored and the turn failed, so a
retry with the same idempotency key runs it again.

Debian packages: python3-fastapi, python3-uvicorn, python3-jwt, python3-httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, AsyncIterator, Optional

import httpx
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # chat.py's demo agent
from chat import demo_agent  # noqa: E402

import convstate  # noqa: E402  (chat.py put the source tree's binding on the path if needed)
from convstate.aio import AsyncDatabase  # noqa: E402


class ChatRequest(BaseModel):
    message: str
    conversation_id: Optional[str] = None
    idempotency_key: Optional[str] = None
    stream: bool = False


class Settings:
    def __init__(self) -> None:
        self.db_url = os.environ.get("CONVSTATE_DB", "sqlite3://convstate-fastapi.db")
        self.secret = os.environ.get("CONVSTATE_JWT_SECRET", "")
        self.audience = os.environ.get("CONVSTATE_JWT_AUDIENCE") or None
        self.issuer = os.environ.get("CONVSTATE_JWT_ISSUER") or None
        self.upstream = os.environ.get("CONVSTATE_UPSTREAM") or None
        self.upstream_model = os.environ.get("CONVSTATE_UPSTREAM_MODEL", "gpt-4o-mini")
        self.upstream_key = os.environ.get("CONVSTATE_UPSTREAM_KEY", "")
        self.window = int(os.environ.get("CONVSTATE_WINDOW", "50"))
        if len(self.secret) < 16:
            raise SystemExit("CONVSTATE_JWT_SECRET must be set (at least 16 bytes)")


# -- the model ---------------------------------------------------------------------------------


class Model:
    """The demo agent, or an OpenAI-compatible upstream. stream() yields the reply in pieces."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) if settings.upstream else None

    async def stream(self, history: list[dict]) -> AsyncIterator[str]:
        if self.client is None:
            reply = demo_agent(history, "", "")
            text = reply["content"] if isinstance(reply, dict) else reply
            for i in range(0, len(text), 16):  # pieces, as a model would send them
                await asyncio.sleep(0)
                yield text[i:i + 16]
            return
        body = {
            "model": self.settings.upstream_model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in history],
            "stream": True,
        }
        headers = {"Authorization": f"Bearer {self.settings.upstream_key}"} if self.settings.upstream_key else {}
        async with self.client.stream("POST", self.settings.upstream, json=body, headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"upstream answered {r.status_code}")
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield delta

    async def complete(self, history: list[dict]) -> str:
        return "".join([piece async for piece in self.stream(history)])

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


# -- the app -----------------------------------------------------------------------------------


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="convstate chat")
    state: dict[str, Any] = {}

    @app.on_event("startup")
    async def startup() -> None:
        state["db"] = AsyncDatabase(settings.db_url, pool_size=4)
        state["model"] = Model(settings)

    @app.on_event("shutdown")
    async def shutdown() -> None:
        await state["model"].close()
        await state["db"].close()

    def authorized_user(user_id: str, authorization: str = Header(default="")) -> str:
        """The path's user, if the bearer token is valid and its subject is that user."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = jwt.decode(
                token, settings.secret, algorithms=["HS256"], audience=settings.audience, issuer=settings.issuer,
                options={"require": ["exp", "sub"], "verify_aud": settings.audience is not None},
            )
        except jwt.InvalidTokenError as e:
            raise HTTPException(401, f"invalid token: {e}", headers={"WWW-Authenticate": "Bearer"}) from None
        if claims.get("sub") != user_id:
            raise HTTPException(403, "the token is not this user's")
        return user_id

    @app.exception_handler(convstate.ConvstateError)
    async def convstate_error(_request: Request, e: convstate.ConvstateError) -> JSONResponse:
        status = {
            convstate.NotFound: 404, convstate.InvalidArgument: 422, convstate.Conflict: 409,
            convstate.AgentError: 502, convstate.OutcomeUnknown: 503, convstate.StorageError: 503,
        }.get(type(e), 500)
        body: dict[str, Any] = {"error": {"kind": type(e).__name__, "message": str(e)}}
        if isinstance(e, convstate.InvalidArgument):
            body["error"]["field"] = e.field
        return JSONResponse(body, status_code=status)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/api/{user_id}/chat")
    async def chat(body: ChatRequest, user_id: str = Depends(authorized_user)):
        db: AsyncDatabase = state["db"]
        model: Model = state["model"]
        turn = await db.begin_turn(
            user_id, body.message, conversation_id=body.conversation_id, idempotency_key=body.idempotency_key,
            window={"kind": "last", "max_messages": settings.window},
        )
        if turn.completed is not None:  # a retry of a turn that completed: nothing to run
            result = turn.completed
            if not body.stream:
                return response_of(result)
            return StreamingResponse(replayed_events(result), media_type="text/event-stream")
        if not body.stream:
            async with turn:  # an exception (or a cancelled request) fails the turn
                try:
                    text = await model.complete(turn.history)
                except Exception as e:
                    raise convstate.AgentError(f"the model failed: {e}") from e
                return response_of(await turn.complete(text))
        return StreamingResponse(streamed_events(turn, model), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/api/{user_id}/conversations/{conversation_id}/messages")
    async def messages(conversation_id: str, user_id: str = Depends(authorized_user)) -> list:
        return await state["db"].load_all(user_id, conversation_id)

    return app


def response_of(result: dict) -> dict:
    return {
        "conversation_id": result["conversation_id"], "response": result["reply"],
        "user_seq": result["user_seq"], "reply_seq": result["reply_seq"],
        "created": result["created"], "replayed": result["replayed"],
    }


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def streamed_events(turn: Any, model: Model) -> AsyncIterator[bytes]:
    """One `chunk` event per piece, then `done` with the stored seqs — or `error`. A client that
    disconnects cancels this generator: the turn is failed (its user message stays)."""
    pieces: list[str] = []
    async with turn:
        yield sse("begin", {"conversation_id": turn.conversation_id, "user_seq": turn.user_seq,
                            "created": turn.created})
        try:
            async for piece in model.stream(turn.history):
                pieces.append(piece)
                yield sse("chunk", {"content": piece})
        except Exception as e:
            await turn.fail(f"the model failed: {e}")
            yield sse("error", {"kind": "AgentError", "message": f"the model failed: {e}"})
            return
        result = await turn.complete("".join(pieces))
        yield sse("done", response_of(result))


async def replayed_events(result: dict) -> AsyncIterator[bytes]:
    yield sse("chunk", {"content": result["reply"]})
    yield sse("done", response_of(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(create_app(), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
