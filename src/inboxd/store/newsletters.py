"""Newsletter extractions as stored: one ``newsletter_extractions`` row per extraction (its
id is its job's id) with what it looked for and, once it completed, its counts and result.

The row outlives its job (job retention prunes finished jobs after days): while the job is
there its state is the fresher one (actions overlay it), once it is gone the row is all
there is, so an extraction's end is also settled here from the job or its run record.
Results are zlib-compressed JSON: article URLs repeat their hosts and paths, so they shrink
several times over.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from inboxd.db.tables import job_runs, jobs
from inboxd.db.tables import newsletter_extractions as ne
from inboxd.db.types import utcnow

__all__ = [
    "FINAL",
    "LIVE",
    "Extraction",
    "complete",
    "create",
    "delete_one",
    "ended",
    "get",
    "list_extractions",
    "prune",
    "settle",
    "start",
]

#: Row states that no later write changes (short of a retry, which starts it again).
FINAL = ("completed", "failed", "cancelled")
#: Row states of an extraction whose job has not ended (as far as the row knows).
LIVE = ("pending", "running")


@dataclass(frozen=True, slots=True)
class Extraction:
    """One stored extraction (its result is decoded only when asked for)."""

    id: str
    owner: str | None
    account_id: str | None
    params: dict[str, Any]
    status: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    counts: dict[str, Any] | None
    packed_result: bytes | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``newsletter_extractions`` row (one read without its result has
        none)."""
        x = row._mapping
        packed = x.get("result")
        return cls(
            id=x["id"],
            owner=x["owner"],
            account_id=x["account_id"],
            params=dict(x["params"] or {}),
            status=x["status"],
            error=x["error"],
            created_at=x["created_at"],
            started_at=x["started_at"],
            completed_at=x["completed_at"],
            counts=dict(x["counts"]) if x["counts"] is not None else None,
            packed_result=bytes(packed) if packed is not None else None,
        )

    @property
    def result(self) -> dict[str, Any] | None:
        """The completed extraction's result, decoded."""
        if self.packed_result is None:
            return None
        decoded: dict[str, Any] = json.loads(zlib.decompress(self.packed_result))
        return decoded


def pack(result: dict[str, Any]) -> bytes:
    """A result as stored: compact JSON, zlib-compressed."""
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"), 6)


def create(
    conn: Connection,
    *,
    extraction_id: str,
    owner: str | None,
    account_id: str | None,
    params: dict[str, Any],
    created_at: datetime,
    status: str = "pending",
) -> None:
    """Store a new extraction; nothing when it is there already (the action and the task
    both make sure it exists, whichever comes first)."""
    if conn.execute(select(ne.c.id).where(ne.c.id == extraction_id)).first() is not None:
        return
    values = {
        "id": extraction_id,
        "owner": owner,
        "account_id": account_id,
        "params": params,
        "status": status,
        "created_at": created_at,
    }
    try:
        with conn.begin_nested():
            conn.execute(insert(ne).values(values))
    except IntegrityError:
        return  # made by the other side between the look and the insert


def start(
    conn: Connection,
    *,
    extraction_id: str,
    owner: str | None,
    account_id: str | None,
    params: dict[str, Any],
    created_at: datetime,
) -> None:
    """Mark it running (made here when its job was queued by another way than the action,
    the generic jobs route say); a retry starts a finished one again, result cleared."""
    create(
        conn,
        extraction_id=extraction_id,
        owner=owner,
        account_id=account_id,
        params=params,
        created_at=created_at,
    )
    conn.execute(
        update(ne)
        .where(ne.c.id == extraction_id)
        .values(
            status="running",
            error=None,
            started_at=utcnow(),
            completed_at=None,
            counts=None,
            result=None,
        )
    )


def complete(conn: Connection, extraction_id: str, result: dict[str, Any]) -> None:
    """Store the completed extraction's result and counts."""
    conn.execute(
        update(ne)
        .where(ne.c.id == extraction_id)
        .values(
            status="completed",
            error=None,
            completed_at=utcnow(),
            counts=result.get("counts"),
            result=pack(result),
        )
    )


def get(conn: Connection, extraction_id: str, *, owner: str | None) -> Extraction | None:
    """One extraction; ``owner`` restricts the look-up to that owner's (else None)."""
    query = select(ne).where(ne.c.id == extraction_id)
    if owner is not None:
        query = query.where(ne.c.owner == owner)
    row = conn.execute(query).first()
    return Extraction.from_row(row) if row is not None else None


def list_extractions(conn: Connection, *, owner: str | None, limit: int) -> list[Extraction]:
    """Extractions newest first (``owner``'s, or everyone's for None), results not read."""
    query = select(*(c for c in ne.c if c.name != "result"))
    if owner is not None:
        query = query.where(ne.c.owner == owner)
    query = query.order_by(ne.c.created_at.desc(), ne.c.id.desc()).limit(limit)
    return [Extraction.from_row(row) for row in conn.execute(query)]


def delete_one(conn: Connection, extraction_id: str, *, owner: str | None) -> bool:
    """Remove one extraction (``owner``'s only, unless None); whether there was one."""
    query = delete(ne).where(ne.c.id == extraction_id)
    if owner is not None:
        query = query.where(ne.c.owner == owner)
    return bool(conn.execute(query).rowcount)


def ended(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, str | None, datetime]]:
    """How the jobs of ``ids`` ended (status, error, time) when they did: from the job row
    while it is there, else from its newest run record (kept longer than jobs)."""
    out: dict[str, tuple[str, str | None, datetime]] = {}
    if not ids:
        return out
    present: set[str] = set()
    rows = conn.execute(
        select(jobs.c.id, jobs.c.status, jobs.c.error, jobs.c.finished_at).where(
            jobs.c.id.in_(list(ids))
        )
    ).all()
    for job_id, status, error, finished_at in rows:
        present.add(job_id)
        if status in FINAL and finished_at is not None:
            out[job_id] = (status, error, finished_at)
    gone = [i for i in ids if i not in present]
    if gone:
        runs = conn.execute(
            select(job_runs.c.job_id, job_runs.c.status, job_runs.c.error, job_runs.c.finished_at)
            .where(job_runs.c.job_id.in_(gone))
            .order_by(job_runs.c.finished_at)
        ).all()
        for job_id, status, error, finished_at in runs:
            out[job_id] = (status, error, finished_at)  # the newest run comes last
    return out


def settle(conn: Connection, *, owner: str | None) -> int:
    """Give ``owner``'s extractions whose job ended without the task writing the end (a
    cancel before it ran, a failure, a crash) that end, before the job row is pruned."""
    query = select(ne.c.id).where(ne.c.status.in_(LIVE))
    query = query.where(ne.c.owner.is_(None) if owner is None else ne.c.owner == owner)
    ids = [i for (i,) in conn.execute(query)]
    done = 0
    for extraction_id, (status, error, when) in ended(conn, ids).items():
        if status == "completed":
            continue  # the task writes a completion itself, result included
        done += conn.execute(
            update(ne)
            .where(ne.c.id == extraction_id, ne.c.status.in_(LIVE))
            .values(status=status, error=error, completed_at=when)
        ).rowcount
    return done


def prune(conn: Connection, *, owner: str | None, keep: int) -> int:
    """Remove ``owner``'s ended extractions beyond the newest ``keep``; how many went."""
    mine = ne.c.owner.is_(None) if owner is None else ne.c.owner == owner
    over = (
        select(ne.c.id)
        .where(mine, ne.c.status.in_(FINAL))
        .order_by(ne.c.created_at.desc(), ne.c.id.desc())
        .offset(keep)
    )
    ids = [i for (i,) in conn.execute(over)]
    removed = 0
    for start_at in range(0, len(ids), 500):
        part = ids[start_at : start_at + 500]
        removed += conn.execute(delete(ne).where(ne.c.id.in_(part))).rowcount
    return removed
