"""Records shared by the mail providers (IMAP, Maildir, mbox), and their errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from inboxd.errors import PermanentError, RetryableError


@dataclass(frozen=True)
class RemoteFolder:
    """A folder (mailbox) as the server lists it."""

    name: str
    delimiter: str | None = None
    special_use: str | None = None
    selectable: bool = True


@dataclass(frozen=True)
class FolderStatus:
    """What a folder holds now, cheaply asked (IMAP STATUS)."""

    messages: int
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None


@dataclass(frozen=True)
class FetchedMessage:
    """One message as fetched from a provider, before parsing."""

    remote_key: str
    raw: bytes
    flags: tuple[str, ...] = ()
    uid: int | None = None
    internal_date: datetime | None = None
    gm_msgid: int | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Marks:
    """A message's flags, and its labels where the server keeps them (Gmail; else None),
    as the server has them now."""

    flags: tuple[str, ...]
    labels: tuple[str, ...] | None = None


class ProviderError(RetryableError):
    """The mail server could not be reached or dropped the connection."""


class FolderUnavailable(ProviderError):
    """The server would not open one folder (NO to STATUS or EXAMINE): that folder is
    skipped this time and the rest of the account syncs."""

    def __init__(self, folder: str, message: str) -> None:
        super().__init__(message)
        self.folder = folder


class ServerClosedConnection(ProviderError):
    """The mail server ended the connection and said why (IMAP BYE)."""


class AuthenticationFailed(PermanentError):
    """The mail server rejected the credentials."""


class ProviderConfigError(PermanentError):
    """The account's settings cannot work (bad TLS, unknown folder, missing file)."""
