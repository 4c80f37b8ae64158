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
from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Scope, Send

from inboxd.api.pump import Subscriber

#: Where inboxd.api.main.DirectStreams leaves the server's own ``send``.
RAW_SEND = "inboxd.raw_send"

log = logging.getLogger(__name__)

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


class EventStream:
    """Streams the chunks of ``body`` to one client as ``text/event-stream``."""

    def __init__(self, body: AsyncIterator[bytes], sub: Subscriber) -> None:
        self.body = body
        self.sub = sub

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
            async for chunk in self.body:
                sub.sending_since = loop.time()
                await write({"type": "http.response.body", "body": chunk, "more_body": True})
                sub.sending_since = None
            await write({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if task is None or not sub.overflowed:
                raise
            # Our own sweep cancelled a write that hung: end quietly; the connection closes.
            task.uncancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await _close(self.body)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.sub.close()
                return


async def _close(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
