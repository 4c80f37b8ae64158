"""Faults: the database restarting under running jobs loses nothing; while it is out of
reach, the API says so (503) instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url

from inboxd.jobs.model import JobStatus
from tests.services.postgres import PostgresServer
from tests.support.apps import make_app, running_worker, wait_finished, wait_for
from tests.support.proxy import Proxy
from tests.support.server import start_server

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


def test_api_answers_503_while_the_database_is_unreachable(
    postgres_url: str, tmp_path: Path
) -> None:
    target = make_url(postgres_url)
    assert target.port is not None
    with Proxy(target.port) as proxy:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        server = start_server(tmp_path / "server", database_url=proxied, worker=False)
        try:
            with server.client() as client:
                assert client.get("/api/jobs").status_code == 200
                proxy.close()  # the database is gone: connections refused, open ones cut
                answer = client.get("/api/jobs")
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "unavailable"
                assert answer.headers["retry-after"].isdigit()
        finally:
            server.stop()
