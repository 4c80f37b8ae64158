"""The IMAP provider: :class:`~inboxd.providers.base.MailProvider` over an ImapSession.

Per folder: STATUS first (a folder whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ
are unchanged costs one round trip); the new UIDs and their sizes in one FETCH; bodies in
batches cut by count and by RFC822.SIZE, several UID FETCH commands in flight while the
engine parses and stores a batch; each batch's checkpoint is the folder's new highest UID,
so a killed sync resumes where it stopped. Then flag changes (CONDSTORE CHANGEDSINCE, else
all FLAGS) and expunges (UIDs the server no longer lists).

A batch the server refuses is fetched again message by message: one message the server
cannot send must not cost the others.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from typing import Any

from inboxd.providers.base import (
    Applied,
    Capabilities,
    Changes,
    FetchedBatch,
    FetchPlan,
    FolderChanged,
    FolderListing,
    FolderStatus,
    KnownKeys,
    Marks,
    Mutation,
    Pending,
    ProviderAccount,
    ProviderBase,
    ProviderOptions,
    ProviderSpec,
    SecretStore,
    ServerClosedConnection,
    StoredFolder,
)
from inboxd.providers.imap.changes import ImapChanges
from inboxd.providers.imap.session import ImapSession
from inboxd.providers.imap.settings import ImapConfig, imap_config, login_secret
from inboxd.providers.oauth import TokenSource

#: UID FETCH commands in flight: enough to hide a long round trip behind the transfer
#: (answers not read yet wait in the socket buffers, so memory stays bounded).
PIPELINE_DEPTH = 4

Take = Callable[[], int | None]


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> ImapProvider:
    """The registry's factory: an IMAP provider for ``account``."""
    config = imap_config(account, options.timeout)
    return ImapProvider(config, login_secret(secrets, account, options.timeout), options)


def provider_from_spec(spec: ProviderSpec) -> ImapProvider:
    """The registry's factory in a helper process."""
    return ImapProvider(spec.config, spec.secret, spec.options)


class ImapProvider(ProviderBase):
    """One IMAP account; its session reconnects lazily after :meth:`close`."""

    name = "IMAP"

    def __init__(
        self, config: ImapConfig, secret: str | TokenSource, options: ProviderOptions
    ) -> None:
        self.session = ImapSession(config, secret)
        self.changes_writer = ImapChanges(self.session)
        self.options = options
        #: folder -> first UIDs of batches the server refused: fetched one by one from now on
        self._suspects: dict[str, set[int]] = {}

    @property
    def capabilities(self) -> Capabilities:
        """Reconnects, helper processes, changes written back; labels on Gmail (known once
        connected: ask after :meth:`open`)."""
        return Capabilities(
            reconnects=True, helpers=True, mutations=True, labels=self.session.is_gmail
        )

    @property
    def location(self) -> str:
        """The server's host name."""
        return self.session.config.host

    def open(self) -> None:
        """Connect and log in."""
        self.session.connect()

    def close(self) -> None:
        """Log out and close the socket."""
        self.session.close()

    def keep_alive(self) -> None:
        """NOOP."""
        self.session.noop()

    def spec(self) -> ProviderSpec:
        """The config and a secret that stays valid for a while (an access token)."""
        config, secret = self.session.credentials()
        return ProviderSpec("imap", config, secret, self.options)

    def folders(self) -> FolderListing:
        """LIST-STATUS (or LIST, then pipelined STATUS) of the folders to sync."""
        found, refused = self.session.folders_with_status()
        return FolderListing(found, refused)

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """New messages by UIDNEXT (no round trip)."""
        return Pending(_expected_new(state, status))

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """The UIDs above the folder's highest stored UID, cut into batches by count and
        size (one FETCH of UIDs and sizes, with the EXAMINE in the same round trip)."""
        validity = status.uidvalidity
        if state.uidvalidity is not None and state.uidvalidity != validity:
            return FetchPlan(folder=folder, validity=validity, reset=True)
        unchanged = _unchanged(state, status)
        if unchanged or _expected_new(state, status) == 0:
            return FetchPlan(folder=folder, validity=validity, unchanged=unchanged)
        listed, notes = self._new_uid_sizes(folder, state.highest_uid)
        sizes = {uid: size for uid, size in listed.items() if str(uid) not in stored}
        batches = cut_batches(
            sorted(sizes), sizes, self.options.batch_messages, self.options.batch_bytes
        )
        return FetchPlan(
            folder=folder,
            batches=tuple(tuple(map(str, batch)) for batch in batches),
            validity=validity,
            # Every batch is stored (by us or a helper) or was skipped and logged.
            finish={"highest_uid": max(listed), "uidvalidity": validity} if listed else None,
            notes=notes,
        )

    def _new_uid_sizes(self, folder: str, above: int) -> tuple[dict[int, int], tuple[str, ...]]:
        try:
            return self.session.uid_sizes(above, examine=folder), ()
        except ServerClosedConnection as exc:
            # Some message the server cannot even size (Dovecot reads a file it cannot
            # open to count its bytes, and hangs up): cut batches by count alone, and the
            # message itself is skipped when its batch is fetched one by one.
            note = (
                f"{self.session.config.host} could not list the sizes of new messages in "
                f"{folder} ({exc.message}); fetching them in batches by count"
            )
            self.session.examine(folder)
            return dict.fromkeys(self.session.uids_above(above), 0), (note,)

    def fetch(
        self,
        plan: FetchPlan,
        take: Take | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """Bodies of the batches ``take`` hands out, pipelined; see the protocol."""
        batches = [[int(uid) for uid in batch] for batch in plan.batches]
        take = take or _in_order(len(batches))
        notes = [self._suspect(plan.folder, batches[n], why) for n, why in (singly or {}).items()]
        if notes:
            yield FetchedBatch(notes=tuple(notes))
        held: deque[int] = deque()  # taken, not yielded yet
        while True:
            if held and batches[held[0]][0] in self._suspects.get(plan.folder, ()):
                yield from self._one_by_one(plan, batches[held.popleft()])
                continue
            finished = yield from self._pipelined(plan, batches, held, take, shared)
            if finished:
                return

    def _pipelined(
        self, plan: FetchPlan, batches: list[list[int]], held: deque[int], take: Take, shared: bool
    ) -> Generator[FetchedBatch, None, bool]:
        """Batches (first those in ``held``, then new ones from ``take``) until none are
        left (returns True) or the server refuses one (False: it is then marked to be
        fetched one by one; shared, it is reported and the fetch ends)."""

        def feed() -> Iterator[list[int]]:
            yield from [batches[n] for n in held]  # taken before a refusal cut the stream
            while (n := take()) is not None:
                held.append(n)
                yield batches[n]

        def check(status: FolderStatus) -> None:
            if status.uidvalidity != plan.validity:
                raise FolderChanged(f"UIDVALIDITY of {plan.folder} changed")

        session = self.session
        # Shared, the folder is opened (and its UIDVALIDITY checked) in the first FETCH's
        # round trip; the sync itself opened it when it planned.
        examine = plan.folder if shared or session.selected != plan.folder else None
        stream = session.fetch_batches(
            feed(), depth=PIPELINE_DEPTH, examine=examine, on_examined=check if shared else None
        )
        with contextlib.closing(stream):
            try:
                for fetched in stream:
                    if fetched.failed is not None:
                        if shared:
                            yield FetchedBatch(index=held.popleft(), refused=fetched.failed)
                            return True
                        note = self._suspect(plan.folder, fetched.uids, fetched.failed)
                        yield FetchedBatch(notes=(note,))
                        return False  # the rest of the answers is dropped with the connection
                    batch = FetchedBatch(
                        messages=fetched.messages,
                        index=held[0],
                        checkpoint=_checkpoint(max(fetched.uids), plan.validity),
                        advance=len(fetched.uids),
                    )
                    yield batch
                    held.popleft()
            except ServerClosedConnection as exc:
                # The server says why it hung up (Dovecot: "FETCH failed: Internal error"
                # on a message file it cannot read): a bad message, not a bad network.
                if not held or shared:
                    raise
                yield FetchedBatch(
                    notes=(self._suspect(plan.folder, batches[held[0]], exc.message),)
                )
                return False
        return True

    def _suspect(self, folder: str, batch: list[int], reason: str) -> str:
        self._suspects.setdefault(folder, set()).add(batch[0])
        return (
            f"{self.session.config.host} would not send a batch of {len(batch)} messages "
            f"in {folder} ({reason}); fetching them one by one"
        )

    def _one_by_one(self, plan: FetchPlan, batch: list[int]) -> Iterator[FetchedBatch]:
        """A refused batch, message by message; one the server still refuses is skipped,
        counted and logged."""
        for uid in batch:
            messages, reason = self._fetch_single(plan.folder, uid)
            missing = not messages
            yield FetchedBatch(
                messages=messages,
                checkpoint=_checkpoint(uid, plan.validity),
                advance=1,
                unavailable=int(missing),
                notes=(f"skipped message UID {uid} in {plan.folder}: {reason}",) if missing else (),
            )

    def _fetch_single(self, folder: str, uid: int) -> tuple[list[Any], str]:
        try:
            if self.session.selected != folder:
                self.session.examine(folder)
            (answer,) = list(self.session.fetch_batches([[uid]], depth=1))
        except ServerClosedConnection as exc:
            return [], exc.message
        if answer.failed is not None:
            return [], f"the server answered: {answer.failed}"
        return answer.messages, "the server sent no body"

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """Flags (and Gmail labels) changed since the last sync, and every UID if asked."""
        session = self.session
        if session.selected != folder:
            session.examine(folder)
        if state.last_synced_at is None:
            marks = {}  # flags came with the bodies just now
        elif session.condstore and state.highestmodseq:
            marks = session.changed_marks(state.highestmodseq)
        else:
            marks = session.all_marks()
        present = {str(uid) for uid in session.all_uids()} if list_keys else None
        return Changes({str(uid): m for uid, m in marks.items()}, present, status.messages)

    # -- changes (see inboxd.providers.imap.changes) ----------------------------------------

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """STORE, STORE X-GM-LABELS and MOVE (or COPY + UID EXPUNGE) over UID sets."""
        return self.changes_writer.apply(mutations)

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """One UID FETCH (FLAGS, X-GM-LABELS) per UID set."""
        return self.changes_writer.current_marks(folder, keys, validity=validity)

    def locate(self, folder: str, message_id: str) -> list[str]:
        """UID SEARCH HEADER Message-ID, each hit's header checked."""
        return self.changes_writer.locate(folder, message_id)

    def archive_folder(self) -> str:
        """SPECIAL-USE \\Archive, Gmail's All Mail, else Archive (CREATEd when missing)."""
        return self.changes_writer.archive_folder()


def _checkpoint(highest: int, validity: int | None) -> dict[str, Any]:
    return {"highest_uid": highest, "uidvalidity": validity}


def _in_order(count: int) -> Take:
    numbers = iter(range(count))
    return lambda: next(numbers, None)


def _expected_new(state: StoredFolder, status: FolderStatus) -> int:
    if state.uidvalidity != status.uidvalidity or status.uidnext is None:
        return status.messages
    return max(0, min(status.messages, status.uidnext - 1 - state.highest_uid))


def _unchanged(state: StoredFolder, status: FolderStatus) -> bool:
    return (
        state.uidvalidity == status.uidvalidity
        and state.uidnext == status.uidnext
        and state.server_count == status.messages
        and state.highestmodseq == status.highestmodseq
        and state.last_synced_at is not None
    )


def cut_batches(
    uids: Sequence[int], sizes: dict[int, int], max_count: int, max_bytes: int
) -> list[list[int]]:
    """Consecutive batches of at most ``max_count`` messages and ``max_bytes`` bytes (a
    message larger than ``max_bytes`` goes alone)."""
    out: list[list[int]] = []
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or total + size > max_bytes):
            out.append(batch)
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        out.append(batch)
    return out
