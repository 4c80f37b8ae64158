"""Storing fetched batches: parse, pack and write one batch per transaction.

A sync is CPU-bound in one Python process, so where work runs matters more than usual:

* Parsing and storing run on the caller's thread. Moving either to a thread of its own
  makes things slower, not faster: SQLite (and a socket) let go of the GIL for every row
  (every read), and each time the other, busy thread keeps it for up to the interpreter's
  switch interval (5 ms) before they get it back - measured here, storing 10,000 messages
  beside one busy thread took 70 s instead of 2.
* Packing (zstd) runs on a helper thread, one GIL-free call per batch
  (:func:`inboxd.store.bodies.pack_many`), so it overlaps the parsing of that batch on the
  other core.

Each batch is stored together with its checkpoint (a folder's highest UID, an mbox offset),
so a killed sync resumes after the last batch that was committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from inboxd import logs
from inboxd.db.engine import checkpoint_wal, reading, writing
from inboxd.mail.message import summarize_message
from inboxd.providers.base import FetchedMessage
from inboxd.store import bodies, packs
from inboxd.store.writer import Incoming, pack_new_bodies, prepare_batch, write_batch
from inboxd.sync.progress import SyncProgress
from inboxd.sync.report import SyncReport

Checkpoint = Callable[[Connection], None]


#: Bytes of packed mail a store writes between two WAL checkpoints of its own. Measured on
#: 431 MB of mail: a checkpoint after every 1.4 MB batch cost 1.0 s, one every 4 MB 0.22 s;
#: below SQLite's own trigger (1,000 pages, 16 MB here) so commits rarely do the copy.
CHECKPOINT_BYTES = 4 * 1024 * 1024


class BatchStore:
    """Parses, packs and stores batches of one account, counting them in a SyncReport
    (and advancing ``progress``, when given)."""

    def __init__(
        self, engine: Engine, account_id: str, report: SyncReport, progress: SyncProgress | None
    ) -> None:
        self.engine = engine
        self.account_id = account_id
        self.report = report
        self.progress = progress
        self._pool = ThreadPoolExecutor(
            1,
            thread_name_prefix="inboxd-pack",
            initializer=logs.adopt,
            initargs=(logs.current_job(),),
        )
        self._unchecked = 0  # bytes written since this store's last checkpoint
        root = packs.packs_root(engine)
        self._packs = packs.PackWriter(root, account_id) if root is not None else None

    def put(
        self,
        folder_id: int,
        folder_name: str,
        fetched: Sequence[FetchedMessage],
        *,
        checkpoint: Checkpoint | None = None,
        advance: int | None = None,
        size: int | None = None,
    ) -> None:
        """Store ``fetched`` with ``checkpoint`` run in the same transaction; progress
        advances by ``advance`` (default: the batch size), the report's bytes by ``size``
        (default: the messages' sizes)."""
        packing = self._pool.submit(bodies.pack_many, [f.raw for f in fetched])
        parsed = [summarize_message(f.raw) for f in fetched]
        incoming = [
            Incoming(f, p, z) for f, p, z in zip(fetched, parsed, packing.result(), strict=True)
        ]
        prepared = prepare_batch(self.engine, self.account_id, incoming)
        placed, mark = None, None
        if self._packs is not None:
            mark = self._packs.mark()
            with reading(self.engine) as conn:
                placed = pack_new_bodies(conn, prepared, self._packs)
        try:
            with writing(self.engine) as conn:
                result = write_batch(conn, folder_id, prepared, self._packs, placed)
                # Counted before the checkpoint runs, so that totals saved with it include
                # this batch (should the commit fail, the job fails with it).
                read = sum(len(i.fetched.raw) for i in incoming) if size is None else size
                self._count(folder_name, incoming, result.new, result.known, read)
                if checkpoint is not None:
                    checkpoint(conn)
        except BaseException:
            if self._packs is not None and mark is not None:
                # No row refers to them: give their room back (on a full disk, the room to
                # record why the job failed).
                self._packs.rewind(mark)
            raise
        # Copied into the database file here, outside the writer lock, rather than by a
        # later commit while every other writer waits for it.
        if self._packs is None:
            self._unchecked += sum(len(i.packed or b"") for i in incoming)
        else:  # the rows alone
            self._unchecked += 1024 * len(incoming)
        if self._unchecked >= CHECKPOINT_BYTES:
            self._checkpoint()
        step = len(fetched) if advance is None else advance
        if step and self.progress is not None:
            self.progress.update(advance=step, message=folder_name)

    def _count(
        self, folder: str, incoming: list[Incoming], new: int, known: int, read: int
    ) -> None:
        report = self.report
        report.fetched += len(incoming)
        report.new += new
        report.duplicates += known
        report.bytes += read
        report.parse_errors += sum(1 for i in incoming if i.parsed.parse_errors)
        report.per_folder[folder] = report.per_folder.get(folder, 0) + len(incoming)

    def _checkpoint(self) -> None:
        self._unchecked = 0
        checkpoint_wal(self.engine)

    def close(self) -> None:
        """Stop the packing thread and copy what this store wrote into the database file."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._packs is not None:
            self._packs.close()
        if self._unchecked:
            # After a failure the database may be gone; the next writer's commit copies it.
            with contextlib.suppress(SQLAlchemyError, OSError):
                self._checkpoint()

    def __enter__(self) -> BatchStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
