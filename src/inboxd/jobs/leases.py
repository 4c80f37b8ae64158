"""The worker side of the queue: claim with a lease, renew it, finish, rescue expired leases.

Every change a worker makes to a running job is fenced by ``lease_owner``: a worker whose
lease expired and whose job was rescued by another worker can no longer touch that job.

Claims are serialised (an advisory transaction lock on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite) because the per-owner and global running limits need a consistent count of running
jobs; rows are still taken ``FOR UPDATE SKIP LOCKED`` so a claim never waits on a row that
another transaction (a cancel, a progress update) holds. Claims are batched, so one
serialised transaction hands out many jobs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, Update, bindparam, func, select, text, update

from inboxd.config import Settings
from inboxd.db.engine import writing
from inboxd.db.tables import jobs
from inboxd.db.types import utcnow
from inboxd.jobs import events
from inboxd.jobs.model import EventType, Job, JobStatus, LeaseState
from inboxd.jobs.runs import record_runs

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x1B0D_0003
RUNNING = JobStatus.RUNNING.value
PENDING = JobStatus.PENDING.value

#: Called inside the transaction that records jobs as ended (completed, failed, cancelled),
#: so whatever it writes exists exactly when the endings do.
EndedHook = Callable[[Connection, Sequence[Job]], None]

OutcomeKind = Literal["completed", "failed", "cancelled", "retry", "released", "awaiting"]


@dataclass(frozen=True)
class Outcome:
    """How one run of a job ended, as reported by its worker."""

    job: Job
    kind: OutcomeKind
    result: Any = None
    error: str | None = None
    error_detail: str | None = None
    retry_at: datetime | None = None


@functools.cache
def _progress_update(columns: tuple[str, ...]) -> Update:
    """The progress write for one set of columns, built once: building and keying the
    statement anew cost most of the write's half millisecond, several times a second."""
    return (
        update(jobs)
        .where(
            jobs.c.id == bindparam("p_job_id"),
            jobs.c.lease_owner == bindparam("p_worker_id"),
            jobs.c.status == RUNNING,
        )
        .values({name: bindparam(name) for name in ("updated_at", *columns)})
        .returning(jobs.c.cancel_requested)
    )


class Leases:
    """Claim, heartbeat, finish and rescue, for workers."""

    def __init__(
        self, engine: Engine, settings: Settings, *, on_ended: EndedHook | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_ended = on_ended

    # -- claim -----------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        *,
        only: Sequence[str] | None = None,
    ) -> list[Job]:
        """Take up to ``limit`` ready jobs from ``queues``, respecting running limits;
        ``only`` restricts the claim to these job ids."""
        if limit <= 0:
            return []
        with writing(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK_KEY})
            ids = self._pick(conn, queues, limit, only)
            if not ids:
                return []
            now = utcnow()
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.status == PENDING)
                .values(
                    status=RUNNING,
                    attempts=jobs.c.attempts + 1,
                    lease_owner=worker_id,
                    lease_expires_at=lease_deadline(self.settings),
                    started_at=func.coalesce(jobs.c.started_at, now),
                    updated_at=now,
                )
                .returning(*jobs.c)
            ).all()
            claimed = [Job.from_row(r) for r in rows]
            events.append(
                conn,
                [
                    (
                        j.id,
                        EventType.STATUS,
                        events.status_payload(RUNNING, attempt=j.attempts, worker=worker_id),
                    )
                    for j in claimed
                ],
            )
        return sorted(claimed, key=lambda j: (-j.priority, j.run_at))

    def _pick(
        self, conn: Connection, queues: Sequence[str], limit: int, only: Sequence[str] | None
    ) -> list[str]:
        per_owner: dict[str, int] = {
            owner: int(n)
            for owner, n in conn.execute(
                select(jobs.c.owner, func.count())
                .where(jobs.c.status == RUNNING, jobs.c.owner.is_not(None))
                .group_by(jobs.c.owner)
            )
        }
        cap = self.settings.max_running_jobs
        if cap:
            running = conn.execute(
                select(func.count()).select_from(jobs).where(jobs.c.status == RUNNING)
            ).scalar_one()
            limit = min(limit, cap - int(running))
            if limit <= 0:
                return []
        owner_max = self.settings.owner_max_running
        saturated = [o for o, n in per_owner.items() if n >= owner_max]
        query = (
            select(jobs.c.id, jobs.c.owner)
            .where(
                jobs.c.status == PENDING,
                jobs.c.run_at <= utcnow(),
                jobs.c.queue.in_(list(queues)),
            )
            .order_by(jobs.c.priority.desc(), jobs.c.run_at)
            .limit(limit * 4)
            .with_for_update(skip_locked=True)
        )
        if saturated:
            query = query.where(jobs.c.owner.is_(None) | jobs.c.owner.not_in(saturated))
        if only is not None:
            query = query.where(jobs.c.id.in_(list(only)))
        picked: list[str] = []
        for job_id, owner in conn.execute(query):
            if owner is not None:
                if per_owner.get(owner, 0) >= owner_max:
                    continue
                per_owner[owner] = per_owner.get(owner, 0) + 1
            picked.append(job_id)
            if len(picked) == limit:
                break
        return picked

    # -- while running ---------------------------------------------------------------------

    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> LeaseState:
        """Renew the leases of ``job_ids``; report cancellations and lost leases."""
        wanted = set(job_ids)
        if not wanted:
            return LeaseState(frozenset(), frozenset())
        # Rows are locked in id order, like _apply locks them (no deadlock between the two).
        held_rows = (
            select(jobs.c.id)
            .where(
                jobs.c.id.in_(wanted),
                jobs.c.lease_owner == worker_id,
                jobs.c.status == RUNNING,
            )
            .order_by(jobs.c.id)
            .with_for_update()
        )
        with writing(self.engine) as conn:
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(held_rows.scalar_subquery()))
                .values(lease_expires_at=lease_deadline(self.settings))
                .returning(jobs.c.id, jobs.c.cancel_requested)
            ).all()
        held = {r.id for r in rows}
        return LeaseState(
            cancel_requested=frozenset(r.id for r in rows if r.cancel_requested),
            lost=frozenset(wanted - held),
        )

    def report_progress(
        self,
        job_id: str,
        worker_id: str,
        values: dict[str, Any],
        event: dict[str, Any] | None,
    ) -> bool | None:
        """Write progress fields (and maybe a progress event); returns cancel_requested,
        or None when this worker no longer holds the job."""
        statement = _progress_update(tuple(values))
        params = {"p_job_id": job_id, "p_worker_id": worker_id, "updated_at": utcnow(), **values}
        with writing(self.engine) as conn:
            row = conn.execute(statement, params).first()
            if row is None:
                return None
            if event is not None:
                events.append(conn, [(job_id, EventType.PROGRESS, event)])
        return bool(row.cancel_requested)

    def save_checkpoint(self, conn: Connection, job_id: str, worker_id: str, state: Any) -> None:
        """Save a job's checkpoint inside the caller's transaction, with the work it
        describes (nothing when this worker no longer holds the job)."""
        params = {"p_job_id": job_id, "p_worker_id": worker_id, "updated_at": utcnow()}
        conn.execute(_progress_update(("checkpoint",)), params | {"checkpoint": state})

    def log_event(self, job_id: str, kind: EventType, payload: dict[str, Any]) -> None:
        """Append a log or error event for a job."""
        with writing(self.engine) as conn:
            events.append(conn, [(job_id, kind, payload)])

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked this job to stop."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(jobs.c.cancel_requested).where(jobs.c.id == job_id)
            ).scalar()
            conn.rollback()
        return bool(value)

    # -- finish ----------------------------------------------------------------------------

    def finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> list[str]:
        """Record how jobs ended, in one transaction; returns ids whose lease was lost."""
        with writing(self.engine) as conn:
            lost = _apply(conn, outcomes, jobs.c.lease_owner == worker_id, self.on_ended)
        for job_id in lost:
            log.warning(
                "lost the lease of job %s before finishing it; another worker owns it now",
                job_id,
                extra={"action": "lease_lost", "job_id": job_id, "worker_id": worker_id},
            )
        return lost

    # -- rescue ----------------------------------------------------------------------------

    def rescue_expired(self) -> list[str]:
        """Put jobs whose lease expired (their worker died) back in the queue, or end
        them when they are out of attempts or were being cancelled."""
        now = utcnow()
        with writing(self.engine) as conn:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.status == RUNNING, jobs.c.lease_expires_at < now)
                .limit(500)
                .with_for_update(skip_locked=True)
            ).all()
            outcomes = [_rescue_outcome(Job.from_row(r), now) for r in rows]
            # The expiry is checked again in the UPDATE: a worker that renewed its lease
            # in the meantime keeps its job.
            lost = set(_apply(conn, outcomes, jobs.c.lease_expires_at < now, self.on_ended))
        rescued = [o.job.id for o in outcomes if o.job.id not in lost]
        for outcome in outcomes:
            if outcome.job.id in rescued:
                log.warning(
                    "rescued job %s: lease of worker %s expired",
                    outcome.job.id,
                    outcome.job.lease_owner,
                    extra={"action": "job_rescued", "job_id": outcome.job.id},
                )
        return rescued


def lease_deadline(settings: Settings) -> datetime:
    """When a lease taken or renewed now expires."""
    return utcnow() + timedelta(seconds=settings.job_lease_seconds)


def _apply(
    conn: Connection,
    outcomes: Sequence[Outcome],
    fence: Any,
    on_ended: EndedHook | None = None,
) -> list[str]:
    """Apply outcomes to running jobs that pass ``fence``; returns the ids that did not.

    Outcomes that set the same values (typically "completed" with no result) are written by
    one UPDATE per group instead of one per job. The rows are locked first, in id order as
    a heartbeat locks them: locked in completion order, a finish and a heartbeat of the same
    worker deadlock."""
    lost: list[str] = []
    finished: list[Job] = []
    entries: list[tuple[str, EventType, dict[str, Any]]] = []
    woke: set[str] = set()
    ordered = sorted(outcomes, key=lambda o: o.job.id)
    now = utcnow()
    groups: dict[str, tuple[dict[str, Any], list[Outcome]]] = {}
    for outcome in ordered:
        values = _outcome_values(outcome, now)
        key = repr(sorted((k, repr(v)) for k, v in values.items()))
        groups.setdefault(key, (values, []))[1].append(outcome)
    if len(ordered) > 1 and conn.dialect.name == "postgresql":
        conn.execute(
            select(jobs.c.id)
            .where(jobs.c.id.in_([o.job.id for o in ordered]))
            .order_by(jobs.c.id)
            .with_for_update()
        ).all()
    rows: dict[str, Row[Any]] = {}
    for values, group in groups.values():
        for updated in conn.execute(
            update(jobs)
            .where(jobs.c.id.in_([o.job.id for o in group]), jobs.c.status == RUNNING, fence)
            .values(**values)
            .returning(*jobs.c)
        ):
            rows[updated.id] = updated
    for outcome in ordered:
        row = rows.get(outcome.job.id)
        if row is None:
            lost.append(outcome.job.id)
            continue
        job = Job.from_row(row)
        entries.extend(_outcome_events(outcome, job))
        if job.status.finished:
            finished.append(job)
        else:
            woke.add(job.queue)
    record_runs(conn, finished)
    if on_ended is not None and finished:
        on_ended(conn, finished)
    events.append(conn, entries)
    for queue in woke:
        events.notify(conn, events.JOBS_CHANNEL, queue)
    return lost


def _rescue_outcome(job: Job, now: datetime) -> Outcome:
    reason = f"worker {job.lease_owner} stopped renewing its lease (crashed or killed)"
    if job.cancel_requested:
        return Outcome(job, "cancelled", error=reason)
    if job.attempts >= job.max_attempts:
        return Outcome(job, "failed", error=f"{reason}; no attempts left")
    return Outcome(job, "retry", error=reason, retry_at=now)


def _outcome_values(outcome: Outcome, now: datetime) -> dict[str, Any]:
    cleared: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    kind = outcome.kind
    if kind == "completed":
        return cleared | {
            "status": "completed",
            "result": outcome.result,
            "finished_at": now,
            "error": None,
            "error_detail": None,
            "eta_seconds": 0.0,
        }
    if kind == "failed":
        return cleared | {
            "status": "failed",
            "finished_at": now,
            "error": outcome.error,
            "error_detail": outcome.error_detail,
        }
    if kind == "cancelled":
        return cleared | {"status": "cancelled", "finished_at": now}
    if kind == "retry":
        return cleared | {
            "status": PENDING,
            "run_at": outcome.retry_at or now,
            "error": outcome.error,
            "error_detail": outcome.error_detail,
        }
    if kind == "awaiting":
        # Parked for a person's yes: the attempt does not count, the proposal is the result.
        return cleared | {
            "status": "awaiting_approval",
            "result": outcome.result,
            "attempts": jobs.c.attempts - 1,
            "error": None,
            "error_detail": None,
        }
    # released at shutdown: this attempt does not count
    return cleared | {"status": PENDING, "run_at": now, "attempts": jobs.c.attempts - 1}


def _outcome_events(outcome: Outcome, job: Job) -> list[tuple[str, EventType, dict[str, Any]]]:
    out: list[tuple[str, EventType, dict[str, Any]]] = []
    if outcome.error and outcome.kind in ("failed", "retry"):
        out.append(
            (
                job.id,
                EventType.ERROR,
                {"error": outcome.error, "attempt": job.attempts, "detail": outcome.error_detail},
            )
        )
    extra: dict[str, Any] = {}
    if outcome.kind == "retry":
        extra = {"reason": "retry", "run_at": job.run_at.isoformat()}
    elif outcome.kind == "released":
        extra = {"reason": "released at worker shutdown"}
    elif outcome.kind == "failed":
        extra = {"error": outcome.error}
    out.append((job.id, EventType.STATUS, events.status_payload(job.status.value, **extra)))
    return out
