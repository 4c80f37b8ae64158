"""The queue's figures for monitoring, read from the database at scrape time.

The truth about jobs is in the database, not in any one process, so every web process
answers the same and no multiprocess bookkeeping is needed. Each reading is one query on an
existing index (``ix_jobs_claim`` for active jobs and the ready queue,
``ix_job_runs_finished`` for new runs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, case, func, null, select

from inboxd.db.engine import reading
from inboxd.db.tables import job_runs, jobs
from inboxd.db.types import utcnow
from inboxd.vocabulary import JobStatus


@dataclass(frozen=True)
class QueueDepth:
    """Jobs of one queue ready to run now, and when the longest-waiting one became ready."""

    queue: str
    ready: int
    oldest_ready_at: datetime | None


@dataclass(frozen=True)
class FinishedRun:
    """One row of the runs history, as far as metrics need it."""

    id: int
    kind: str
    status: str
    finished_at: datetime
    duration_seconds: float | None
    #: messages the run fetched (sync runs that completed only)
    fetched: int | None


#: Statuses of jobs that are not over; finished ones are counted from the runs history.
ACTIVE = tuple(s.value for s in JobStatus if not s.finished)


def job_counts(engine: Engine) -> dict[tuple[str, str], int]:
    """Jobs not finished yet (pending, running, awaiting approval) by (kind, status)."""
    # Only the few active rows, through the status-led indexes: counting finished jobs
    # too scanned the whole table (50,000 jobs: 30-100 ms on SQLite, bench/metrics.py).
    query = (
        select(jobs.c.kind, jobs.c.status, func.count())
        .where(jobs.c.status.in_(ACTIVE))
        .group_by(jobs.c.kind, jobs.c.status)
    )
    with reading(engine) as conn:
        return {(kind, status): int(n) for kind, status, n in conn.execute(query)}


def ready_queues(engine: Engine, now: datetime | None = None) -> list[QueueDepth]:
    """Pending jobs whose time has come, per queue (retries waiting for later not counted)."""
    now = now or utcnow()
    query = (
        select(jobs.c.queue, func.count(), func.min(jobs.c.run_at))
        .where(jobs.c.status == JobStatus.PENDING.value, jobs.c.run_at <= now)
        .group_by(jobs.c.queue)
    )
    with reading(engine) as conn:
        return [QueueDepth(q, int(n), oldest) for q, n, oldest in conn.execute(query)]


def runs_finished_since(engine: Engine, since: datetime, *, sync_kind: str) -> list[FinishedRun]:
    """Runs finished at or after ``since``, oldest first."""
    completed_sync = and_(
        job_runs.c.kind == sync_kind, job_runs.c.status == JobStatus.COMPLETED.value
    )
    fetched = case((completed_sync, job_runs.c.result["fetched"].as_integer()), else_=null())
    query = (
        select(
            job_runs.c.id,
            job_runs.c.kind,
            job_runs.c.status,
            job_runs.c.finished_at,
            job_runs.c.duration_seconds,
            fetched,
        )
        .where(job_runs.c.finished_at >= since)
        .order_by(job_runs.c.finished_at)
    )
    with reading(engine) as conn:
        return [
            FinishedRun(int(row[0]), row[1], row[2], row[3], row[4], row[5])
            for row in conn.execute(query)
        ]


class RunFeed:
    """Hands out each run finished since it was made, once (for counters and histograms).

    Runs are read by ``finished_at`` with an overlap: on PostgreSQL a run may commit after a
    later one was already read, and clocks of worker hosts differ a little. Ids read within
    the overlap are remembered so nothing counts twice.
    """

    def __init__(
        self, engine: Engine, *, sync_kind: str, overlap: timedelta = timedelta(seconds=60)
    ) -> None:
        self.engine = engine
        self.sync_kind = sync_kind
        self.overlap = overlap
        self.started = utcnow()
        self._cursor = self.started
        self._seen: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def new_runs(self) -> list[FinishedRun]:
        """Runs not handed out before (never one that finished before this feed was made)."""
        with self._lock:
            rows = runs_finished_since(
                self.engine, self._cursor - self.overlap, sync_kind=self.sync_kind
            )
            fresh = [r for r in rows if r.id not in self._seen and r.finished_at >= self.started]
            for run in fresh:
                self._seen[run.id] = run.finished_at
            if rows:
                self._cursor = max(self._cursor, rows[-1].finished_at)
            horizon = self._cursor - self.overlap
            self._seen = {k: v for k, v in self._seen.items() if v >= horizon}
            return fresh
