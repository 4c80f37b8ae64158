"""``inboxd jobs watch`` and ``inboxd sync --watch``: against a running ``inboxd serve``
(``--server``, following its SSE stream) and locally, on SQLite and PostgreSQL; the end
state and exit code, progress lines, a dropped stream resumed, and Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inboxd.actions.demo import ensure_demo_account
from inboxd.app import App
from inboxd.cli.remote import Remote, StreamEvent
from inboxd.mail.demo import generate_demo_maildir
from inboxd.store.accounts import Accounts
from tests.services.postgres import PostgresServer
from tests.support.apps import REPO, running_worker, subprocess_env, wait_for
from tests.support.proxy import Proxy
from tests.support.server import ServerProcess, start_server

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_LIVE_HEARTBEAT_SECONDS": "1",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_OWNER_MAX_RUNNING": "8",
}
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
#: A progress line without a terminal: status, step, done/total and percent.
COUNTS_LINE = re.compile(r"^running \S.* [\d,]+/[\d,]+ \(\d+%\)", re.MULTILINE)


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server with its worker per database."""
    data_dir = tmp_path_factory.mktemp(f"watch-{request.param}")
    drop = None
    url = None
    if request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        if not postgres.running:
            postgres.start()
        name = f"watch_{uuid.uuid4().hex}"
        url = postgres.create_database(name)
        drop = lambda: postgres.drop_database(name)  # noqa: E731
    try:
        started = start_server(data_dir, database_url=url, env=ENV)
    except BaseException:
        if drop:
            drop()
        raise
    try:
        yield started
    finally:
        started.stop()
        if drop:
            drop()


def cli_env(tmp_path: Path, key: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI child: no terminal, wide lines, and (unless told) a
    database that does not exist, so a remote command that opened one would fail."""
    env = dict(os.environ)
    env.pop("INBOXD_API_KEY", None)
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "INBOXD_DATA_DIR": str(tmp_path / "cli-data"),
            "INBOXD_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    if key is not None:
        env["INBOXD_API_KEY"] = key
    env.update(extra)
    return env


def inboxd(
    env: dict[str, str], *args: str, stdin: Any = subprocess.DEVNULL, err_path: Path | None = None
) -> subprocess.Popen[str]:
    """``python -m inboxd ARGS`` as a child; stderr to ``err_path`` when given."""
    command = [sys.executable, "-m", "inboxd", *args]
    if err_path is None:
        return subprocess.Popen(
            command, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    with err_path.open("w") as err:  # the child keeps its own copy
        return subprocess.Popen(
            command, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=err, text=True
        )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for a child: its exit code, stdout and stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err or ""


def start_job(server: ServerProcess, kind: str, params: dict[str, Any]) -> str:
    """Queue a job through the API as the admin; its id."""
    with server.client() as client:
        response = client.post("/api/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def job_status(server: ServerProcess, job_id: str) -> str:
    """The job's status as the API tells it."""
    with server.client() as client:
        status: str = client.get(f"/api/jobs/{job_id}").json()["status"]
    return status


def wait_running(server: ServerProcess, job_id: str, err_path: Path) -> None:
    """Until the job runs and the watch has shown a progress line of it."""
    wait_for(lambda: job_status(server, job_id) == "running", timeout=60, interval=0.1)
    wait_for(lambda: COUNTS_LINE.search(err_path.read_text()), timeout=60, interval=0.1)


# -- remote -----------------------------------------------------------------------------------


def test_remote_sync_watch_reaches_completed_showing_progress(
    server: ServerProcess, tmp_path: Path
) -> None:
    with server.app() as opened:
        account = ensure_demo_account(opened, count=1500)
    env = cli_env(tmp_path, server.admin_key)
    proc = inboxd(env, "sync", account.name, "--watch", "--server", server.base_url)
    code, out, err = finish(proc)
    assert code == 0, (out, err)
    assert re.search(r"^sync completed in [\d.]+s \(job [0-9a-f-]{36}\): .*new=1500", out), out
    assert COUNTS_LINE.search(err), err
    job_id = re.findall(r"\(job ([0-9a-f-]{36})\)", out)[0]
    assert job_status(server, job_id) == "completed"
    assert "completed" not in err  # the end is said once, on stdout

    # Again with --json: the final snapshot alone, nothing new to fetch.
    proc = inboxd(env, "sync", account.id, "--watch", "--json", "--server", server.base_url)
    code, out, err = finish(proc)
    assert code == 0, (out, err)
    final = json.loads(out)
    assert final["status"] == "completed" and final["result"]["new"] == 0
    assert err == ""


def test_remote_watch_of_a_failed_job_exits_non_zero(server: ServerProcess, tmp_path: Path) -> None:
    job_id = start_job(server, "selftest", {"steps": 30, "step_ms": 20, "fail_at": 12})
    proc = inboxd(
        cli_env(tmp_path, server.admin_key), "jobs", "watch", job_id, "--server", server.base_url
    )
    code, out, err = finish(proc)
    assert code == 1, (out, err)
    assert "selftest failed in" in out and "selftest asked to fail at step 12" in out, out
    assert out.count(f"(job {job_id})") == 1


def test_remote_watch_refuses_bad_key_and_unknown_job(
    server: ServerProcess, tmp_path: Path
) -> None:
    job_id = start_job(server, "selftest", {"steps": 1, "step_ms": 0})
    code, out, err = finish(
        inboxd(
            cli_env(tmp_path, "ibx_not-a-key"), "jobs", "watch", job_id, "--server", server.base_url
        )
    )
    assert code == 1 and "HTTP 401" in err, (out, err)
    code, out, err = finish(
        inboxd(cli_env(tmp_path), "jobs", "watch", job_id, "--server", server.base_url)
    )
    assert code == 1 and "INBOXD_API_KEY" in err, (out, err)
    code, out, err = finish(
        inboxd(
            cli_env(tmp_path, server.admin_key),
            "jobs",
            "watch",
            str(uuid.uuid4()),
            "--server",
            server.base_url,
        )
    )
    assert code == 1 and "error: no job" in err, (out, err)


def test_a_dropped_stream_resumes_without_losing_or_repeating_events(
    server: ServerProcess,
) -> None:
    job_id = start_job(server, "selftest", {"steps": 40, "step_ms": 50})
    port = int(server.base_url.rsplit(":", 1)[1])
    seen: list[StreamEvent] = []
    stop = threading.Event()
    with Proxy(port) as proxy, Remote(f"http://127.0.0.1:{proxy.port}", server.admin_key) as rem:

        def read() -> None:
            for event in rem.job_events(job_id, after=0, stop=stop):
                seen.append(event)
                if event.type == "status" and event.payload["status"] == "completed":
                    stop.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for _ in range(3):
            # Each cut while the job runs: the client reopens after the last event it saw.
            before = len(seen)
            wait_for(lambda: len(seen) > before, timeout=30, interval=0.02)  # noqa: B023
            proxy.cut()
        reader.join(timeout=60)
        assert not reader.is_alive()
        sent = bytes(proxy.sent)
    assert proxy.accepted >= 4
    resumed_from = [int(n) for n in re.findall(rb"(?i)last-event-id: (\d+)", sent)]
    assert resumed_from[0] == 0 and max(resumed_from) > 0
    ids = [e.id for e in seen]
    assert ids == sorted(set(ids)), "an event came twice or out of order"
    with server.app() as opened:
        logged = opened.queue.events(job_id)
    # Progress ticks may be coalesced live, state changes never: every one arrived.
    statuses = [e.payload["status"] for e in seen if e.type == "status"]
    assert statuses == [e.payload["status"] for e in logged if e.type.value == "status"]
    assert statuses[-1] == "completed" and statuses.count("completed") == 1


# -- Ctrl-C -----------------------------------------------------------------------------------


#: Long enough to outlast a slow start of the command (it is cancelled at the end).
LONG_JOB = {"steps": 2000, "step_ms": 50}


@contextlib.contextmanager
def watching(
    server: ServerProcess, tmp_path: Path, job_id: str, stdin: Any
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``jobs watch JOB --server`` with ``stdin``, once it shows the job running; killed
    and the job cancelled when the test is done."""
    err_path = tmp_path / "stderr"
    env = cli_env(tmp_path, server.admin_key)
    proc = inboxd(
        env, "jobs", "watch", job_id, "--server", server.base_url, stdin=stdin, err_path=err_path
    )
    try:
        wait_running(server, job_id, err_path)
        yield proc, err_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        with server.client() as client:
            client.post(f"/api/jobs/{job_id}/cancel")


@pytest.mark.parametrize(
    ("answer", "code"), [("c\n", 1), ("w\n", 130), ("", 130)], ids=["cancel", "watch", "eof"]
)
def test_ctrl_c_cancels_or_stops_watching(
    server: ServerProcess, tmp_path: Path, answer: str, code: int
) -> None:
    job_id = start_job(server, "selftest", LONG_JOB)
    answers = tmp_path / "stdin"
    answers.write_text(answer)
    with answers.open() as stdin, watching(server, tmp_path, job_id, stdin) as (proc, err_path):
        proc.send_signal(signal.SIGINT)
        got, out, _ = finish(proc)
        err = err_path.read_text()
        assert got == code, (out, err)
        if answer == "c\n":
            assert "cancel the job or stop watching? [c/w] (w) c" in err
            assert "selftest cancelled in" in out
            assert job_status(server, job_id) == "cancelled"
        else:
            assert f"stopped watching; job {job_id} goes on" in err
            assert out == ""
            time.sleep(0.5)
            assert job_status(server, job_id) == "running"  # it did not stop with the watch


def test_a_second_ctrl_c_at_the_question_exits(server: ServerProcess, tmp_path: Path) -> None:
    job_id = start_job(server, "selftest", LONG_JOB)
    controller, terminal = pty.openpty()  # a terminal on stdin only: the question is asked
    try:
        with watching(server, tmp_path, job_id, terminal) as (proc, err_path):
            proc.send_signal(signal.SIGINT)
            wait_for(lambda: "[c/w]" in err_path.read_text(), timeout=30, interval=0.05)
            time.sleep(0.3)
            assert proc.poll() is None  # waiting for the answer
            proc.send_signal(signal.SIGINT)
            code, out, _ = finish(proc, timeout=30)
            assert code == 130, (out, err_path.read_text())
            assert job_status(server, job_id) == "running"
    finally:
        os.close(controller)
        os.close(terminal)


# -- local ------------------------------------------------------------------------------------


def test_local_watch_follows_a_job_run_by_another_worker(
    app: App, database_url: str, tmp_path: Path
) -> None:
    env = subprocess_env(database_url, tmp_path / "data", COLUMNS="200")
    job = app.queue.enqueue("selftest", {"steps": 15, "step_ms": 100})
    failing = app.queue.enqueue("selftest", {"steps": 5, "step_ms": 10, "fail_at": 2})
    with running_worker(app, concurrency=2):
        code, out, err = finish(inboxd(env, "jobs", "watch", job.id))
        assert code == 0, (out, err)
        assert "selftest completed in" in out and "steps=15" in out
        code, out, err = finish(inboxd(env, "jobs", "watch", failing.id, "--json"))
    assert code == 1, (out, err)
    assert json.loads(out)["status"] == "failed"


def test_local_sync_watch_runs_the_sync_here_without_a_worker(
    app: App, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    generate_demo_maildir(root, count=300)
    Accounts(app.engine, app.settings).add("maildir", "here", {"path": str(root)})
    env = subprocess_env(database_url, tmp_path / "data", COLUMNS="200")
    code, out, err = finish(inboxd(env, "sync", "here", "--watch"))
    assert code == 0, (out, err)
    assert re.search(r"^sync completed in .*new=300", out), out
    assert err.startswith("pending"), err


def test_local_ctrl_c_cancels_through_the_actions(
    app: App, database_url: str, tmp_path: Path
) -> None:
    env = subprocess_env(database_url, tmp_path / "data", COLUMNS="200")
    job = app.queue.enqueue("selftest", LONG_JOB)
    err_path = tmp_path / "stderr"
    with running_worker(app, concurrency=1), (tmp_path / "stdin").open("w+") as stdin:
        stdin.write("c\n")
        stdin.seek(0)
        proc = inboxd(env, "jobs", "watch", job.id, stdin=stdin, err_path=err_path)
        try:
            wait_for(lambda: COUNTS_LINE.search(err_path.read_text()), timeout=60, interval=0.1)
            proc.send_signal(signal.SIGINT)
            code, out, _ = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 1, (out, err_path.read_text())
    assert "selftest cancelled in" in out
    assert app.queue.get(job.id).status.value == "cancelled"


def test_stopping_a_sync_watched_and_run_here_puts_it_back_in_the_queue(
    app: App, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    generate_demo_maildir(root, count=3000)
    Accounts(app.engine, app.settings).add("maildir", "big", {"path": str(root)})
    env = subprocess_env(database_url, tmp_path / "data", COLUMNS="200")
    err_path = tmp_path / "stderr"
    proc = inboxd(env, "sync", "big", "--watch", err_path=err_path)
    try:
        wait_for(lambda: COUNTS_LINE.search(err_path.read_text()), timeout=90, interval=0.05)
        proc.send_signal(signal.SIGINT)
        code, out, _ = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err_path.read_text()
    assert code == 130, (out, err)
    assert re.search(r"stopped watching; job \S+ goes back to the queue", err), err
    (job,) = app.queue.list_jobs(kind="sync")
    assert job.status.value == "pending" and job.progress_current < 3000
