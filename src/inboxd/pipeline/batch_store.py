"""Storing fetched batches: parse, pack and write one batch per transaction.

A sync is CPU-bound in one Python process, so where work runs matters more than usual:

* Parsing and storing run on the caller's thread. Moving either to a thread of its own
  makes things slower, not faster: SQLite (and a socket) let go of the GIL for every row
  (every read), and each time the other, busy thread keeps it for up to the interpreter's
  switch interval (5 ms) before they get it back - measured here, storing 10,000 messages
  beside one busy thread took 70 s instead of 2.
* Packing (zstd) runs on a helper thread, one GIL-free call per batch
  (``multi_compress_to_buffer``), so it gives the GIL back once per batch and overlaps
  the parsing of that batch on the other core.

Each batch is stored together with its checkpoint (a folder's highest UID, an mbox offset),
so a killed sync resumes after the last batch that was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import zstandard
from sqlalchemy import Connection, Engine

from inboxd.db.engine import writing
from inboxd.jobs.progress import Progress
from inboxd.mail.message import summarize_message
from inboxd.mail.provider import FetchedMessage
from inboxd.pipeline.report import SyncReport
from inboxd.store import bodies
from inboxd.store.writer import Incoming, store_batch

Checkpoint = Callable[[Connection], None]


class BatchStore:
    """Parses, packs and stores batches of one account, counting them in a SyncReport."""

    def __init__(
        self, engine: Engine, account_id: str, report: SyncReport, progress: Progress
    ) -> None:
        self.engine = engine
        self.account_id = account_id
        self.report = report
        self.progress = progress
        self._packer = zstandard.ZstdCompressor(level=bodies.LEVEL)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="inboxd-pack")

    def put(
        self,
        folder_id: int,
        folder_name: str,
        fetched: Sequence[FetchedMessage],
        *,
        checkpoint: Checkpoint | None = None,
        advance: int | None = None,
    ) -> None:
        """Store ``fetched`` with ``checkpoint`` run in the same transaction; progress
        advances by ``advance`` (default: the batch size)."""
        raws: list[bytes | bytearray | memoryview] = [f.raw for f in fetched]
        packing = self._pool.submit(self._pack, raws) if raws else None
        parsed = [summarize_message(f.raw) for f in fetched]
        frames = packing.result() if packing is not None else None
        incoming = [
            Incoming(f, p, frames[n].tobytes() if frames is not None else None)
            for n, (f, p) in enumerate(zip(fetched, parsed, strict=True))
        ]
        with writing(self.engine) as conn:
            result = store_batch(conn, self.account_id, folder_id, incoming)
            if checkpoint is not None:
                checkpoint(conn)
        self._count(folder_name, incoming, result.new, result.known)
        step = len(fetched) if advance is None else advance
        if step:
            self.progress.update(advance=step, message=folder_name)

    def _pack(
        self, raws: list[bytes | bytearray | memoryview]
    ) -> zstandard.BufferWithSegmentsCollection:
        return self._packer.multi_compress_to_buffer(raws, threads=1)

    def _count(self, folder: str, incoming: list[Incoming], new: int, known: int) -> None:
        report = self.report
        report.fetched += len(incoming)
        report.new += new
        report.duplicates += known
        report.bytes += sum(len(i.fetched.raw) for i in incoming)
        report.parse_errors += sum(1 for i in incoming if i.parsed.parse_errors)
        report.per_folder[folder] = report.per_folder.get(folder, 0) + len(incoming)

    def close(self) -> None:
        """Stop the packing thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BatchStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
