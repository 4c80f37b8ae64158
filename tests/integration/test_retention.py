"""Retention and the scheduler, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import job_events, job_runs, jobs
from inboxd.db.types import utcnow
from inboxd.jobs.leases import Outcome
from inboxd.jobs.retention import prune
from inboxd.jobs.scheduler import Scheduler
from tests.support.apps import make_app


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, retention_per_kind=3)
    yield opened
    opened.close()


def _finish_all(app: App) -> None:
    while claimed := app.leases.claim("w", ["default"], 50):
        app.leases.finish("w", [Outcome(j, "completed") for j in claimed])


def _count(app: App, table: object) -> int:
    with reading(app.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_old_finished_jobs_go_with_their_events_and_runs_stay(app: App) -> None:
    old = app.queue.enqueue("selftest")
    new = app.queue.enqueue("selftest")
    pending = app.queue.enqueue("noop", run_at=utcnow() + timedelta(days=30))
    _finish_all(app)
    with writing(app.engine) as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == old.id).values(finished_at=utcnow() - timedelta(days=8))
        )
    report = prune(app.engine, app.settings)
    assert report.jobs == 1 and report.events == 3
    remaining = {j.id for j in app.queue.list_jobs()}
    assert remaining == {new.id, pending.id}
    with reading(app.engine) as conn:
        left = conn.execute(select(job_events.c.job_id).where(job_events.c.job_id == old.id))
        assert left.all() == []
    assert _count(app, job_runs) == 2  # the history of both runs stays


def test_per_kind_cap_keeps_the_newest(app: App) -> None:
    app.queue.enqueue_many("noop", [{}] * 5)
    keep = app.queue.enqueue("selftest")
    _finish_all(app)
    report = prune(app.engine, app.settings)
    assert report.jobs == 2
    kinds = [j.kind for j in app.queue.list_jobs()]
    assert kinds.count("noop") == 3 and keep.id in {j.id for j in app.queue.list_jobs()}


def test_old_runs_history_is_pruned_later(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path, runs_retention_days=30)
    try:
        app.queue.enqueue("noop")
        _finish_all(app)
        with writing(app.engine) as conn:
            conn.execute(update(job_runs).values(finished_at=utcnow() - timedelta(days=31)))
        assert prune(app.engine, app.settings).runs == 1
    finally:
        app.close()


def test_schedulers_racing_on_the_same_slots_enqueue_once(
    database_url: str, tmp_path: Path
) -> None:
    app = make_app(
        database_url, tmp_path, schedules=[{"name": "hourly", "kind": "noop", "every": 3600}]
    )
    try:
        start = utcnow()
        barrier = threading.Barrier(4)
        made: list[str] = []
        lock = threading.Lock()

        def run() -> None:
            scheduler = Scheduler(app)
            for hour in range(10):
                barrier.wait()
                jobs_now = scheduler.tick(start + timedelta(hours=hour))
                with lock:
                    made.extend(j.id for j in jobs_now if j.kind == "noop")
                _finish_all(app)  # so the dedupe key is free for the next slot

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        noops = app.queue.list_jobs(kind="noop")
        assert len(noops) == 10 and len(set(made)) == 10
    finally:
        app.close()


def test_invalid_schedule_is_ignored_not_fatal(database_url: str, tmp_path: Path) -> None:
    app = make_app(
        database_url,
        tmp_path,
        schedules=[{"name": "broken"}, {"name": "x", "kind": "nope", "every": 5}],
    )
    try:
        made = Scheduler(app).tick()
        assert [j.kind for j in made] == ["prune"]
    finally:
        app.close()
