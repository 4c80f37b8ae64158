"""The ``index`` job: put an account's new messages into the full-text index and their
threads, after each sync.

A message is new to the index while its ``indexed_at`` is NULL (a partial index finds those
at once). Batches are taken in message order; each is read and parsed outside any
transaction, then written in one: index rows, thread keys, ``thread_id`` and
``indexed_at`` together. A cancelled or killed run has therefore lost nothing, and the next
one starts with the first message still unmarked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from inboxd.db.engine import reading, writing
from inboxd.db.tables import accounts, message_bodies, messages
from inboxd.db.types import utcnow
from inboxd.errors import InboxdError, NotFound
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.queue import Queue
from inboxd.jobs.registry import task
from inboxd.mail.reading import parse_message
from inboxd.pipeline import threads
from inboxd.pipeline.write_behind import WriteBehind
from inboxd.store import bodies, fulltext, packs
from inboxd.vocabulary import Step

log = logging.getLogger(__name__)

#: Messages per batch (and transaction), and the bytes of mail read for one at most.
BATCH_MESSAGES = 500
BATCH_BYTES = 32 * 1024 * 1024


class IndexParams(BaseModel, extra="forbid"):
    """Parameters of ``index``: the account whose new messages are indexed."""

    account_id: str


def index_dedupe_key(account_id: str) -> str:
    """At most one active index job per account."""
    return f"index:{account_id}"


@dataclass(frozen=True, slots=True)
class _Row:
    pk: int
    size: int
    message_id: str | None
    in_reply_to: str | None
    refs: str | None
    subject: str | None
    sender: list[str]
    recipients: list[str]


@task("index", params=IndexParams)
def index(ctx: TaskContext, params: IndexParams) -> dict[str, Any]:
    """Index an account's new messages for search and thread them."""
    with Indexer(ctx.engine, params.account_id) as indexer:
        ctx.progress.step(Step.INDEXING, total=indexer.pending())
        done = 0
        while True:
            while batch := indexer.next_batch():
                ctx.progress.check_cancelled()
                stored = indexer.index(batch)
                done += stored
                ctx.progress.update(advance=stored)
            stored = indexer.finish()
            done += stored
            ctx.progress.update(advance=stored)
            # Mail stored meanwhile (a sync whose enqueue found this job still active, so
            # queued none) or committed late under a lower id (PostgreSQL's sequences): one
            # more pass from the start, until a pass finds nothing.
            left = indexer.rewind()
            if not left:
                break
            ctx.progress.update(total=done + left)
    if done:
        with writing(ctx.engine) as conn:
            fulltext.settle(conn, done)
    _enqueue_triage(ctx, params.account_id)
    return {"indexed": done, "threads_merged": indexer.merged}


def _enqueue_triage(ctx: TaskContext, account_id: str) -> None:
    """Triage what is now indexed (a rule's words need the index), as a job of its own
    (inboxd.pipeline.triage), by kind name: that module reads bodies through this one.
    Not when no message waits for triage."""
    m = messages.c
    try:
        with reading(ctx.engine) as conn:
            waiting = conn.execute(
                select(m.id).where(m.account_id == account_id, m.triaged_at.is_(None)).limit(1)
            ).first()
            owner = conn.execute(
                select(accounts.c.owner).where(accounts.c.id == account_id)
            ).scalar_one_or_none()
        if waiting is None:
            return
        Queue(ctx.engine, ctx.settings).enqueue(
            "triage",
            {"account_id": account_id},
            owner=owner,
            account_id=account_id,
            dedupe_key=f"triage:{account_id}",  # pipeline.triage.triage_dedupe_key
        )
    except (InboxdError, SQLAlchemyError) as exc:
        # The index is written; the next index run queues triage again.
        ctx.log.warning("could not queue the triage job: %s", exc)


@dataclass(frozen=True, slots=True)
class _Prepared:
    rows: list[tuple[Any, ...]]
    linked: list[threads.Linked]


class Indexer:
    """Indexes one account's unindexed messages, a batch at a time: while one batch is
    written (on a thread of its own, mostly waiting for the database), the next is read
    and parsed. Batches are written one after the other, each in its own transaction."""

    def __init__(self, engine: Engine, account_id: str) -> None:
        self.engine = engine
        self.account_id = account_id
        self.merged = 0
        self._after = 0
        self._root = packs.packs_root(engine)
        self._writes: WriteBehind[int] = WriteBehind("index-writer")

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *_exc: object) -> None:
        # Whatever stops the run (a cancel, an error), the batch being written is either
        # committed or rolled back before the job ends.
        self._writes.close()

    def pending(self) -> int:
        """How many of the account's messages are not indexed yet."""
        m = messages.c
        with reading(self.engine) as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        m.account_id == self.account_id, m.indexed_at.is_(None)
                    )
                ).scalar_one()
            )

    def rewind(self) -> int:
        """Start again from the account's first message; how many are unindexed now."""
        self._after = 0
        return self.pending()

    def next_batch(self) -> list[_Row]:
        """The next unindexed messages (none left: empty)."""
        m = messages.c
        query = (
            select(
                m.id,
                m.size,
                m.message_id,
                m.in_reply_to,
                m.refs,
                m.subject,
                m.from_name,
                m.from_addr,
                m.to_addrs,
                m.cc_addrs,
            )
            .where(m.account_id == self.account_id, m.indexed_at.is_(None), m.id > self._after)
            .order_by(m.id)
            .limit(BATCH_MESSAGES)
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        batch: list[_Row] = []
        size = 0
        for r in rows:
            if batch and size + r.size > BATCH_BYTES:
                break
            size += r.size
            sender = [a for a in (r.from_name, r.from_addr) if a]
            recipients = [
                a for a in (*(r.to_addrs or ()), *(r.cc_addrs or ())) if isinstance(a, str)
            ]
            batch.append(
                _Row(
                    int(r.id),
                    int(r.size),
                    r.message_id,
                    r.in_reply_to,
                    r.refs,
                    r.subject,
                    sender,
                    recipients,
                )
            )
        if batch:
            self._after = batch[-1].pk
        return batch

    def index(self, batch: Sequence[_Row]) -> int:
        """Read and parse ``batch``, then have it written once the batch before is;
        returns how many messages that batch before stored."""
        return self._writes.submit(self._write, self._prepare(batch)) or 0

    def finish(self) -> int:
        """Wait for the batch being written; how many messages it stored (raises its error)."""
        return self._writes.wait() or 0

    def _prepare(self, batch: Sequence[_Row]) -> _Prepared:
        with reading(self.engine) as conn:
            raws = read_bodies(conn, self._root, self.account_id, [r.pk for r in batch])
        entries: list[fulltext.Entry] = []
        linked: list[threads.Linked] = []
        for row in batch:
            parsed = parse_message(raws.get(row.pk, b""))
            entries.append(
                fulltext.entry(row.pk, row.subject, row.sender, row.recipients, parsed.text_body)
            )
            references = parsed.references or _stored_refs(row.refs)
            linked.append(
                threads.Linked(
                    row.pk,
                    threads.keys_of(
                        row.message_id, references, parsed.in_reply_to or row.in_reply_to
                    ),
                )
            )
        return _Prepared(fulltext.rows(self.engine.dialect.name, entries), linked)

    def _write(self, prepared: _Prepared) -> int:
        now = utcnow()
        with writing(self.engine) as conn:
            fulltext.write_rows(conn, prepared.rows)
            placed = threads.assign(conn, self.account_id, prepared.linked)
            conn.execute(
                update(messages)
                .where(messages.c.id == bindparam("b_pk"))
                .values(thread_id=bindparam("b_thread"), indexed_at=now),
                [{"b_pk": pk, "b_thread": thread} for pk, thread in placed.threads.items()],
            )
        self.merged += placed.merged
        return len(prepared.linked)


def _stored_refs(refs: str | None) -> list[str]:
    if not refs:
        return []
    try:
        found = json.loads(refs)
    except ValueError:
        return []
    return [r for r in found if isinstance(r, str)] if isinstance(found, list) else []


def read_bodies(
    conn: Connection, root: Path | None, account_id: str, pks: Sequence[int]
) -> dict[int, bytes]:
    """The raw bytes of many stored messages of one account, by pk (missing ones left
    out); pack files are each opened once."""
    b = message_bodies.c
    rows = conn.execute(
        select(b.message_pk, b.compression, b.raw, b.pack, b.pack_offset, b.pack_length).where(
            b.message_pk.in_(list(pks))
        )
    ).all()
    out: dict[int, bytes] = {}
    for row in sorted(rows, key=lambda r: (r.pack or "", r.pack_offset or 0)):
        try:
            data = row.raw
            if row.pack is not None:
                if root is None:
                    continue
                data = packs.read_blob(root, account_id, row.pack, row.pack_offset, row.pack_length)
            out[int(row.message_pk)] = bodies.unpack(row.compression, data)
        except (NotFound, ValueError, zstandard.ZstdError) as exc:
            # A lost or damaged body: the message is still indexed by its headers.
            log.warning("message %s: stored body unreadable (%s)", row.message_pk, exc)
    return out
