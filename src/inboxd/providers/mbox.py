"""Stream an mbox file (mboxo or mboxrd, e.g. a Google Takeout export) one message at a time.

The file is read line by line through a buffered reader, so memory holds one message (capped)
however large the file is.  A message starts at a ``From `` line that follows an empty line;
its byte offset is a stable key and a resume checkpoint (``start_offset``).  A ``From `` line
after an empty line must carry an asctime time of day (RFC 4155), which keeps an unescaped
body line such as "From the desk of ..." from splitting a message.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from inboxd.errors import InvalidField
from inboxd.mail.headers import decode_header_value
from inboxd.providers.base import (
    Changes,
    FetchedBatch,
    FetchedMessage,
    FetchPlan,
    FolderListing,
    FolderStatus,
    KnownKeys,
    Pending,
    ProviderAccount,
    ProviderBase,
    ProviderConfigError,
    ProviderOptions,
    RemoteFolder,
    SecretStore,
    StoredFolder,
    checked_path,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MBOX_FOLDER",
    "MboxEntry",
    "MboxProvider",
    "iter_mbox",
    "open_provider",
    "validate_settings",
]

#: The one folder an mbox account has.
MBOX_FOLDER = "mbox"

MAX_MESSAGE_BYTES = 100 * 1024 * 1024
_LINE_LIMIT = 1024 * 1024  # a "line" longer than this (binary junk) is read in pieces
_READ_BUFFER = 1024 * 1024
_BLANK = (b"\n", b"\r\n")
_FROM_LINE = re.compile(rb"From \S+\s.*\d\d?:\d\d")
_ESCAPED_FROM = re.compile(rb">+From ")
_LABELS_HEADER = b"x-gmail-labels:"


@dataclass(frozen=True, kw_only=True, slots=True)
class MboxEntry:
    """One message of an mbox file, un-escaped, with where it sits in the file."""

    offset: int  # byte offset of the From_ line: the message's key and a resume point
    end_offset: int  # byte offset where the next message (or the file's end) starts
    raw: bytes
    from_line: bytes  # without its line ending; empty for a file that is a bare message
    gmail_labels: list[str] = field(default_factory=list)
    truncated: bool = False  # the message exceeded the size cap and was cut


def iter_mbox(
    path: str | Path, start_offset: int = 0, *, max_message_bytes: int = MAX_MESSAGE_BYTES
) -> Iterator[MboxEntry]:
    """Yield the messages of an mbox file, starting at ``start_offset`` (a From_ line)."""
    with open(path, "rb", buffering=_READ_BUFFER) as handle:
        handle.seek(start_offset)
        yield from _Splitter(handle, start_offset, max_message_bytes).entries()


class _Message:
    """The message being collected: its lines, its size, and its X-Gmail-Labels lines."""

    def __init__(self, offset: int, from_line: bytes, cap: int, *, mbox: bool) -> None:
        self.offset = offset
        self.from_line = from_line.rstrip(b"\r\n")
        self.cap = cap
        self.mbox = mbox  # False for a bare message: nothing is escaped there
        self.lines: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.in_headers = True
        self.labels: list[bytes] = []
        self.in_labels = False
        # The empty line before the next From_ line is mbox framing, not message content,
        # so an empty line is held back until we know what follows it.
        self.pending: bytes | None = None

    def add_line(self, line: bytes, *, whole: bool) -> None:
        """Add a line (``whole``) or the continuation of an over-long line."""
        if whole:
            if line in _BLANK:
                if self.pending is not None:
                    self._append(self.pending)
                self.pending = line
                self.in_headers = self.in_labels = False
                return
            if self.in_headers:
                self._track_labels(line)
            if line[:1] == b">" and self.mbox and _ESCAPED_FROM.match(line):
                line = line[1:]
        elif self.in_labels:
            self.labels.append(line)
        if self.pending is not None:
            self._append(self.pending)
            self.pending = None
        # This runs once per line of a multi-GB file: the common case is kept inline.
        if self.size + len(line) <= self.cap:
            self.lines.append(line)
            self.size += len(line)
        else:
            self._append(line)

    def _track_labels(self, line: bytes) -> None:
        if line[:15].lower() == _LABELS_HEADER:
            self.in_labels = True
        elif line[:1] not in (b" ", b"\t"):
            self.in_labels = False
        if self.in_labels:
            self.labels.append(line)

    def _append(self, chunk: bytes) -> None:
        if self.truncated:
            return
        room = self.cap - self.size
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.lines.append(chunk)
        self.size += len(chunk)

    def finish(self, end_offset: int) -> MboxEntry:
        """The finished entry; a held-back empty line is kept only in a bare message."""
        if self.pending is not None and not self.mbox:
            self._append(self.pending)
        return MboxEntry(
            offset=self.offset,
            end_offset=end_offset,
            raw=b"".join(self.lines),
            from_line=self.from_line,
            gmail_labels=_parse_labels(self.labels) if self.labels else [],
            truncated=self.truncated,
        )


class _Splitter:
    """Cuts the stream of lines into messages."""

    def __init__(self, handle: BinaryIO, start: int, cap: int) -> None:
        self.handle = handle
        self.start = start
        self.cap = cap
        self.pos = start
        self.current: _Message | None = None
        self.first = True  # no non-empty line seen yet
        self.prev_blank = True
        self.bare = False  # the file is one message without a From_ line

    def entries(self) -> Iterator[MboxEntry]:
        readline = self.handle.readline
        line_start = True
        while chunk := readline(_LINE_LIMIT):
            here = self.pos
            self.pos += len(chunk)
            whole = line_start
            line_start = chunk[-1:] == b"\n"
            if whole and chunk[:5] == b"From " and self._opens_message(chunk):
                if self.current is not None:
                    yield self.current.finish(here)
                self.current = _Message(here, chunk, self.cap, mbox=True)
                self.first = self.prev_blank = False
            elif self.current is not None:
                self.current.add_line(chunk, whole=whole)
                self.prev_blank = whole and chunk in _BLANK
            else:
                self._before_first_message(chunk, here, whole)
        if self.current is not None:
            yield self.current.finish(self.pos)

    def _opens_message(self, line: bytes) -> bool:
        if self.bare:
            return False
        if self.first:  # file start or a resume checkpoint: any From_ line will do
            return True
        return self.prev_blank and _FROM_LINE.match(line, 0, 512) is not None

    def _before_first_message(self, chunk: bytes, here: int, whole: bool) -> None:
        blank = whole and chunk in _BLANK
        if blank:  # empty lines before the first message belong to no message
            self.prev_blank = True
            return
        if self.first and self.start == 0:
            # Not an mbox at all but a single message (e.g. an .eml): take the whole file.
            self.bare = True
            self.current = _Message(here, b"", self.cap, mbox=False)
            self.current.add_line(chunk, whole=whole)
        # Otherwise the checkpoint was not at a From_ line: skip to the next message.
        self.first = False
        self.prev_blank = False


def _parse_labels(lines: list[bytes]) -> list[str]:
    """Labels from Takeout's X-Gmail-Labels: comma-separated, quoted, maybe RFC 2047 words."""
    value = b"".join(lines).decode("utf-8", "replace").partition(":")[2]
    value = value.replace("\r", "").replace("\n", "")
    try:
        fields = next(csv.reader([value], skipinitialspace=True))
    except (csv.Error, StopIteration):
        fields = value.split(",")
    labels = (decode_header_value(f).strip() for f in fields)
    return [label for label in labels if label]


class MboxProvider(ProviderBase):
    """An mbox file as a MailProvider with one folder: read from the byte offset where the
    last import stopped (a grown file costs only its new tail), each batch's checkpoint
    the offset after it; progress counts bytes, the honest unit for a multi-GB file."""

    name = "mbox"

    def __init__(self, path: Path, options: ProviderOptions) -> None:
        self.path = path
        self.options = options
        self._stat: os.stat_result | None = None

    def folders(self) -> FolderListing:
        """The one folder (an mbox's messages are not counted: that would read it all)."""
        if not self.path.is_file():
            raise ProviderConfigError(f"mbox file {self.path} is gone")
        self._stat = self.path.stat()
        return FolderListing([(RemoteFolder(MBOX_FOLDER), FolderStatus(messages=0))])

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """The file's bytes, of which those before the resume offset are done."""
        stat = self._checked_stat()
        done = self._start(state, stat)
        return Pending(stat.st_size, done, message=f"reading {self.path.name}")

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """A stream from the resume offset."""
        stat = self._checked_stat()
        cursor = {"offset": self._start(state, stat), "inode": stat.st_ino}
        return FetchPlan(folder=folder, streamed=True, cursor=cursor)

    def fetch(
        self,
        plan: FetchPlan,
        take: Callable[[], int | None] | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """Batches cut by count and bytes as the file is read; the last one (maybe empty)
        carries the offset where the file ends."""
        start, inode = int(plan.cursor["offset"]), plan.cursor["inode"]
        batch: list[FetchedMessage] = []
        size = 0
        done = end = start
        for entry in iter_mbox(self.path, start_offset=start):
            labels = tuple(entry.gmail_labels)
            batch.append(FetchedMessage(remote_key=str(entry.offset), raw=entry.raw, labels=labels))
            size += len(entry.raw)
            end = entry.end_offset
            if len(batch) >= self.options.batch_messages or size >= self.options.batch_bytes:
                yield _batch(batch, end, inode, end - done)
                batch, size, done = [], 0, end
        yield _batch(batch, end, inode, end - done)

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """None: an mbox only grows (a replaced file is read again from the start)."""
        return Changes({})

    def _checked_stat(self) -> os.stat_result:
        if self._stat is None:
            self.folders()
        assert self._stat is not None
        return self._stat

    @staticmethod
    def _start(state: StoredFolder, stat: os.stat_result) -> int:
        cursor = state.cursor or {}
        start = int(cursor.get("offset", 0))
        if start > stat.st_size or cursor.get("inode") not in (None, stat.st_ino):
            return 0  # replaced or truncated: read it all again; identities prevent duplicates
        return start


def _batch(messages: list[FetchedMessage], end: int, inode: int, read: int) -> FetchedBatch:
    return FetchedBatch(
        messages=messages,
        checkpoint={"cursor": {"offset": end, "inode": inode}},
        advance=read,
        read_bytes=read,
    )


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """An mbox account's settings: the path of an existing file."""
    resolved = checked_path(settings.get("path"), "mbox")
    if not resolved.is_file():
        raise InvalidField(f"settings.path: no mbox file at {resolved}")
    return {"path": str(resolved)}


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> MboxProvider:
    """The registry's factory: a provider over the account's mbox file."""
    return MboxProvider(Path(account.settings["path"]), options)
