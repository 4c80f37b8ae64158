"""Writing fetched messages into the local store, one batch per transaction.

A message is one exact sequence of bytes, stored once per account under its *identity*:
Gmail's X-GM-MSGID when there is one (``g:``), else the sha256 of its raw bytes (``b:``).
Where it sits on the server (folder + UID, Maildir key, mbox offset) is a *location*; a
message copied to two folders, or re-listed under a new UIDVALIDITY, gets a second location,
never a second copy. Two messages that merely share a Message-ID (a re-sent mail, a list
copy with a footer, a draft and its sent version) differ in bytes, so each is stored: which
mail belongs together is for threads to say, not storage. Stores written when the identity
was a header fingerprint (``h:``) are repaired by :mod:`inboxd.sync.repair`.

This is the hot path of every sync, so rows go to the driver's ``executemany`` already in
the driver's own form (see :mod:`inboxd.store.rows`) instead of through SQLAlchemy's
per-value type processing, which cost more than SQLite's own work. The bytes are hashed
once, on the parsing thread: sha256 runs at ~2 GB/s here (0.1 s for 10,000 messages of
230 MB, about 6% of their sync's CPU), and on the packing thread each message's hash would
have to win the GIL back from the parser (see :mod:`inboxd.sync.batch_store`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine

from inboxd.db.tables import locations, message_bodies, messages
from inboxd.db.types import utcnow
from inboxd.mail.message import ParsedMessage
from inboxd.providers.base import FetchedMessage
from inboxd.store import bodies
from inboxd.store.identities import body_identity
from inboxd.store.packs import PackWriter
from inboxd.store.rows import RowEncoder, encoder_for

_MAX = {
    "message_id": 500,
    "from_addr": 320,
    "from_name": 300,
    "list_id": 500,
    "list_unsubscribe_post": 200,
    "precedence": 40,
    "auto_submitted": 80,
    "in_reply_to": 500,
}

#: Identities looked up per statement (SQLite allows 32,766 parameters; keep it modest).
_LOOKUP_CHUNK = 500

_MESSAGE_COLUMNS = (
    "account_id",
    "identity",
    "gm_msgid",
    "message_id",
    "from_addr",
    "from_name",
    "to_addrs",
    "cc_addrs",
    "reply_to",
    "subject",
    "date",
    "internal_date",
    "list_id",
    "list_unsubscribe",
    "list_unsubscribe_post",
    "precedence",
    "auto_submitted",
    "in_reply_to",
    "flags",
    "labels",
    "size",
    "snippet",
    "has_attachments",
    "parse_errors",
    "created_at",
    "updated_at",
    "sort_date",
    "refs",
)

#: A header date further ahead of the arrival than this is not believed for sorting (spam
#: dated years ahead would otherwise top every list forever).
_AHEAD = timedelta(days=1)


@dataclass(frozen=True)
class Incoming:
    """A fetched message with its parsed headers (and, optionally, its packed body)."""

    fetched: FetchedMessage
    parsed: ParsedMessage
    packed: bytes | None = None

    @cached_property
    def identity(self) -> str:
        """The account-wide key that makes a message stored once (computed once: hashing
        the bytes is the one cost of it on the hot path)."""
        if self.fetched.gm_msgid is not None:
            return f"g:{self.fetched.gm_msgid}"
        return body_identity(self.fetched.raw)


@dataclass
class BatchResult:
    """What storing one batch did."""

    new: int = 0
    known: int = 0


@dataclass
class PreparedBatch:
    """A batch with its message rows already encoded, so the write transaction (which on
    SQLite holds the one writer lock every process queues on) only runs statements."""

    account_id: str
    items: Sequence[Incoming]
    by_identity: dict[str, Incoming]
    rows: dict[str, tuple[Any, ...]]  # identity -> messages row
    now: datetime


def sort_date(date: datetime | None, arrived: datetime | None, now: datetime) -> datetime:
    """Where a message goes in the newest-first list: its header date, unless missing or
    implausibly far ahead of its arrival; then the arrival, else ``now``."""
    latest = (arrived or now) + _AHEAD
    if date is not None and date <= latest:
        return date
    return arrived or now


def prepare_batch(
    bind: Connection | Engine, account_id: str, batch: Sequence[Incoming]
) -> PreparedBatch:
    """Encode ``batch`` for :func:`write_batch` (no database access)."""
    enc = encoder_for(bind)
    now = utcnow()
    stamp = enc.time(now)
    by_identity: dict[str, Incoming] = {}
    for item in batch:
        by_identity.setdefault(item.identity, item)
    rows = {
        key: _message_row(enc, account_id, item, stamp, now) for key, item in by_identity.items()
    }
    return PreparedBatch(account_id, batch, by_identity, rows, now)


Place = tuple[str, int, int]


def pack_new_bodies(
    bind: Connection, prepared: PreparedBatch, packs: PackWriter
) -> dict[str, Place]:
    """Write the bodies of the batch's messages not stored yet to ``packs`` and flush them
    to the disk, before the write transaction (so no other writer waits for the flush);
    returns identity -> (pack, offset, length) for :func:`write_batch`. A message stored
    meanwhile by someone else only leaves its bytes unused in the pack."""
    enc = encoder_for(bind)
    known = _lookup(bind, enc, prepared.account_id, list(prepared.by_identity))
    fresh = [(key, item) for key, item in prepared.by_identity.items() if key not in known]
    if not fresh:
        return {}
    blobs = [_packed(item) for _, item in fresh]
    return dict(zip((key for key, _ in fresh), packs.append(blobs), strict=True))


def write_batch(
    conn: Connection,
    folder_id: int,
    prepared: PreparedBatch,
    packs: PackWriter | None = None,
    placed: dict[str, Place] | None = None,
) -> BatchResult:
    """Store a prepared batch's messages and their locations in ``folder_id`` (inside the
    caller's transaction); new bodies go to ``packs`` when given, else into the database.
    Bodies :func:`pack_new_bodies` already wrote are given as ``placed``."""
    result = BatchResult()
    batch, by_identity, now = prepared.items, prepared.by_identity, prepared.now
    if not batch:
        return result
    enc = encoder_for(conn)
    account_id = prepared.account_id
    pks = _lookup(conn, enc, account_id, list(by_identity))
    fresh = [key for key in by_identity if key not in pks]
    known = [item for key, item in by_identity.items() if key in pks]
    if fresh:
        _insert_messages(conn, enc, [prepared.rows[key] for key in fresh])
        pks.update(_lookup(conn, enc, account_id, fresh))
        _insert_bodies(conn, enc, [by_identity[key] for key in fresh], pks, packs, placed or {})
    if known:
        _refresh(conn, enc, pks, known, now)
    _upsert_locations(conn, enc, folder_id, batch, pks, now)
    result.new, result.known = len(fresh), len(batch) - len(fresh)
    return result


def _lookup(
    conn: Connection, enc: RowEncoder, account_id: str, identities: list[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(identities), _LOOKUP_CHUNK):
        chunk = identities[start : start + _LOOKUP_CHUNK]
        marks = ", ".join([enc.mark] * len(chunk))
        rows = conn.exec_driver_sql(
            f"SELECT identity, id FROM {messages.name} "
            f"WHERE account_id = {enc.mark} AND identity IN ({marks})",
            (account_id, *chunk),
        )
        found.update((identity, int(pk)) for identity, pk in rows)
    return found


def _insert_messages(conn: Connection, enc: RowEncoder, rows: list[tuple[Any, ...]]) -> None:
    # A sync's helper process may store the same message at the same moment (when the sync
    # it helped died and was rescued): the first one wins, the other finds it by identity.
    conn.exec_driver_sql(
        f"{enc.insert(messages.name, _MESSAGE_COLUMNS)} "
        "ON CONFLICT (account_id, identity) DO NOTHING",
        rows,
    )


def _message_row(
    enc: RowEncoder, account_id: str, item: Incoming, stamp: Any, now: datetime
) -> tuple[Any, ...]:
    p, f = item.parsed, item.fetched
    return (
        account_id,
        item.identity,
        f.gm_msgid,
        _cap(p.message_id, "message_id"),
        _cap(p.from_addr, "from_addr"),
        _cap(p.from_name, "from_name"),
        enc.json(p.to),
        enc.json(p.cc),
        enc.json(p.reply_to),
        p.subject,
        enc.time(p.date),
        enc.time(f.internal_date),
        _cap(p.list_id, "list_id"),
        p.list_unsubscribe,
        _cap(p.list_unsubscribe_post, "list_unsubscribe_post"),
        _cap(p.precedence, "precedence"),
        _cap(p.auto_submitted, "auto_submitted"),
        _cap(p.in_reply_to, "in_reply_to"),
        enc.json(sorted(f.flags)),
        enc.json(list(f.labels)),
        len(f.raw),
        p.snippet,
        enc.flag(p.has_attachments),
        enc.json(p.parse_errors) if p.parse_errors else None,
        stamp,
        stamp,
        enc.time(sort_date(p.date, f.internal_date, now)),
        json.dumps(p.references) if p.references else None,
    )


def _cap(value: str | None, column: str) -> str | None:
    limit = _MAX[column]
    return value[:limit] if value is not None and len(value) > limit else value


def _insert_bodies(
    conn: Connection,
    enc: RowEncoder,
    fresh: Sequence[Incoming],
    pks: dict[str, int],
    packs: PackWriter | None,
    placed: dict[str, Place],
) -> None:
    columns: tuple[str, ...] = ("message_pk", "compression", "raw")
    rows: list[tuple[Any, ...]]
    if packs is None:
        rows = [(pks[i.identity], bodies.CODEC, _packed(i)) for i in fresh]
    else:
        # On the disk before this transaction commits: no row points at bytes a crash lost.
        # Most were written before it began; the rest (gone since that look) are now.
        unplaced = [i for i in fresh if i.identity not in placed]
        places = dict(placed)
        if unplaced:
            written = packs.append([_packed(i) for i in unplaced])
            places.update(zip((i.identity for i in unplaced), written, strict=True))
        columns += ("pack", "pack_offset", "pack_length")
        rows = [(pks[i.identity], bodies.CODEC, b"", *places[i.identity]) for i in fresh]
    conn.exec_driver_sql(
        f"{enc.insert(message_bodies.name, columns)} ON CONFLICT (message_pk) DO NOTHING", rows
    )


def _packed(item: Incoming) -> bytes:
    return item.packed if item.packed is not None else bodies.pack(item.fetched.raw)


def _refresh(
    conn: Connection,
    enc: RowEncoder,
    pks: dict[str, int],
    known: Sequence[Incoming],
    now: datetime,
) -> None:
    stamp = enc.time(now)
    m = enc.mark
    conn.exec_driver_sql(
        f"UPDATE {messages.name} SET flags = {m}, labels = {m}, expunged_at = NULL, "
        f"updated_at = {m} WHERE id = {m}",
        [
            (
                enc.json(sorted(i.fetched.flags)),
                enc.json(list(i.fetched.labels)),
                stamp,
                pks[i.identity],
            )
            for i in known
        ],
    )


def _upsert_locations(
    conn: Connection,
    enc: RowEncoder,
    folder_id: int,
    batch: Sequence[Incoming],
    pks: dict[str, int],
    now: datetime,
) -> None:
    stamp = enc.time(now)
    rows = {
        item.fetched.remote_key: (
            folder_id,
            item.fetched.remote_key,
            pks[item.identity],
            item.fetched.uid,
            stamp,
        )
        for item in batch
    }
    insert = enc.insert(locations.name, ("folder_id", "remote_key", "message_pk", "uid", "seen_at"))
    conn.exec_driver_sql(
        f"{insert} ON CONFLICT (folder_id, remote_key) DO UPDATE SET "
        "message_pk = excluded.message_pk, uid = excluded.uid, seen_at = excluded.seen_at, "
        "expunged_at = NULL",
        list(rows.values()),
    )
