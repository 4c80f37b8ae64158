"""The MailProvider protocol, the records it speaks in, and the providers' errors.

A provider answers for one account's mail source (an IMAP server, a Maildir tree, an mbox
file, an in-memory fake). It never touches the local store: the sync engine
(:mod:`inboxd.sync.engine`) tells it what the store knows (a :class:`StoredFolder` and the
keys stored for it) and stores what it fetches, committing each batch with the batch's
checkpoint.

One sync, seen from a provider::

    open() -> folders() -> per folder: pending(), plan(), fetch(plan)
           -> per folder: changes() -> close()
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from inboxd.errors import InvalidField, PermanentError, RetryableError

# -- records -----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class FolderListing:
    """The folders to sync with their status, and apart the folders the server would not
    open just now (name -> its reason): those are skipped, not marked gone."""

    folders: list[tuple[RemoteFolder, FolderStatus]]
    refused: dict[str, str] = field(default_factory=dict)


class StoredFolder(Protocol):
    """What the last sync saw of a folder (``inboxd.store.folders.FolderState`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def uidvalidity(self) -> int | None: ...
    @property
    def uidnext(self) -> int | None: ...
    @property
    def highest_uid(self) -> int: ...
    @property
    def highestmodseq(self) -> int | None: ...
    @property
    def server_count(self) -> int | None: ...
    @property
    def cursor(self) -> Any: ...
    @property
    def last_synced_at(self) -> datetime | None: ...


#: The keys the store holds for a folder (still on the server), read when first asked.
KnownKeys = Callable[[], Collection[str]]


@dataclass(frozen=True)
class Pending:
    """How much new mail a folder has, in progress units (messages, or an mbox's bytes),
    and how much of it earlier syncs already did (a resumed stream starts part-way)."""

    units: int
    done: int = 0
    message: str | None = None  # what the fetching step says, when not "N new messages"


@dataclass(frozen=True, kw_only=True)
class FetchPlan:
    """What :meth:`MailProvider.fetch` will get for one folder. It is picklable, so a
    helper process can fetch batches of the same plan.

    ``batches`` are remote keys cut into batches (the engine hands out batch indexes);
    a streamed source (mbox) has none and reads from ``cursor`` instead."""

    folder: str
    batches: tuple[tuple[str, ...], ...] = ()
    streamed: bool = False
    validity: int | None = None  # the folder's UIDVALIDITY the keys belong to
    cursor: Any = None
    #: the stored keys of this folder mean nothing any more (UIDVALIDITY changed)
    reset: bool = False
    #: nothing changed since the last sync (no new mail, no flag change, no removal)
    unchanged: bool = False
    #: folder state saved once every batch is stored
    finish: Mapping[str, Any] | None = None
    #: what the job's log should say about the planning
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to fetch."""
        return not self.batches and not self.streamed


@dataclass(frozen=True, kw_only=True)
class FetchedBatch:
    """One batch from :meth:`MailProvider.fetch`: its messages, the folder state to commit
    with them (the resume point), and how far the progress bar moves."""

    messages: list[FetchedMessage] = field(default_factory=list)
    index: int | None = None  # the plan's batch this is (None: a stream's)
    checkpoint: Mapping[str, Any] | None = None
    advance: int = 0
    #: messages listed but refused by the server (skipped, counted and logged)
    unavailable: int = 0
    #: bytes read at the source, where they differ from the messages' (an mbox's framing)
    read_bytes: int | None = None
    #: the server refused the whole batch (only when ``shared``): why
    refused: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Changes:
    """What changed in a folder besides new mail: the marks of (at least) every message
    whose marks changed, by key; every key still there (None: not listed); how many
    messages it holds (None: count the store's)."""

    marks: dict[str, Marks]
    present: set[str] | None = None
    count: int | None = None


@dataclass(frozen=True)
class Mutation:
    """One change to one message, addressed where the store last saw it (``folder`` and its
    location ``key``). Flags and labels change first, then the move; nothing is deleted.

    Flags are IMAP system flags (``\\Seen``, ``\\Flagged``, ``\\Answered``, ``\\Draft``)
    and keywords (``$inboxd_newsletter``); ``\\Deleted`` may be removed but never added
    (:class:`MutationRefused`)."""

    folder: str
    key: str
    add_flags: tuple[str, ...] = ()
    remove_flags: tuple[str, ...] = ()
    #: Gmail labels (X-GM-LABELS); other providers refuse a mutation that names labels
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    move_to: str | None = None
    #: the message's Message-ID, to find it in ``move_to`` when the server names no new key
    message_id: str | None = None
    #: the folder's UIDVALIDITY ``key`` belongs to (IMAP): when the server's differs, the
    #: key names another message (or none) and the mutation fails without touching any
    validity: int | None = None


@dataclass(frozen=True)
class Applied:
    """What became of one mutation: where the message is now and its marks there."""

    #: the mutation's own key (in its ``folder``)
    key: str
    #: the folder the message is in now (the mutation's folder unless it moved)
    folder: str
    #: its key in ``folder`` now; None when the server gave none and it could not be found
    new_key: str | None
    #: its flags (and Gmail labels) now, when the provider knows them
    marks: Marks | None = None
    #: why it was not applied ("not in INBOX any more", the server's refusal); None: done
    error: str | None = None
    #: the UIDVALIDITY of ``folder`` that ``new_key`` belongs to, when the server said
    validity: int | None = None

    @property
    def ok(self) -> bool:
        """True when the change is on the server."""
        return self.error is None


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do besides the protocol's basics."""

    #: it talks over a network: a dropped connection is reopened and the step retried
    reconnects: bool = False
    #: helper processes may fetch batches of a plan beside the sync (see :meth:`spec`)
    helpers: bool = False
    #: :meth:`MailProvider.apply` writes mutations back (else the account is read-only)
    mutations: bool = False
    #: messages carry labels (Gmail): categories are written as labels, not keywords
    labels: bool = False


@dataclass(frozen=True)
class ProviderOptions:
    """Settings of the service a provider is opened with."""

    timeout: float = 60.0
    batch_messages: int = 100
    batch_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class ProviderSpec:
    """How another process opens a provider like this one (picklable; the secret travels
    over a pipe between the two processes only)."""

    provider: str
    config: Any
    secret: str = field(repr=False)
    options: ProviderOptions = ProviderOptions()


class ProviderAccount(Protocol):
    """The account a provider is opened for (``inboxd.store.accounts.Account`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def settings(self) -> dict[str, Any]: ...


class SecretStore(Protocol):
    """Where an account's secret is kept (``inboxd.store.accounts.Accounts`` is one): read
    to log in, written when a provider renews a token."""

    def secret(self, account_id: str) -> dict[str, Any]:
        """The decrypted secret."""
        ...

    def store_secret(self, account_id: str, secret: dict[str, Any]) -> None:
        """Replace the secret (a renewed token)."""
        ...


# -- the protocol ------------------------------------------------------------------------


class MailProvider(Protocol):
    """One account's mail source, opened for one sync (or one test)."""

    @property
    def capabilities(self) -> Capabilities:
        """What it can do besides the basics."""
        ...

    @property
    def location(self) -> str | None:
        """What the "connecting" step names (a host); None: nothing to connect to."""
        ...

    def open(self) -> None:
        """Connect (and log in); AuthenticationFailed, ProviderConfigError, ProviderError."""
        ...

    def close(self) -> None:
        """Let go of the connection (best effort); a later call connects again."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def folders(self) -> FolderListing:
        """The folders this account syncs, each with its status."""
        ...

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """How much new mail the folder has (from its status alone where possible)."""
        ...

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """What is new in ``folder`` since ``state``, in batches; ``stored`` are keys
        already stored beyond the folder's checkpoint (by a helper process)."""
        ...

    def fetch(
        self,
        plan: FetchPlan,
        take: Callable[[], int | None] | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """The plan's batches that ``take`` hands out (default: all, in order). Batches in
        ``singly`` (index -> why) were refused before and are fetched message by message,
        and so is a batch the server refuses now, unless the plan is ``shared`` with
        another process (a helper): then the refused batch is yielded with its reason and
        the fetch ends, and a folder whose UIDVALIDITY moved raises FolderChanged."""
        ...

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """Flag and label changes since ``state``, and with ``list_keys`` the keys still
        there (what is gone is found by difference)."""
        ...

    def keep_alive(self) -> None:
        """Prove an idle connection still works (ProviderError when it does not)."""
        ...

    def spec(self) -> ProviderSpec:
        """How a helper process opens the same provider (only with ``helpers``)."""
        ...

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """Write ``mutations`` back to the server, batched (one command per folder and change,
        over UID sets), one Applied per mutation in order. A message no longer where the
        mutation says is not an exception: its Applied carries the error. Only with
        ``capabilities.mutations``; else MutationsNotSupported."""
        ...

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """The flags (and labels) of ``keys`` in ``folder`` as the server has them now; a key
        missing from the answer is no longer there (nor is any key when ``folder`` is gone,
        or when its UIDVALIDITY is no longer ``validity``)."""
        ...

    def locate(self, folder: str, message_id: str) -> list[str]:
        """The keys in ``folder`` of messages with this Message-ID (to find a moved message
        when resuming from the journal)."""
        ...

    def archive_folder(self) -> str:
        """The folder an archive moves to: the special-use \\Archive folder (Gmail: All
        Mail), else one named Archive (any case), created when missing."""
        ...


# -- errors ------------------------------------------------------------------------------


class ProviderError(RetryableError):
    """The mail server could not be reached or dropped the connection."""


class FolderUnavailable(ProviderError):
    """The server would not open one folder (NO to STATUS or EXAMINE): that folder is
    skipped this time and the rest of the account syncs."""

    def __init__(self, folder: str, message: str) -> None:
        super().__init__(message)
        self.folder = folder


class FolderChanged(ProviderError):
    """A folder's UIDVALIDITY changed since its plan was made: the plan is void."""


class ServerClosedConnection(ProviderError):
    """The mail server ended the connection and said why (IMAP BYE)."""


class AuthenticationFailed(PermanentError):
    """The mail server rejected the credentials."""


class ProviderConfigError(PermanentError):
    """The account's settings cannot work (bad TLS, unknown folder, missing file)."""


class MutationsNotSupported(PermanentError):
    """This provider cannot write changes back to the server yet."""


class MutationRefused(PermanentError):
    """A batch of mutations this provider will not apply (nothing of it was applied):
    ``\\Deleted`` added, labels on a server without labels, a flag that is no IMAP atom, a
    move the server cannot do without a plain EXPUNGE."""


class NoHelpers(PermanentError):
    """This provider cannot be opened in a helper process."""


class ProviderBase:
    """Defaults for a provider: the context manager, no helpers, no mutations, nothing to
    keep alive. Subclasses supply the rest of :class:`MailProvider`."""

    #: the registry name (for messages)
    name = "provider"

    @property
    def capabilities(self) -> Capabilities:
        """None besides the basics."""
        return Capabilities()

    @property
    def location(self) -> str | None:
        """Nothing to connect to."""
        return None

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> Self:
        # Connecting stays explicit (open()), so a sync can report and retry it.
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def keep_alive(self) -> None:
        """Nothing to keep alive."""

    def spec(self) -> ProviderSpec:
        """Not possible: this provider has no helpers."""
        raise NoHelpers(f"{self.name} accounts are synced by one process")

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """Not possible: this account is read-only."""
        raise MutationsNotSupported(
            f"{self.name} accounts are read-only: inboxd cannot change them"
        )

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """Not possible: this account is read-only."""
        raise MutationsNotSupported(
            f"{self.name} accounts are read-only: inboxd cannot change them"
        )

    def locate(self, folder: str, message_id: str) -> list[str]:
        """Not possible: this account is read-only."""
        raise MutationsNotSupported(
            f"{self.name} accounts are read-only: inboxd cannot change them"
        )

    def archive_folder(self) -> str:
        """Not possible: this account is read-only."""
        raise MutationsNotSupported(
            f"{self.name} accounts are read-only: inboxd cannot change them"
        )


#: Longest path a local account may name (Linux's PATH_MAX).
MAX_PATH = 4096


def checked_path(value: object, provider: str = "local") -> Path:
    """A local account's path, absolute and resolved; InvalidField when it is missing or
    cannot be one."""
    if not value:
        raise InvalidField(f"settings.path: a {provider} account needs a path")
    text = str(value)
    if len(text) > MAX_PATH or "\x00" in text:
        raise InvalidField(f"settings.path: at most {MAX_PATH} characters, no NUL")
    try:
        return Path(text).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidField(f"settings.path: cannot be used ({exc})") from None


#: IMAP system flags a mutation may name (``\\Recent`` is the server's own).
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
_SYSTEM_LOWER = frozenset(f.lower() for f in SYSTEM_FLAGS)
#: Characters an IMAP keyword (an atom, RFC 3501) cannot hold.
_NOT_ATOM = frozenset('(){ %*"\\]')


def check_mutations(mutations: Sequence[Mutation], provider: str, *, labels: bool) -> None:
    """Refuse (MutationRefused, before anything is applied) a batch that adds ``\\Deleted``,
    names a flag that is neither a system flag nor a keyword, or names labels where the
    server has none."""
    for mutation in mutations:
        if any(flag.lower() == "\\deleted" for flag in mutation.add_flags):
            raise MutationRefused("inboxd never marks mail \\Deleted (it never deletes mail)")
        for flag in (*mutation.add_flags, *mutation.remove_flags):
            if not is_flag(flag):
                raise MutationRefused(f"{flag[:80]!r} is not an IMAP flag or keyword")
        if (mutation.add_labels or mutation.remove_labels) and not labels:
            raise MutationRefused(
                f"{provider} accounts have no labels: categories are written as keywords"
            )


def is_flag(flag: str) -> bool:
    """True for an IMAP system flag (not ``\\Recent``) or a keyword atom."""
    if flag.startswith("\\"):
        return flag.lower() in _SYSTEM_LOWER
    return (
        0 < len(flag) <= 200
        and flag.isascii()
        and all(" " < c < "\x7f" and c not in _NOT_ATOM for c in flag)
    )


def changed_flags(flags: Sequence[str], mutation: Mutation) -> tuple[str, ...]:
    """``flags`` with the mutation's flags added and removed (IMAP flags compare without
    regard to case), in their order, added ones last."""
    removed = {f.lower() for f in mutation.remove_flags}
    out = [f for f in flags if f.lower() not in removed]
    have = {f.lower() for f in out}
    for flag in mutation.add_flags:
        if flag.lower() not in have and flag.lower() not in removed:
            out.append(flag)
            have.add(flag.lower())
    return tuple(out)


def changed_labels(labels: Sequence[str], mutation: Mutation) -> tuple[str, ...]:
    """``labels`` with the mutation's labels added and removed."""
    out = [label for label in labels if label not in mutation.remove_labels]
    out += [label for label in dict.fromkeys(mutation.add_labels) if label not in out]
    return tuple(out)
