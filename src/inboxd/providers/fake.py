"""An in-memory mail provider for tests: a server whose folders and messages a test changes
between syncs, and whose faults (a dropped connection, a refused folder, a rejected
login, a refused or interrupted write) it injects. It behaves like an IMAP server with
CONDSTORE: UIDs, UIDVALIDITY, UIDNEXT, a MODSEQ that moves with every change; mutations
change flags, keywords, labels (with ``FakeMailbox(labels=True)``, as Gmail) and move
messages to new UIDs in their target folder."""

from __future__ import annotations

import email.parser
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inboxd.errors import InvalidRequest
from inboxd.providers.base import (
    Applied,
    AuthenticationFailed,
    Capabilities,
    Changes,
    FetchedBatch,
    FetchedMessage,
    FetchPlan,
    FolderListing,
    FolderStatus,
    KnownKeys,
    Marks,
    Mutation,
    MutationsNotSupported,
    Pending,
    ProviderAccount,
    ProviderBase,
    ProviderError,
    ProviderOptions,
    RemoteFolder,
    SecretStore,
    StoredFolder,
    changed_flags,
    changed_labels,
    check_mutations,
)
from inboxd.providers.registry import ProviderEntry

__all__ = ["ENTRY", "MAILBOXES", "FakeFolder", "FakeMailbox", "FakeProvider"]

#: Mailboxes an account of provider "fake" can name (settings: {"mailbox": name}).
MAILBOXES: dict[str, FakeMailbox] = {}


@dataclass
class FakeFolder:
    """One folder on the fake server."""

    name: str
    uidvalidity: int
    next_uid: int = 1
    modseq: int = 1
    #: uid -> (raw message, flags)
    messages: dict[int, tuple[bytes, tuple[str, ...]]] = field(default_factory=dict)
    #: uid -> Gmail labels (a mailbox with ``labels`` only; missing: none)
    labels: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def status(self) -> FolderStatus:
        """What STATUS would say."""
        return FolderStatus(len(self.messages), self.uidvalidity, self.next_uid, self.modseq)


class FakeMailbox:
    """The fake server's side: what tests change, and what they inspect afterwards."""

    def __init__(self, *, labels: bool = False) -> None:
        #: messages carry Gmail labels (X-GM-LABELS)
        self.gmail = labels
        self.folders: dict[str, FakeFolder] = {}
        self._validity = 1000
        #: folder -> reason: the server answers NO to its STATUS
        self.refused: dict[str, str] = {}
        self.reject_login = False
        #: batches served before the connection drops (None: it does not drop)
        self.drop_after_batches: int | None = None
        self.logins = 0
        self.batches_served = 0
        #: the account is read-only: apply() raises MutationsNotSupported
        self.read_only = False
        #: every mutation is refused with this reason (an Applied error, nothing changes)
        self.refuse_mutations: str | None = None
        #: mutations applied before the connection drops mid-apply (None: it does not):
        #: those are on the server, but their caller hears only ProviderError
        self.drop_after_mutations: int | None = None
        #: every apply() call's mutations, in order (what a test asserts batching on)
        self.applied: list[list[Mutation]] = []

    def folder(self, name: str) -> FakeFolder:
        """The folder ``name``, created empty when missing."""
        if name not in self.folders:
            self._validity += 1
            self.folders[name] = FakeFolder(name, self._validity)
        return self.folders[name]

    def add(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        """Deliver a message; returns its UID."""
        box = self.folder(folder)
        uid = box.next_uid
        box.messages[uid] = (raw, flags)
        box.next_uid += 1
        box.modseq += 1
        return uid

    def set_flags(self, folder: str, uid: int, flags: tuple[str, ...]) -> None:
        """Change a message's flags."""
        box = self.folders[folder]
        box.messages[uid] = (box.messages[uid][0], flags)
        box.modseq += 1

    def set_labels(self, folder: str, uid: int, labels: tuple[str, ...]) -> None:
        """Change a message's labels."""
        box = self.folders[folder]
        box.labels[uid] = labels
        box.modseq += 1

    def marks(self, folder: str, uid: int) -> Marks:
        """A message's flags (and labels, in a mailbox with labels)."""
        box = self.folders[folder]
        labels = box.labels.get(uid, ()) if self.gmail else None
        return Marks(box.messages[uid][1], labels)

    def move(self, folder: str, uid: int, target: str) -> int:
        """Move a message to ``target`` (created when missing); returns its new UID."""
        box = self.folders[folder]
        raw, flags = box.messages.pop(uid)
        labels = box.labels.pop(uid, ())
        box.modseq += 1
        new = self.add(target, raw, flags)
        if labels:
            self.folders[target].labels[new] = labels
        return new

    def remove(self, folder: str, uid: int) -> None:
        """Expunge a message."""
        box = self.folders[folder]
        del box.messages[uid]
        box.modseq += 1

    def remove_folder(self, name: str) -> None:
        """Delete a folder."""
        del self.folders[name]

    def renumber(self, folder: str) -> None:
        """Give a folder a new UIDVALIDITY (its messages get new UIDs)."""
        box = self.folders[folder]
        self._validity += 1
        old = [(box.messages[uid], box.labels.get(uid)) for uid in sorted(box.messages)]
        box.uidvalidity, box.messages, box.labels = self._validity, {}, {}
        box.next_uid = 1
        for (raw, flags), labels in old:
            box.messages[box.next_uid] = (raw, flags)
            if labels:
                box.labels[box.next_uid] = labels
            box.next_uid += 1


class FakeProvider(ProviderBase):
    """A MailProvider over a FakeMailbox; it reconnects like a network provider."""

    name = "fake"

    def __init__(self, mailbox: FakeMailbox, options: ProviderOptions | None = None) -> None:
        self.mailbox = mailbox
        self.options = options or ProviderOptions()
        self.connected = False

    @property
    def capabilities(self) -> Capabilities:
        """Reconnects (a dropped connection is retried by the engine), writes changes
        back (unless the mailbox is read-only), and labels in a mailbox with labels."""
        box = self.mailbox
        return Capabilities(reconnects=True, mutations=not box.read_only, labels=box.gmail)

    @property
    def location(self) -> str:
        """A host name that is never looked up."""
        return "fake.invalid"

    def open(self) -> None:
        """Log in (AuthenticationFailed when told to reject it)."""
        if self.mailbox.reject_login:
            raise AuthenticationFailed("password rejected by fake.invalid")
        self.mailbox.logins += 1
        self.connected = True

    def close(self) -> None:
        """Disconnect."""
        self.connected = False

    def _server(self) -> FakeMailbox:
        if not self.connected:
            self.open()  # lazily, as the IMAP session does after a drop
        return self.mailbox

    def folders(self) -> FolderListing:
        """Every folder with its status; refused ones apart."""
        server = self._server()
        found = [
            (RemoteFolder(name, "/"), box.status())
            for name, box in sorted(server.folders.items())
            if name not in server.refused
        ]
        refused = {n: r for n, r in server.refused.items() if n in server.folders}
        return FolderListing(found, refused)

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """New messages by UIDNEXT."""
        if state.uidvalidity != status.uidvalidity or status.uidnext is None:
            return Pending(status.messages)
        return Pending(max(0, min(status.messages, status.uidnext - 1 - state.highest_uid)))

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """UIDs above the highest stored one, in batches of ``batch_messages``."""
        validity = status.uidvalidity
        if state.uidvalidity is not None and state.uidvalidity != validity:
            return FetchPlan(folder=folder, validity=validity, reset=True)
        if _unchanged(state, status):
            return FetchPlan(folder=folder, validity=validity, unchanged=True)
        box = self._server().folders[folder]
        listed = [uid for uid in sorted(box.messages) if uid > state.highest_uid]
        new = [str(uid) for uid in listed if str(uid) not in stored]
        size = self.options.batch_messages
        return FetchPlan(
            folder=folder,
            batches=tuple(tuple(new[n : n + size]) for n in range(0, len(new), size)),
            validity=validity,
            finish={"highest_uid": max(listed), "uidvalidity": validity} if listed else None,
        )

    def fetch(
        self,
        plan: FetchPlan,
        take: Callable[[], int | None] | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """The batches, each checkpointed at its highest UID; drops when told to."""
        indexes = iter(range(len(plan.batches)))
        while (index := take() if take is not None else next(indexes, None)) is not None:
            box = self._serve_batch().folders[plan.folder]
            uids = [int(key) for key in plan.batches[index]]
            messages = [
                FetchedMessage(str(uid), box.messages[uid][0], box.messages[uid][1], uid=uid)
                for uid in uids
                if uid in box.messages
            ]
            yield FetchedBatch(
                messages=messages,
                index=index,
                checkpoint={"highest_uid": max(uids), "uidvalidity": plan.validity},
                advance=len(uids),
            )

    def _serve_batch(self) -> FakeMailbox:
        server = self._server()
        if server.drop_after_batches is not None:
            if server.drop_after_batches <= 0:
                server.drop_after_batches = None
                self.connected = False
                raise ProviderError("fake.invalid dropped the connection")
            server.drop_after_batches -= 1
        server.batches_served += 1
        return server

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """Every message's flags (after the first sync), and its UIDs when asked."""
        box = self._server().folders[folder]
        marks = {}
        if state.last_synced_at is not None:
            marks = {str(uid): Marks(flags) for uid, (_raw, flags) in box.messages.items()}
        present = {str(uid) for uid in box.messages} if list_keys else None
        return Changes(marks, present, len(box.messages))

    # -- mutations ---------------------------------------------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """Each mutation in turn: flags, labels, then the move (to a new UID); a message
        no longer there, or a refusal the mailbox was told to give, is an Applied error."""
        server = self._server()
        if server.read_only:
            raise MutationsNotSupported("fake accounts told to be read-only cannot change")
        check_mutations(mutations, self.name, labels=server.gmail)
        server.applied.append(list(mutations))
        out: list[Applied] = []
        for mutation in mutations:
            if server.drop_after_mutations is not None:
                if server.drop_after_mutations <= 0:
                    server.drop_after_mutations = None
                    self.connected = False
                    raise ProviderError("fake.invalid dropped the connection")
                server.drop_after_mutations -= 1
            out.append(self._apply_one(server, mutation))
        return out

    def _apply_one(self, server: FakeMailbox, mutation: Mutation) -> Applied:
        folder, key = mutation.folder, mutation.key
        box = server.folders.get(folder)
        uid = int(key) if key.isdigit() else None
        if box is not None and mutation.validity not in (None, box.uidvalidity):
            return Applied(key, folder, None, error=_renumbered(folder))
        if box is None or uid is None or uid not in box.messages:
            return Applied(key, folder, None, error=f"not in {folder} any more")
        if server.refuse_mutations is not None:
            return Applied(key, folder, key, server.marks(folder, uid), server.refuse_mutations)
        marks = server.marks(folder, uid)
        flags = changed_flags(marks.flags, mutation)
        if flags != marks.flags:
            server.set_flags(folder, uid, flags)
        if marks.labels is not None:
            labels = changed_labels(marks.labels, mutation)
            if labels != marks.labels:
                server.set_labels(folder, uid, labels)
        target = mutation.move_to
        if target is None or target == folder:
            return Applied(key, folder, key, server.marks(folder, uid))
        new = server.move(folder, uid, target)
        return Applied(key, target, str(new), server.marks(target, new))

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """The marks of the keys still in ``folder``."""
        server = self._server()
        box = server.folders.get(folder)
        if box is None or (validity is not None and validity != box.uidvalidity):
            return {}
        uids = [int(key) for key in keys if key.isdigit()]
        return {str(uid): server.marks(folder, uid) for uid in uids if uid in box.messages}

    def locate(self, folder: str, message_id: str) -> list[str]:
        """UIDs in ``folder`` of messages whose Message-ID header is ``message_id``."""
        box = self._server().folders.get(folder)
        if box is None:
            return []
        return [
            str(uid)
            for uid, (raw, _flags) in sorted(box.messages.items())
            if _message_id(raw) == message_id.strip()
        ]

    def archive_folder(self) -> str:
        """A folder named Archive (any case), else "Archive" (created)."""
        server = self._server()
        for name in server.folders:
            if name.lower() == "archive":
                return name
        server.folder("Archive")
        return "Archive"


def _renumbered(folder: str) -> str:
    return f"{folder} was renumbered (new UIDVALIDITY): the stored key names no message now"


def _message_id(raw: bytes) -> str | None:
    header = email.parser.BytesHeaderParser().parsebytes(raw)
    value = header.get("Message-ID")
    return str(value).strip() if value is not None else None


def _unchanged(state: StoredFolder, status: FolderStatus) -> bool:
    return (
        state.uidvalidity == status.uidvalidity
        and state.uidnext == status.uidnext
        and state.server_count == status.messages
        and state.highestmodseq == status.highestmodseq
        and state.last_synced_at is not None
    )


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A fake account names one of MAILBOXES."""
    name = str(settings.get("mailbox") or "")
    if name not in MAILBOXES:
        raise InvalidRequest(f"no fake mailbox {name!r}")
    return {"mailbox": name}


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> FakeProvider:
    """The registry's factory for provider "fake"."""
    return FakeProvider(MAILBOXES[account.settings["mailbox"]], options)


#: Registered by tests that sync a fake account end to end (``registry.register(ENTRY)``).
ENTRY = ProviderEntry(
    "fake",
    validator="inboxd.providers.fake:validate_settings",
    factory="inboxd.providers.fake:open_provider",
)
