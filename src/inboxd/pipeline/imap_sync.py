"""Incremental IMAP sync of one account.

Per folder: STATUS first (a folder whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ
are unchanged costs one round trip); the new UIDs and their sizes in one FETCH; bodies in
batches cut by count and by RFC822.SIZE, several UID FETCH commands in flight, read by a
thread of their own while this one parses and stores; each batch stored together with the
folder's new highest UID, so a killed sync resumes where it stopped. Then flag changes
(CONDSTORE CHANGEDSINCE, else all FLAGS) and expunges (UIDs the server no longer lists).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import TypeVar

from inboxd.db.engine import writing
from inboxd.db.types import utcnow
from inboxd.jobs.progress import TaskContext
from inboxd.mail.imap import FetchedBatch, ImapSession
from inboxd.mail.provider import (
    FetchedMessage,
    FolderStatus,
    ProviderError,
    RemoteFolder,
    ServerClosedConnection,
)
from inboxd.pipeline.parsing import BatchPreparer
from inboxd.pipeline.report import SyncReport
from inboxd.store import folders as store_folders
from inboxd.store.folders import FolderState
from inboxd.store.writer import store_batch

T = TypeVar("T")

MAX_RECONNECTS = 5
#: UID FETCH commands in flight: enough to hide a long round trip behind the transfer.
PIPELINE_DEPTH = 4
#: Fetched batches waiting to be stored (bounds memory: each is at most sync_batch_bytes).
PREFETCH_BATCHES = 2


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
        with Prefetch(self.session, list(pending)) as feed, BatchPreparer() as preparer:
            try:
                for fetched in feed:
                    self.ctx.progress.check_cancelled()
                    if fetched.failed is not None:
                        self._suspect(state, fetched.uids, fetched.failed)
                        return  # the rest of the answers is dropped with the connection
                    self._store_batch(state, status, fetched.uids, fetched.messages, preparer)
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
        with BatchPreparer() as preparer:
            for uid in batch:
                self.ctx.progress.check_cancelled()
                fetched, reason = self._fetch_single(state, uid)
                if fetched:
                    self._store_batch(state, status, [uid], fetched, preparer)
                    continue
                self.report.unavailable += 1
                self.ctx.progress.log(f"skipped message UID {uid} in {state.name}: {reason}")
                with writing(self.ctx.engine) as conn:
                    store_folders.save_state(conn, state.id, highest_uid=uid)
                self.ctx.progress.update(advance=1)

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

    def _store_batch(
        self,
        state: FolderState,
        status: FolderStatus,
        batch: list[int],
        fetched: list[FetchedMessage],
        preparer: BatchPreparer,
    ) -> None:
        incoming = preparer.prepare(fetched)
        with writing(self.ctx.engine) as conn:
            result = store_batch(conn, self.account_id, state.id, incoming)
            store_folders.save_state(
                conn,
                state.id,
                highest_uid=max(batch, default=state.highest_uid),
                uidvalidity=status.uidvalidity,
            )
        report = self.report
        report.fetched += len(fetched)
        report.new += result.new
        report.duplicates += result.known
        report.bytes += sum(len(f.raw) for f in fetched)
        report.parse_errors += sum(1 for i in incoming if i.parsed.parse_errors)
        report.per_folder[state.name] = report.per_folder.get(state.name, 0) + len(fetched)
        self.ctx.progress.update(advance=len(batch), message=f"{state.name}")

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


class Prefetch:
    """Reads the bodies of a folder's batches on a thread of its own, at most
    ``PREFETCH_BATCHES`` ahead of the consumer. Leaving early (cancellation, an error in
    storing) drops the connection: its answers are still arriving."""

    _DONE = object()

    def __init__(self, session: ImapSession, batches: Sequence[Sequence[int]]) -> None:
        self.session = session
        self.batches = batches
        self._queue: queue.Queue[object] = queue.Queue(PREFETCH_BATCHES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="inboxd-fetch", daemon=True)

    def __enter__(self) -> Prefetch:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[FetchedBatch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, FetchedBatch)
            yield item

    def _read(self) -> None:
        try:
            for batch in self.session.fetch_batches(self.batches, depth=PIPELINE_DEPTH):
                if not self._put(batch):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return True
        return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # Unblocks a read waiting on the socket.
            self.session.interrupt()
        self._thread.join(timeout=30)
        if exc_type is not None:
            self.session.abandon()  # reconnects lazily when used again
