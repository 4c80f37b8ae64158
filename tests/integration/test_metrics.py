"""``/metrics``: a known set of jobs scraped and parsed back, on SQLite and PostgreSQL; who may
scrape; the loopback-only listener."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from inboxd.api.main import create_api
from inboxd.api.metrics import parse_listen, start_listener
from inboxd.app import App
from inboxd.db.engine import writing
from inboxd.db.tables import job_runs
from inboxd.db.types import utcnow
from inboxd.errors import ConfigError
from inboxd.jobs import gauges
from inboxd.jobs.model import JobStatus
from inboxd.store.users import Users
from inboxd.sync.idle_status import IdleStatus, status_path, write_status
from tests.support.apps import AsgiClient, running_worker, wait_finished
from tests.support.server import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _keys(app: App) -> tuple[str, str]:
    users = Users(app.engine)
    admin, _ = users.ensure_admin()
    someone = users.add("someone")
    return users.create_key(admin).key, users.create_key(someone).key


def _finished_run(kind: str, status: str, seconds: float, result: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "job_id": f"{kind}-{status}-{seconds}",
        "kind": kind,
        "status": status,
        "attempts": 1,
        "started_at": now - timedelta(seconds=seconds),
        "finished_at": now,
        "duration_seconds": seconds,
        "result": result,
    }


def test_scraped_figures_match_the_jobs_in_the_database(app: App) -> None:
    admin_key, _ = _keys(app)
    api = create_api(app)
    client = AsgiClient(api, admin_key)
    # Runs count from when the server started: these two finish after it.
    done = [app.queue.enqueue("noop").id for _ in range(2)]
    with running_worker(app, concurrency=2):
        for job_id in done:
            assert wait_finished(app, job_id).status == JobStatus.COMPLETED
    ready = [app.queue.enqueue("noop") for _ in range(3)]
    later = app.queue.enqueue("noop", run_at=utcnow() + timedelta(hours=1))
    # Two syncs written to the runs history as a worker would: only the completed one's
    # messages count.
    with writing(app.engine) as conn:
        conn.execute(
            insert(job_runs),
            [
                _finished_run("sync", "completed", 2.0, {"fetched": 42, "new": 40}),
                _finished_run("sync", "failed", 0.5, None),
            ],
        )
    time.sleep(0.3)

    answer = client.call("GET", "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = _parse(answer.text)

    assert _value(samples, "inboxd_jobs", kind="noop", status="pending") == 4
    # Finished jobs are counted as runs (below), not as a gauge of the table.
    assert ("inboxd_jobs", frozenset({("kind", "noop"), ("status", "completed")})) not in samples
    # The job scheduled for later is pending but not ready.
    assert _value(samples, "inboxd_queue_depth", queue="default") == 3
    assert _value(samples, "inboxd_queue_depth", queue="maintenance") == 0
    waited = (utcnow() - min(job.run_at for job in ready)).total_seconds()
    age = _value(samples, "inboxd_queue_oldest_age_seconds", queue="default")
    assert 0.3 <= age <= waited
    assert _value(samples, "inboxd_queue_oldest_age_seconds", queue="maintenance") == 0

    noop = {"kind": "noop", "status": "completed"}
    assert _value(samples, "inboxd_job_duration_seconds_count", **noop) == 2
    assert _value(samples, "inboxd_job_duration_seconds_bucket", le="+Inf", **noop) == 2
    assert _value(samples, "inboxd_job_duration_seconds_bucket", le="1.0", **noop) == 2
    sync = {"kind": "sync", "status": "completed"}
    assert _value(samples, "inboxd_job_duration_seconds_sum", **sync) == pytest.approx(2.0)
    assert _value(samples, "inboxd_job_duration_seconds_bucket", le="1.0", **sync) == 0
    assert _value(samples, "inboxd_job_duration_seconds_bucket", le="2.5", **sync) == 1
    assert _value(samples, "inboxd_sync_messages_total") == 42
    assert _value(samples, "inboxd_sync_seconds_total") == pytest.approx(2.0)
    assert _value(samples, "inboxd_live_connections") == 0
    assert _value(samples, "inboxd_idle_connections") == 0
    assert "process_resident_memory_bytes" in {name for name, _ in samples}

    # A second scrape counts nothing twice; a job that ended since is added.
    again = _parse(client.call("GET", "/metrics").text)
    assert _value(again, "inboxd_job_duration_seconds_count", **noop) == 2
    assert _value(again, "inboxd_sync_messages_total") == 42
    with running_worker(app):
        for job in ready:
            wait_finished(app, job.id)
    app.queue.cancel(later.id)
    third = _parse(client.call("GET", "/metrics").text)
    assert _value(third, "inboxd_job_duration_seconds_count", **noop) == 5
    assert _value(third, "inboxd_queue_depth", queue="default") == 0
    # A series once seen reads 0 rather than vanishing (Prometheus would keep its last value).
    assert _value(third, "inboxd_jobs", kind="noop", status="pending") == 0
    assert _value(third, "inboxd_job_duration_seconds_count", kind="noop", status="cancelled") == 1


def test_runs_finished_before_the_server_started_are_not_counted(app: App) -> None:
    admin_key, _ = _keys(app)
    with writing(app.engine) as conn:
        conn.execute(insert(job_runs), [_finished_run("sync", "completed", 1.0, {"fetched": 7})])
    time.sleep(0.05)
    client = AsgiClient(create_api(app), admin_key)
    samples = _parse(client.call("GET", "/metrics").text)
    assert _value(samples, "inboxd_sync_messages_total") == 0
    assert not [name for name, _ in samples if name.startswith("inboxd_job_duration_seconds")]


def test_metrics_want_an_admin_key(app: App) -> None:
    admin_key, user_key = _keys(app)
    api = create_api(app)
    assert AsgiClient(api, "ibx_nope_nope").call("GET", "/metrics").status_code == 401
    refused = AsgiClient(api, user_key).call("GET", "/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert AsgiClient(api, admin_key).call("GET", "/metrics").status_code == 200


def test_idle_connections_read_what_the_watcher_provides(app: App) -> None:
    admin_key, _ = _keys(app)
    client = AsgiClient(create_api(app), admin_key)
    gauges.provide(gauges.IDLE_CONNECTIONS, lambda: 3)
    try:
        samples = _parse(client.call("GET", "/metrics").text)
    finally:
        gauges.withdraw(gauges.IDLE_CONNECTIONS)
    assert _value(samples, "inboxd_idle_connections") == 3
    assert _value(_parse(client.call("GET", "/metrics").text), "inboxd_idle_connections") == 0


def test_idle_connections_of_a_watcher_process_reach_the_web_process(app: App) -> None:
    # The watcher runs in its own process and reports through its status file.
    admin_key, _ = _keys(app)
    client = AsgiClient(create_api(app), admin_key)
    app.settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = status_path(app.settings)
    write_status(path, IdleStatus(connections=4, updated_at=time.time()))
    assert _value(_parse(client.call("GET", "/metrics").text), "inboxd_idle_connections") == 4
    write_status(path, IdleStatus(connections=4, updated_at=time.time() - 3600))  # gone
    assert _value(_parse(client.call("GET", "/metrics").text), "inboxd_idle_connections") == 0


def test_the_metrics_listener_serves_loopback_only_without_a_key(
    database_url: str, tmp_path: Path, app: App
) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        parse_listen("0.0.0.0:9464")
    with pytest.raises(ConfigError, match="loopback"):
        parse_listen("example.org:9464")
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    port = free_port()
    api = create_api(app)
    server = start_listener(api.state.inboxd.metrics, f"127.0.0.1:{port}")
    try:
        app.queue.enqueue("noop")
        samples = _parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        server.shutdown()
        server.server_close()
    assert _value(samples, "inboxd_jobs", kind="noop", status="pending") == 1
