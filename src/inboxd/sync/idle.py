"""New mail within seconds: IMAP IDLE watchers that queue a sync when INBOX changes.

One :class:`IdleMonitor` per deployment (``inboxd idle``, or the child process ``inboxd
serve`` starts) keeps one watcher thread per enabled IMAP account, up to
``INBOXD_IDLE_MAX_CONNECTIONS`` (oldest accounts first; the rest keep their periodic sync).
A watcher holds one read-only connection in IDLE on INBOX; a change (new mail, expunge,
flags) queues a sync through :func:`inboxd.sync.task.enqueue_sync`, the dedup every other
entry point uses, so a pending sync absorbs it. A sync already *running* may have read INBOX
before the change, so that account is owed one more: asked again until the running one ends.

A dropped connection is reopened with exponential backoff and jitter, and a sync is queued
once it is back (mail may have come while it was away). A refused login, a server without
IDLE or settings that cannot work stop that account's watcher: the periodic sync goes on
and marks the account as needing attention. A refused login is tried again once a sync has
logged in since (or the account's settings change); a server without IDLE only when the
settings change. The accounts table is read every ``rescan_seconds``: accounts added,
removed, disabled or changed are picked up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inboxd.config import Settings
from inboxd.db.types import utcnow
from inboxd.errors import InboxdError, PermanentError
from inboxd.jobs.backoff import retry_delay
from inboxd.jobs.model import JobStatus
from inboxd.jobs.queue import Queue
from inboxd.providers.imap.idle import RENEW_SECONDS, IdleNotOffered, InboxIdle
from inboxd.providers.imap.settings import imap_config, login_secret
from inboxd.store.accounts import NEEDS_ATTENTION, Account, Accounts
from inboxd.sync.idle_status import (
    HEARTBEAT_SECONDS,
    IdleStatus,
    remove_status,
    status_path,
    write_status,
)
from inboxd.sync.task import enqueue_sync

log = logging.getLogger(__name__)

#: A connection that stayed up this long resets the reconnect backoff.
STABLE_SECONDS = 30.0
#: How often the monitor retries the syncs it owes.
OWED_TICK_SECONDS = 0.25


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``base`` doubling per failed attempt up to ``cap``, with jitter."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt + 1``."""
        return retry_delay(attempt, base=self.base, cap=self.cap)


@dataclass
class _LeftOut:
    """An account whose watcher stopped for a reason retrying cannot fix by itself."""

    fingerprint: str
    reason: str
    since: datetime
    #: tried again once a sync has logged in after ``since`` (a refused login, not a
    #: server without IDLE)
    after_sync: bool


def fingerprint(account: Account) -> str:
    """What a watcher was started from: a change means a new connection."""
    return json.dumps([account.settings, account.state], sort_keys=True, default=str)


@dataclass(eq=False)
class _Watcher:
    """One account's IDLE connection in its own thread, reopened after drops."""

    account: Account
    monitor: IdleMonitor
    stop: threading.Event = field(default_factory=threading.Event)
    connected: bool = False
    left_out: _LeftOut | None = None
    thread: threading.Thread | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.account)

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"idle-{self.account.id[:8]}", daemon=True
        )
        self.thread.start()

    @property
    def finished(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def _run(self) -> None:
        account, monitor = self.account, self.monitor
        attempt = 0
        first = True
        while not self.stop.is_set():
            opened_at: float | None = None
            connection: InboxIdle | None = None
            delay = 0.0
            try:
                timeout = monitor.settings.imap_timeout_seconds
                connection = InboxIdle(
                    imap_config(account, timeout), login_secret(monitor.accounts, account, timeout)
                )
                connection.open()
                opened_at = time.monotonic()
                monitor.set_connected(self, True)
                log.info(
                    "IDLE on INBOX of account %s (%s)",
                    account.name,
                    account.id,
                    extra={"account_id": account.id},
                )
                if not first or attempt > 0:
                    # Mail may have come while no connection watched (the server was down).
                    monitor.changed(account, "reconnected")
                first = False
                connection.watch(
                    self.stop,
                    lambda lines: monitor.changed(account, _summary(lines)),
                    renew_seconds=monitor.renew_seconds,
                )
            except PermanentError as exc:
                self._leave(exc)
                return
            except Exception as exc:  # a drop, or anything else: reopen later
                if opened_at is not None and time.monotonic() - opened_at >= STABLE_SECONDS:
                    attempt = 0
                attempt += 1
                delay = monitor.backoff.delay(attempt)
                log.warning(
                    "IDLE connection of account %s lost (%s); reconnecting in %.1fs",
                    account.name,
                    exc,
                    delay,
                    extra={"account_id": account.id},
                )
            finally:
                monitor.set_connected(self, False)
                if connection is not None:
                    connection.close()
            self.stop.wait(delay)

    def _leave(self, exc: PermanentError) -> None:
        reason = exc.message
        self.left_out = _LeftOut(
            self.fingerprint, reason, utcnow(), after_sync=not isinstance(exc, IdleNotOffered)
        )
        log.warning(
            "not watching account %s for new mail: %s (the periodic sync goes on)",
            self.account.name,
            reason,
            extra={"account_id": self.account.id},
        )


def _may_retry(left: _LeftOut, account: Account | None) -> bool:
    """Whether an account left out may be watched again (or is gone: forget it)."""
    if account is None or fingerprint(account) != left.fingerprint:
        return True
    synced = account.last_sync_at
    return left.after_sync and synced is not None and synced > left.since


def _summary(lines: list[bytes]) -> str:
    return ", ".join(line.decode("ascii", "replace").strip()[2:40] for line in lines[:3])


class IdleMonitor:
    """Watchers for the enabled IMAP accounts, within a connection budget."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        queue: Queue,
        *,
        max_connections: int | None = None,
        rescan_seconds: float = 30.0,
        renew_seconds: float = RENEW_SECONDS,
        backoff: Backoff | None = None,
        status_file: Path | None = None,
        on_sync: Callable[[Account, str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.queue = queue
        self.accounts = Accounts(engine, settings)
        self.max_connections = (
            settings.idle_max_connections if max_connections is None else max_connections
        )
        self.rescan_seconds = rescan_seconds
        self.renew_seconds = renew_seconds
        self.backoff = backoff or Backoff()
        self.status_file = status_file if status_file is not None else status_path(settings)
        self.on_sync = on_sync
        self._lock = threading.Lock()
        self._watchers: dict[str, _Watcher] = {}
        self._retired: list[_Watcher] = []
        self._left_out: dict[str, _LeftOut] = {}
        self._over_budget: list[str] = []
        self._owed: dict[str, Account] = {}
        self._status_dirty = True
        self._status_written = 0.0

    # -- what other threads and processes read ---------------------------------------------

    @property
    def live_connections(self) -> int:
        """IDLE connections open now."""
        with self._lock:
            return sum(1 for w in self._watchers.values() if w.connected)

    @property
    def watching(self) -> list[str]:
        """Ids of the accounts with a watcher (connected or reconnecting)."""
        with self._lock:
            return list(self._watchers)

    def status(self) -> IdleStatus:
        """A snapshot for the status file."""
        with self._lock:
            left = {i: p.reason for i, p in self._left_out.items()}
            left |= dict.fromkeys(self._over_budget, "over the IDLE connection budget")
            return IdleStatus(
                connections=sum(1 for w in self._watchers.values() if w.connected),
                watching=list(self._watchers),
                left_out=left,
                max_connections=self.max_connections,
                pid=os.getpid(),
                updated_at=time.time(),
            )

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set, then close every connection."""
        log.info("IDLE watcher started (at most %d connections)", self.max_connections)
        next_scan = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    try:
                        self.refresh()
                    except (SQLAlchemyError, InboxdError) as exc:
                        log.error("IDLE watcher could not read the accounts: %s", exc)
                    next_scan = now + self.rescan_seconds
                self.pay_owed()
                self._write_status()
                stop.wait(OWED_TICK_SECONDS)
        finally:
            self.close()

    def refresh(self) -> None:
        """Start, stop and restart watchers to match the accounts table."""
        wanted = {
            a.id: a
            for a in self.accounts.list()
            if a.provider == "imap" and a.enabled and a.state != NEEDS_ATTENTION
        }
        with self._lock:
            for account_id, watcher in list(self._watchers.items()):
                if watcher.left_out is not None and watcher.finished:
                    self._left_out[account_id] = watcher.left_out
                    self._drop(account_id)
                    continue
                account = wanted.get(account_id)
                if account is None or fingerprint(account) != watcher.fingerprint:
                    self._drop(account_id)
            for account_id, left in list(self._left_out.items()):
                if _may_retry(left, wanted.get(account_id)):
                    del self._left_out[account_id]
            slots = max(0, self.max_connections - len(self._watchers))
            over: list[str] = []
            for account_id, account in wanted.items():
                if account_id in self._watchers or account_id in self._left_out:
                    continue
                if slots == 0:
                    over.append(account_id)
                    continue
                slots -= 1
                watcher = _Watcher(account, self)
                self._watchers[account_id] = watcher
                watcher.start()
            if over and over != self._over_budget:
                log.info(
                    "%d IMAP accounts over the IDLE budget of %d are left to the periodic sync",
                    len(over),
                    self.max_connections,
                )
            self._over_budget = over
            self._owed = {i: a for i, a in self._owed.items() if i in wanted}
            self._retired = [w for w in self._retired if not w.finished]
            self._status_dirty = True

    def _drop(self, account_id: str) -> None:
        """Stop a watcher without waiting for it (it may be mid-connect)."""
        watcher = self._watchers.pop(account_id)
        watcher.stop.set()
        self._retired.append(watcher)
        log.info("stopped watching account %s", account_id, extra={"account_id": account_id})

    def close(self, timeout: float = 10.0) -> None:
        """Stop every watcher and wait for them (each logs out)."""
        with self._lock:
            every = list(self._watchers.values()) + self._retired
            self._watchers.clear()
            self._retired = []
        for watcher in every:
            watcher.stop.set()
        deadline = time.monotonic() + timeout
        for watcher in every:
            if watcher.thread is not None:
                watcher.thread.join(max(0.0, deadline - time.monotonic()))
        remove_status(self.status_file)

    # -- syncs -------------------------------------------------------------------------------

    def set_connected(self, watcher: _Watcher, connected: bool) -> None:
        """A watcher's connection went up or down."""
        with self._lock:
            if watcher.connected != connected:
                watcher.connected = connected
                self._status_dirty = True

    def changed(self, account: Account, why: str) -> None:
        """INBOX of ``account`` changed (or may have): queue a sync, or owe one."""
        log.info(
            "INBOX of account %s changed (%s): queueing a sync",
            account.name,
            why,
            extra={"account_id": account.id},
        )
        if not self._enqueue(account):
            with self._lock:
                self._owed[account.id] = account
        if self.on_sync is not None:
            self.on_sync(account, why)

    def pay_owed(self) -> None:
        """Queue the syncs owed to accounts whose running sync has ended since."""
        with self._lock:
            owed = list(self._owed.values())
        for account in owed:
            if self._enqueue(account):
                with self._lock:
                    self._owed.pop(account.id, None)

    def _enqueue(self, account: Account) -> bool:
        """True when a sync that will see the change is queued (a new one, or a pending
        one); False when the account's sync is running already, or queueing failed."""
        try:
            job = enqueue_sync(self.queue, account)
        except (InboxdError, SQLAlchemyError) as exc:
            log.error("could not queue a sync of account %s: %s", account.id, exc)
            return False
        return not (job.deduplicated and job.status == JobStatus.RUNNING)

    def _write_status(self) -> None:
        now = time.monotonic()
        if not self._status_dirty and now - self._status_written < HEARTBEAT_SECONDS:
            return
        self._status_dirty = False
        self._status_written = now
        try:
            write_status(self.status_file, self.status())
        except OSError as exc:
            log.warning("could not write the IDLE status file: %s", exc)
