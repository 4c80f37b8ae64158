"""Sharing a big folder's batches with helper processes (a provider's ``helpers``
capability): the sync takes batches from the front of the plan, its helpers from the
back (see :mod:`inboxd.sync.helpers`), and whatever a helper took but did not store the
sync fetches itself at the end of the folder."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from functools import partial
from typing import Protocol

from sqlalchemy import Engine

from inboxd.config import Settings
from inboxd.providers.base import FetchPlan, MailProvider
from inboxd.store.folders import FolderState
from inboxd.sync.helpers import (
    BatchClaims,
    FolderWork,
    HelperSpec,
    LocalClaims,
    SyncHelper,
)
from inboxd.sync.progress import SyncProgress
from inboxd.sync.report import SyncReport

Take = Callable[[], int | None]


class FetchBatches(Protocol):
    """The engine's own fetch of a plan's batches (see ``SyncEngine.fetch_batches``)."""

    def __call__(
        self,
        state: FolderState,
        plan: FetchPlan,
        take: Take | None,
        singly: dict[int, str] | None = None,
        between: Callable[[], None] | None = None,
    ) -> None: ...


class Sharing:
    """One sync's helper processes: started once a folder wants them, kept for every
    folder of the sync, stopped when it ends."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        account_id: str,
        provider: MailProvider,
        report: SyncReport,
        progress: SyncProgress,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        fetch: FetchBatches,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.account_id = account_id
        self.provider = provider
        self.report = report
        self.progress = progress
        self.log = log
        self._fetch = fetch
        #: folder -> keys a helper process stored (the folder's checkpoint may lag behind)
        self._stored: dict[str, set[str]] = {}
        self._helpers: list[SyncHelper] = []
        self._claims: BatchClaims | None = None
        #: the folder the helpers share now
        self._work: FolderWork | None = None

    def wanted(self, new_messages: int) -> bool:
        """Whether a folder this big is worth sharing."""
        return (
            self.provider.capabilities.helpers
            and self.settings.sync_processes > 1
            and new_messages >= self.settings.sync_helper_min_messages
        )

    def stored_keys(self, folder: str) -> set[str]:
        """Keys helpers stored in ``folder`` during this sync."""
        return self._stored.get(folder, set())

    def forget(self, folder: str) -> None:
        """The folder was reset: what helpers stored there counts for nothing now."""
        self._stored.pop(folder, None)

    def open(self) -> None:
        """Start this sync's helper processes (once; they wait for a folder)."""
        if self._claims is not None:
            return
        try:
            self._claims = BatchClaims(0)
        except Exception as exc:  # no shared memory (no /dev/shm) or no forkserver: go alone
            self.log.warning("cannot share a sync with helper processes: %s", exc)
            return
        spec = HelperSpec(
            database_url=self.engine.url.render_as_string(hide_password=False),
            busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
            provider=self.provider.spec(),
            account_id=self.account_id,
        )
        for n in range(1, self.settings.sync_processes):
            try:
                helper = SyncHelper(spec, self._claims, name=f"inboxd-sync-helper-{n}")
            except Exception as exc:  # no processes left (ulimit), no forkserver: go alone
                self.log.warning("cannot start a sync helper process: %s", exc)
                break
            self._helpers.append(helper)
            self.report.helpers += 1

    def ask_to_stop(self) -> None:
        """Tell the helpers to stop, without waiting (they log out meanwhile)."""
        for helper in self._helpers:
            helper.ask_to_stop()

    def stop(self) -> None:
        """Stop the helpers (terminating one that does not stop)."""
        helpers, self._helpers, self._claims = self._helpers, [], None
        for helper in helpers:
            helper.stop()
            self.report.helper_peak_rss_kb = max(self.report.helper_peak_rss_kb, helper.peak_rss_kb)
            self._log_news(helper)

    def _log_news(self, helper: SyncHelper) -> None:
        """Say in the job's log what connection problems a helper got over, and (once) why
        it stopped early."""
        recovered, helper.recovered = helper.recovered, []
        for what in recovered:
            self.progress.log(f"sync helper: {what}")
        if helper.error is not None and not helper.error_logged:
            helper.error_logged = True
            self.progress.log(f"a sync helper stopped early: {helper.error}")

    def fetch(self, state: FolderState, plan: FetchPlan) -> None:
        """Fetch and store a folder's plan, with the helpers when it is worth it."""
        claims, helpers = self._start(state, plan)
        if claims is None:
            self._fetch(state, plan, LocalClaims(len(plan.batches)).take_front)
            return
        try:
            between = partial(self._collect, state, plan, helpers)
            self._fetch(state, plan, claims.take_front, between=between)
            self._finish(state, plan, claims, helpers)
        except BaseException:
            # Helpers may be mid-folder; a retry of this folder starts fresh ones.
            self.stop()
            raise
        finally:
            self._work = None

    def _start(
        self, state: FolderState, plan: FetchPlan
    ) -> tuple[BatchClaims | None, list[SyncHelper]]:
        count = len(plan.batches)
        if not self.wanted(sum(map(len, plan.batches))) or count < 2:
            return None, []
        self.open()
        claims = self._claims
        helpers = [helper for helper in self._helpers if not helper.ended]
        if claims is None or not helpers:
            return None, []
        claims.reset(count)
        self._work = FolderWork(folder_id=state.id, plan=plan)
        for helper in helpers:
            helper.assign(self._work)
        return claims, helpers

    def _collect(self, state: FolderState, plan: FetchPlan, helpers: Sequence[SyncHelper]) -> None:
        work, claims = self._work, self._claims
        for helper in helpers:
            helper.collect(partial(self._stored_batch, state, plan))
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

    def _stored_batch(
        self, state: FolderState, plan: FetchPlan, index: int, part: SyncReport
    ) -> None:
        self._stored.setdefault(state.name, set()).update(plan.batches[index])
        merge_report(self.report, part)
        self.progress.update(advance=len(plan.batches[index]), message=state.name)

    def _finish(
        self,
        state: FolderState,
        plan: FetchPlan,
        claims: BatchClaims,
        helpers: Sequence[SyncHelper],
    ) -> None:
        """Wait for the helpers, then fetch what they took but did not store."""
        wait_for(helpers, partial(self._stored_batch, state, plan), self.progress.check_cancelled)
        for helper in helpers:
            self._log_news(helper)
        shared = [helper for helper in helpers if helper.work is self._work]
        singly = {index: why for helper in shared for index, why in helper.refused.items()}
        done = {index for helper in shared for index in helper.stored}
        count = len(plan.batches)
        left = iter([n for n in range(claims.first_of_back, count) if n not in done])
        self._fetch(state, plan, lambda: next(left, None), singly=dict(sorted(singly.items())))


def merge_report(into: SyncReport, part: SyncReport) -> None:
    """Add a helper's counts of one batch to the sync's report."""
    for f in fields(SyncReport):
        if f.name == "per_folder":
            for folder, n in part.per_folder.items():
                into.per_folder[folder] = into.per_folder.get(folder, 0) + n
        elif f.name not in ("folders", "folders_unchanged", "helpers", "helper_peak_rss_kb"):
            setattr(into, f.name, getattr(into, f.name) + getattr(part, f.name))
    into.fetched_by_helpers += part.fetched


def wait_for(
    helpers: Sequence[SyncHelper],
    on_stored: Callable[[int, SyncReport], None],
    check_cancelled: Callable[[], None],
    *,
    poll: float = 0.1,
) -> None:
    """Collect from ``helpers`` until every one is done with its folder (or has ended),
    checking for cancellation."""
    while running := [h for h in helpers if not h.settled]:
        check_cancelled()
        for helper in running:
            helper.collect(on_stored, timeout=poll / len(running))
