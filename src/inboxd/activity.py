"""What is happening now, per account, and what happened before (runs history).

Shared by the REST API, the live channels and the CLI; it reads the queue's tables only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from inboxd.db.engine import reading
from inboxd.db.tables import ACTIVE_STATUSES, accounts, job_runs, jobs
from inboxd.db.types import utcnow
from inboxd.jobs.model import Job, JobStatus
from inboxd.vocabulary import STEP_ACTIVITY, AccountState, ActivityState

#: Account states the dashboard shows.
ACCOUNT_STATES = tuple(ActivityState)


_RANK = {JobStatus.AWAITING_APPROVAL: 0, JobStatus.PENDING: 1, JobStatus.RUNNING: 2}


def _ranks_above(job: Job, current: Job) -> bool:
    if job.status == current.status:
        return job.status != JobStatus.RUNNING  # the newest waiting one; the first running
    return _RANK[job.status] > _RANK[current.status]


def job_state(job: Job) -> ActivityState:
    """The account state a job implies."""
    if job.status == JobStatus.RUNNING:
        if not job.step and job.kind == "sync":
            # claimed, not reported a step yet: it starts by connecting
            return ActivityState.CONNECTING
        return STEP_ACTIVITY.get(job.step or "", ActivityState.PROCESSING)
    if job.status == JobStatus.PENDING:
        return ActivityState.QUEUED
    if job.status == JobStatus.AWAITING_APPROVAL:
        return ActivityState.AWAITING_APPROVAL
    if job.status == JobStatus.COMPLETED:
        return ActivityState.COMPLETED
    if job.status == JobStatus.FAILED:
        return ActivityState.ERROR
    return ActivityState.IDLE


def activity(
    job: Job | None, account_state: str = AccountState.OK, state_message: str | None = None
) -> dict[str, Any]:
    """The ``activity`` object of an account: its live state from its latest job."""
    healthy = account_state == AccountState.OK
    if job is None:
        state = ActivityState.IDLE if healthy else ActivityState.ERROR
        return {
            "state": state,
            "job_id": None,
            "step": None,
            "progress": None,
            "message": None,
            "rate": None,
            "eta_seconds": None,
            "error": None if healthy else state_message,
        }
    data = job.to_dict()
    state = job_state(job)
    if state in (ActivityState.COMPLETED, ActivityState.IDLE) and not healthy:
        state = ActivityState.ERROR
    return {
        "state": state,
        "job_id": job.id,
        "step": job.step,
        "progress": data["progress"],
        "message": job.message,
        "rate": job.rate,
        "eta_seconds": job.eta_seconds,
        "error": job.error if job.status == JobStatus.FAILED else state_message,
    }


def latest_jobs(engine: Engine, account_ids: Sequence[str]) -> dict[str, Job]:
    """Per account: its active job if it has one, else its most recent job."""
    if not account_ids:
        return {}
    found: dict[str, Job] = {}
    with reading(engine) as conn:
        active = conn.execute(
            select(jobs)
            .where(jobs.c.account_id.in_(list(account_ids)), jobs.c.status.in_(ACTIVE_STATUSES))
            .order_by(jobs.c.created_at)
        )
        for row in active:
            job = Job.from_row(row)
            current = found.get(row.account_id)
            # A running job tells more than one waiting behind it, and one waiting for a
            # worker more than a proposal waiting (maybe for days) for a person's yes.
            if current is None or _ranks_above(job, current):
                found[row.account_id] = job
        rest = [a for a in account_ids if a not in found]
        if rest:
            newest = (
                select(jobs)
                .where(jobs.c.account_id.in_(rest))
                .order_by(jobs.c.account_id, jobs.c.created_at.desc())
            )
            for row in conn.execute(newest):
                found.setdefault(row.account_id, Job.from_row(row))
    return found


def current_status(engine: Engine, owner: str | None, *, runs_limit: int = 10) -> dict[str, Any]:
    """The polling snapshot: running and waiting work per account, and recent runs."""
    query = (
        select(jobs, accounts.c.name.label("account_name"))
        .select_from(jobs.outerjoin(accounts, accounts.c.id == jobs.c.account_id))
        .where(jobs.c.status.in_((JobStatus.RUNNING.value, JobStatus.PENDING.value)))
        .order_by(jobs.c.status.desc(), jobs.c.created_at)
        .limit(200)
    )
    if owner is not None:
        query = query.where(jobs.c.owner == owner)
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    processing = []
    for row in rows:
        job = Job.from_row(row)
        data = job.to_dict()
        processing.append(
            {
                "account_id": job.account_id,
                "account_name": row.account_name,
                "job_id": job.id,
                "kind": job.kind,
                "status": job.status.value,
                "state": job_state(job),
                "step": job.step,
                "progress": data["progress"],
                "message": job.message,
                "rate": job.rate,
                "eta_seconds": job.eta_seconds,
                "started_at": data["started_at"],
            }
        )
    return {
        "current_processing": processing,
        "recent_runs": recent_runs(engine, owner, limit=runs_limit),
        "timestamp": utcnow().isoformat(),
    }


def recent_runs(
    engine: Engine, owner: str | None, *, account_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Finished runs, newest first (kept across restarts and job pruning)."""
    query = select(job_runs).order_by(job_runs.c.finished_at.desc(), job_runs.c.id.desc())
    if owner is not None:
        query = query.where(job_runs.c.owner == owner)
    if account_id is not None:
        query = query.where(job_runs.c.account_id == account_id)
    with reading(engine) as conn:
        return [_run(row._mapping) for row in conn.execute(query.limit(limit))]


def _run(m: Any) -> dict[str, Any]:
    return {
        "id": int(m["id"]),
        "job_id": m["job_id"],
        "kind": m["kind"],
        "account_id": m["account_id"],
        "status": m["status"],
        "attempts": m["attempts"],
        "started_at": m["started_at"].isoformat() if m["started_at"] else None,
        "finished_at": m["finished_at"].isoformat(),
        "duration_seconds": m["duration_seconds"],
        "result": m["result"],
        "error": m["error"],
    }
