"""The sync engine: any MailProvider into the local store, in resumable batches.

One sync, whatever the provider: repairing a store written with identities of an earlier
version (local work, done once; see :mod:`inboxd.sync.repair`), connecting, listing folders
(each with its status), fetching (per folder: plan what is new, fetch it in batches, store
each batch in one transaction with its checkpoint, so a killed sync resumes after its last
committed batch), then storing flags and deletions, and finally marking the folders that
are gone. A folder the server will not open is skipped for this sync, counted and logged;
its local copy stays as it was.

What a provider opts into (:class:`~inboxd.providers.base.Capabilities`): ``reconnects``
(a dropped connection is reopened with backoff and the step runs again from the committed
state) and ``helpers`` (helper processes share a big folder's batches; see
:mod:`inboxd.sync.sharing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.types import utcnow
from inboxd.providers.base import (
    FetchPlan,
    FolderStatus,
    FolderUnavailable,
    MailProvider,
    ProviderError,
    RemoteFolder,
)
from inboxd.store import folders as store_folders
from inboxd.store.folders import FolderState
from inboxd.sync.batch_store import BatchStore
from inboxd.sync.progress import SyncProgress
from inboxd.sync.repair import repair_identities
from inboxd.sync.report import SyncReport
from inboxd.sync.sharing import Sharing
from inboxd.vocabulary import Step

T = TypeVar("T")

MAX_RECONNECTS = 5


class SyncEngine:
    """Runs one account's sync through a provider."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        account_id: str,
        provider: MailProvider,
        progress: SyncProgress,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        *,
        earlier: SyncReport | None = None,
        keep: Callable[[Connection, Any], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.account_id = account_id
        self.provider = provider
        self.progress = progress
        self.log = log or logging.getLogger(__name__)
        self.report = SyncReport()
        #: what earlier attempts of this job did (a rescued or retried job's result adds up)
        self.earlier = earlier or SyncReport()
        #: saves the job's running totals inside each batch's transaction
        self._keep = keep
        #: folder -> its latest plan (reconciling an unchanged folder costs nothing)
        self._plans: dict[str, FetchPlan] = {}
        #: folders the server would not open in this sync
        self._skipped: set[str] = set()
        self._sharing = Sharing(
            engine=engine,
            settings=settings,
            account_id=account_id,
            provider=provider,
            report=self.report,
            progress=progress,
            log=self.log,
            fetch=self.fetch_batches,
        )

    def run(self) -> SyncReport:
        """The whole sync; returns the whole job's report (earlier attempts included)."""
        try:
            report = self._run()
        finally:
            self._sharing.stop()  # it counts the helpers' peak memory into the report
            self.provider.close()
        return report.after(self.earlier)

    def _run(self) -> SyncReport:
        progress, provider = self.progress, self.provider
        # Before anything is planned: it moves the resume points of folders whose mail must
        # be fetched again.
        repaired = repair_identities(self.engine, self.account_id, progress)
        self.report.repaired += repaired.messages
        if provider.location is not None:  # local files: nothing worth a step
            progress.step(Step.CONNECTING, message=f"connecting to {provider.location}")
        self._retrying(provider.open)
        progress.step(Step.LISTING_FOLDERS)
        listing = self._retrying(provider.folders)
        for name, reason in listing.refused.items():
            self._skip(name, reason)
        plan = listing.folders
        states = self._ensure_folders([folder for folder, _ in plan])
        self._start_fetching(plan, states)
        for folder, status in plan:
            self._folder_step(folder.name, partial(self._fetch_new, folder.name, status))
        self._sharing.ask_to_stop()  # helpers log out while flags and deletions are read
        # Counted in folders so the bar ends full instead of falling back to an empty step.
        progress.step(Step.STORING, total=len(plan), message="flags and deletions")
        for n, (folder, status) in enumerate(plan, start=1):
            self._folder_step(folder.name, partial(self._reconcile, folder.name, status))
            progress.update(n)
        # A folder the server would not open is still there: its local copy stays as it is.
        present = [f.name for f, _ in plan] + list(listing.refused)
        with writing(self.engine) as conn:
            store_folders.mark_gone_folders(conn, self.account_id, present)
        self.report.folders = len(plan)
        return self.report

    def _start_fetching(
        self, plan: list[tuple[RemoteFolder, FolderStatus]], states: dict[str, FolderState]
    ) -> None:
        pending = [
            self.provider.pending(status, states[f.name], self._known(states[f.name]))
            for f, status in plan
        ]
        total = sum(p.units for p in pending)
        if self._sharing.wanted(max((p.units for p in pending), default=0)):
            # Now, so that they log in while the provider lists the folder's new mail.
            self._sharing.open()
        messages = [p.message for p in pending if p.message]
        message = messages[0] if len(messages) == 1 else f"{total} new messages"
        self.progress.step(Step.FETCHING, total=total, message=message)
        if done := sum(p.done for p in pending):
            self.progress.update(done)

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
        self.progress.log(f"skipped folder {name} this time: {reason}")

    # -- folders ---------------------------------------------------------------------------

    def _ensure_folders(self, folders: list[RemoteFolder]) -> dict[str, FolderState]:
        with writing(self.engine) as conn:
            return {
                f.name: store_folders.ensure_folder(
                    conn, self.account_id, f.name, delimiter=f.delimiter, special_use=f.special_use
                )
                for f in folders
            }

    def current(self, name: str) -> FolderState:
        """The folder's stored state now."""
        with writing(self.engine) as conn:
            return store_folders.ensure_folder(conn, self.account_id, name)

    def _known(self, state: FolderState) -> Callable[[], Collection[str]]:
        def known() -> Collection[str]:
            with reading(self.engine) as conn:
                return store_folders.live_keys(conn, state.id)

        return known

    def _plan(self, name: str, status: FolderStatus) -> tuple[FolderState, FetchPlan]:
        """The folder's plan; a folder whose keys mean nothing any more is reset first."""
        state = self.current(name)
        stored = self._sharing.stored_keys(name)
        plan = self.provider.plan(name, status, state, self._known(state), stored=stored)
        if plan.reset:
            with writing(self.engine) as conn:
                store_folders.reset_folder(conn, state.id, plan.validity)
            self.report.uidvalidity_resets += 1
            self.progress.log(f"UIDVALIDITY of {name} changed; fetching it again")
            self._sharing.forget(name)
            state = self.current(name)
            plan = self.provider.plan(name, status, state, self._known(state))
        for note in plan.notes:
            self.progress.log(note)
        self._plans[name] = plan
        return state, plan

    def _fetch_new(self, name: str, status: FolderStatus) -> None:
        state, plan = self._plan(name, status)
        if not plan.empty:
            self._sharing.fetch(state, plan)
        if plan.finish:
            # Every batch of the plan is stored (by us or a helper) or was skipped and
            # logged, and so is whatever a helper stored for an earlier attempt.
            with writing(self.engine) as conn:
                store_folders.save_state(conn, state.id, **plan.finish)

    def fetch_batches(
        self,
        state: FolderState,
        plan: FetchPlan,
        take: Callable[[], int | None] | None,
        singly: dict[int, str] | None = None,
        between: Callable[[], None] | None = None,
    ) -> None:
        """Fetch and store the batches ``take`` hands out, each with its checkpoint;
        ``between`` runs after each one (to hear from helpers)."""
        fetch = self.provider.fetch(plan, take, singly=singly)
        # Read on this thread: a reader thread would wait for the GIL after every socket
        # read while this one parses (see inboxd.sync.batch_store).
        with self.batch_store() as store:
            for batch in fetch:
                self.progress.check_cancelled()
                for note in batch.notes:
                    self.progress.log(note)
                self.report.unavailable += batch.unavailable
                if batch.messages or batch.checkpoint:
                    store.put(
                        state.id,
                        state.name,
                        batch.messages,
                        checkpoint=self._with_totals(_saving(state.id, batch.checkpoint)),
                        advance=batch.advance,
                        size=batch.read_bytes,
                    )
                if between is not None:
                    between()

    def totals(self) -> dict[str, Any]:
        """The job's running totals, as its checkpoint keeps them."""
        return {"report": asdict(self.report.after(self.earlier))}

    def _with_totals(
        self, checkpoint: Callable[[Connection], None] | None
    ) -> Callable[[Connection], None] | None:
        """A batch's checkpoint that also saves the job's totals (counted before it runs)."""
        keep = self._keep
        if keep is None:
            return checkpoint

        def saving(conn: Connection) -> None:
            if checkpoint is not None:
                checkpoint(conn)
            keep(conn, self.totals())

        return saving

    def batch_store(self) -> BatchStore:
        """A store for this sync's batches (counted in its report)."""
        return BatchStore(self.engine, self.account_id, self.report, self.progress)

    def _reconcile(self, name: str, status: FolderStatus) -> None:
        state = self.current(name)
        plan = self._plans.get(name)
        if plan is not None and plan.unchanged:
            self.report.folders_unchanged += 1
            return
        with writing(self.engine) as conn:
            local = store_folders.local_count(conn, state.id)
        list_keys = local != status.messages or status.highestmodseq is None
        changes = self.provider.changes(name, status, state, list_keys=list_keys)
        with writing(self.engine) as conn:
            self.report.flags_changed += store_folders.apply_flags(
                conn,
                state.id,
                {key: marks.flags for key, marks in changes.marks.items()},
                {key: m.labels for key, m in changes.marks.items() if m.labels is not None},
            )
            if changes.present is not None:
                gone = [
                    k for k in store_folders.live_keys(conn, state.id) if k not in changes.present
                ]
                self.report.expunged += store_folders.mark_expunged(conn, state.id, gone)
            count = changes.count
            if count is None:
                count = store_folders.local_count(conn, state.id)
            store_folders.save_state(
                conn,
                state.id,
                uidnext=status.uidnext,
                server_count=count,
                highestmodseq=status.highestmodseq,
                last_synced_at=utcnow(),
            )

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
                if not self.provider.capabilities.reconnects:
                    raise
                if self.report.reconnects >= MAX_RECONNECTS:
                    raise
                self.report.reconnects += 1
                self.progress.log(f"connection problem: {exc.message}; reconnecting")
                self.log.warning("connection problem (%s); reconnecting in %.1fs", exc, delay)
                # The next action connects again (lazily) and resumes from committed state.
                self.provider.close()
                self._sleep(delay)
                delay = min(delay * 2, 8.0)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.progress.check_cancelled()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _saving(folder_id: int, values: Any) -> Callable[[Connection], None] | None:
    """The checkpoint of a batch: its folder state, saved in the batch's transaction."""
    if not values:
        return None

    def checkpoint(conn: Connection) -> None:
        store_folders.save_state(conn, folder_id, **values)

    return checkpoint
