"""The change journal: one row per message location a change acts on, written ``planned``
before the server is touched and settled (``done``, ``skipped``, ``failed``) in the same
transaction as the store update the change implies; ``undone`` once an undo put it back.

It also holds the store side of a done change: flags and labels on ``messages`` (through
:func:`inboxd.store.folders.apply_flags`, as a sync writes them), and a move's new
location (the old one expunged with :func:`inboxd.store.folders.mark_expunged`, the
target folder's row created with :func:`inboxd.store.folders.ensure_folder` when the store
has none).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from inboxd.db.tables import change_journal as cj
from inboxd.db.tables import folders, locations, messages
from inboxd.db.types import utcnow
from inboxd.store.folders import apply_flags, ensure_folder, mark_expunged
from inboxd.store.rows import encoder_for
from inboxd.vocabulary import JournalState

#: Ids per ``IN (...)`` list.
_CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class Place:
    """Where the store last saw a message (a live location) and its marks there."""

    message_pk: int
    folder_id: int
    folder: str
    #: the folder's UIDVALIDITY as the last sync saw it (IMAP), which ``key`` belongs to
    validity: int | None
    key: str
    uid: int | None
    message_id: str | None
    flags: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One journal row."""

    id: int
    job_id: str
    account_id: str
    message_pk: int
    op: str
    change: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any] | None
    state: str
    reason: str | None
    undone_by: str | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``change_journal`` row."""
        m = row._mapping
        return cls(
            id=int(m["id"]),
            job_id=m["job_id"],
            account_id=m["account_id"],
            message_pk=int(m["message_pk"]),
            op=m["op"],
            change=dict(m["change"] or {}),
            before=dict(m["before"] or {}),
            after=dict(m["after"]) if m["after"] is not None else None,
            state=m["state"],
            reason=m["reason"],
            undone_by=m["undone_by"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's view of a row."""
        return {
            "message_pk": self.message_pk,
            "op": self.op,
            "state": self.state,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, kw_only=True)
class NewEntry:
    """A row to write: ``state`` is ``planned`` unless it is settled without acting."""

    message_pk: int
    op: str
    change: dict[str, Any]
    before: dict[str, Any]
    state: str = JournalState.PLANNED
    reason: str | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a planned row ended: ``done`` with ``after``, or ``skipped``/``failed`` with a
    reason. ``undoes`` names the row a done undo puts back."""

    entry_id: int
    state: str
    after: dict[str, Any] | None = None
    reason: str | None = None
    undoes: int | None = None


@dataclass(frozen=True, kw_only=True)
class Landing:
    """The store side of a done row: the location it acted on and where the message is now
    (``key`` None: moved, but its new key is not known; the next sync finds it)."""

    account_id: str
    message_pk: int
    old_folder: str
    old_key: str
    old_uid: int | None
    folder: str
    key: str | None
    flags: tuple[str, ...]
    labels: tuple[str, ...] | None


# -- where messages are ---------------------------------------------------------------------


def live_places(conn: Connection, account_id: str, message_pks: Iterable[int]) -> list[Place]:
    """The live locations of these messages of ``account_id`` (in folders not gone), by
    message and folder name; a message of another account, or with none left, has none."""
    pks = sorted(set(message_pks))
    found: list[Place] = []
    for start in range(0, len(pks), _CHUNK):
        rows = conn.execute(
            select(
                locations.c.message_pk,
                locations.c.folder_id,
                folders.c.name,
                folders.c.uidvalidity,
                locations.c.remote_key,
                locations.c.uid,
                messages.c.message_id,
                messages.c.flags,
                messages.c.labels,
            )
            .join(folders, folders.c.id == locations.c.folder_id)
            .join(messages, messages.c.id == locations.c.message_pk)
            .where(
                locations.c.message_pk.in_(pks[start : start + _CHUNK]),
                locations.c.expunged_at.is_(None),
                folders.c.gone_at.is_(None),
                folders.c.account_id == account_id,
                messages.c.account_id == account_id,
            )
        )
        found.extend(
            Place(
                message_pk=int(pk),
                folder_id=int(folder_id),
                folder=name,
                validity=None if validity is None else int(validity),
                key=key,
                uid=None if uid is None else int(uid),
                message_id=message_id,
                flags=tuple(flags or ()),
                labels=tuple(labels or ()),
            )
            for pk, folder_id, name, validity, key, uid, message_id, flags, labels in rows
        )
    found.sort(key=lambda p: (p.message_pk, p.folder, p.key))
    return found


def message_ids(conn: Connection, message_pks: Iterable[int]) -> dict[int, str | None]:
    """Each message's Message-ID (to find it again after a move)."""
    pks = sorted(set(message_pks))
    found: dict[int, str | None] = {}
    for start in range(0, len(pks), _CHUNK):
        rows = conn.execute(
            select(messages.c.id, messages.c.message_id).where(
                messages.c.id.in_(pks[start : start + _CHUNK])
            )
        )
        found.update((int(pk), mid) for pk, mid in rows)
    return found


# -- writing the journal --------------------------------------------------------------------


def write(conn: Connection, job_id: str, account_id: str, rows: Sequence[NewEntry]) -> list[int]:
    """Add rows for ``job_id`` (in the caller's transaction); their ids, in order."""
    if not rows:
        return []
    now = utcnow()
    values = [
        {
            "job_id": job_id,
            "account_id": account_id,
            "message_pk": row.message_pk,
            "op": row.op[:40],
            "change": row.change,
            "before": row.before,
            "after": row.after,
            "state": str(row.state),
            "reason": row.reason,
            "created_at": now,
            "updated_at": now,
        }
        for row in rows
    ]
    ids = conn.execute(
        insert(cj).returning(cj.c.id, sort_by_parameter_order=True), values
    ).scalars()
    return [int(i) for i in ids]


def settle(conn: Connection, job_id: str, outcomes: Sequence[Outcome]) -> None:
    """Set how planned rows ended; a done undo marks the row it puts back ``undone`` by
    ``job_id`` (all in the caller's transaction)."""
    if not outcomes:
        return
    now = utcnow()
    conn.execute(
        update(cj)
        .where(cj.c.id == bindparam("entry_id"))
        .values(
            state=bindparam("new_state"),
            after=bindparam("new_after"),
            reason=bindparam("new_reason"),
            updated_at=now,
        ),
        [
            {
                "entry_id": o.entry_id,
                "new_state": str(o.state),
                "new_after": o.after,
                "new_reason": o.reason,
            }
            for o in outcomes
        ],
    )
    undone = [o.undoes for o in outcomes if o.undoes is not None]
    mark_undone(conn, undone, job_id)


def mark_undone(conn: Connection, entry_ids: Sequence[int], by_job: str) -> None:
    """Rows an undo job put back."""
    ids = sorted(set(entry_ids))
    now = utcnow()
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update(cj)
            .where(cj.c.id.in_(ids[start : start + _CHUNK]), cj.c.state == JournalState.DONE)
            .values(state=JournalState.UNDONE, undone_by=by_job, updated_at=now)
        )


# -- the store side of done changes ---------------------------------------------------------


def record(conn: Connection, landings: Sequence[Landing]) -> None:
    """Make the store match what the server now has after these done changes: a moved
    message's new location (its folder row made when missing) and its old one expunged;
    its flags and labels (by its location now)."""
    if not landings:
        return
    folder_ids: dict[tuple[str, str], int] = {}

    def folder_id(account_id: str, name: str) -> int:
        key = (account_id, name)
        if key not in folder_ids:
            folder_ids[key] = ensure_folder(conn, account_id, name).id
        return folder_ids[key]

    moved = [x for x in landings if (x.folder, x.key) != (x.old_folder, x.old_key)]
    enc = encoder_for(conn)
    stamp = enc.time(utcnow())
    new_rows = [
        (
            folder_id(x.account_id, x.folder),
            x.key,
            x.message_pk,
            uid_of(x.old_uid, x.key),
            stamp,
        )
        for x in moved
        if x.key is not None
    ]
    if new_rows:
        # Before the old location goes, so the message is never without one (which would
        # mark it expunged).
        sql = enc.insert(
            locations.name, ("folder_id", "remote_key", "message_pk", "uid", "seen_at")
        )
        conn.exec_driver_sql(
            f"{sql} ON CONFLICT (folder_id, remote_key) DO UPDATE SET "
            "message_pk = excluded.message_pk, uid = excluded.uid, seen_at = excluded.seen_at, "
            "expunged_at = NULL",
            new_rows,
        )
        pks = sorted({x.message_pk for x in moved if x.key is not None})
        for start in range(0, len(pks), _CHUNK):
            conn.execute(
                update(messages)
                .where(messages.c.id.in_(pks[start : start + _CHUNK]))
                .values(expunged_at=None)
            )
    gone: dict[int, list[str]] = defaultdict(list)
    for x in moved:
        gone[folder_id(x.account_id, x.old_folder)].append(x.old_key)
    for fid, keys in gone.items():
        mark_expunged(conn, fid, keys)
    marks: dict[int, tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = {}
    for x in landings:
        where = (x.folder, x.key) if x.key is not None else (x.old_folder, x.old_key)
        flags, labels = marks.setdefault(folder_id(x.account_id, where[0]), ({}, {}))
        flags[where[1]] = x.flags
        if x.labels is not None:
            labels[where[1]] = x.labels
    for fid, (flags, labels) in marks.items():
        apply_flags(conn, fid, flags, {k: list(v) for k, v in labels.items()} or None)


def uid_of(old_uid: int | None, key: str | None) -> int | None:
    """A new location's UID: its key where the old one had a UID (IMAP keys are UIDs;
    Maildir's are file names, whose locations have none)."""
    return int(key) if old_uid is not None and key is not None and key.isdigit() else None


# -- reading --------------------------------------------------------------------------------


def planned(conn: Connection, job_id: str) -> list[Entry]:
    """The job's rows still ``planned`` (a run that stopped between acting and settling)."""
    rows = conn.execute(
        select(cj)
        .where(cj.c.job_id == job_id, cj.c.state == JournalState.PLANNED)
        .order_by(cj.c.id)
    )
    return [Entry.from_row(row) for row in rows]


def journaled(conn: Connection, job_id: str) -> list[tuple[int, str | None, str | None]]:
    """(message pk, folder, key) of every row of the job: what it already recorded."""
    rows = conn.execute(select(cj.c.message_pk, cj.c.before).where(cj.c.job_id == job_id))
    return [
        (int(pk), (before or {}).get("folder"), (before or {}).get("key")) for pk, before in rows
    ]


def counts(conn: Connection, job_id: str) -> dict[str, int]:
    """Rows of the job per state."""
    rows = conn.execute(
        select(cj.c.state, func.count()).where(cj.c.job_id == job_id).group_by(cj.c.state)
    )
    return {state: int(n) for state, n in rows}


def entries(
    conn: Connection, job_id: str, *, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[Entry]:
    """A page of the job's rows in the order they were written."""
    stmt = select(cj).where(cj.c.job_id == job_id)
    if state is not None:
        stmt = stmt.where(cj.c.state == state)
    rows = conn.execute(stmt.order_by(cj.c.id).limit(limit).offset(offset))
    return [Entry.from_row(row) for row in rows]


def done_entries(conn: Connection, job_id: str) -> list[Entry]:
    """The job's ``done`` rows, newest first (the order an undo replays them)."""
    rows = conn.execute(
        select(cj)
        .where(cj.c.job_id == job_id, cj.c.state == JournalState.DONE)
        .order_by(cj.c.id.desc())
    )
    return [Entry.from_row(row) for row in rows]


def undone_by(conn: Connection, job_id: str) -> str | None:
    """The job that undid (some of) this job's rows, if any."""
    return conn.execute(
        select(cj.c.undone_by)
        .where(cj.c.job_id == job_id, cj.c.undone_by.is_not(None))
        .order_by(cj.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def states_by_entry(conn: Connection, entry_ids: Sequence[int]) -> Mapping[int, str]:
    """The state of each of these rows."""
    ids = sorted(set(entry_ids))
    found: dict[int, str] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(cj.c.id, cj.c.state).where(cj.c.id.in_(ids[start : start + _CHUNK]))
        )
        found.update((int(i), s) for i, s in rows)
    return found


def of_account(conn: Connection, account_id: str, message_pks: Iterable[int]) -> set[int]:
    """Which of these messages belong to ``account_id``."""
    pks = sorted(set(message_pks))
    found: set[int] = set()
    for start in range(0, len(pks), _CHUNK):
        rows = conn.execute(
            select(messages.c.id).where(
                messages.c.id.in_(pks[start : start + _CHUNK]),
                messages.c.account_id == account_id,
            )
        )
        found.update(int(pk) for (pk,) in rows)
    return found
