"""Retention: finished jobs older than the limit or beyond the per-kind cap go, with their
events; the history of runs is kept longer; webhook deliveries that ended go with the jobs'
limit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, Select, delete, select

from inboxd.config import Settings
from inboxd.db.engine import reading, writing
from inboxd.db.tables import job_events, job_runs, jobs, webhook_deliveries, workers
from inboxd.db.types import utcnow
from inboxd.jobs.model import FINISHED

_CHUNK = 500


@dataclass
class PruneReport:
    """What one prune removed."""

    jobs: int = 0
    events: int = 0
    runs: int = 0
    workers: int = 0
    deliveries: int = 0

    def as_dict(self) -> dict[str, int]:
        """A JSON-ready view."""
        return asdict(self)


def prune(engine: Engine, settings: Settings) -> PruneReport:
    """Apply the retention policy; deletes in small transactions."""
    report = PruneReport()
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    expired = select(jobs.c.id).where(jobs.c.status.in_(FINISHED), jobs.c.finished_at < cutoff)
    _delete_jobs(engine, expired, report)
    for kind in _kinds(engine):
        over_cap = (
            select(jobs.c.id)
            .where(jobs.c.kind == kind, jobs.c.status.in_(FINISHED))
            .order_by(jobs.c.finished_at.desc())
            .offset(settings.retention_per_kind)
        )
        _delete_jobs(engine, over_cap, report)
    runs_cutoff = utcnow() - timedelta(days=settings.runs_retention_days)
    with writing(engine) as conn:
        report.runs = conn.execute(
            delete(job_runs).where(job_runs.c.finished_at < runs_cutoff)
        ).rowcount
        report.deliveries = conn.execute(
            delete(webhook_deliveries).where(
                webhook_deliveries.c.status != "pending", webhook_deliveries.c.created_at < cutoff
            )
        ).rowcount
        stale = utcnow() - timedelta(days=1)
        report.workers = conn.execute(
            delete(workers).where(workers.c.last_seen_at < stale)
        ).rowcount
    return report


def _kinds(engine: Engine) -> list[str]:
    with reading(engine) as conn:
        return [k for (k,) in conn.execute(select(jobs.c.kind).distinct())]


def _delete_jobs(engine: Engine, ids_query: Select[tuple[str]], report: PruneReport) -> None:
    while True:
        with writing(engine) as conn:
            ids = _next_chunk(conn, ids_query)
            if not ids:
                return
            report.events += conn.execute(
                delete(job_events).where(job_events.c.job_id.in_(ids))
            ).rowcount
            report.jobs += conn.execute(delete(jobs).where(jobs.c.id.in_(ids))).rowcount


def _next_chunk(conn: Connection, ids_query: Select[tuple[str]]) -> list[str]:
    subquery = ids_query.subquery()
    rows = conn.execute(select(subquery.c.id).limit(_CHUNK)).all()
    return [r.id for r in rows]
