"""Reading the stored mail: pages of messages newest first, one message with its folders,
and threads, always limited to what the reader may see.

Pages are keyset-paged on (``sort_date`` DESC, ``id`` DESC), the order of the indexes
``ix_messages_sort`` (one account) and ``ix_messages_sort_all`` (an admin's view of all):
a page costs an index range scan of ``limit`` rows however deep it is. A reader with
several accounts gets one such scan per account, merged here, since neither database can
merge an ``IN`` list's index ranges in order by itself (they would sort every match).

Sorted by priority, pages are keyset-paged on (``priority`` DESC, ``sort_date`` DESC, ``id``
DESC) per account (``ix_messages_priority``), untriaged messages (priority NULL) last, in
at most three range scans per account: the rest of the cursor's priority, the lower
priorities, then the untriaged. Each is in the index's own order on both databases (NULL
priorities are never mixed in), so neither sorts.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Self, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    and_,
    func,
    or_,
    select,
    true,
)

from inboxd.db.tables import accounts, folders, locations
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, NotFound
from inboxd.store.search import Query, message_filter
from inboxd.vocabulary import Category

__all__ = [
    "MAX_LIMIT",
    "SORTS",
    "CategoryCounts",
    "Cursor",
    "MessageRow",
    "Page",
    "PriorityCursor",
    "ThreadSummary",
    "category_counts",
    "get_message",
    "list_messages",
    "list_threads",
    "thread_messages",
    "top_messages",
    "visible_accounts",
]

#: The most messages (or threads) one page holds.
MAX_LIMIT = 200
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The orders a list of messages may have.
SORTS = ("date", "priority")
#: The most messages of a top-N's date window read by date and ordered in Python.
TOP_WINDOW = 500
#: The first character of a priority cursor's text (a date cursor's starts with a digit).
_PRIORITY_MARK = "p"
_BAD_CURSOR = "invalid cursor: pass next_cursor of the previous page"
#: Messages read per round while collecting a page of threads, per thread wanted.
_THREAD_SCAN_FACTOR = 4

_SUMMARY = (
    m.c.id,
    m.c.account_id,
    m.c.message_id,
    m.c.thread_id,
    m.c.subject,
    m.c.from_addr,
    m.c.from_name,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.date,
    m.c.sort_date,
    m.c.flags,
    m.c.labels,
    m.c.size,
    m.c.snippet,
    m.c.has_attachments,
    m.c.category,
    m.c.priority,
    m.c.confidence,
    m.c.reasons,
)
_DETAIL = (
    m.c.reply_to,
    m.c.in_reply_to,
    m.c.refs,
    m.c.list_id,
    m.c.list_unsubscribe,
    m.c.list_unsubscribe_post,
    m.c.internal_date,
    m.c.parse_errors,
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the (sort date, id) of its last message; opaque to clients."""

    sort_date: datetime
    id: int

    def encode(self) -> str:
        """The cursor as a short URL-safe token."""
        micros = (self.sort_date - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}:{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Self:
        """The cursor of a token from :meth:`encode`; InvalidRequest for anything else."""
        text = _cursor_text(token)
        if text.startswith(_PRIORITY_MARK):
            raise InvalidRequest(
                "invalid cursor: it is of a list sorted by priority (pass sort=priority with it)"
            )
        moment, pk = _date_and_id(text)
        return cls(moment, pk)

    def before(self) -> ColumnElement[bool]:
        """Messages after this one in list order. The first term bounds the index range;
        the second only sorts out the rows of the same sort date."""
        return _date_before(self.sort_date, self.id)

    def up_to(self) -> ColumnElement[bool]:
        """This message and those before it in list order (the pages already read)."""
        return and_(
            m.c.sort_date >= self.sort_date,
            or_(m.c.sort_date > self.sort_date, m.c.id >= self.id),
        )


def _date_before(sort_date: datetime, pk: int) -> ColumnElement[bool]:
    return and_(m.c.sort_date <= sort_date, or_(m.c.sort_date < sort_date, m.c.id < pk))


def _cursor_text(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest(_BAD_CURSOR) from None


def _date_and_id(text: str) -> tuple[datetime, int]:
    """The ``micros:id`` of a cursor's text."""
    try:
        micros, _, pk = text.partition(":")
        moment = _EPOCH + timedelta(microseconds=int(micros))
        if not 0 < int(pk) < 2**63:
            raise ValueError(text)
        return moment, int(pk)
    except (ValueError, TypeError, OverflowError):
        raise InvalidRequest(_BAD_CURSOR) from None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PriorityCursor:
    """Where a page sorted by priority ends: the (priority, sort date, id) of its last
    message (priority None: an untriaged one); opaque to clients."""

    priority: int | None
    sort_date: datetime
    id: int

    def encode(self) -> str:
        """The cursor as a short URL-safe token, told apart from a date cursor's."""
        level = "n" if self.priority is None else str(self.priority)
        text = f"{_PRIORITY_MARK}{level}:{_micros(self.sort_date)}:{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Self:
        """The cursor of a token from :meth:`encode`; InvalidRequest for anything else,
        a date-sorted list's cursor included."""
        text = _cursor_text(token)
        if not text.startswith(_PRIORITY_MARK):
            raise InvalidRequest(
                "invalid cursor: it is of a list sorted by date (pass it without sort=priority)"
            )
        level, _, rest = text[1:].partition(":")
        if level == "n":
            priority = None
        elif level.isdigit() and len(level) <= 3 and int(level) <= 100:
            priority = int(level)
        else:
            raise InvalidRequest(_BAD_CURSOR)
        moment, pk = _date_and_id(rest)
        return cls(priority, moment, pk)


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """An account's live messages per category (every category, 0 included) and how many
    are untriaged."""

    account_id: str
    counts: dict[str, int]
    untriaged: int

    def to_dict(self) -> dict[str, Any]:
        """The answer of ``GET /api/accounts/{id}/categories``."""
        return {"account_id": self.account_id, "counts": self.counts, "untriaged": self.untriaged}


@dataclass(slots=True)
class MessageRow:
    """A message as lists show it."""

    id: int
    account_id: str
    message_id: str | None
    thread_id: int
    subject: str | None
    from_name: str | None
    from_addr: str | None
    to: list[str]
    cc: list[str]
    date: datetime | None
    sort_date: datetime | None
    flags: list[str]
    labels: list[str]
    size: int
    snippet: str
    has_attachments: bool
    #: the triage job's verdict; None (reasons empty) while untriaged
    category: str | None = None
    priority: int | None = None
    confidence: float | None = None
    reasons: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    #: the rest of the row (detail reads only)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, r: RowMapping) -> Self:
        """Build from a row mapping of the summary columns (and perhaps the detail ones)."""
        extra = {c.name: r[c.name] for c in _DETAIL if c.name in r}
        return cls(
            id=int(r["id"]),
            account_id=r["account_id"],
            message_id=r["message_id"],
            # Not threaded yet (the index job has not run): a thread of its own.
            thread_id=int(r["thread_id"] if r["thread_id"] is not None else r["id"]),
            subject=r["subject"],
            from_name=r["from_name"],
            from_addr=r["from_addr"],
            to=list(r["to_addrs"] or []),
            cc=list(r["cc_addrs"] or []),
            date=r["date"],
            sort_date=r["sort_date"],
            flags=list(r["flags"] or []),
            labels=list(r["labels"] or []),
            size=int(r["size"]),
            snippet=r["snippet"] or "",
            has_attachments=bool(r["has_attachments"]),
            category=r.get("category"),
            priority=None if r.get("priority") is None else int(r["priority"]),
            confidence=None if r.get("confidence") is None else float(r["confidence"]),
            reasons=[str(reason) for reason in r.get("reasons") or []],
            extra=extra,
        )

    @property
    def cursor(self) -> Cursor:
        """The cursor of a page ending with this message."""
        return Cursor(self.sort_date or _EARLIEST, self.id)

    @property
    def priority_cursor(self) -> PriorityCursor:
        """The cursor of a page sorted by priority ending with this message."""
        return PriorityCursor(self.priority, self.sort_date or _EARLIEST, self.id)

    def to_dict(self) -> dict[str, Any]:
        """The message object of the API and ``--json``."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "subject": self.subject,
            "from": {"name": self.from_name, "address": self.from_addr},
            "to": self.to,
            "cc": self.cc,
            "date": self.date.isoformat() if self.date else None,
            "sort_date": self.sort_date.isoformat() if self.sort_date else None,
            "folders": self.folders,
            "flags": self.flags,
            "labels": self.labels,
            "size": self.size,
            "snippet": self.snippet,
            "has_attachments": self.has_attachments,
            "category": self.category,
            "priority": self.priority,
            "confidence": self.confidence,
            "reasons": self.reasons,
        }


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page and the cursor of the next (None: this is the last)."""

    items: list[T]
    next_cursor: str | None


@dataclass(slots=True)
class ThreadSummary:
    """A thread as lists show it: its newest message matching the query (the one that
    places it in the list) and what it holds in all."""

    id: int
    latest: MessageRow
    subject: str | None
    message_count: int
    participants: list[str]
    unread: bool
    has_attachments: bool
    first_date: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The thread object of the API."""
        return {
            "id": self.id,
            "account_id": self.latest.account_id,
            "subject": self.subject,
            "message_count": self.message_count,
            "participants": self.participants,
            "unread": self.unread,
            "has_attachments": self.has_attachments,
            "first_date": self.first_date.isoformat() if self.first_date else None,
            "last_date": self.latest.sort_date.isoformat() if self.latest.sort_date else None,
            "latest": self.latest.to_dict(),
        }


# -- who sees what -----------------------------------------------------------------------------


def visible_accounts(
    conn: Connection, *, owner: str | None, account_id: str | None = None
) -> list[str] | None:
    """The accounts a reader's list covers: None for every message (an admin without an
    account filter), else their ids. An account the reader may not see is NotFound."""
    if account_id is not None:
        query = select(accounts.c.id).where(accounts.c.id == account_id)
        if owner is not None:
            query = query.where(accounts.c.owner == owner)
        if conn.execute(query).first() is None:
            raise NotFound(f"no account {account_id}")
        return [account_id]
    if owner is None:
        return None
    query = select(accounts.c.id).where(accounts.c.owner == owner).order_by(accounts.c.id)
    return list(conn.execute(query).scalars())


def _all_accounts(conn: Connection, found: list[str] | None) -> list[str]:
    if found is not None:
        return found
    return list(conn.execute(select(accounts.c.id).order_by(accounts.c.id)).scalars())


def _in_accounts(account_ids: list[str]) -> ColumnElement[bool]:
    if len(account_ids) == 1:
        return m.c.account_id == account_ids[0]
    return m.c.account_id.in_(account_ids)


def _filter(conn: Connection, query: Query) -> ColumnElement[bool]:
    if query.empty:
        return true()
    return message_filter(query, dialect=conn.dialect.name, now=utcnow())


def _newest_first(stmt: Select[Any], limit: int) -> Select[Any]:
    return stmt.order_by(m.c.sort_date.desc(), m.c.id.desc()).limit(limit)


def _live() -> ColumnElement[bool]:
    return m.c.expunged_at.is_(None)


# -- messages ---------------------------------------------------------------------------------


def _scan(
    conn: Connection,
    account_ids: list[str] | None,
    condition: ColumnElement[bool],
    limit: int,
    columns: Sequence[Any] = _SUMMARY,
) -> list[RowMapping]:
    """Up to ``limit`` messages matching ``condition`` in list order (``columns`` must
    hold id and sort_date)."""
    base = select(*columns).where(_live(), condition)
    if account_ids is None or len(account_ids) == 1:
        stmt = base if account_ids is None else base.where(m.c.account_id == account_ids[0])
        return list(conn.execute(_newest_first(stmt, limit)).mappings())
    runs = [
        list(conn.execute(_newest_first(base.where(m.c.account_id == a), limit)).mappings())
        for a in account_ids
    ]
    merged = heapq.merge(*runs, key=_list_order, reverse=True)
    return [row for _, row in zip(range(limit), merged, strict=False)]


def _list_order(row: RowMapping) -> tuple[datetime, int]:
    return row["sort_date"] or _EARLIEST, row["id"]


def _cursor_of(row: RowMapping) -> Cursor:
    return Cursor(*_list_order(row))


def list_messages(
    conn: Connection,
    *,
    owner: str | None,
    query: Query,
    account_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    sort: str = "date",
    where: ColumnElement[bool] | None = None,
) -> Page[MessageRow]:
    """A page of the messages ``owner`` may see (None: all) matching ``query`` (and
    ``where``, a condition over ``messages``), newest first or (``sort="priority"``) most
    important first, after ``cursor`` (the previous page's ``next_cursor``)."""
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    limit = max(1, min(limit, MAX_LIMIT))
    if sort == "priority":
        return _by_priority(conn, owner, query, account_id, limit, cursor, where)
    after = Cursor.decode(cursor) if cursor else None
    account_ids = visible_accounts(conn, owner=owner, account_id=account_id)
    if account_ids == []:
        return Page([], None)
    condition = _filter(conn, query)
    if where is not None:
        condition = and_(condition, where)
    if after is not None:
        condition = and_(condition, after.before())
    rows = [MessageRow.from_row(r) for r in _scan(conn, account_ids, condition, limit + 1)]
    more = len(rows) > limit
    rows = rows[:limit]
    add_folders(conn, rows)
    return Page(rows, rows[-1].cursor.encode() if more and rows else None)


def _by_priority(
    conn: Connection,
    owner: str | None,
    query: Query,
    account_id: str | None,
    limit: int,
    cursor: str | None,
    where: ColumnElement[bool] | None,
) -> Page[MessageRow]:
    after = PriorityCursor.decode(cursor) if cursor else None
    account_ids = _all_accounts(conn, visible_accounts(conn, owner=owner, account_id=account_id))
    condition = _filter(conn, query)
    if where is not None:
        condition = and_(condition, where)
    runs = [_priority_scan(conn, a, condition, after, limit + 1) for a in account_ids]
    merged = heapq.merge(*runs, key=_priority_order, reverse=True)
    found = [MessageRow.from_row(r) for _, r in zip(range(limit + 1), merged, strict=False)]
    more = len(found) > limit
    rows = found[:limit]
    add_folders(conn, rows)
    return Page(rows, rows[-1].priority_cursor.encode() if more and rows else None)


def _priority_scan(
    conn: Connection,
    account_id: str,
    condition: ColumnElement[bool],
    after: PriorityCursor | None,
    limit: int,
) -> list[RowMapping]:
    """Up to ``limit`` of one account's messages matching ``condition`` after ``after``,
    most important first, untriaged last."""
    base = select(*_SUMMARY).where(_live(), m.c.account_id == account_id, condition)
    # The index's order. PostgreSQL puts NULLs first in a DESC order, SQLite last: each
    # scan below holds either no NULL priority or only NULL ones, so both agree.
    order = (m.c.priority.desc(), m.c.sort_date.desc(), m.c.id.desc())
    parts: list[ColumnElement[bool]] = []
    if after is None:
        parts.append(m.c.priority.is_not(None))
    elif after.priority is not None:
        parts.append(and_(m.c.priority == after.priority, _date_before(after.sort_date, after.id)))
        parts.append(m.c.priority < after.priority)
    untriaged: ColumnElement[bool] = m.c.priority.is_(None)
    if after is not None and after.priority is None:
        untriaged = and_(untriaged, _date_before(after.sort_date, after.id))
    parts.append(untriaged)
    rows: list[RowMapping] = []
    for part in parts:
        stmt = base.where(part).order_by(*order).limit(limit - len(rows))
        rows.extend(conn.execute(stmt).mappings())
        if len(rows) >= limit:
            break
    return rows


def top_messages(
    conn: Connection,
    *,
    owner: str | None,
    query: Query,
    account_id: str | None = None,
    n: int = 10,
    since: datetime | None = None,
) -> list[MessageRow]:
    """The ``n`` most important triaged messages ``owner`` may see matching ``query`` (and
    dated from ``since`` on), in priority order; untriaged ones never.

    A window from ``since`` that holds at most TOP_WINDOW messages (today's mail, a week's)
    is read by date and ordered here: walking the priority index would pass over every
    older triaged message first, and neither planner can tell how few the window holds
    (100,000 messages, a day of 11: SQLite 8.5 -> 0.7 ms, PostgreSQL 12 -> 3 ms; a window
    too large costs the probe, a few ms)."""
    triaged = m.c.priority.is_not(None)
    if since is None:
        return _by_priority(conn, owner, query, account_id, n, None, triaged).items
    bounded = and_(triaged, m.c.sort_date >= since)
    account_ids = visible_accounts(conn, owner=owner, account_id=account_id)
    if account_ids == []:
        return []
    columns = (m.c.id, m.c.priority, m.c.sort_date)
    window = _scan(conn, account_ids, and_(_filter(conn, query), bounded), TOP_WINDOW + 1, columns)
    if len(window) > TOP_WINDOW:
        return _by_priority(conn, owner, query, account_id, n, None, bounded).items
    best = sorted(window, key=_priority_order, reverse=True)[:n]
    rows = _rows_by_id(conn, [row["id"] for row in best])
    add_folders(conn, rows)
    return rows


def _priority_order(row: RowMapping) -> tuple[bool, int, datetime, int]:
    priority = row["priority"]
    return priority is not None, priority or 0, row["sort_date"] or _EARLIEST, row["id"]


def category_counts(conn: Connection, account_id: str, *, owner: str | None) -> CategoryCounts:
    """How many of the account's live messages are in each category (one GROUP BY);
    NotFound when ``owner`` (None: anyone) may not see the account."""
    visible_accounts(conn, owner=owner, account_id=account_id)
    found = conn.execute(
        select(m.c.category, func.count())
        .where(m.c.account_id == account_id, _live())
        .group_by(m.c.category)
    ).all()
    counts = {str(c): 0 for c in Category}
    untriaged = 0
    for category, n in found:
        if category is None:
            untriaged += int(n)
        elif category in counts:
            counts[category] += int(n)
        # A category no longer in the vocabulary is left out rather than invented.
    return CategoryCounts(account_id, counts, untriaged)


def add_folders(conn: Connection, rows: Sequence[MessageRow]) -> None:
    """Fill in each message's folders (those it is shown in now), by name."""
    if not rows:
        return
    by_id = {row.id: row for row in rows}
    found = conn.execute(
        select(locations.c.message_pk, folders.c.name)
        .join(folders, folders.c.id == locations.c.folder_id)
        .where(locations.c.message_pk.in_(list(by_id)), locations.c.expunged_at.is_(None))
        .order_by(locations.c.message_pk, folders.c.name)
    )
    for pk, name in found:
        names = by_id[pk].folders
        if not names or names[-1] != name:
            names.append(name)


def get_message(conn: Connection, message_pk: int, *, owner: str | None) -> MessageRow:
    """One message with its folders and detail columns; NotFound when ``owner`` (None:
    anyone) may not see it."""
    stmt = select(*_SUMMARY, *_DETAIL).where(m.c.id == message_pk)
    if owner is not None:
        stmt = stmt.join(accounts, accounts.c.id == m.c.account_id).where(accounts.c.owner == owner)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no message {message_pk}")
    found = MessageRow.from_row(row._mapping)
    add_folders(conn, [found])
    return found


# -- threads ----------------------------------------------------------------------------------


def _thread_rows(
    conn: Connection,
    columns: Sequence[Any],
    account_ids: list[str],
    keys: Iterable[int],
    *conditions: ColumnElement[bool],
) -> list[RowMapping]:
    """Messages of the threads ``keys``, oldest first (``columns`` must hold id and
    sort_date). A message not threaded yet is a thread of its own, keyed by its id: two
    look-ups (``ix_messages_thread``, the primary key), as both databases answer the one
    OR of the two with a scan of every message."""
    wanted = sorted(set(keys))
    where = (_in_accounts(account_ids), _live(), *conditions)
    threaded = select(*columns).where(m.c.thread_id.in_(wanted), *where)
    alone = select(*columns).where(m.c.id.in_(wanted), m.c.thread_id.is_(None), *where)
    rows = [*conn.execute(threaded).mappings(), *conn.execute(alone).mappings()]
    rows.sort(key=lambda r: (r["sort_date"] or _EARLIEST, r["id"]))
    return rows


def list_threads(
    conn: Connection,
    *,
    owner: str | None,
    query: Query,
    account_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[ThreadSummary]:
    """A page of threads holding a message that matches ``query``, ordered by their newest
    matching message (newest first).

    Walks the matching messages in list order (the sort index) and keeps each thread the
    first time it is met; a thread met on an earlier page has a matching message up to
    the cursor and is skipped."""
    limit = max(1, min(limit, MAX_LIMIT))
    start = Cursor.decode(cursor) if cursor else None
    account_ids = _all_accounts(conn, visible_accounts(conn, owner=owner, account_id=account_id))
    if not account_ids:
        return Page([], None)
    matching = _filter(conn, query)
    marks, more = _first_of_threads(conn, account_ids, matching, start, limit)
    found = _rows_by_id(conn, [mark["id"] for mark in marks])
    add_folders(conn, found)
    summaries = _summaries(conn, account_ids, found)
    return Page(summaries, _cursor_of(marks[-1]).encode() if more and marks else None)


def _rows_by_id(conn: Connection, ids: list[int]) -> list[MessageRow]:
    """The messages ``ids``, in that order."""
    rows = conn.execute(select(*_SUMMARY).where(m.c.id.in_(ids))).mappings()
    by_id = {row["id"]: MessageRow.from_row(row) for row in rows}
    return [by_id[pk] for pk in ids if pk in by_id]


def _first_of_threads(
    conn: Connection,
    account_ids: list[str],
    matching: ColumnElement[bool],
    start: Cursor | None,
    limit: int,
) -> tuple[list[RowMapping], bool]:
    """The first matching message (in list order, after ``start``) of each of the next
    ``limit`` threads, and whether another thread follows them. Reads only the columns
    that order and group: the whole row of the few kept is read afterwards."""
    found: dict[int, RowMapping] = {}
    position = start
    batch = limit * _THREAD_SCAN_FACTOR
    columns = (m.c.id, m.c.thread_id, m.c.sort_date)
    while True:
        condition = matching if position is None else and_(matching, position.before())
        rows = _scan(conn, account_ids, condition, batch, columns)
        fresh = [r for r in rows if _thread_key(r) not in found]
        if start is not None and fresh:
            keys = [_thread_key(r) for r in fresh]
            seen = _threads_before(conn, account_ids, matching, start, keys)
            fresh = [r for r in fresh if _thread_key(r) not in seen]
        for row in fresh:
            key = _thread_key(row)
            if key in found:
                continue
            if len(found) == limit:
                return list(found.values()), True
            found[key] = row
        if len(rows) < batch:
            return list(found.values()), False
        position = _cursor_of(rows[-1])
        # Long threads met again and again: read further ahead each round.
        batch = min(batch * 2, MAX_LIMIT * _THREAD_SCAN_FACTOR * 4)


def _threads_before(
    conn: Connection,
    account_ids: list[str],
    matching: ColumnElement[bool],
    start: Cursor,
    keys: list[int],
) -> set[int]:
    """Which of the threads ``keys`` have a matching message on the pages up to ``start``
    (the cursor's own message included: it opened the last thread of the previous page)."""
    columns = (m.c.id, m.c.thread_id, m.c.sort_date)
    rows = _thread_rows(conn, columns, account_ids, keys, matching, start.up_to())
    return {_thread_key(r) for r in rows}


def _thread_key(row: RowMapping) -> int:
    return int(row["thread_id"] if row["thread_id"] is not None else row["id"])


def _summaries(
    conn: Connection, account_ids: list[str], latest: list[MessageRow]
) -> list[ThreadSummary]:
    """Each thread's summary, from every message it holds (matching the query or not)."""
    if not latest:
        return []
    members: dict[int, list[RowMapping]] = {first.thread_id: [] for first in latest}
    columns = (
        m.c.id,
        m.c.thread_id,
        m.c.message_id,
        m.c.subject,
        m.c.from_name,
        m.c.from_addr,
        m.c.sort_date,
        m.c.flags,
        m.c.has_attachments,
    )
    for member in _thread_rows(conn, columns, account_ids, members):
        members[_thread_key(member)].append(member)
    return [_summary(row, members[row.thread_id]) for row in latest]


def _summary(first: MessageRow, held: list[RowMapping]) -> ThreadSummary:
    """A thread's summary from ``held``, its messages oldest first."""
    names: list[str] = []
    for r in held:
        name = r["from_name"] or r["from_addr"]
        if name and name not in names:
            names.append(name)
    return ThreadSummary(
        id=first.thread_id,
        latest=first,
        subject=next((r["subject"] for r in held if r["subject"]), first.subject),
        # Copies of one message (same Message-ID) count once.
        message_count=max(1, len({r["message_id"] or f"#{r['id']}" for r in held})),
        participants=names[:10],
        unread=any("\\Seen" not in (r["flags"] or []) for r in held),
        has_attachments=any(bool(r["has_attachments"]) for r in held),
        first_date=held[0]["sort_date"] if held else first.sort_date,
    )


def thread_messages(conn: Connection, thread_id: int, *, owner: str | None) -> list[MessageRow]:
    """The messages of a thread, oldest first; NotFound when ``owner`` sees none of them."""
    account_ids = _all_accounts(conn, visible_accounts(conn, owner=owner))
    if not account_ids:
        raise NotFound(f"no thread {thread_id}")
    rows = [MessageRow.from_row(r) for r in _thread_rows(conn, _SUMMARY, account_ids, [thread_id])]
    if not rows:
        raise NotFound(f"no thread {thread_id}")
    add_folders(conn, rows)
    return rows
