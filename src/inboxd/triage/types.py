"""What triage reads of a message and of its user, and what it decides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from inboxd.vocabulary import Category, TriageSource

__all__ = ["Context", "Decision", "Mail", "Verdict"]


@dataclass(frozen=True, slots=True)
class Mail:
    """One message as triage sees it: its stored columns, its header fields and a bounded
    excerpt of its text (built by :func:`inboxd.triage.extract.mail_from`)."""

    pk: int
    from_addr: str | None
    from_name: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    #: Every header field, name lower-cased, values decoded to str, in message order.
    headers: Mapping[str, tuple[str, ...]]
    #: The plain text of the body (from the HTML when there is no text part), bounded.
    text: str
    #: The MIME types of every part ("text/calendar", "application/pdf", ...).
    content_types: tuple[str, ...] = ()
    #: File names of attachments.
    attachments: tuple[str, ...] = ()
    date: datetime | None = None
    #: IMAP-style flags (``\\Seen``, ``\\Flagged``) and Gmail labels.
    flags: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    #: Special uses (``\\Sent``, ``\\Junk``) and names of the folders it is in.
    folders: tuple[str, ...] = ()
    thread_id: int | None = None
    has_html: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header field ``name`` (any case), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Context:
    """What triage knows of the user of an account."""

    #: The account owner's addresses, lower-cased.
    addresses: frozenset[str]
    #: The owner's display name, when known.
    name: str | None
    #: Addresses the user has written to (from the mail the user sent), with how often.
    correspondents: Mapping[str, int]
    #: Threads with a message the user sent.
    replied_threads: frozenset[int]
    now: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """A category with how sure it is and why. ``direct``: a person wrote to the user
    directly (never newsletter, promotion or notification, never a clean-up candidate)."""

    category: Category
    confidence: float
    reasons: tuple[str, ...]
    source: TriageSource
    direct: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the triage job stores for one message."""

    pk: int
    category: Category
    priority: int
    confidence: float
    reasons: tuple[str, ...]
    source: TriageSource
    extra: Mapping[str, object] = field(default_factory=dict)
