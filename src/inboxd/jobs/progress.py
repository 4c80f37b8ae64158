"""What a task sees of its job: the Progress handle and the TaskContext.

A task never touches the queue's tables. It reports its step and counts, checks for
cancellation between micro-batches, and may save a checkpoint to resume from after a crash.
Progress is written to the job row at most every ``_ROW_INTERVAL`` and as a progress event
at most every ``progress_interval_ms``; step changes and checkpoints are written at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from inboxd.config import Settings
from inboxd.errors import JobCancelled
from inboxd.jobs.model import EventType, Job, LeaseState

_ROW_INTERVAL = 0.05
_CANCEL_CHECK_INTERVAL = 0.2
_RATE_WINDOW = 10.0


class LeaseLost(JobCancelled):
    """This worker no longer holds the job (its lease expired and it was rescued)."""


class ShutdownRequested(JobCancelled):
    """The worker is shutting down; the job goes back to the queue."""


class AwaitApproval(Exception):
    """Raised by a task whose work so far needs a person's yes before it goes on: the job
    parks in ``awaiting_approval`` with ``result`` (its proposal) until approved, then runs
    again (the attempt is not counted); the task tells the two runs apart by its own state."""

    def __init__(self, result: Any = None) -> None:
        super().__init__("awaiting approval")
        self.result = result


class LeaseHolder(Protocol):
    """What a Progress handle writes through: the worker's side of the queue
    (:class:`inboxd.jobs.leases.Leases`), or a fake in tests."""

    def report_progress(
        self, job_id: str, worker_id: str, values: dict[str, Any], event: dict[str, Any] | None
    ) -> bool | None:
        """Write progress (and maybe its event); cancel_requested, or None if not held."""

    def log_event(self, job_id: str, kind: EventType, payload: dict[str, Any]) -> None:
        """Append a log or error event for a job."""

    def save_checkpoint(self, conn: Connection, job_id: str, worker_id: str, state: Any) -> None:
        """Save a checkpoint inside the caller's transaction."""

    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> LeaseState:
        """Renew leases; report cancellations and lost leases."""

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked this job to stop."""


class Progress:
    """Report step, counts and messages; check for cancellation; save checkpoints."""

    def __init__(
        self, leases: LeaseHolder, job: Job, worker_id: str, *, event_interval: float
    ) -> None:
        self._leases = leases
        self._job_id = job.id
        self._worker_id = worker_id
        self._event_interval = event_interval
        self._lock = threading.Lock()
        self.step_name: str | None = job.step
        self.current = 0
        self.total: int | None = None
        self.message: str | None = None
        self._samples: list[tuple[float, int]] = []
        self._dirty: dict[str, Any] = {}
        #: gives the state saved as the checkpoint with every progress write (see keep)
        self._keeper: Callable[[], Any] | None = None
        self._last_row = 0.0
        #: something was reported that is not yet written as a row and an event
        self._unwritten = False
        self._last_event = 0.0
        self._last_cancel_check = time.monotonic()
        #: set by the worker (heartbeat, NOTIFY) or by a progress write that saw the flag
        self.cancel_event = threading.Event()
        self.shutdown_event = threading.Event()
        self.lost_event = threading.Event()

    # -- reporting -------------------------------------------------------------------------

    def step(self, name: str, *, total: int | None = None, message: str | None = None) -> None:
        """Start a new step (a :class:`~inboxd.vocabulary.Step`, or a task's own name);
        resets the counts."""
        # Stored as a plain str: the row and the event payload stay exactly what they were.
        with self._lock:
            self.step_name, self.current, self.total = str(name), 0, total
            self.message = message
            self._samples = [(time.monotonic(), 0)]
            self._unwritten = True
        self._flush(force=True)

    def update(
        self,
        current: int | None = None,
        *,
        advance: int = 0,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Set or advance the count; written out in coalesced form."""
        with self._lock:
            if current is not None:
                self.current = current
            self.current += advance
            if total is not None:
                self.total = total
            if message is not None:
                self.message = message
            now = time.monotonic()
            self._samples.append((now, self.current))
            while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW:
                self._samples.pop(0)
            self._unwritten = True
        self._flush()
        self.check_cancelled()

    def log(self, message: str, **data: Any) -> None:
        """Write a log event for this job (shown in its event stream)."""
        self._leases.log_event(self._job_id, EventType.LOG, {"message": message, **data})

    def checkpoint(self, state: Any) -> None:
        """Save JSON-able state; a rescued or retried attempt gets it back as
        ``ctx.checkpoint``."""
        with self._lock:
            self._dirty["checkpoint"] = state
            self._unwritten = True
        # The row is written now (a crash must not lose the checkpoint); the event can wait.
        self._flush(force=True, event=False)

    def keep(self, state: Callable[[], Any]) -> None:
        """Save what ``state()`` returns as the checkpoint with every progress write from now
        on (coalesced, unlike :meth:`checkpoint`): how a task keeps running totals, such as
        a result's counts, for an attempt that takes over after a crash."""
        self._keeper = state

    def keep_in(self, conn: Connection, state: Any) -> None:
        """Save ``state`` as the checkpoint inside the caller's transaction, so that it
        commits (or not) with the work it describes."""
        self._leases.save_checkpoint(conn, self._job_id, self._worker_id, state)

    def heartbeat(self) -> None:
        """Prove liveness now (the worker also renews leases in the background)."""
        state = self._leases.heartbeat(self._worker_id, [self._job_id])
        if self._job_id in state.lost:
            self.lost_event.set()
        if self._job_id in state.cancel_requested:
            self.cancel_event.set()
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled (call between micro-batches)."""
        if self.lost_event.is_set():
            raise LeaseLost()
        if self.shutdown_event.is_set():
            raise ShutdownRequested()
        if self.cancel_event.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if now - self._last_cancel_check >= _CANCEL_CHECK_INTERVAL:
            self._last_cancel_check = now
            if self._leases.cancel_requested(self._job_id):
                self.cancel_event.set()
                raise JobCancelled()

    # -- derived figures -------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Items per second over the last few seconds."""
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 and c1 >= c0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, when the total is known."""
        rate = self.rate
        if self.total is None or not rate:
            return None
        return max(0.0, (self.total - self.current) / rate)

    @property
    def percent(self) -> float | None:
        """Percent done, when the total is known."""
        if not self.total:
            return None
        return round(min(100.0, 100.0 * self.current / self.total), 1)

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the latest progress now (the worker calls this when the task ends);
        nothing when everything reported is already written (or nothing was reported)."""
        if self._unwritten:
            self._flush(force=True)

    def _flush(self, *, force: bool = False, event: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_row < _ROW_INTERVAL:
            return
        with self._lock:
            rate, eta = self.rate, self.eta_seconds
            values: dict[str, Any] = {
                "step": self.step_name,
                "progress_current": self.current,
                "progress_total": self.total,
                "message": self.message,
                "rate": round(rate, 3) if rate is not None else None,
                "eta_seconds": round(eta, 1) if eta is not None else None,
            }
            if self._keeper is not None:
                values["checkpoint"] = self._keeper()
            values.update(self._dirty)
            self._dirty = {}
            payload = None
            due = now - self._last_event >= self._event_interval
            if (force and event) or due:
                payload = {
                    "step": self.step_name,
                    "current": self.current,
                    "total": self.total,
                    "percent": self.percent,
                    "message": self.message,
                    "rate": values["rate"],
                    "eta_seconds": values["eta_seconds"],
                }
                self._last_event = now
            self._last_row = now
            # Written without its event (coalesced): the final flush still writes one.
            self._unwritten = payload is None
        seen = self._leases.report_progress(self._job_id, self._worker_id, values, payload)
        if seen is None:
            self.lost_event.set()
        elif seen:
            self.cancel_event.set()


@dataclass
class TaskContext:
    """Everything a task gets besides its params."""

    job: Job
    progress: Progress
    settings: Settings
    engine: Engine
    log: logging.LoggerAdapter[logging.Logger]
    checkpoint: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self.job.attempts
