"""The append-only job event log: writing (ordered, with NOTIFY) and reading "after id N".

This is the one reader of the log: the queue, the CLI and the live streams (the API's event
pump and replay) all read events through the functions below.

Event ids must be seen by readers in increasing order with no late-appearing gaps, or an
SSE client that resumed "after N" would miss an event that committed after a higher id.
SQLite has a single writer, so commit order is id order. On PostgreSQL a transaction takes
an advisory lock right before inserting its events and keeps it until commit; writers of
events therefore commit in id order. The lock is held only for the tail of a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, insert, select, text

from inboxd.db.engine import reading
from inboxd.db.tables import job_events, jobs
from inboxd.db.types import utcnow
from inboxd.jobs.model import EventType, JobEvent

T = TypeVar("T")

EVENTS_LOCK_KEY = 0x1B0D_0002
#: PostgreSQL channel: "a job became ready" (payload: queue name).
JOBS_CHANNEL = "inboxd_jobs"
#: PostgreSQL channel: "new events were written" (payload: highest event id).
EVENTS_CHANNEL = "inboxd_events"
#: PostgreSQL channel: "a running job should stop" (payload: job id).
CANCEL_CHANNEL = "inboxd_cancel"


def append(conn: Connection, entries: Iterable[tuple[str, EventType, dict[str, Any]]]) -> None:
    """Append events ``(job_id, type, payload)`` inside the caller's transaction."""
    now = utcnow()
    rows = [
        {"job_id": job_id, "type": kind.value, "payload": payload, "created_at": now}
        for job_id, kind, payload in entries
    ]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # One round trip: the NOTIFY is only delivered at commit anyway.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k), pg_notify(:c, '')"),
            {"k": EVENTS_LOCK_KEY, "c": EVENTS_CHANNEL},
        )
        conn.execute(insert(job_events), rows)
    else:
        conn.execute(insert(job_events), rows)


def notify(conn: Connection, channel: str, payload: str) -> None:
    """PostgreSQL NOTIFY, delivered at commit; nothing on SQLite (readers poll there)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


def status_payload(status: str, **extra: Any) -> dict[str, Any]:
    """The payload of a ``status`` event."""
    payload: dict[str, Any] = {"status": status}
    payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


def read_after(
    engine: Engine,
    after_id: int = 0,
    *,
    job_ids: Sequence[str] | None = None,
    owner: str | None = None,
    limit: int = 1000,
) -> list[JobEvent]:
    """Events with id > ``after_id`` in id order, optionally for some jobs or one owner."""
    query = select(job_events).where(job_events.c.id > after_id)
    if job_ids is not None:
        query = query.where(job_events.c.job_id.in_(list(job_ids)))
    if owner is not None:
        owned = select(jobs.c.id).where(jobs.c.owner == owner)
        query = query.where(job_events.c.job_id.in_(owned.scalar_subquery()))
    query = query.order_by(job_events.c.id).limit(limit)
    with reading(engine) as conn:
        return [JobEvent.from_row(row) for row in conn.execute(query)]


def read_feed(
    engine: Engine,
    after_id: int,
    build: Callable[[Row[Any]], T],
    *,
    owner: str | None = None,
    job_id: str | None = None,
    limit: int = 1000,
) -> list[T]:
    """Events with id > ``after_id`` in id order, each row (the event's columns plus its
    job's ``owner``, ``kind`` and ``account_id``) turned into a ``T`` by ``build``."""
    # The caller builds its own objects straight from the rows: the event pump reads every
    # few milliseconds, and an intermediate object per event would cost it for nothing.
    query = (
        select(job_events, jobs.c.owner, jobs.c.kind, jobs.c.account_id)
        .select_from(job_events.join(jobs, jobs.c.id == job_events.c.job_id))
        .where(job_events.c.id > after_id)
    )
    if owner is not None:
        query = query.where(jobs.c.owner == owner)
    if job_id is not None:
        query = query.where(job_events.c.job_id == job_id)
    query = query.order_by(job_events.c.id).limit(limit)
    with reading(engine) as conn:
        return [build(row) for row in conn.execute(query)]


def last_event_id(engine: Engine) -> int:
    """The highest event id written so far (0 when none)."""
    with reading(engine) as conn:
        value = conn.execute(select(job_events.c.id).order_by(job_events.c.id.desc()).limit(1))
        return int(value.scalar() or 0)
