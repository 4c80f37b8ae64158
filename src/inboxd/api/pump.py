"""The event pump: one reader of new job events per server process, fanned out to every
live subscriber (SSE streams and WebSockets).

A single thread reads the event log (woken by NOTIFY on PostgreSQL, polling on SQLite) and
hands batches to the event loop. Each event is encoded once and the same bytes are shared by
all subscribers. A subscriber holds a bounded backlog: a newer progress tick of a job
replaces the older one not yet sent; state changes are never dropped: a subscriber whose
backlog overflows is closed instead, and its client reconnects and replays from the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from inboxd.db.engine import is_sqlite
from inboxd.db.types import utcnow
from inboxd.jobs import events as job_events_mod
from inboxd.jobs.listener import Listener
from inboxd.vocabulary import EventType

log = logging.getLogger(__name__)

#: SSE event names by event type.
SSE_NAMES = {EventType.STATUS.value: "job_status"}
# A plain str: compared once per event and subscriber.
_PROGRESS = EventType.PROGRESS.value


@dataclass(frozen=True)
class LiveEvent:
    """One job event with what the fan-out needs: who may see it and its encodings."""

    id: int
    job_id: str
    owner: str | None
    type: str
    data: dict[str, Any]

    @cached_property
    def json(self) -> str:
        """The data object, encoded once."""
        return json.dumps(self.data, separators=(",", ":"), default=str)

    @cached_property
    def sse(self) -> bytes:
        """The SSE message, encoded once for every stream."""
        name = SSE_NAMES.get(self.type, "job_event")
        return f"id: {self.id}\nevent: {name}\ndata: {self.json}\n\n".encode()

    @cached_property
    def ws(self) -> str:
        """The WebSocket ``status_update`` message, encoded once for every socket."""
        stamp = json.dumps(utcnow().isoformat())
        return f'{{"type":"status_update","data":{{"event":{self.json},"timestamp":{stamp}}}}}'

    @property
    def is_progress(self) -> bool:
        """Progress ticks may be coalesced (latest wins); everything else is a state change."""
        return self.type == _PROGRESS


def live_event(row: Any) -> LiveEvent:
    """Build from an events row joined with its job's owner, kind and account."""
    created = row.created_at
    return LiveEvent(
        id=int(row.id),
        job_id=row.job_id,
        owner=row.owner,
        type=row.type,
        data={
            "id": int(row.id),
            "job_id": row.job_id,
            "kind": row.kind,
            "account_id": row.account_id,
            "type": row.type,
            "payload": row.payload,
            "created_at": created.isoformat() if created else None,
        },
    )


def read_events(
    engine: Engine,
    after_id: int,
    *,
    owner: str | None = None,
    job_id: str | None = None,
    limit: int = 1000,
) -> list[LiveEvent]:
    """Events after ``after_id`` in id order, with their jobs' owners (replay and pump)."""
    return job_events_mod.read_feed(
        engine, after_id, live_event, owner=owner, job_id=job_id, limit=limit
    )


class Overflow(Exception):
    """A subscriber fell too far behind; its client should reconnect and replay."""


@dataclass(eq=False)
class Subscriber:
    """One live client: what it may see and what it has not been sent yet."""

    user_id: str
    owner: str | None  # None: an admin, sees every job
    job_id: str | None
    max_backlog: int
    after_id: int = 0
    closed: bool = False
    overflowed: bool = False
    #: Loop time at which the current write to the client began (None: not writing).
    sending_since: float | None = None
    #: The task serving this client, cancelled when a write to it hangs.
    task: asyncio.Task[Any] | None = None
    #: Writes events to the client at once, from the pump (SSE streams set it); returns
    #: False when it cannot, and the events are queued for the task as usual.
    write_now: Callable[[list[LiveEvent]], bool] | None = None
    _pending: dict[tuple[str, Any], LiveEvent] = field(default_factory=dict)
    _waiter: asyncio.Future[None] | None = None

    def wants(self, event: LiveEvent) -> bool:
        """Whether this subscriber may and wants to see ``event`` (checked per event)."""
        if event.id <= self.after_id:
            return False
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        return self.owner is None or event.owner == self.owner

    def offer(self, event: LiveEvent) -> None:
        """Queue an event (on the event loop's thread)."""
        if self.closed:
            return
        if event.is_progress:
            key: tuple[str, Any] = ("p", event.job_id)
            self._pending.pop(key, None)
        else:
            key = ("s", event.id)
        self._pending[key] = event
        if len(self._pending) > self.max_backlog:
            self.overflowed = True
            self.close()
        self._wake()

    def deliver(self, events: list[LiveEvent]) -> None:
        """Hand over the events it wants (on the event loop's thread): written at once while
        its task waits with nothing queued, else queued for the task."""
        write = self.write_now
        waiting = self._waiter is not None and not self._waiter.done()
        # Written by the pump only while the task is parked with an empty backlog, so the
        # stream's order (replay, backlog, heartbeats) is never overtaken.
        idle = waiting and not self._pending and not self.closed
        if write is not None and idle and write(events):
            self.after_id = events[-1].id
            return
        for event in events:
            self.offer(event)

    def close(self) -> None:
        """Stop: the consumer's next wait returns at once."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_batch(self, timeout: float) -> list[LiveEvent] | None:
        """The events not sent yet, in id order; [] after ``timeout`` with nothing new;
        None when closed."""
        if not self._pending and not self.closed:
            # A bare future and one timer: far cheaper per wake-up than asyncio.wait_for,
            # which matters when one event wakes a thousand subscribers.
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, self._wake)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.overflowed:
            raise Overflow
        if self.closed:
            return None
        # Events already replayed from the log (or sent) may also have been queued live.
        batch = [e for e in self._pending.values() if e.id > self.after_id]
        self._pending.clear()
        if batch:
            self.after_id = batch[-1].id
        return batch


class LimitReached(Exception):
    """The user already has as many live streams as allowed."""


class EventPump:
    """Reads new events once per process and fans them out to subscribers."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll_seconds: float = 0.025,
        max_per_user: int = 50,
        max_backlog: int = 1000,
        send_timeout: float = 10.0,
    ) -> None:
        self.engine = engine
        self.send_timeout = send_timeout
        self._sweeper: asyncio.TimerHandle | None = None
        self.poll_seconds = poll_seconds
        self.max_per_user = max_per_user
        self.max_backlog = max_backlog
        self._subscribers: set[Subscriber] = set()
        self._per_user: dict[str, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_id = 0
        self.delivered = 0
        #: Seconds from the newest event's creation to its fan-out, at the last batch.
        self.lag_seconds = 0.0

    # -- life ------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading from the newest event on; fan out on ``loop``."""
        self._loop = loop
        self.last_id = job_events_mod.last_event_id(self.engine)
        if not is_sqlite(self.engine):
            self._listener = Listener(
                self.engine, [job_events_mod.EVENTS_CHANNEL], lambda _c, _p: self._wake.set()
            )
            self._listener.start()
        self._thread = threading.Thread(target=self._run, name="event-pump", daemon=True)
        self._thread.start()
        self._sweeper = loop.call_later(1.0, self._sweep)

    def close_streams(self) -> None:
        """End every live stream now (at shutdown: open streams must not hold it up)."""
        for sub in list(self._subscribers):
            sub.close()

    def _sweep(self) -> None:
        # A client that does not take a write for send_timeout seconds (its TCP window is
        # full) is cut off, so it holds no memory and never slows anyone else.
        loop = self._loop
        if loop is None or self._stop.is_set():
            return
        now = loop.time()
        for sub in list(self._subscribers):
            since = sub.sending_since
            if since is not None and now - since > self.send_timeout and sub.task is not None:
                log.info(
                    "live client of user %s stalled for %.0fs; dropped", sub.user_id, now - since
                )
                sub.overflowed = True
                sub.close()
                sub.task.cancel()
        self._sweeper = loop.call_later(1.0, self._sweep)

    def stop(self) -> None:
        """Stop reading and close every subscriber."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sub in list(self._subscribers):
            sub.close()

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(
        self, user_id: str, owner: str | None, *, job_id: str | None = None, after_id: int = 0
    ) -> Subscriber:
        """Register a live client (on the loop's thread); raises LimitReached."""
        if self._per_user.get(user_id, 0) >= self.max_per_user:
            raise LimitReached
        sub = Subscriber(
            user_id=user_id,
            owner=owner,
            job_id=job_id,
            max_backlog=self.max_backlog,
            after_id=after_id,
        )
        self._subscribers.add(sub)
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client (on the loop's thread)."""
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            left = self._per_user.get(sub.user_id, 1) - 1
            if left > 0:
                self._per_user[sub.user_id] = left
            else:
                self._per_user.pop(sub.user_id, None)
        sub.close()

    @property
    def subscriber_count(self) -> int:
        """Open live clients in this process."""
        return len(self._subscribers)

    def wake(self) -> None:
        """Read now (e.g. right after this process wrote events)."""
        self._wake.set()

    # -- reading ---------------------------------------------------------------------------

    def _run(self) -> None:
        # PostgreSQL: NOTIFY wakes us; the timeout is only a safety net for a lost listener.
        idle = self.poll_seconds if self._listener is None else 1.0
        while not self._stop.is_set():
            self._wake.wait(idle)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._read_all()
            except Exception:
                log.exception("event pump: reading events failed; retrying")
                self._stop.wait(1.0)

    def _read_all(self) -> None:
        while True:
            batch = read_events(self.engine, self.last_id, limit=500)
            if not batch:
                return
            self.last_id = batch[-1].id
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._fan_out, batch)
            if len(batch) < 500:
                return

    def _fan_out(self, batch: list[LiveEvent]) -> None:
        for sub in list(self._subscribers):
            wanted = [event for event in batch if sub.wants(event)]
            if wanted:
                sub.deliver(wanted)
                self.delivered += len(wanted)
        created = batch[-1].data.get("created_at")
        if isinstance(created, str):
            lag = (utcnow() - datetime.fromisoformat(created)).total_seconds()
            self.lag_seconds = max(0.0, lag)
