"""The durable job queue, client side: enqueue, look up, cancel, retry, approve.

Workers use :mod:`inboxd.jobs.leases` for claiming and finishing jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.tables import ACTIVE_STATUSES, jobs
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, InvalidState, NotFound
from inboxd.jobs import events
from inboxd.jobs.model import EventType, Job, JobEvent, JobStatus, new_job_id
from inboxd.jobs.registry import get_task
from inboxd.jobs.runs import record_runs

log = logging.getLogger(__name__)

_MAX_PRIORITY = 1000
#: Queue positions are counted up to this many jobs ahead.
POSITION_CAP = 10_000


#: Reads and writes a cancel tries before giving up on a job that keeps changing state.
_CANCEL_ATTEMPTS = 5


class Queue:
    """Enqueue and manage jobs; every method is one short transaction."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
        account_id: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        awaiting_approval: bool = False,
    ) -> Job:
        """Create a job (its id is made here, once). With a dedupe key that is already
        held by an active job, that job is returned instead (``deduplicated=True``)."""
        spec = get_task(kind)
        clean = spec.validate(params or {})
        if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
            raise InvalidRequest(f"priority must be within ±{_MAX_PRIORITY}")
        if dedupe_key is not None and not 0 < len(dedupe_key) <= 200:
            raise InvalidRequest("dedupe key must be 1 to 200 characters")
        now = utcnow()
        status = JobStatus.AWAITING_APPROVAL if awaiting_approval else JobStatus.PENDING
        row = {
            "id": new_job_id(),
            "kind": kind,
            "owner": owner,
            "account_id": account_id,
            "queue": queue or spec.queue,
            "priority": priority,
            "status": status.value,
            "params": clean,
            "attempts": 0,
            "max_attempts": max_attempts or spec.max_attempts or self.settings.job_max_attempts,
            "run_at": run_at or now,
            "cancel_requested": False,
            "dedupe_key": dedupe_key,
            "progress_current": 0,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(5):
            try:
                return self._insert(row)
            except _Duplicate as dup:
                if dup.job is not None:
                    return dup.job
            # The holder of the key finished between our insert and our look-up: try again.
        raise InvalidState(f"could not enqueue under busy dedupe key {dedupe_key!r}")

    def _insert(self, row: dict[str, Any]) -> Job:
        key = row["dedupe_key"]
        try:
            with writing(self.engine) as conn:
                if key is not None and (existing := _active_by_key(conn, key)) is not None:
                    raise _Duplicate(existing)
                conn.execute(insert(jobs), row)
                events.append(
                    conn,
                    [(row["id"], EventType.STATUS, events.status_payload(row["status"]))],
                )
                if row["status"] == JobStatus.PENDING:
                    events.notify(conn, events.JOBS_CHANNEL, row["queue"])
        except IntegrityError as exc:
            if key is None:
                raise
            with reading(self.engine) as conn:
                raise _Duplicate(_active_by_key(conn, key)) from exc
        return self.get(row["id"])

    def enqueue_many(
        self, kind: str, params_list: Sequence[dict[str, Any]], *, queue: str | None = None
    ) -> list[str]:
        """Create many jobs of one kind in one transaction (no dedupe keys); returns ids."""
        spec = get_task(kind)
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {
                "id": new_job_id(),
                "kind": kind,
                "queue": queue or spec.queue,
                "priority": 0,
                "status": JobStatus.PENDING.value,
                "params": spec.validate(params),
                "attempts": 0,
                "max_attempts": spec.max_attempts or self.settings.job_max_attempts,
                "run_at": now,
                "cancel_requested": False,
                "progress_current": 0,
                "created_at": now,
                "updated_at": now,
            }
            for params in params_list
        ]
        with writing(self.engine) as conn:
            conn.execute(insert(jobs), rows)
            events.append(
                conn,
                [(r["id"], EventType.STATUS, events.status_payload("pending")) for r in rows],
            )
            events.notify(conn, events.JOBS_CHANNEL, rows[0]["queue"] if rows else "")
        return [r["id"] for r in rows]

    # -- look up ---------------------------------------------------------------------------

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """One job; ``owner`` restricts the look-up to that owner's jobs (else NotFound)."""
        with reading(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if row is None or (owner is not None and row.owner != owner):
                raise NotFound(f"no job {job_id!r}")
            job = Job.from_row(row)
            if job.status == JobStatus.PENDING:
                job = job.evolve(queue_position=_queue_position(conn, job))
            return job

    def list_jobs(
        self,
        *,
        status: Sequence[str] | None = None,
        kind: str | None = None,
        owner: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first, filtered."""
        query = select(jobs)
        if status:
            bad = set(status) - {s.value for s in JobStatus}
            if bad:
                raise InvalidRequest(f"unknown status {sorted(bad)[0]!r}")
            query = query.where(jobs.c.status.in_(list(status)))
        if kind:
            query = query.where(jobs.c.kind == kind)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if account_id:
            query = query.where(jobs.c.account_id == account_id)
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with reading(self.engine) as conn:
            found = [Job.from_row(row) for row in conn.execute(query)]
            return [
                j.evolve(queue_position=_queue_position(conn, j))
                if j.status == JobStatus.PENDING
                else j
                for j in found
            ]

    def events(self, job_id: str, *, after_id: int = 0, limit: int = 1000) -> list[JobEvent]:
        """Events of one job after ``after_id``."""
        return events.read_after(self.engine, after_id, job_ids=[job_id], limit=limit)

    def counts(self, *, owner: str | None = None) -> dict[str, int]:
        """How many jobs are in each status."""
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with reading(self.engine) as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    # -- change ----------------------------------------------------------------------------

    def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """Cancel: at once when not running, at the next checkpoint when running."""
        # A worker may claim the job between our read and our write (the write then
        # matches no row): read again and act on what it is now.
        for _ in range(_CANCEL_ATTEMPTS):
            job = self.get(job_id, owner=owner)
            if job.status == JobStatus.CANCELLED:
                return job
            if job.status.finished:
                raise InvalidState(f"job {job_id} already {job.status.value}; nothing to cancel")
            with writing(self.engine) as conn:
                if job.status == JobStatus.RUNNING:
                    done = self._request_cancel(conn, job_id)
                else:
                    done = finish_now(conn, job, JobStatus.CANCELLED, status_from=job.status)
            if done:
                return self.get(job_id)
        raise InvalidState(f"job {job_id} keeps changing; try again")

    @staticmethod
    def _request_cancel(conn: Connection, job_id: str) -> bool:
        done = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
            .values(cancel_requested=True, updated_at=utcnow())
        ).rowcount
        if done:
            events.append(conn, [(job_id, EventType.LOG, {"message": "cancellation requested"})])
            events.notify(conn, events.CANCEL_CHANNEL, job_id)
        return bool(done)

    def retry(self, job_id: str, *, owner: str | None = None) -> Job:
        """Put a failed or cancelled job back in the queue, attempts reset, same id."""
        job = self.get(job_id, owner=owner)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise InvalidState(
                f"job {job_id} is {job.status.value}; only failed or cancelled jobs are retried"
            )
        now = utcnow()
        try:
            with writing(self.engine) as conn:
                done = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == job.status.value)
                    .values(
                        status=JobStatus.PENDING.value,
                        attempts=0,
                        run_at=now,
                        cancel_requested=False,
                        error=None,
                        error_detail=None,
                        result=None,
                        checkpoint=None,
                        step=None,
                        message=None,
                        progress_current=0,
                        progress_total=None,
                        rate=None,
                        eta_seconds=None,
                        started_at=None,
                        finished_at=None,
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                    )
                ).rowcount
                if not done:
                    raise InvalidState(f"job {job_id} changed meanwhile; try again")
                events.append(
                    conn,
                    [(job_id, EventType.STATUS, events.status_payload("pending", reason="retry"))],
                )
                events.notify(conn, events.JOBS_CHANNEL, job.queue)
        except IntegrityError as exc:
            raise InvalidState(
                f"another active job holds dedupe key {job.dedupe_key!r}; not retried"
            ) from exc
        return self.get(job_id)

    def approve(self, job_id: str, *, owner: str | None = None) -> Job:
        """Let a job that awaits approval run."""
        job = self.get(job_id, owner=owner)
        if job.status != JobStatus.AWAITING_APPROVAL:
            raise InvalidState(f"job {job_id} is {job.status.value}, not awaiting approval")
        with writing(self.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.AWAITING_APPROVAL.value)
                .values(status=JobStatus.PENDING.value, run_at=utcnow(), updated_at=utcnow())
            )
            events.append(
                conn,
                [(job_id, EventType.STATUS, events.status_payload("pending", reason="approved"))],
            )
            events.notify(conn, events.JOBS_CHANNEL, job.queue)
        return self.get(job_id)


def enqueue_within(
    conn: Connection,
    settings: Settings,
    kind: str,
    params: dict[str, Any],
    *,
    owner: str | None = None,
    account_id: str | None = None,
    max_attempts: int | None = None,
) -> str:
    """Create a job inside the caller's transaction (no dedupe key), so it exists exactly
    when the caller's other writes do; returns its id."""
    spec = get_task(kind)
    now = utcnow()
    job_id = new_job_id()
    row = {
        "id": job_id,
        "kind": kind,
        "owner": owner,
        "account_id": account_id,
        "queue": spec.queue,
        "priority": 0,
        "status": JobStatus.PENDING.value,
        "params": spec.validate(params),
        "attempts": 0,
        "max_attempts": max_attempts or spec.max_attempts or settings.job_max_attempts,
        "run_at": now,
        "cancel_requested": False,
        "progress_current": 0,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(jobs), row)
    events.append(conn, [(job_id, EventType.STATUS, events.status_payload("pending"))])
    events.notify(conn, events.JOBS_CHANNEL, spec.queue)
    return job_id


class _Duplicate(Exception):
    def __init__(self, job: Job | None) -> None:
        super().__init__("duplicate")
        self.job = job.evolve(deduplicated=True) if job is not None else None


def _active_by_key(conn: Connection, key: str) -> Job | None:
    row = conn.execute(
        select(jobs).where(jobs.c.dedupe_key == key, jobs.c.status.in_(ACTIVE_STATUSES))
    ).first()
    return Job.from_row(row) if row is not None else None


def _queue_position(conn: Connection, job: Job) -> int:
    """1 + pending jobs of the same queue that a worker will take before this one (counted
    up to POSITION_CAP, so a look-up stays cheap behind a huge backlog)."""
    ahead_rows = (
        select(jobs.c.id)
        .where(
            jobs.c.status == JobStatus.PENDING.value,
            jobs.c.queue == job.queue,
            or_(
                jobs.c.priority > job.priority,
                and_(jobs.c.priority == job.priority, jobs.c.run_at < job.run_at),
                and_(
                    jobs.c.priority == job.priority,
                    jobs.c.run_at == job.run_at,
                    jobs.c.id < job.id,
                ),
            ),
        )
        .limit(POSITION_CAP)
        .subquery()
    )
    ahead = conn.execute(select(func.count()).select_from(ahead_rows)).scalar_one()
    return int(ahead) + 1


def finish_now(
    conn: Connection,
    job: Job,
    status: JobStatus,
    *,
    status_from: JobStatus,
    error: str | None = None,
    reason: str | None = None,
) -> bool:
    """Move a job that is not running to an end state, with its event and run record."""
    now = utcnow()
    done = conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status == status_from.value)
        .values(status=status.value, finished_at=now, updated_at=now, error=error)
    ).rowcount
    if not done:
        return False
    events.append(
        conn, [(job.id, EventType.STATUS, events.status_payload(status.value, reason=reason))]
    )
    record_runs(conn, [job.evolve(status=status, finished_at=now, error=error)])
    return True
