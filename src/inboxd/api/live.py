"""Live channels: SSE (``/api/events``, ``/api/jobs/{id}/events``) and ``/ws/status``.

Both authenticate like the rest of the API (cookie or header, never a key in the URL) before
anything is sent, and both are fed by the process's one event pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from inboxd.activity import current_status, recent_runs
from inboxd.api.auth import SESSION_COOKIE, authenticate, bearer_key, origin_allowed
from inboxd.api.errors import ApiError, unauthorized
from inboxd.api.pump import LimitReached, Overflow, Subscriber, read_events
from inboxd.api.schemas import ErrorBody
from inboxd.api.sse import EventStream
from inboxd.api.state import ApiState, api_state
from inboxd.db.types import utcnow
from inboxd.store.users import User

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

#: Tells EventSource clients how soon to reconnect (ms).
RETRY_MS = 3000
_REPLAY_CHUNK = 500
_WS_POLICY_VIOLATION = 1008


async def _user(conn: Request | WebSocket, state: ApiState) -> User | None:
    found = await anyio.to_thread.run_sync(authenticate, conn, state)
    return found[0] if found else None


async def _recheck(conn: Request | WebSocket, state: ApiState) -> str | None:
    """The user id a stream's credential belongs to now. Shared by streams opened with the
    same key or session (a thousand clients of one script heartbeat together): one read."""
    credential = bearer_key(conn) or conn.cookies.get(SESSION_COOKIE) or ""
    digest = hashlib.sha256(credential.encode()).digest()
    recent = state.live_rechecks
    now = asyncio.get_running_loop().time()
    # Short enough that a revoked key still ends its streams within about one heartbeat.
    fresh_for = min(1.0, state.app.settings.live_heartbeat_seconds / 4)
    known = recent.get(digest)
    if known is None or now - known[0] > fresh_for:
        for old in [d for d, (at, _) in recent.items() if now - at > fresh_for]:
            del recent[old]
        known = recent[digest] = (now, asyncio.ensure_future(_user_id(conn, state)))
    return await asyncio.shield(known[1])


async def _user_id(conn: Request | WebSocket, state: ApiState) -> str | None:
    user = await _user(conn, state)
    return user.id if user is not None else None


async def _still_allowed(conn: Request | WebSocket, state: ApiState, user_id: str) -> bool:
    """Whether the key or session a stream was opened with still lets its user in: a
    logout, an expired session or a revoked key ends open streams too (checked at each
    heartbeat, so within one period)."""
    return await _recheck(conn, state) == user_id


def _after_id(request: Request, query_value: int | None) -> int | None:
    header = request.headers.get("last-event-id")
    if header is None or not header.strip():
        return query_value
    try:
        value = int(header.strip())
    except ValueError:
        raise ApiError(400, "invalid_request", "Last-Event-ID must be an event id") from None
    if value < 0:
        raise ApiError(400, "invalid_request", "Last-Event-ID must be an event id")
    return value


def _heartbeat() -> bytes:
    stamp = json.dumps({"timestamp": utcnow().isoformat()})
    return f"event: heartbeat\ndata: {stamp}\n\n".encode()


async def _sse_body(
    request: Request,
    state: ApiState,
    sub: Subscriber,
    after: int | None,
    owner: str | None,
    job_id: str | None,
) -> AsyncIterator[bytes]:
    pump = state.pump
    heartbeat = state.app.settings.live_heartbeat_seconds
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        if after is not None:
            while True:
                replay = await anyio.to_thread.run_sync(
                    partial(
                        read_events,
                        state.app.engine,
                        after,
                        owner=owner,
                        job_id=job_id,
                        limit=_REPLAY_CHUNK,
                    )
                )
                if not replay:
                    break
                after = replay[-1].id
                sub.after_id = max(sub.after_id, after)
                yield b"".join(event.sse for event in replay)
                if len(replay) < _REPLAY_CHUNK:
                    break
        beat_due = time.monotonic() + heartbeat
        while True:
            batch = await sub.next_batch(max(0.0, beat_due - time.monotonic()))
            if batch is None:
                return
            chunk = b"".join(event.sse for event in batch)
            if time.monotonic() >= beat_due:
                if not await _still_allowed(request, state, sub.user_id):
                    return
                chunk += _heartbeat()
                beat_due = time.monotonic() + heartbeat
            if chunk:
                yield chunk
    except Overflow:
        log.info("live client of user %s fell behind; dropped (it will replay)", sub.user_id)
    finally:
        pump.unsubscribe(sub)


async def _open_stream(request: Request, job_id: str | None, last_event_id: int | None) -> Any:
    state = api_state(request)
    user = await _user(request, state)
    if user is None:
        raise unauthorized(
            "invalid or revoked API key" if bearer_key(request) else "authentication required"
        )
    owner = user.owner_filter()
    if job_id is not None:
        await anyio.to_thread.run_sync(lambda: state.app.queue.get(job_id, owner=owner))
    after = _after_id(request, last_event_id)
    try:
        sub = state.pump.subscribe(user.id, owner, job_id=job_id, after_id=after or 0)
    except LimitReached:
        raise ApiError(
            429, "rate_limited", "too many live connections for this user", {"Retry-After": "5"}
        ) from None
    body = _sse_body(request, state, sub, after, owner, job_id)
    return _AsResponse(EventStream(body, sub, send_timeout=state.pump.send_timeout))


class _AsResponse(Response):
    """Lets FastAPI return a plain ASGI stream as a route's response."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(media_type="text/event-stream")
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream(scope, receive, send)


_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "An event stream."},
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    429: {"model": ErrorBody},
}

LastEventQuery = Annotated[
    int | None, Query(ge=0, description="Replay events after this id (like Last-Event-ID).")
]


@router.get("/api/events", responses=_SSE_DOC, response_model=None)
async def all_events(request: Request, last_event_id: LastEventQuery = None) -> Any:
    """Server-Sent Events for all of the caller's jobs."""
    return await _open_stream(request, None, last_event_id)


@router.get("/api/jobs/{job_id}/events", responses=_SSE_DOC, response_model=None)
async def job_events(request: Request, job_id: str, last_event_id: LastEventQuery = None) -> Any:
    """Server-Sent Events of one job (never another job's)."""
    return await _open_stream(request, job_id, last_event_id)


# -- WebSocket ---------------------------------------------------------------------------------


class _Socket:
    """One status socket: sends are serialised and time-limited."""

    def __init__(self, ws: WebSocket, state: ApiState, user: User, sub: Subscriber) -> None:
        self.ws, self.state, self.user, self.sub = ws, state, user, sub
        self._lock = asyncio.Lock()

    async def send(self, text: str) -> None:
        # A write that hangs is found by the pump's sweep, which cancels the writer task.
        async with self._lock:
            self.sub.sending_since = asyncio.get_running_loop().time()
            await self.ws.send_text(text)
            self.sub.sending_since = None

    async def send_json(self, value: Any) -> None:
        await self.send(json.dumps(value, separators=(",", ":"), default=str))

    async def pump_events(self) -> None:
        while True:
            batch = await self.sub.next_batch(3600.0)
            if batch is None:
                return
            for event in batch:
                await self.send(event.ws)

    async def recheck_access(self) -> None:
        """Close the socket (1008) once its session or key no longer lets the user in."""
        every = self.state.app.settings.live_heartbeat_seconds
        while True:
            await asyncio.sleep(every)
            if not await _still_allowed(self.ws, self.state, self.user.id):
                async with self._lock:
                    await self.ws.close(code=_WS_POLICY_VIOLATION, reason="session ended")
                return

    async def read_requests(self) -> None:
        owner = self.user.owner_filter()
        engine = self.state.app.engine
        while True:
            raw = await self.ws.receive_text()
            try:
                message = json.loads(raw)
                kind = message.get("type") if isinstance(message, dict) else None
            except ValueError:
                kind = None
            if kind == "get_recent_runs":
                runs = await anyio.to_thread.run_sync(lambda: recent_runs(engine, owner, limit=20))
                await self.send_json({"type": "recent_runs", "data": runs})
            elif kind == "get_status":
                snapshot = await anyio.to_thread.run_sync(lambda: current_status(engine, owner))
                await self.send_json(
                    {"type": "status_update", "data": snapshot | {"snapshot": True}}
                )
            elif kind == "ping":
                await self.send_json({"type": "pong", "data": {"timestamp": utcnow().isoformat()}})
            else:
                await self.send_json(
                    {
                        "type": "error",
                        "data": {
                            "code": "invalid_message",
                            "message": 'send {"type": "get_recent_runs" | "get_status" | "ping"}',
                        },
                    }
                )


@router.websocket("/ws/status")
async def status_socket(ws: WebSocket) -> None:
    """Status updates of the caller's jobs; a snapshot first, then every change."""
    state = api_state(ws)
    # Checked before accept: a refused handshake never becomes an open socket.
    if not origin_allowed(ws, state):
        await ws.close(code=_WS_POLICY_VIOLATION, reason="origin not allowed")
        return
    user = await _user(ws, state)
    if user is None:
        await ws.close(code=_WS_POLICY_VIOLATION, reason="authentication required")
        return
    try:
        sub = state.pump.subscribe(user.id, user.owner_filter())
    except LimitReached:
        await ws.close(code=_WS_POLICY_VIOLATION, reason="too many live connections")
        return
    socket = _Socket(ws, state, user, sub)
    tasks: list[asyncio.Task[None]] = []
    try:
        await ws.accept()
        owner = user.owner_filter()
        snapshot = await anyio.to_thread.run_sync(lambda: current_status(state.app.engine, owner))
        await socket.send_json({"type": "status_update", "data": snapshot | {"snapshot": True}})
        writer = asyncio.create_task(socket.pump_events())
        sub.task = writer
        tasks = [
            writer,
            asyncio.create_task(socket.read_requests()),
            asyncio.create_task(socket.recheck_access()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        # Outcomes (a disconnect, a cancelled hung write, an overflow) are all "stop".
        await asyncio.gather(*tasks, return_exceptions=True)
        state.pump.unsubscribe(sub)
        with contextlib.suppress(Exception):
            await ws.close()
