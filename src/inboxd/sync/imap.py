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
from inboxd.providers.base import (
    FetchedMessage,
    FolderStatus,
    FolderUnavailable,
    Marks,
    ProviderError,
    RemoteFolder,
    ServerClosedConnection,
)
from inboxd.providers.imap.session import ImapSession
from inboxd.store import folders as store_folders
from inboxd.store.folders import FolderState
from inboxd.sync.batch_store import BatchStore
from inboxd.sync.helpers import (
    BatchClaims,
    FolderWork,
    HelperSpec,
    LocalClaims,
    SyncHelper,
    merge_report,
    wait_for,
)
from inboxd.sync.report import SyncReport
from inboxd.vocabulary import Step

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
        #: folder -> first UIDs of batches the server refused: fetched one by one from now on
        self._suspects: dict[str, set[int]] = {}
        #: folder -> UIDs a helper process stored (the folder's highest UID may lag behind)
        self._helper_stored: dict[str, set[int]] = {}
        #: this sync's helper processes and their claims, started once a folder wants them
        self._helpers: list[SyncHelper] = []
        self._claims: BatchClaims | None = None
        #: the folder the helpers share now
        self._work: FolderWork | None = None
        #: folders the server would not open in this sync
        self._skipped: set[str] = set()

    def run(self) -> SyncReport:
        """The whole sync; returns its report."""
        try:
            return self._run()
        finally:
            self._stop_helpers()

    def _run(self) -> SyncReport:
        progress = self.ctx.progress
        progress.step(Step.CONNECTING, message=f"connecting to {self.session.config.host}")
        self._retrying(self.session.connect)
        progress.step(Step.LISTING_FOLDERS)
        plan, refused = self._retrying(self.session.folders_with_status)
        for name, reason in refused.items():
            self._skip(name, reason)
        states = self._ensure_folders(plan)
        todo = sum(self._expected_new(states[f.name], st) for f, st in plan)
        if self._wants_helpers(
            max((self._expected_new(states[f.name], st) for f, st in plan), default=0)
        ):
            # Now, so that they log in while this session lists the folder's new mail.
            self._open_helpers()
        progress.step(Step.FETCHING, total=todo, message=f"{todo} new messages")
        for folder, status in plan:
            self._folder_step(folder.name, partial(self._fetch_new, states[folder.name], status))
        for helper in self._helpers:  # they log out while flags and deletions are read
            helper.ask_to_stop()
        progress.step(Step.STORING, total=len(plan), message="flags and deletions")
        for n, (folder, status) in enumerate(plan, start=1):
            if folder.name not in self._skipped:
                self._folder_step(folder.name, partial(self._reconcile, folder, status))
            progress.update(n)
        # A folder the server would not open is still there: its local copy stays as it is.
        present = [f.name for f, _ in plan] + list(refused)
        with writing(self.ctx.engine) as conn:
            store_folders.mark_gone_folders(conn, self.account_id, present)
        self.report.folders = len(plan)
        return self.report

    def _folder_step(self, name: str, action: Callable[[], None]) -> None:
        """One folder's part of the sync; a folder the server will not open is skipped."""
        if name in self._skipped:
            return
        try:
            self._retrying(action)
        except FolderUnavailable as exc:
            self._skip(name, exc.message)

    def _skip(self, name: str, reason: str) -> None:
        self._skipped.add(name)
        self.report.folders_skipped += 1
        self.ctx.progress.log(f"skipped folder {name} this time: {reason}")

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
            self._helper_stored.pop(state.name, None)
            state = self._current(state)
        if self._unchanged(state, status) or self._expected_new(state, status) == 0:
            return
        stored_elsewhere = self._helper_stored.get(state.name, set())
        listed = self._new_uid_sizes(state)
        sizes = {uid: size for uid, size in listed.items() if uid not in stored_elsewhere}
        if not sizes:
            if listed:  # a helper stored all of them before this attempt was cut short
                with writing(self.ctx.engine) as conn:
                    store_folders.save_state(
                        conn, state.id, highest_uid=max(listed), uidvalidity=status.uidvalidity
                    )
            return
        batches = list(
            cut_batches(
                sorted(sizes),
                sizes,
                self.settings.sync_batch_messages,
                self.settings.sync_batch_bytes,
            )
        )
        claims, helpers = self._start_helpers(state, status, batches)
        try:
            self._fetch_from(state, status, batches, claims.take_front, helpers)
            if helpers:
                self._finish_helpers(state, status, batches, claims, helpers)
        except BaseException:
            # Helpers may be mid-folder; a retry of this folder starts fresh ones.
            self._stop_helpers()
            raise
        finally:
            self._work = None
        # Every batch of the plan is stored (by us or a helper) or was skipped and logged,
        # and so is whatever a helper stored for an earlier attempt.
        with writing(self.ctx.engine) as conn:
            store_folders.save_state(
                conn, state.id, highest_uid=max(listed), uidvalidity=status.uidvalidity
            )

    def _new_uid_sizes(self, state: FolderState) -> dict[int, int]:
        try:
            return self.session.uid_sizes(state.highest_uid, examine=state.name)
        except ServerClosedConnection as exc:
            # Some message the server cannot even size (Dovecot reads a file it cannot
            # open to count its bytes, and hangs up): cut batches by count alone, and the
            # message itself is skipped when its batch is fetched one by one.
            self.ctx.progress.log(
                f"{self.session.config.host} could not list the sizes of new messages in "
                f"{state.name} ({exc.message}); fetching them in batches by count"
            )
            self.session.examine(state.name)
            return dict.fromkeys(self.session.uids_above(state.highest_uid), 0)

    # -- helper processes ------------------------------------------------------------------

    def _wants_helpers(self, new_messages: int) -> bool:
        return (
            self.settings.sync_processes > 1
            and new_messages >= self.settings.sync_helper_min_messages
        )

    def _open_helpers(self) -> None:
        """Start this sync's helper processes (once; they wait for a folder)."""
        if self._claims is not None:
            return
        try:
            self._claims = BatchClaims(0)
        except Exception as exc:  # no shared memory (no /dev/shm) or no forkserver: go alone
            self.ctx.log.warning("cannot share a sync with helper processes: %s", exc)
            return
        config, secret = self.session.credentials()
        spec = HelperSpec(
            database_url=self.ctx.engine.url.render_as_string(hide_password=False),
            busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
            config=config,
            secret=secret,
            account_id=self.account_id,
            depth=PIPELINE_DEPTH,
        )
        for n in range(1, self.settings.sync_processes):
            try:
                helper = SyncHelper(spec, self._claims, name=f"inboxd-sync-helper-{n}")
            except Exception as exc:  # no processes left (ulimit), no forkserver: go alone
                self.ctx.log.warning("cannot start a sync helper process: %s", exc)
                break
            self._helpers.append(helper)
            self.report.helpers += 1

    def _stop_helpers(self) -> None:
        helpers, self._helpers, self._claims = self._helpers, [], None
        for helper in helpers:
            helper.stop()
            self.report.helper_peak_rss_kb = max(self.report.helper_peak_rss_kb, helper.peak_rss_kb)
            self._log_helper_news(helper)

    def _log_helper_news(self, helper: SyncHelper) -> None:
        """Say in the job's log what connection problems a helper got over, and (once) why
        it stopped early."""
        recovered, helper.recovered = helper.recovered, []
        for what in recovered:
            self.ctx.progress.log(f"sync helper: {what}")
        if helper.error is not None and not helper.error_logged:
            helper.error_logged = True
            self.ctx.progress.log(f"a sync helper stopped early: {helper.error}")

    def _start_helpers(
        self, state: FolderState, status: FolderStatus, batches: list[list[int]]
    ) -> tuple[BatchClaims | LocalClaims, list[SyncHelper]]:
        if not self._wants_helpers(sum(map(len, batches))) or len(batches) < 2:
            return LocalClaims(len(batches)), []
        self._open_helpers()
        claims = self._claims
        if claims is None:
            return LocalClaims(len(batches)), []
        helpers = [helper for helper in self._helpers if not helper.ended]
        if not helpers:
            return LocalClaims(len(batches)), []
        claims.reset(len(batches))
        self._work = FolderWork(
            folder_id=state.id, folder=state.name, uidvalidity=status.uidvalidity, batches=batches
        )
        for helper in helpers:
            helper.assign(self._work)
        return claims, helpers

    def _collect(
        self, state: FolderState, batches: list[list[int]], helpers: Sequence[SyncHelper]
    ) -> None:
        work, claims = self._work, self._claims
        for helper in helpers:
            helper.collect(partial(self._helper_stored_batch, state, batches))
            # One still logging in when the folder began joins once ready, while batches
            # are left (the sync does not wait for it).
            if (
                work is not None
                and claims is not None
                and helper.work is not work
                and helper.ready
                and claims.left
            ):
                helper.assign(work)

    def _helper_stored_batch(
        self, state: FolderState, batches: list[list[int]], index: int, part: SyncReport
    ) -> None:
        self._helper_stored.setdefault(state.name, set()).update(batches[index])
        merge_report(self.report, part)
        self.ctx.progress.update(advance=len(batches[index]), message=state.name)

    def _finish_helpers(
        self,
        state: FolderState,
        status: FolderStatus,
        batches: list[list[int]],
        claims: BatchClaims | LocalClaims,
        helpers: Sequence[SyncHelper],
    ) -> None:
        """Wait for the helpers, then fetch what they took but did not store."""
        wait_for(
            helpers,
            partial(self._helper_stored_batch, state, batches),
            self.ctx.progress.check_cancelled,
        )
        for helper in helpers:
            self._log_helper_news(helper)
        shared = [helper for helper in helpers if helper.work is self._work]
        for helper in shared:
            for index, reason in sorted(helper.refused.items()):
                self._suspect(state, batches[index], reason)
        done = {index for helper in shared for index in helper.stored}
        left = iter([n for n in range(claims.first_of_back, len(batches)) if n not in done])
        self._fetch_from(state, status, batches, lambda: next(left, None), ())

    # -- fetching --------------------------------------------------------------------------

    def _fetch_from(
        self,
        state: FolderState,
        status: FolderStatus,
        batches: list[list[int]],
        take: Callable[[], int | None],
        helpers: Sequence[SyncHelper],
    ) -> None:
        """Fetch and store the batches ``take`` hands out, in order, until it has none."""
        held: deque[int] = deque()  # taken, not stored yet
        while True:
            if held and batches[held[0]][0] in self._suspects.get(state.name, ()):
                self._fetch_one_by_one(state, status, batches[held.popleft()])
            elif self._fetch_pipelined(state, status, batches, held, take, helpers):
                return

    def _fetch_pipelined(
        self,
        state: FolderState,
        status: FolderStatus,
        batches: list[list[int]],
        held: deque[int],
        take: Callable[[], int | None],
        helpers: Sequence[SyncHelper],
    ) -> bool:
        """Fetch and store batches (first those in ``held``, then new ones from ``take``);
        False when the server refuses one, which is then marked to be fetched one by one."""

        def feed() -> Iterator[list[int]]:
            yield from [batches[n] for n in held]  # taken before a refusal cut the stream
            while (n := take()) is not None:
                held.append(n)
                yield batches[n]

        fetch = self.session.fetch_batches(feed(), depth=PIPELINE_DEPTH)
        # Read on this thread: a reader thread would wait for the GIL after every socket
        # read while this one parses (see inboxd.sync.batch_store).
        with self._batch_store() as store, contextlib.closing(fetch):
            try:
                for fetched in fetch:
                    self.ctx.progress.check_cancelled()
                    if fetched.failed is not None:
                        self._suspect(state, fetched.uids, fetched.failed)
                        return False  # the rest of the answers is dropped with the connection
                    self._put(store, state, status, fetched.uids, fetched.messages)
                    held.popleft()
                    self._collect(state, batches, helpers)
            except ServerClosedConnection as exc:
                # The server says why it hung up (Dovecot: "FETCH failed: Internal error"
                # on a message file it cannot read): a bad message, not a bad network.
                if not held:
                    raise
                self._suspect(state, batches[held[0]], exc.message)
                return False
        return True

    def _suspect(self, state: FolderState, batch: list[int], reason: str) -> None:
        self._suspects.setdefault(state.name, set()).add(batch[0])
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
        changed = self._changed_marks(state)
        with writing(self.ctx.engine) as conn:
            self.report.flags_changed += store_folders.apply_flags(
                conn,
                state.id,
                {str(uid): marks.flags for uid, marks in changed.items()},
                {str(uid): m.labels for uid, m in changed.items() if m.labels is not None},
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

    def _changed_marks(self, state: FolderState) -> dict[int, Marks]:
        if state.last_synced_at is None:
            return {}  # flags came with the bodies just now
        if self.session.condstore and state.highestmodseq:
            return self.session.changed_marks(state.highestmodseq)
        return self.session.all_marks()

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
            except FolderUnavailable:
                raise  # the server answered: reconnecting would not change its mind
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
