"""Raw messages of a SQLite store, kept in append-only pack files beside the database.

SQLite has one writer at a time, and a message body written into it is written twice (to
the write-ahead log, then by a checkpoint into the database file) while every other writer
waits. Mail is most of a store's bytes, so on SQLite each process that stores a sync's
batches appends the compressed bodies (zstd frames, see :mod:`inboxd.store.bodies`) to a
pack file of its own, and the database row says where they are. Measured on 20,000
messages (431 MB): storing the bodies cost 1.3 s of a single core inside the database, 0.15 s
in pack files, and the database file holds 22 MB instead of 322 MB.

Layout: ``<database>.bodies/<account id>/<pack id>.zpack``. A pack is only ever appended to;
its bytes are flushed to the disk (``fdatasync``) before the transaction that refers to them
commits, so a row never points at bytes that a crash could lose. Bytes appended by a
transaction that then failed are never referred to: the writer cuts them off again (a full
disk gets that room back at once); should that fail too, they are dead weight until the
account is removed (which deletes its packs). PostgreSQL keeps bodies in the database, where
concurrent writers do not queue.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, Engine

from inboxd.errors import NotFound
from inboxd.jobs.model import new_job_id

#: A pack is closed and a new one begun past this size (a file per few hundred MB of mail).
MAX_PACK_BYTES = 256 * 1024 * 1024
SUFFIX = ".zpack"
#: Neighbouring bodies are read together up to this many bytes (see read_blobs).
_READ_AHEAD = 8 * 1024 * 1024


def packs_root(bind: Connection | Engine) -> Path | None:
    """Where the packs of this SQLite database live; None for PostgreSQL and for an
    in-memory database (bodies then stay in the database)."""
    if bind.dialect.name != "sqlite":
        return None
    database = bind.engine.url.database
    if not database or database == ":memory:":
        return None
    path = Path(database).expanduser().resolve()
    return path.with_name(path.name + ".bodies")


class PackWriter:
    """Appends bodies for one account to a pack file of this writer's own."""

    def __init__(self, root: Path, account_id: str) -> None:
        self.directory = root / account_id
        self._file: BinaryIO | None = None
        self._name = ""
        self._size = 0
        self._lock = threading.Lock()

    def append(self, blobs: Sequence[bytes]) -> list[tuple[str, int, int]]:
        """Write ``blobs`` and flush them to the disk; returns (pack, offset, length) of
        each, to be stored in the same transaction that is committed after this returns."""
        with self._lock:
            file = self._current()
            out = []
            try:
                for blob in blobs:
                    out.append((self._name, self._size, len(blob)))
                    file.write(blob)
                    self._size += len(blob)
                file.flush()
                os.fdatasync(file.fileno())
            except BaseException:
                # A write cut short (disk full) leaves the file's end unknown: the next
                # append goes to a new pack, so no offset is ever off.
                self._abandon()
                raise
            return out

    def mark(self) -> tuple[str, int]:
        """Where the next append will start (for :meth:`rewind`)."""
        with self._lock:
            return self._name, self._size

    def rewind(self, mark: tuple[str, int]) -> None:
        """Drop what was appended since ``mark``: the transaction that was to refer to it
        failed. On a full disk this is what frees room to record the failure."""
        with self._lock:
            name, size = mark
            if self._file is not None and self._name == name and self._size <= size:
                return  # nothing appended since
            if self._file is None or self._name != name:
                self._abandon()  # a new pack was begun meanwhile: the next append begins another
                return
            try:
                self._file.flush()
                os.ftruncate(self._file.fileno(), size)
                self._file.seek(size)
                self._size = size
            except OSError:
                self._abandon()

    def _current(self) -> BinaryIO:
        if self._file is not None and self._size < MAX_PACK_BYTES:
            return self._file
        self.close()
        # Mail is private: the packs are readable by their owner only, like the key file.
        self.directory.parent.mkdir(mode=0o700, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        # Time-ordered ids (UUIDv7): a directory listing shows packs oldest first.
        self._name = new_job_id()
        path = self.directory / f"{self._name}{SUFFIX}"
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        self._size = 0
        return self._file

    def close(self) -> None:
        """Close the current pack (the next append starts a new one)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _abandon(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


def read_blob(root: Path, account_id: str, pack: str, offset: int, length: int) -> bytes:
    """The stored bytes at ``offset`` of a pack; NotFound when the pack is gone or short."""
    if not pack or "/" in pack or pack.startswith("."):
        raise NotFound(f"invalid pack name {pack!r}")
    path = root / account_id / f"{pack}{SUFFIX}"
    try:
        with path.open("rb") as file:
            data = os.pread(file.fileno(), length, offset)
    except FileNotFoundError:
        raise NotFound(f"the pack file {path} holding a stored message is missing") from None
    if len(data) != length:
        raise NotFound(f"the pack file {path} is cut short ({len(data)} of {length} bytes)")
    return data


def read_blobs(
    root: Path, account_id: str, pack: str, spans: Sequence[tuple[int, int]]
) -> list[bytes]:
    """The stored bytes at each (offset, length) of a pack, in the order given; spans that
    follow one another on the disk are read by one call (list them by offset for that)."""
    if not pack or "/" in pack or pack.startswith("."):
        raise NotFound(f"invalid pack name {pack!r}")
    path = root / account_id / f"{pack}{SUFFIX}"
    out: list[bytes] = []
    try:
        with path.open("rb") as file:
            n = 0
            while n < len(spans):
                start, end = spans[n][0], spans[n][0] + spans[n][1]
                last = n + 1
                while last < len(spans) and spans[last][0] == end and end - start < _READ_AHEAD:
                    end += spans[last][1]
                    last += 1
                data = os.pread(file.fileno(), end - start, start)
                if len(data) != end - start:
                    raise NotFound(
                        f"the pack file {path} is cut short ({len(data)} of {end - start} bytes)"
                    )
                view = memoryview(data)
                for offset, length in spans[n:last]:
                    out.append(bytes(view[offset - start : offset - start + length]))
                n = last
    except FileNotFoundError:
        raise NotFound(f"the pack file {path} holding a stored message is missing") from None
    return out


def remove_account(root: Path | None, account_id: str) -> None:
    """Delete every pack of an account (after its rows are gone)."""
    if root is not None:
        shutil.rmtree(root / account_id, ignore_errors=True)
