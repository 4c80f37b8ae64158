"""Faults: the database restarting under running jobs loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxd.jobs.model import JobStatus
from tests.services.postgres import PostgresServer
from tests.support.apps import make_app, running_worker, wait_finished, wait_for

pytestmark = pytest.mark.postgres


def test_postgres_restart_mid_job_loses_nothing(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    app = make_app(postgres_url, tmp_path)
    try:
        job = app.queue.enqueue("selftest", {"steps": 60, "step_ms": 50})
        queued_behind = app.queue.enqueue_many("noop", [{}] * 20)
        with running_worker(app, concurrency=1):
            wait_for(lambda: app.queue.get(job.id).progress_current >= 5, timeout=30)
            postgres_server.restart()
            done = wait_finished(app, job.id, timeout=90)
            wait_for(
                lambda: all(app.queue.get(i).status.finished for i in queued_behind), timeout=60
            )
        assert done.status == JobStatus.COMPLETED
        assert done.result["steps"] == 60
        assert {app.queue.get(i).status for i in queued_behind} == {JobStatus.COMPLETED}
    finally:
        app.close()
