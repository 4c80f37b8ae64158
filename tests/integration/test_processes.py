"""Worker and scheduler processes for real: SIGKILL, SIGTERM, several processes at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inboxd.app import App
from inboxd.jobs.model import EventType, JobStatus
from tests.support.apps import (
    start_worker_process,
    subprocess_env,
    wait_finished,
    wait_for,
)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return subprocess_env(database_url, tmp_path / "data")


def _alive(procs: list[subprocess.Popen[bytes]]) -> bool:
    dead = [p.args for p in procs if p.poll() is not None]
    assert not dead, f"worker process exited early: {dead}"
    return True


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_two_worker_processes_run_thousands_of_jobs_exactly_once(
    app: App, env: dict[str, str], tmp_path: Path
) -> None:
    record = tmp_path / "runs.log"
    ids = app.queue.enqueue_many("test.record", [{"path": str(record)}] * 2000)
    procs = [
        start_worker_process(env, "-c", "4", "--no-scheduler", log=tmp_path / f"w{n}.log")
        for n in range(2)
    ]
    try:
        wait_for(
            lambda: _alive(procs) and app.queue.counts().get("completed", 0) == 2000, timeout=180
        )
    finally:
        for proc in procs:
            assert _stop(proc) == 0
    lines = record.read_text().splitlines()
    starts = [line.split()[0] for line in lines if line.endswith("start")]
    assert len(starts) == 2000 and sorted(starts) == sorted(ids)
    pids = {line.split()[1] for line in lines}
    assert len(pids) == 2, "both processes should have taken jobs"
    assert {j.attempts for j in app.queue.list_jobs(limit=3000)} == {1}


def test_sigkill_mid_job_is_rescued_and_resumes_from_checkpoint(
    app: App, env: dict[str, str], tmp_path: Path
) -> None:
    job = app.queue.enqueue("selftest", {"steps": 30, "step_ms": 50})
    first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
    try:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 5)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert app.queue.get(job.id).status == JobStatus.RUNNING  # nobody told the queue
    second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
    try:
        done = wait_finished(app, job.id, timeout=30)
    finally:
        assert _stop(second) == 0
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    assert done.result["resumed_from"] >= 5
    statuses = [e.payload["status"] for e in app.queue.events(job.id) if e.type == EventType.STATUS]
    assert statuses == ["pending", "running", "pending", "running", "completed"]


def test_sigterm_lets_the_running_job_finish(app: App, env: dict[str, str], tmp_path: Path) -> None:
    job = app.queue.enqueue("selftest", {"steps": 10, "step_ms": 100})
    proc = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w.log")
    wait_for(lambda: app.queue.get(job.id).status == JobStatus.RUNNING)
    assert _stop(proc, signal.SIGTERM) == 0
    assert app.queue.get(job.id).status == JobStatus.COMPLETED


def test_second_sigterm_releases_the_job_without_losing_it(
    app: App, env: dict[str, str], tmp_path: Path
) -> None:
    job = app.queue.enqueue("selftest", {"steps": 200, "step_ms": 50})
    proc = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w.log")
    wait_for(lambda: app.queue.get(job.id).progress_current >= 2)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert _stop(proc, signal.SIGTERM) == 0
    released = app.queue.get(job.id)
    assert released.status == JobStatus.PENDING and released.lease_owner is None
    assert released.attempts == 0


def test_two_schedulers_enqueue_each_slot_once(app: App, database_url: str, tmp_path: Path) -> None:
    schedules = json.dumps([{"name": "tick", "kind": "noop", "every": 1}])
    env = subprocess_env(database_url, tmp_path / "data", INBOXD_SCHEDULES=schedules)
    procs = [start_worker_process(env, "-c", "2", log=tmp_path / f"w{n}.log") for n in range(2)]
    # Until four slots passed, however long the workers took to start (a loaded machine).
    wait_for(lambda: len(app.queue.list_jobs(kind="noop")) >= 4, timeout=60, interval=0.2)
    for proc in procs:
        assert _stop(proc) == 0
    ticks = app.queue.list_jobs(kind="noop")
    slots = [j.run_at.timestamp() for j in ticks]  # a scheduled job is due at its slot's start
    assert len(slots) == len(set(slots)), "a slot was enqueued twice"
    # One job a second of schedule (and one slot ahead at most), not one per scheduler.
    assert 4 <= len(ticks) <= max(slots) - min(slots) + 2
    # A scheduler may enqueue the next slot's job just before its worker is told to stop;
    # that one waits for the next worker. Every earlier one ran.
    last = max(slots)
    assert all(
        j.status == JobStatus.COMPLETED
        or (j.status == JobStatus.PENDING and j.run_at.timestamp() == last)
        for j in ticks
    ), [(j.run_at, j.status) for j in ticks]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inboxd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    made = _cli(
        env, "jobs", "enqueue", "selftest", "--param", "steps=3", "-p", "step_ms=10", "--json"
    )
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["status"] == "pending" and job["progress"] == {
        "current": 0,
        "total": None,
        "percent": None,
    }
    worker = _cli(env, "worker", "--burst", "1", "--no-scheduler")
    assert worker.returncode == 0, worker.stderr
    waited = _cli(env, "jobs", "wait", job["id"], "--timeout", "10", "--json")
    assert waited.returncode == 0
    final = json.loads(waited.stdout)
    assert final["status"] == "completed" and final["progress"]["percent"] == 100.0
    for key in ("id", "kind", "status", "step", "progress", "attempts", "error", "result"):
        assert key in final
    shown = _cli(env, "jobs", "show", job["id"])
    assert job["id"] in shown.stdout and "completed" in shown.stdout
    lines = _cli(env, "jobs", "events", job["id"], "--json").stdout.splitlines()
    assert json.loads(lines[0])["type"] == "status"
    listed = json.loads(_cli(env, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in listed] == [job["id"]]


def test_cli_errors_are_clear(env: dict[str, str]) -> None:
    unknown = _cli(env, "jobs", "enqueue", "nope")
    assert unknown.returncode == 2 and "unknown job kind 'nope'" in unknown.stderr
    bad = _cli(env, "jobs", "enqueue", "selftest", "-p", "steps=-3")
    assert bad.returncode == 2 and "steps" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli(env, "jobs", "show", "does-not-exist")
    assert missing.returncode == 1 and "no job" in missing.stderr
    made = json.loads(_cli(env, "jobs", "enqueue", "selftest", "--json").stdout)
    timeout = _cli(env, "jobs", "wait", made["id"], "--timeout", "0.3")
    assert timeout.returncode == 3
    cancelled = _cli(env, "jobs", "cancel", made["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    failed_wait = _cli(env, "jobs", "wait", made["id"])
    assert failed_wait.returncode == 1
    assert os.environ.get("INBOXD_DATABASE_URL") is None or True
