"""Incremental IMAP sync of one account.

Per folder: STATUS first (a folder whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ
are unchanged costs one round trip); the new UIDs and their sizes in one FETCH; bodies in
batches cut by count and by RFC822.SIZE, several UID FETCH commands in flight while a batch
is parsed and stored; each batch stored together with the folder's new highest UID, so a
killed sync resumes where it stopped. Then flag changes (CONDSTORE CHANGEDSINCE, else all
FLAGS) and expunges (UIDs the server no longer lists).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection

from inboxd.db.engine import writing
from inboxd.db.types import utcnow
from inboxd.jobs.progress import TaskContext
from inboxd.mail.imap import ImapSession
from inboxd.mail.provider import (
    FetchedMessage,
    FolderStatus,
    ProviderError,
    RemoteFolder,
    ServerClosedConnection,
)
from inboxd.pipeline.batch_store import BatchStore
from inboxd.pipeline.report import SyncReport
from inboxd.store import folders as store_folders
from inboxd.store.folders import FolderState

T = TypeVar("T")

MAX_RECONNECTS = 5
#: UID FETCH commands in flight: enough to hide a long round trip behind the transfer
#: (answers not read yet wait in the socket buffers, so memory stays bounded).
PIPELINE_DEPTH = 4


class ImapSync:
    """Runs one account's sync through a live session, reconnecting when dropped."""

    def __init__(self, ctx: TaskContext, account_id: str, session: ImapSession) -> None:
        self.ctx = ctx
        self.account_id = account_id
        self.session = session
        self.report = SyncReport()
        self.settings = ctx.settings
        #: folder -> first UID of a batch the server refused: fetched one by one from now on
        self._suspects: dict[str, int] = {}

    def run(self) -> SyncReport:
        """The whole sync; returns its report."""
        progress = self.ctx.progress
        progress.step("connecting", message=f"connecting to {self.session.config.host}")
        self._retrying(self.session.connect)
        progress.step("listing folders")
        remote = self._retrying(self.session.folders_to_sync)
        plan = [(f, self._retrying(partial(self.session.status, f.name))) for f in remote]
        states = self._ensure_folders(plan)
        todo = sum(self._expected_new(states[f.name], st) for f, st in plan)
        progress.step("fetching", total=todo, message=f"{todo} new messages")
        for folder, status in plan:
            self._retrying(partial(self._fetch_new, states[folder.name], status))
        progress.step("storing", total=len(plan), message="flags and deletions")
        for n, (folder, status) in enumerate(plan, start=1):
            self._retrying(partial(self._reconcile, folder, status))
            progress.update(n)
        with writing(self.ctx.engine) as conn:
            store_folders.mark_gone_folders(conn, self.account_id, [f.name for f, _ in plan])
        self.report.folders = len(plan)
        return self.report

    # -- folders ---------------------------------------------------------------------------

    def _ensure_folders(
        self, plan: Sequence[tuple[RemoteFolder, FolderStatus]]
    ) -> dict[str, FolderState]:
        with writing(self.ctx.engine) as conn:
            return {
                f.name: store_folders.ensure_folder(
                    conn,
                    self.account_id,
                    f.name,
                    delimiter=f.delimiter,
                    special_use=f.special_use,
                )
                for f, _ in plan
            }

    @staticmethod
    def _expected_new(state: FolderState, status: FolderStatus) -> int:
        if state.uidvalidity != status.uidvalidity or status.uidnext is None:
            return status.messages
        return max(0, min(status.messages, status.uidnext - 1 - state.highest_uid))

    @staticmethod
    def _unchanged(state: FolderState, status: FolderStatus) -> bool:
        return (
            state.uidvalidity == status.uidvalidity
            and state.uidnext == status.uidnext
            and state.server_count == status.messages
            and state.highestmodseq == status.highestmodseq
            and state.last_synced_at is not None
        )

    def _fetch_new(self, state: FolderState, status: FolderStatus) -> None:
        state = self._current(state)
        if state.uidvalidity is not None and state.uidvalidity != status.uidvalidity:
            with writing(self.ctx.engine) as conn:
                store_folders.reset_folder(conn, state.id, status.uidvalidity)
            self.report.uidvalidity_resets += 1
            self.ctx.progress.log(f"UIDVALIDITY of {state.name} changed; fetching it again")
            state = self._current(state)
        if self._unchanged(state, status) or self._expected_new(state, status) == 0:
            return
        self.session.examine(state.name)
        sizes = self.session.uid_sizes(state.highest_uid)
        if not sizes:
            return
        batches = list(
            cut_batches(
                sorted(sizes),
                sizes,
                self.settings.sync_batch_messages,
                self.settings.sync_batch_bytes,
            )
        )
        pending = deque(batches)
        while pending:
            if self._suspects.get(state.name) == pending[0][0]:
                self._fetch_one_by_one(state, status, pending.popleft())
            else:
                self._fetch_pipelined(state, status, pending)

    def _fetch_pipelined(
        self, state: FolderState, status: FolderStatus, pending: deque[list[int]]
    ) -> None:
        """Fetch and store batches from the left of ``pending`` until it is empty or the
        server refuses one; that batch is then marked to be fetched one by one."""
        feed = self.session.fetch_batches(list(pending), depth=PIPELINE_DEPTH)
        # Read on this thread: a reader thread would wait for the GIL after every socket
        # read while this one parses (see inboxd.pipeline.batch_store).
        with self._batch_store() as store, contextlib.closing(feed):
            try:
                for fetched in feed:
                    self.ctx.progress.check_cancelled()
                    if fetched.failed is not None:
                        self._suspect(state, fetched.uids, fetched.failed)
                        return  # the rest of the answers is dropped with the connection
                    self._put(store, state, status, fetched.uids, fetched.messages)
                    pending.popleft()
            except ServerClosedConnection as exc:
                # The server says why it hung up (Dovecot: "FETCH failed: Internal error"
                # on a message file it cannot read): a bad message, not a bad network.
                self._suspect(state, pending[0], exc.message)

    def _suspect(self, state: FolderState, batch: list[int], reason: str) -> None:
        self._suspects[state.name] = batch[0]
        self.ctx.progress.log(
            f"{self.session.config.host} would not send a batch of {len(batch)} messages "
            f"in {state.name} ({reason}); fetching them one by one"
        )

    def _fetch_one_by_one(self, state: FolderState, status: FolderStatus, batch: list[int]) -> None:
        """A refused batch, message by message: one message the server cannot send must not
        cost the others. One it still refuses is skipped, counted and logged."""
        with self._batch_store() as store:
            for uid in batch:
                self.ctx.progress.check_cancelled()
                fetched, reason = self._fetch_single(state, uid)
                if not fetched:
                    self.report.unavailable += 1
                    self.ctx.progress.log(f"skipped message UID {uid} in {state.name}: {reason}")
                self._put(store, state, status, [uid], fetched)

    def _fetch_single(self, state: FolderState, uid: int) -> tuple[list[FetchedMessage], str]:
        try:
            if self.session.selected != state.name:
                self.session.examine(state.name)
            (answer,) = list(self.session.fetch_batches([[uid]], depth=1))
        except ServerClosedConnection as exc:
            return [], exc.message
        if answer.failed is not None:
            return [], f"the server answered: {answer.failed}"
        return answer.messages, "the server sent no body"

    def _batch_store(self) -> BatchStore:
        return BatchStore(self.ctx.engine, self.account_id, self.report, self.ctx.progress)

    def _put(
        self,
        store: BatchStore,
        state: FolderState,
        status: FolderStatus,
        uids: list[int],
        fetched: list[FetchedMessage],
    ) -> None:
        """Store a batch; the folder's highest UID moves past it in the same transaction."""
        highest, validity = max(uids), status.uidvalidity

        def checkpoint(conn: Connection) -> None:
            store_folders.save_state(conn, state.id, highest_uid=highest, uidvalidity=validity)

        store.put(state.id, state.name, fetched, checkpoint=checkpoint, advance=len(uids))

    def _reconcile(self, folder: RemoteFolder, status: FolderStatus) -> None:
        state = self._current_by_name(folder.name)
        if self._unchanged(state, status):
            self.report.folders_unchanged += 1
            return
        if self.session.selected != folder.name:
            self.session.examine(folder.name)
        changed = self._changed_flags(state)
        with writing(self.ctx.engine) as conn:
            self.report.flags_changed += store_folders.apply_flags(
                conn, state.id, {str(uid): flags for uid, flags in changed.items()}
            )
            local = store_folders.local_count(conn, state.id)
        if local != status.messages or status.highestmodseq is None:
            self._detect_expunged(state)
        with writing(self.ctx.engine) as conn:
            store_folders.save_state(
                conn,
                state.id,
                uidnext=status.uidnext,
                server_count=status.messages,
                highestmodseq=status.highestmodseq,
                last_synced_at=utcnow(),
            )

    def _changed_flags(self, state: FolderState) -> dict[int, tuple[str, ...]]:
        if state.last_synced_at is None:
            return {}  # flags came with the bodies just now
        if self.session.condstore and state.highestmodseq:
            return self.session.changed_flags(state.highestmodseq)
        return self.session.all_flags()

    def _detect_expunged(self, state: FolderState) -> None:
        on_server = {str(uid) for uid in self.session.all_uids()}
        with writing(self.ctx.engine) as conn:
            known = store_folders.live_keys(conn, state.id)
            gone = [key for key in known if key not in on_server]
            self.report.expunged += store_folders.mark_expunged(conn, state.id, gone)

    def _current(self, state: FolderState) -> FolderState:
        return self._current_by_name(state.name)

    def _current_by_name(self, name: str) -> FolderState:
        with writing(self.ctx.engine) as conn:
            return store_folders.ensure_folder(conn, self.account_id, name)

    # -- connection drops ------------------------------------------------------------------

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action``; on a dropped connection reconnect with backoff and run it again
        (actions resume from the state committed so far)."""
        delay = 0.5
        while True:
            try:
                return action()
            except ProviderError as exc:
                if self.report.reconnects >= MAX_RECONNECTS:
                    raise
                self.report.reconnects += 1
                self.ctx.progress.log(f"connection problem: {exc.message}; reconnecting")
                self.ctx.log.warning("IMAP problem (%s); reconnecting in %.1fs", exc, delay)
                # The next action connects again (lazily) and resumes from committed state.
                self.session.close()
                self._sleep(delay)
                delay = min(delay * 2, 8.0)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ctx.progress.check_cancelled()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def cut_batches(
    uids: Sequence[int], sizes: dict[int, int], max_count: int, max_bytes: int
) -> Iterator[list[int]]:
    """Consecutive batches of at most ``max_count`` messages and ``max_bytes`` bytes (a
    message larger than ``max_bytes`` goes alone)."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch
