"""Clean-ups as stored: the ``cleanups`` row (what was looked for, the proposal's summary, the
person's approval) and its ``cleanup_items`` (each message kept as a candidate with its
reasons or as protected with why, whether it was approved, and what became of it).

A clean-up is read and changed through its owner, like a message: another user's is "not
found". Approval is one conditional UPDATE, so two people (or two clicks) answering at once
approve it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from inboxd.db.tables import change_journal as cj
from inboxd.db.tables import cleanup_items as ci
from inboxd.db.tables import cleanups as cu
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import NotFound
from inboxd.vocabulary import ItemRole, JournalState

__all__ = [
    "Cleanup",
    "Item",
    "approve",
    "approved_items",
    "create",
    "execution",
    "get",
    "items",
    "list_cleanups",
    "merge_summary",
    "outcomes_from_journal",
    "record_outcomes",
    "roles_of",
    "senders",
    "write_proposal",
]

#: Rows per statement when writing or approving many items (far below any bind limit).
_CHUNK = 1000
#: Candidates shown in a proposal's preview.
PREVIEW = 20
#: Item outcomes (the journal's words for what happened to one message).
DONE, SKIPPED, FAILED = JournalState.DONE.value, JournalState.SKIPPED.value, "failed"


@dataclass(frozen=True, slots=True)
class Cleanup:
    """One clean-up (its id is its discovery job's id)."""

    job_id: str
    account_id: str
    owner: str | None
    action: str
    criteria: dict[str, Any]
    summary: dict[str, Any]
    candidates: int
    protected: int
    proposed_at: datetime | None
    approved_at: datetime | None
    approved_by: str | None
    approved_count: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``cleanups`` row."""
        x = row._mapping
        return cls(
            job_id=x["job_id"],
            account_id=x["account_id"],
            owner=x["owner"],
            action=x["action"],
            criteria=dict(x["criteria"] or {}),
            summary=dict(x["summary"] or {}),
            candidates=int(x["candidates"] or 0),
            protected=int(x["protected"] or 0),
            proposed_at=x["proposed_at"],
            approved_at=x["approved_at"],
            approved_by=x["approved_by"],
            approved_count=x["approved_count"],
            created_at=x["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Item:
    """A message a discovery kept: a candidate with its reasons, or protected with why."""

    message_pk: int
    role: ItemRole
    reasons: tuple[str, ...]


def create(
    conn: Connection,
    *,
    job_id: str,
    account_id: str,
    owner: str | None,
    action: str,
    criteria: dict[str, Any],
) -> None:
    """Store a new clean-up (nothing when it is there already: the action and the task both
    make sure it exists, whichever comes first)."""
    if conn.execute(select(cu.c.job_id).where(cu.c.job_id == job_id)).first() is not None:
        return
    values = {
        "job_id": job_id,
        "account_id": account_id,
        "owner": owner,
        "action": action,
        "criteria": criteria,
        "summary": None,
        "candidates": 0,
        "protected": 0,
        "created_at": utcnow(),
    }
    try:
        with conn.begin_nested():
            conn.execute(insert(cu).values(values))
    except IntegrityError:
        return  # made by the other side between the look and the insert


def _owned(owner: str | None, any_owner: bool) -> Any:
    if any_owner:
        return None
    return cu.c.owner.is_(None) if owner is None else cu.c.owner == owner


def get(conn: Connection, job_id: str, *, owner: str | None, any_owner: bool = False) -> Cleanup:
    """One clean-up; NotFound unless it is ``owner``'s (or ``any_owner``)."""
    stmt = select(cu).where(cu.c.job_id == job_id)
    if (mine := _owned(owner, any_owner)) is not None:
        stmt = stmt.where(mine)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no clean-up {job_id}")
    return Cleanup.from_row(row)


def list_cleanups(
    conn: Connection, *, owner: str | None, any_owner: bool = False, limit: int = 100
) -> list[Cleanup]:
    """The owner's clean-ups (everyone's with ``any_owner``), newest first."""
    stmt = select(cu).order_by(cu.c.created_at.desc(), cu.c.job_id.desc()).limit(limit)
    if (mine := _owned(owner, any_owner)) is not None:
        stmt = stmt.where(mine)
    return [Cleanup.from_row(row) for row in conn.execute(stmt)]


def write_proposal(
    conn: Connection, job_id: str, found: Sequence[Item], summary: dict[str, Any]
) -> None:
    """Store a discovery's items (replacing any of an earlier, interrupted attempt), their
    counts and the proposal's summary."""
    conn.execute(delete(ci).where(ci.c.job_id == job_id))
    rows = [
        {
            "job_id": job_id,
            "message_pk": item.message_pk,
            "role": item.role.value,
            "reasons": list(item.reasons),
        }
        for item in found
    ]
    for start in range(0, len(rows), _CHUNK * 10):
        conn.execute(insert(ci), rows[start : start + _CHUNK * 10])
    candidates = sum(1 for item in found if item.role == ItemRole.CANDIDATE)
    conn.execute(
        update(cu)
        .where(cu.c.job_id == job_id)
        .values(
            candidates=candidates,
            protected=len(found) - candidates,
            summary=summary,
            proposed_at=utcnow(),
        )
    )


def merge_summary(conn: Connection, job_id: str, values: Mapping[str, Any]) -> None:
    """Add ``values`` to the clean-up's summary (an execution's unsubscribe results)."""
    row = conn.execute(select(cu.c.summary).where(cu.c.job_id == job_id)).first()
    summary = dict(row.summary or {}) if row is not None else {}
    summary.update(values)
    conn.execute(update(cu).where(cu.c.job_id == job_id).values(summary=summary))


def roles_of(conn: Connection, job_id: str) -> dict[int, str]:
    """Each item's role (to check a person's only/exclude lists)."""
    rows = conn.execute(select(ci.c.message_pk, ci.c.role).where(ci.c.job_id == job_id))
    return {int(pk): str(role) for pk, role in rows}


def _chunks(values: Iterable[int]) -> Iterable[list[int]]:
    batch: list[int] = []
    for value in values:
        batch.append(value)
        if len(batch) >= _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def approve(
    conn: Connection,
    job_id: str,
    *,
    by: str | None,
    only: Sequence[int] | None = None,
    exclude: Sequence[int] = (),
) -> int | None:
    """Approve the clean-up's candidates (only ``only`` when given, never ``exclude``); the
    number approved, or None when it was approved already (nothing is changed then). The
    first statement is the conditional UPDATE that lets exactly one approval through."""
    won = conn.execute(
        update(cu)
        .where(cu.c.job_id == job_id, cu.c.approved_at.is_(None), cu.c.proposed_at.is_not(None))
        .values(approved_at=utcnow(), approved_by=by)
    ).rowcount
    if won != 1:
        return None
    candidate = ci.c.role == ItemRole.CANDIDATE.value
    mine = ci.c.job_id == job_id
    conn.execute(update(ci).where(mine).values(approved=False))
    if only is None:
        conn.execute(update(ci).where(mine, candidate).values(approved=True))
    else:
        for part in _chunks(dict.fromkeys(only)):
            conn.execute(
                update(ci).where(mine, candidate, ci.c.message_pk.in_(part)).values(approved=True)
            )
    for part in _chunks(dict.fromkeys(exclude)):
        conn.execute(update(ci).where(mine, ci.c.message_pk.in_(part)).values(approved=False))
    count = int(
        conn.execute(
            select(func.count()).select_from(ci).where(mine, ci.c.approved.is_(True))
        ).scalar_one()
    )
    conn.execute(update(cu).where(cu.c.job_id == job_id).values(approved_count=count))
    return count


def approved_items(conn: Connection, job_id: str) -> list[int]:
    """The approved candidates with no outcome yet, in id order."""
    rows = conn.execute(
        select(ci.c.message_pk)
        .where(
            ci.c.job_id == job_id,
            ci.c.approved.is_(True),
            ci.c.role == ItemRole.CANDIDATE.value,
            ci.c.outcome.is_(None),
        )
        .order_by(ci.c.message_pk)
    )
    return [int(pk) for pk in rows.scalars()]


def record_outcomes(
    conn: Connection, job_id: str, outcomes: Mapping[int, tuple[str, str | None]]
) -> None:
    """Write each item's outcome (done, skipped, failed) and why."""
    by_value: dict[tuple[str, str | None], list[int]] = {}
    for pk, value in outcomes.items():
        by_value.setdefault(value, []).append(pk)
    for (outcome, why), pks in by_value.items():
        for part in _chunks(pks):
            conn.execute(
                update(ci)
                .where(ci.c.job_id == job_id, ci.c.message_pk.in_(part))
                .values(outcome=outcome, outcome_reason=why)
            )


def outcomes_from_journal(conn: Connection, job_id: str) -> dict[int, tuple[str, str | None]]:
    """Each journaled message's outcome under ``job_id``: done when one of its locations
    was changed, else the first reason it was skipped or failed. Rows still planned are
    left out (a resumed run settles them first)."""
    found: dict[int, tuple[str, str | None]] = {}
    rows = conn.execute(
        select(cj.c.message_pk, cj.c.state, cj.c.reason)
        .where(cj.c.job_id == job_id)
        .order_by(cj.c.id)
    )
    for pk, state, reason in rows:
        key = int(pk)
        if state in (DONE, JournalState.UNDONE.value):
            found[key] = (DONE, None)
        elif state in (SKIPPED, FAILED) and found.get(key, ("",))[0] != DONE:
            found.setdefault(key, (state, reason))
    return found


def _items_query(job_id: str, role: ItemRole) -> Any:
    return (
        select(
            ci.c.message_pk,
            ci.c.reasons,
            ci.c.approved,
            ci.c.outcome,
            ci.c.outcome_reason,
            m.c.message_id,
            m.c.from_addr,
            m.c.from_name,
            m.c.subject,
            m.c.date,
            m.c.sort_date,
            m.c.category,
        )
        .select_from(ci.outerjoin(m, m.c.id == ci.c.message_pk))
        .where(ci.c.job_id == job_id, ci.c.role == role.value)
    )


def items(
    conn: Connection, job_id: str, role: ItemRole, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """A proposal's candidates (``id``, ``message_id``, ``from``, ``subject``, ``date``,
    ``category``, ``reasons``) or protected messages (with ``why``), newest first."""
    stmt = _items_query(job_id, role).order_by(m.c.sort_date.desc(), ci.c.message_pk.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    out: list[dict[str, Any]] = []
    for row in conn.execute(stmt):
        when = row.date or row.sort_date
        item: dict[str, Any] = {
            "id": int(row.message_pk),
            "message_id": row.message_id,
            "from": row.from_addr,
            "from_name": row.from_name,
            "subject": row.subject,
        }
        if role == ItemRole.CANDIDATE:
            item |= {
                "date": when.isoformat() if when else None,
                "category": row.category,
                "reasons": list(row.reasons or ()),
                "approved": row.approved,
                "outcome": row.outcome,
            }
        else:
            item["why"] = list(row.reasons or ())
        out.append(item)
    return out


def senders(conn: Connection, job_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """The candidates' senders with how many messages each, most first."""
    n = func.count().label("n")
    rows = conn.execute(
        select(m.c.from_addr, n)
        .select_from(ci.join(m, m.c.id == ci.c.message_pk))
        .where(ci.c.job_id == job_id, ci.c.role == ItemRole.CANDIDATE.value)
        .group_by(m.c.from_addr)
        .order_by(n.desc(), m.c.from_addr)
        .limit(limit)
    )
    return [{"from": addr, "count": int(count)} for addr, count in rows]


def execution(conn: Connection, job_id: str) -> dict[str, Any] | None:
    """What the execution did (None before it recorded anything): done and failed counts,
    and each skipped message with why."""
    rows = conn.execute(
        select(ci.c.message_pk, ci.c.outcome, ci.c.outcome_reason).where(
            ci.c.job_id == job_id, ci.c.outcome.is_not(None)
        )
    ).all()
    if not rows:
        return None
    done = sum(1 for r in rows if r.outcome == DONE)
    failed = [
        {"id": int(r.message_pk), "why": r.outcome_reason} for r in rows if r.outcome == FAILED
    ]
    skipped = [
        {"id": int(r.message_pk), "why": r.outcome_reason or "skipped"}
        for r in rows
        if r.outcome == SKIPPED
    ]
    skipped.sort(key=lambda s: s["id"])
    return {"done": done, "skipped": skipped, "failed": len(failed), "errors": failed[:20]}
