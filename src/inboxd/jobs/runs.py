"""The runs history: one row per finished job, kept longer than the jobs themselves.

Both sides of the queue end jobs (the client side cancels, workers finish), so this sits
below both rather than in either.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert

from inboxd.db.tables import job_runs
from inboxd.jobs.model import FINISHED, Job


def record_runs(conn: Connection, finished: Sequence[Job]) -> None:
    """Add finished jobs to the runs history (kept longer than the jobs themselves)."""
    rows = []
    for job in finished:
        assert job.finished_at is not None and job.status.value in FINISHED
        duration = (job.finished_at - job.started_at).total_seconds() if job.started_at else None
        rows.append(
            {
                "job_id": job.id,
                "kind": job.kind,
                "owner": job.owner,
                "account_id": job.account_id,
                "status": job.status.value,
                "attempts": job.attempts,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
                "duration_seconds": duration,
                "result": job.result,
                "error": job.error,
            }
        )
    if rows:
        conn.execute(insert(job_runs), rows)
