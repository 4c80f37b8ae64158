"""A lean Server-Sent Events response for pre-encoded chunks.

sse-starlette opens an anyio cancel scope and a timer for every write and runs watcher
tasks per connection; measured with 1,000 clients (bench/live.py) that was most of the
server's CPU per delivered event. Here a write is a plain ``send``: hung writes are found
by the event pump's once-a-second sweep (``Subscriber.sending_since``) instead, and
shutdown ends streams through ``EventPump.close_streams``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from inboxd.api.pump import LiveEvent, Subscriber

#: Where inboxd.api.main.DirectStreams leaves the server's own ``send``.
RAW_SEND = "inboxd.raw_send"

log = logging.getLogger(__name__)

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


class EventStream:
    """Streams the chunks of ``body`` to one client as ``text/event-stream``.

    While the body waits for live events, the pump writes them itself
    (``Subscriber.write_now``): one event to a thousand clients then costs a thousand
    socket writes, not a thousand task wake-ups, generator steps and ASGI sends."""

    def __init__(self, body: AsyncIterator[bytes], sub: Subscriber, *, send_timeout: float) -> None:
        self.body = body
        self.sub = sub
        self.send_timeout = send_timeout
        self._write: Send | None = None
        #: The rest of a pump write that had to wait for the client's socket to drain.
        self._unfinished: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.sub
        task = asyncio.current_task()
        sub.task = task
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            # Body chunks go straight to the server when DirectStreams is in front.
            write: Send = scope.get(RAW_SEND, send)
            self._write = write
            sub.write_now = self._write_now
            async for chunk in self.body:
                await self._finish_pump_write()
                sub.sending_since = loop.time()
                await write({"type": "http.response.body", "body": chunk, "more_body": True})
                sub.sending_since = None
            if self._unfinished is not None:
                # Still waiting for the client while the stream ends (dropped for falling
                # behind, or shut down): that client replays what it missed.
                self._unfinished.cancel()
                return
            # Bounded: the body may have ended because this client stopped reading.
            with contextlib.suppress(TimeoutError):
                end = write({"type": "http.response.body", "body": b"", "more_body": False})
                await asyncio.wait_for(end, self.send_timeout)
        except asyncio.CancelledError:
            if task is None or not sub.overflowed:
                raise
            # Our own sweep cancelled a write that hung: end quietly; the connection closes.
            task.uncancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            sub.write_now = None
            if self._unfinished is not None:
                self._unfinished.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await _close(self.body)

    def _write_now(self, events: list[LiveEvent]) -> bool:
        """The pump's write: the server's ``send`` is stepped here, and almost always
        finishes at once; when it must wait for the socket, a task finishes it."""
        write = self._write
        if write is None or self._unfinished is not None:
            return False
        chunk = b"".join(event.sse for event in events)
        step = write({"type": "http.response.body", "body": chunk, "more_body": True})
        if not isinstance(step, Coroutine):
            return False  # not a coroutine to step: the task writes it
        try:
            waiting_on = step.send(None)
        except StopIteration:
            return True
        except Exception:
            self.sub.close()  # the connection is gone; the stream ends
            return True
        # The client is slow to read: the sweep sees how long this write takes.
        loop = asyncio.get_running_loop()
        self.sub.sending_since = loop.time()
        self._unfinished = asyncio.ensure_future(_resume(step, waiting_on))
        self._unfinished.add_done_callback(self._pump_write_done)
        return True

    def _pump_write_done(self, done: asyncio.Future[None]) -> None:
        self.sub.sending_since = None
        self._unfinished = None
        if done.cancelled() or done.exception() is not None:
            self.sub.close()

    async def _finish_pump_write(self) -> None:
        if self._unfinished is not None:
            # A failed write has closed the subscriber already; the stream then ends.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._unfinished)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.sub.close()
                return


async def _resume(step: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    """Run a coroutine that was stepped by hand and suspended on ``waiting_on`` to its end,
    as its task would have: resume it each time what it waits for is done."""
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield: it only gave up its turn
            else:
                await asyncio.wait([waiting_on])
        except asyncio.CancelledError:
            step.close()
            raise
        try:
            waiting_on = step.send(None)
        except StopIteration:
            return


async def _close(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
