"""The worker: running, retrying, failing, cancelling and releasing jobs (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from inboxd.app import App
from inboxd.jobs.model import EventType, JobStatus
from tests.support.apps import make_app, running_worker, wait_finished, wait_for


def test_selftest_runs_with_progress_events(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 5, "step_ms": 20})
    with running_worker(app, concurrency=2):
        done = wait_finished(app, job.id)
    assert done.status == JobStatus.COMPLETED
    assert done.result == {"steps": 5, "resumed_from": 0, "attempt": 1}
    assert (done.progress_current, done.progress_total, done.percent) == (5, 5, 100.0)
    assert done.step == "selftest" and done.attempts == 1
    evs = app.queue.events(job.id)
    statuses = [e.payload["status"] for e in evs if e.type == EventType.STATUS]
    assert statuses == ["pending", "running", "completed"]
    progress = [e.payload for e in evs if e.type == EventType.PROGRESS]
    assert progress and progress[0]["step"] == "selftest"
    assert [p["current"] for p in progress] == sorted(p["current"] for p in progress)


def test_progress_events_are_coalesced(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path, progress_interval_ms=200)
    try:
        job = app.queue.enqueue("selftest", {"steps": 400, "step_ms": 1})
        with running_worker(app):
            done = wait_finished(app, job.id)
        assert done.progress_current == 400
        progress = [e for e in app.queue.events(job.id) if e.type == EventType.PROGRESS]
        # 400 updates over ~0.5-1 s with a 200 ms gap: a handful of events, not 400.
        assert 1 <= len(progress) < 40
    finally:
        app.close()


def test_retryable_error_backs_off_then_succeeds(app: App) -> None:
    job = app.queue.enqueue("test.flaky", {"fail_times": 2})
    with running_worker(app):
        done = wait_finished(app, job.id)
    assert done.status == JobStatus.COMPLETED and done.attempts == 3
    assert done.result == {"attempt": 3}
    evs = app.queue.events(job.id)
    errors = [e for e in evs if e.type == EventType.ERROR]
    assert [e.payload["error"] for e in errors] == ["flaky attempt 1", "flaky attempt 2"]
    retries = [e for e in evs if e.type == EventType.STATUS and e.payload.get("reason") == "retry"]
    assert len(retries) == 2
    # equal jitter: attempt n waits between base*2^(n-1)/2 and base*2^(n-1) (base 0.2 s)
    for n, (err, retry) in enumerate(zip(errors, retries, strict=True), start=1):
        from datetime import datetime

        delay = (datetime.fromisoformat(retry.payload["run_at"]) - err.created_at).total_seconds()
        nominal = 0.2 * 2 ** (n - 1)
        assert nominal / 2 - 0.05 <= delay <= nominal + 0.05


def test_retry_after_is_honoured(app: App) -> None:
    job = app.queue.enqueue("test.flaky", {"fail_times": 1, "retry_after": 1.5})
    with running_worker(app):
        wait_for(
            lambda: (
                app.queue.get(job.id).attempts == 1
                and app.queue.get(job.id).status == JobStatus.PENDING
            )
        )
        pending = app.queue.get(job.id)
        assert pending.run_at - pending.updated_at >= timedelta(seconds=1.4)
        done = wait_finished(app, job.id)
    assert done.status == JobStatus.COMPLETED


def test_out_of_attempts_fails_with_the_last_error(app: App) -> None:
    job = app.queue.enqueue("test.flaky", {"fail_times": 5})
    with running_worker(app):
        done = wait_finished(app, job.id)
    assert done.status == JobStatus.FAILED and done.attempts == 3
    assert done.error == "flaky attempt 3 (gave up after 3 attempts)"


def test_permanent_error_fails_at_once_with_traceback(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 5, "step_ms": 1, "fail_at": 3})
    crash = app.queue.enqueue("test.crash")
    with running_worker(app):
        done = wait_finished(app, job.id)
        crashed = wait_finished(app, crash.id)
    assert done.status == JobStatus.FAILED and done.attempts == 1
    assert done.error == "selftest asked to fail at step 3"
    assert done.error_detail and "PermanentError" in done.error_detail
    assert crashed.status == JobStatus.FAILED and crashed.error == "ZeroDivisionError: boom"
    [err] = [e for e in app.queue.events(crash.id) if e.type == EventType.ERROR]
    assert "ZeroDivisionError" in err.payload["detail"]


def test_cancel_running_job_stops_at_next_checkpoint(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 1000, "step_ms": 20})
    with running_worker(app):
        wait_for(lambda: app.queue.get(job.id).progress_current >= 3)
        requested = app.queue.cancel(job.id)
        assert requested.status == JobStatus.RUNNING and requested.cancel_requested
        done = wait_finished(app, job.id, timeout=5)
    assert done.status == JobStatus.CANCELLED
    assert done.progress_current < 1000


def test_graceful_stop_releases_jobs_that_do_not_finish_in_time(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 150, "step_ms": 20})
    with running_worker(app, grace_seconds=0.2) as worker:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 2)
        worker.stop()
        released = wait_for(lambda: (j := app.queue.get(job.id)).status == JobStatus.PENDING and j)
    assert released.attempts == 0  # a released attempt does not count
    assert released.checkpoint["done"] >= 2
    with running_worker(app):
        done = wait_finished(app, job.id, timeout=40)
    assert done.status == JobStatus.COMPLETED
    assert done.result["resumed_from"] >= 2


def test_expired_lease_is_rescued_and_the_job_resumes(app: App) -> None:
    job = app.queue.enqueue("selftest", {"steps": 10, "step_ms": 10})
    # A worker that claimed the job and died without a word.
    [claimed] = app.leases.claim("dead-worker", ["default"], 1)
    assert claimed.id == job.id
    with running_worker(app):
        done = wait_finished(app, job.id, timeout=20)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    errors = [e.payload["error"] for e in app.queue.events(job.id) if e.type == EventType.ERROR]
    assert errors == ["worker dead-worker stopped renewing its lease (crashed or killed)"]


def test_live_job_is_never_rescued_from_its_worker(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path, job_lease_seconds=0.6)
    try:
        job = app.queue.enqueue("selftest", {"steps": 30, "step_ms": 100})
        with running_worker(app), running_worker(app):
            done = wait_finished(app, job.id, timeout=30)
        assert done.status == JobStatus.COMPLETED and done.attempts == 1
    finally:
        app.close()


def test_many_jobs_across_two_workers_run_once(app: App, tmp_path: Path) -> None:
    record = tmp_path / "runs.log"
    ids = app.queue.enqueue_many("test.record", [{"path": str(record)}] * 300)
    with running_worker(app, concurrency=4), running_worker(app, concurrency=4):
        wait_for(lambda: app.queue.counts().get("completed", 0) == 300, timeout=60)
    starts = [line.split()[0] for line in record.read_text().splitlines() if line.endswith("start")]
    assert sorted(starts) == sorted(ids)
