"""Writing stored messages out as an mbox file (mboxrd) or a Maildir tree, byte for byte.

mboxrd (the reversible mbox): every line of a message that matches ``>*From `` gets one
more ``>``, so a reader takes exactly one away again; each message is followed by one
``\\n``, which a reader drops, so a message that does not end in a newline comes back as it
was too. Maildir: each message is written to ``tmp/`` and renamed into ``cur/`` with its
flags in the info suffix (``:2,FS``); folders follow Maildir++ (``.Foo.Bar``, names in IMAP
modified UTF-7), the root being INBOX.

Both writers can resume an export cut short: the mbox is cut back to the length it had at
the last commit, and the Maildir loses every file of a message after the last committed
one (the message's store id is part of each file name), so nothing is written twice.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from inboxd.errors import PermanentError

FILE_MODE = 0o600
DIR_MODE = 0o700
INBOX = "INBOX"

_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_SEPARATOR = re.compile(rb"^From [^\n]*\n", re.MULTILINE)
# Maildir info letters, which must be listed in ASCII order.
_FLAG_LETTERS = (
    ("\\Draft", "D"),
    ("\\Flagged", "F"),
    ("\\Answered", "R"),
    ("\\Seen", "S"),
    ("\\Deleted", "T"),
)
# The store id of the message is in every file name this module writes: E<pk>_<n>.
_OWN_NAME = re.compile(r"\.E(\d+)_\d+\.")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One stored message to write, with what the mbox line and the Maildir name need."""

    pk: int
    raw: bytes
    sender: str | None
    date: datetime | None
    flags: Sequence[str] = ()
    #: (folder name, hierarchy delimiter) of each place it is in; empty: the root (INBOX)
    folders: Sequence[tuple[str, str | None]] = field(default_factory=tuple)


# -- mboxrd --------------------------------------------------------------------------------


def mboxrd_escape(raw: bytes) -> bytes:
    """``raw`` with one more ``>`` before every line that starts ``>*From ``."""
    return _FROM_LINE.sub(rb">\1", raw)


def mboxrd_unescape(quoted: bytes) -> bytes:
    """The inverse of :func:`mboxrd_escape`."""
    return _QUOTED_FROM.sub(rb"\1", quoted)


def from_line(sender: str | None, date: datetime | None) -> bytes:
    """The ``From `` line that opens a message in an mbox: its sender and date (UTC, in
    asctime form, as mail tools write it)."""
    address = "".join((sender or "").split()) or "MAILER-DAEMON"
    moment = (date or _EPOCH).astimezone(UTC)
    return b"From " + address.encode("utf-8", "replace") + b" " + _asctime(moment) + b"\n"


def _asctime(moment: datetime) -> bytes:
    # time.asctime names days and months in English whatever the locale (strftime does not).
    return time.asctime(moment.timetuple()).encode("ascii")


def read_mboxrd(data: bytes) -> list[bytes]:
    """The messages of an mboxrd file as :class:`MboxWriter` writes them, exactly."""
    separators = list(_SEPARATOR.finditer(data))
    starts = [match.end() for match in separators]
    bounds = [*(match.start() for match in separators[1:]), len(data)]
    messages = []
    for start, end in zip(starts, bounds, strict=True):
        body = data[start:end]
        messages.append(mboxrd_unescape(body[:-1] if body.endswith(b"\n") else body))
    return messages


class MboxWriter:
    """Appends messages to one mbox file; :meth:`commit` makes them durable and returns the
    file's length, from which a resumed export goes on."""

    def __init__(self, path: Path, *, resume_at: int | None) -> None:
        self.path = path
        try:
            fd = _create_file(path) if resume_at is None else _reopen_file(path, resume_at)
        except OSError as exc:
            raise _write_error(path, exc) from None
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.size = self._file.tell()

    def write(self, messages: Sequence[OutMessage]) -> int:
        """Write ``messages``; returns how many bytes were added."""
        chunks: list[bytes] = []
        for message in messages:
            chunks.append(from_line(message.sender, message.date))
            chunks.append(mboxrd_escape(message.raw))
            chunks.append(b"\n")
        added = sum(len(c) for c in chunks)
        try:
            self._file.writelines(chunks)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self.size += added
        return added

    def commit(self) -> int:
        """Flush what was written to the disk; returns the file's length."""
        try:
            self._file.flush()
            os.fdatasync(self._file.fileno())
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        return self.size

    def close(self) -> None:
        """Close the file (without committing)."""
        with contextlib.suppress(OSError):
            self._file.close()


def _create_file(path: Path) -> int:
    try:
        # O_EXCL also refuses a symbolic link: nothing that exists is ever written over.
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise PermanentError(f"{path} exists; an export never writes over a file") from None


def _reopen_file(path: Path, size: int) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        if size == 0:  # cut short before the file was made
            return _create_file(path)
        raise PermanentError(f"{path}, this export's file, is gone; cannot resume") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size < size:
        os.close(fd)
        raise PermanentError(f"{path} changed since this export wrote it; cannot resume")
    # What was written after the last commit is written again: cut it off first.
    os.ftruncate(fd, size)
    os.lseek(fd, size, os.SEEK_SET)
    return fd


# -- Maildir -------------------------------------------------------------------------------


def info_suffix(flags: Sequence[str]) -> str:
    """The Maildir info of a message with these IMAP flags (``:2,FS``)."""
    present = set(flags)
    return ":2," + "".join(letter for flag, letter in _FLAG_LETTERS if flag in present)


def encode_mutf7(name: str) -> str:
    """``name`` in IMAP modified UTF-7 (RFC 3501 5.1.3), with ``.`` and ``/`` encoded too:
    in a Maildir++ directory name they would split the folder."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for char in name:
        if char == "&":
            flush()
            out.append("&-")
        elif 0x20 <= ord(char) <= 0x7E and char not in "./":
            flush()
            out.append(char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def maildir_folder(name: str, delimiter: str | None) -> str:
    """The Maildir++ directory of a folder ("" for INBOX, the root)."""
    parts = [p for p in (name.split(delimiter) if delimiter else [name]) if p]
    if not parts or (len(parts) == 1 and parts[0].upper() == INBOX):
        return ""
    return "." + ".".join(encode_mutf7(part) for part in parts)


class MaildirWriter:
    """Writes messages into a Maildir tree, one file per message and folder."""

    def __init__(self, root: Path, *, folders: bool, resume_after: int | None) -> None:
        self.root = root
        self.folders = folders
        self.files = 0
        self._made: set[str] = set()
        self._touched: set[Path] = set()
        self._host = _safe_host()
        try:
            if resume_after is None:
                _claim_directory(root)
            else:
                if not root.is_dir() or root.is_symlink():
                    raise PermanentError(f"{root}, this export's directory, is gone")
                self._remove_after(resume_after)
            self._maildir("")
        except OSError as exc:
            raise _write_error(root, exc) from None

    def write(self, messages: Sequence[OutMessage]) -> int:
        """Write each message into each of its folders; returns the bytes written."""
        written = 0
        try:
            for message in messages:
                places = (
                    [maildir_folder(n, d) for n, d in message.folders] if self.folders else []
                ) or [""]
                stamp = int((message.date or _EPOCH).timestamp())
                info = info_suffix(message.flags)
                for n, place in enumerate(places):
                    directory = self._maildir(place)
                    unique = f"{max(stamp, 0)}.E{message.pk}_{n}.{self._host}"
                    self._deliver(directory, unique, info, message.raw)
                    written += len(message.raw)
                    self.files += 1
        except OSError as exc:
            raise _write_error(self.root, exc) from None
        return written

    def commit(self) -> None:
        """Make the renames into cur/ durable."""
        try:
            for directory in self._touched:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise _write_error(self.root, exc) from None
        self._touched.clear()

    def close(self) -> None:
        """Nothing stays open between writes; here for symmetry with MboxWriter."""

    def _maildir(self, place: str) -> Path:
        directory = self.root / place if place else self.root
        if place not in self._made:
            directory.mkdir(mode=DIR_MODE, exist_ok=True)
            for sub in ("cur", "new", "tmp"):
                (directory / sub).mkdir(mode=DIR_MODE, exist_ok=True)
            if place:
                # Maildir++ marks a folder (as opposed to the root) with this empty file.
                os.close(os.open(directory / "maildirfolder", os.O_CREAT | os.O_WRONLY, FILE_MODE))
            self._made.add(place)
        return directory

    def _deliver(self, directory: Path, unique: str, info: str, raw: bytes) -> None:
        temporary = directory / "tmp" / unique
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, directory / "cur" / (unique + info))
        self._touched.add(directory / "cur")

    def _remove_after(self, last_pk: int) -> None:
        """Remove what a cut-short attempt wrote after its last commit."""
        for directory in _maildirs(self.root):
            for entry in _files(directory / "tmp"):
                os.unlink(entry)
            for entry in _files(directory / "cur"):
                found = _OWN_NAME.search(entry.name)
                if found and int(found.group(1)) > last_pk:
                    os.unlink(entry)


def _claim_directory(root: Path) -> None:
    try:
        root.mkdir(mode=DIR_MODE)
        return
    except FileExistsError:
        pass
    if root.is_symlink() or not root.is_dir():
        raise PermanentError(f"{root} exists; an export never writes over a file")
    if any(root.iterdir()):
        raise PermanentError(f"{root} is not empty; a Maildir export needs a new or empty one")


def _maildirs(root: Path) -> Iterator[Path]:
    yield root
    for entry in root.iterdir():
        if entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink():
            yield entry


def _files(directory: Path) -> Iterator[Path]:
    try:
        yield from (p for p in directory.iterdir() if p.is_file())
    except FileNotFoundError:
        return


def _safe_host() -> str:
    # The Maildir spec's escapes for the two characters a unique name cannot hold.
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"


def _write_error(path: Path, exc: OSError) -> PermanentError:
    """An export target that cannot be written needs a person (room, permissions)."""
    return PermanentError(f"cannot write the export at {path}: {exc.strerror or exc}")
