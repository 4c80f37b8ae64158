"""The worker process: claim jobs, run them on a pool of threads, report how they ended.

Threads: the dispatcher (the caller of :meth:`Worker.run`) claims jobs in batches as slots
free up; ``concurrency`` runner threads execute tasks; a finisher writes outcomes in batches;
a heartbeat thread renews leases on its own connection, picks up cancellations and rescues
jobs of dead workers; on PostgreSQL a listener wakes the dispatcher on NOTIFY.
"""

from __future__ import annotations

import json
import logging
import os
import queue as queue_mod
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import DBAPIError, OperationalError

from inboxd import heap, logs
from inboxd.db.engine import writing
from inboxd.db.faults import ensure_reserve, is_disk_full, release_reserve
from inboxd.db.tables import workers
from inboxd.db.types import utcnow
from inboxd.errors import DiskFull, InboxdError, JobCancelled, PermanentError, RetryableError
from inboxd.jobs import events
from inboxd.jobs.backoff import retry_delay
from inboxd.jobs.leases import Outcome
from inboxd.jobs.listener import Listener
from inboxd.jobs.model import Job
from inboxd.jobs.progress import (
    AwaitApproval,
    LeaseLost,
    Progress,
    ShutdownRequested,
    TaskContext,
)
from inboxd.jobs.registry import all_tasks, get_task
from inboxd.jobs.services import JobServices

log = logging.getLogger(__name__)

_STOP = object()
_TRANSIENT_DB = (OperationalError, DBAPIError)


@dataclass
class _Running:
    job: Job
    progress: Progress
    started: float


class Worker:
    """Runs jobs from some queues with a fixed number of runner threads."""

    def __init__(
        self,
        app: JobServices,
        *,
        concurrency: int | None = None,
        queues: list[str] | None = None,
        worker_id: str | None = None,
        grace_seconds: float = 25.0,
        scheduler: bool = False,
        only: list[str] | None = None,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.concurrency = concurrency or app.settings.worker_concurrency
        self.queues = queues or ["default", "maintenance"]
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.grace_seconds = grace_seconds
        self._with_scheduler = scheduler
        self._only = only
        self._active: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: the data dir's disk reserve was given back to record a full disk's failure
        self._reserve_released = False
        self._hard_stop = threading.Event()
        self._todo: queue_mod.Queue[Any] = queue_mod.Queue()
        self._done: queue_mod.Queue[Any] = queue_mod.Queue()
        self._threads: list[threading.Thread] = []
        self._listener: Listener | None = None
        self.jobs_finished = 0

    # -- life cycle ------------------------------------------------------------------------

    def run(self, *, install_signals: bool = True, max_jobs: int | None = None) -> None:
        """Run until stopped (signal or :meth:`stop`); ``max_jobs`` stops after that many."""
        if install_signals:
            self._install_signals()
        self._register()
        self._prepare_tasks()
        heap.settle()
        self._start_threads()
        log.info(
            "worker %s started: concurrency %d, queues %s",
            self.id,
            self.concurrency,
            ",".join(self.queues),
            extra={"action": "worker_started", "worker_id": self.id},
        )
        try:
            self._dispatch(max_jobs)
        finally:
            self._shutdown()

    def stop(self, *, hard: bool = False) -> None:
        """Ask the worker to stop: finish (or, past the grace period, release) its jobs."""
        self._stopping.set()
        if hard:
            self._hard_stop.set()
        self._wake.set()

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            hard = self._stopping.is_set()
            log.warning(
                "%s received: %s",
                signal.Signals(signum).name,
                "releasing running jobs now" if hard else "finishing running jobs",
            )
            self.stop(hard=hard)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _start_threads(self) -> None:
        for n in range(self.concurrency):
            self._spawn(self._runner, f"inboxd-run-{n}")
        self._spawn(self._finisher, "inboxd-finish")
        self._spawn(self._heartbeat_loop, "inboxd-heartbeat")
        if self._with_scheduler:
            from inboxd.jobs.scheduler import Scheduler

            self._spawn(Scheduler(self.app).run_until(self._stopping), "inboxd-scheduler")
        if self.app.engine.dialect.name == "postgresql":
            self._listener = Listener(
                self.app.engine, [events.JOBS_CHANNEL, events.CANCEL_CHANNEL], self._on_notify
            )
            self._listener.start()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, max_jobs: int | None) -> None:
        poll = self._poll_interval()
        claimed_total = 0
        backoff = 0.1
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.concurrency - len(self._active)
            if max_jobs is not None:
                free = min(free, max_jobs - claimed_total)
                if free <= 0 and not self._active:
                    return
            jobs: list[Job] = []
            if free > 0:
                try:
                    jobs = self.app.leases.claim(self.id, self.queues, free, only=self._only)
                    backoff = 0.1
                except _TRANSIENT_DB as exc:
                    log.warning("claim failed (%s); retrying in %.1fs", _short(exc), backoff)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
            for job in jobs:
                self._start_job(job)
            claimed_total += len(jobs)
            if not jobs or len(jobs) < free:
                self._wake.wait(poll)

    def _poll_interval(self) -> float:
        if self.app.engine.dialect.name == "postgresql":
            return 0.5
        return self.settings.poll_interval_ms / 1000

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == events.CANCEL_CHANNEL:
            with self._lock:
                running = self._active.get(payload)
            if running is not None:
                running.progress.cancel_event.set()
            return
        if not payload or payload in self.queues:
            self._wake.set()

    def _start_job(self, job: Job) -> None:
        progress = Progress(
            self.app.leases,
            job,
            self.id,
            event_interval=self.settings.progress_interval_ms / 1000,
        )
        with self._lock:
            self._active[job.id] = _Running(job, progress, time.monotonic())
        self._todo.put(job.id)

    # -- running a job ---------------------------------------------------------------------

    def _runner(self) -> None:
        while True:
            job_id = self._todo.get()
            if job_id is _STOP:
                return
            with self._lock:
                running = self._active.get(job_id)
            if running is None:
                continue
            try:
                with logs.job_context(running.job.id, running.job.account_id):
                    outcome = self._execute(running)
            except Exception as exc:  # a bug here must not kill the runner thread
                log.exception("recording the end of job %s failed", job_id)
                outcome = Outcome(running.job, "failed", error=f"internal error: {exc}")
            self._done.put((running, outcome))

    def _execute(self, running: _Running) -> Outcome | None:
        job, progress = running.job, running.progress
        job_log = logging.LoggerAdapter(log, {"job_id": job.id, "kind": job.kind})
        job_log.info("job %s (%s) started, attempt %d", job.id, job.kind, job.attempts)
        try:
            spec = get_task(job.kind)
            params = spec.parse(job.params)
            ctx = TaskContext(
                job=job,
                progress=progress,
                settings=self.settings,
                engine=self.app.engine,
                log=job_log,
                checkpoint=job.checkpoint,
            )
            result = spec.handler(ctx, params)
            progress.flush()
            return Outcome(job, "completed", result=_jsonable(result))
        except BaseException as exc:
            return self._failure_outcome(running, exc)

    def _failure_outcome(self, running: _Running, exc: BaseException) -> Outcome | None:
        job = running.job
        if isinstance(exc, LeaseLost):
            log.warning("job %s: lease lost; abandoning this attempt", job.id)
            return None
        if isinstance(exc, ShutdownRequested):
            return Outcome(job, "released")
        if isinstance(exc, AwaitApproval):
            running.progress.flush()
            return Outcome(job, "awaiting", result=_jsonable(exc.result))
        if isinstance(exc, JobCancelled):
            return Outcome(job, "cancelled", error="cancelled on request")
        detail = _traceback_summary(exc)
        if is_disk_full(exc):
            # Retrying fills the log, not the mailbox: a person must free space first.
            full = exc if isinstance(exc, DiskFull) else DiskFull()
            log.error("job %s: %s", job.id, full.message)
            if release_reserve(self.settings.data_dir):
                log.warning("released the data dir's disk reserve to record the failure")
            self._reserve_released = True
            return Outcome(job, "failed", error=full.message, error_detail=detail)
        if isinstance(exc, (RetryableError, *_TRANSIENT_DB)):
            message = exc.message if isinstance(exc, InboxdError) else _short(exc)
            if job.attempts < job.max_attempts:
                delay = retry_delay(
                    job.attempts,
                    base=self.settings.retry_base_seconds,
                    cap=self.settings.retry_max_seconds,
                    retry_after=getattr(exc, "retry_after", None),
                )
                return Outcome(
                    job,
                    "retry",
                    error=message,
                    error_detail=detail,
                    retry_at=utcnow() + timedelta(seconds=delay),
                )
            return Outcome(
                job,
                "failed",
                error=f"{message} (gave up after {job.attempts} attempts)",
                error_detail=detail,
            )
        if isinstance(exc, PermanentError | InboxdError):
            return Outcome(job, "failed", error=exc.message, error_detail=detail)
        log.exception("job %s crashed", job.id, exc_info=exc)
        return Outcome(job, "failed", error=f"{type(exc).__name__}: {exc}", error_detail=detail)

    # -- finishing -------------------------------------------------------------------------

    def _finisher(self) -> None:
        while True:
            first = self._done.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < 200:
                try:
                    item = self._done.get_nowait()
                except queue_mod.Empty:
                    break
                if item is _STOP:
                    self._done.put(_STOP)
                    break
                batch.append(item)
            self._record(batch)

    def _record(self, batch: list[tuple[_Running, Outcome | None]]) -> None:
        outcomes = [o for _, o in batch if o is not None]
        delay = 0.1
        while outcomes:
            try:
                self.app.leases.finish(self.id, outcomes)
                self._restore_reserve()
                break
            except _TRANSIENT_DB as exc:
                # The database is away (restart?); outcomes stay in memory until it is back.
                # Should this process die meanwhile, the lease runs out and the job is rescued.
                log.warning("recording outcomes failed (%s); retrying in %.1fs", _short(exc), delay)
                if self._stopping.is_set():
                    # Asked to stop: leave them; their leases run out and a worker rescues
                    # the jobs (a full disk or a lost database must not hold a stop up).
                    log.warning("stopping without recording %d outcome(s)", len(outcomes))
                    break
                if self._hard_stop.wait(delay):
                    break
                delay = min(delay * 2, 5.0)
        for running, outcome in batch:
            elapsed = time.monotonic() - running.started
            if outcome is not None:
                log.info(
                    "job %s (%s) %s in %.2fs",
                    running.job.id,
                    running.job.kind,
                    outcome.kind,
                    elapsed,
                    extra={
                        "action": f"job_{outcome.kind}",
                        "job_id": running.job.id,
                        "account_id": running.job.account_id,
                    },
                )
            with self._lock:
                self._active.pop(running.job.id, None)
                self.jobs_finished += 1
        self._wake.set()

    def _restore_reserve(self) -> None:
        """Set the disk reserve aside again once space is back (after a full disk)."""
        if self._reserve_released:
            size = self.settings.disk_reserve_mb * 1024 * 1024
            self._reserve_released = not ensure_reserve(self.settings.data_dir, size)

    # -- heartbeat, rescue -----------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.settings.job_lease_seconds / 3)
        while not self._hard_stop.wait(interval):
            try:
                self._beat()
            except _TRANSIENT_DB as exc:
                log.warning("heartbeat failed: %s", _short(exc))

    def _beat(self) -> None:
        with self._lock:
            active = dict(self._active)
        state = self.app.leases.heartbeat(self.id, active)
        for job_id in state.cancel_requested:
            active[job_id].progress.cancel_event.set()
        for job_id in state.lost:
            if job_id in active:
                active[job_id].progress.lost_event.set()
        with writing(self.app.engine) as conn:
            conn.execute(
                update(workers).where(workers.c.id == self.id).values(last_seen_at=utcnow())
            )
        if self.app.leases.rescue_expired():
            self._wake.set()

    def _prepare_tasks(self) -> None:
        for spec in all_tasks():
            if spec.prepare is None or spec.queue not in self.queues:
                continue
            try:
                spec.prepare(self.app.settings)
            except Exception:  # a job of that kind will still run, only less warm
                log.warning("preparing %s jobs failed", spec.kind, exc_info=True)

    def _register(self) -> None:
        now = utcnow()
        with writing(self.app.engine) as conn:
            conn.execute(delete(workers).where(workers.c.id == self.id))
            conn.execute(
                insert(workers).values(
                    id=self.id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    queues=self.queues,
                    concurrency=self.concurrency,
                    started_at=now,
                    last_seen_at=now,
                )
            )

    # -- shutdown --------------------------------------------------------------------------

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.grace_seconds
        while self._active and not self._hard_stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._active:
            log.warning("stopping %d running job(s) at their next checkpoint", len(self._active))
            with self._lock:
                for running in self._active.values():
                    running.progress.shutdown_event.set()
            deadline = time.monotonic() + (0.5 if self._hard_stop.is_set() else 5.0)
            while self._active and time.monotonic() < deadline:
                time.sleep(0.05)
        self._release_leftovers()
        for _ in range(self.concurrency):
            self._todo.put(_STOP)
        self._done.put(_STOP)
        self._hard_stop.set()
        if self._listener is not None:
            self._listener.stop()
        with writing(self.app.engine) as conn:
            conn.execute(update(workers).where(workers.c.id == self.id).values(stopped_at=utcnow()))
        log.info("worker %s stopped", self.id, extra={"action": "worker_stopped"})

    def _release_leftovers(self) -> None:
        with self._lock:
            stuck = list(self._active.values())
        if not stuck:
            return
        log.warning("releasing %d job(s) whose tasks did not stop in time", len(stuck))
        try:
            self.app.leases.finish(self.id, [Outcome(r.job, "released") for r in stuck])
        except _TRANSIENT_DB as exc:
            log.error("could not release jobs (%s); their leases will expire", _short(exc))


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def _traceback_summary(exc: BaseException, limit: int = 4000) -> str:
    text = "".join(traceback.format_exception(exc, limit=8))
    return text[-limit:]


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def live_workers(app: JobServices) -> int:
    """How many worker processes renewed their heartbeat recently."""
    from sqlalchemy import func, select

    from inboxd.db.engine import reading

    since = utcnow() - timedelta(seconds=max(5.0, app.settings.job_lease_seconds))
    with reading(app.engine) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(workers)
                .where(workers.c.last_seen_at >= since, workers.c.stopped_at.is_(None))
            ).scalar_one()
        )
