"""Building Apps and running workers for tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from inboxd.app import App
from inboxd.config import Settings
from inboxd.jobs.model import Job, JobStatus
from inboxd.jobs.worker import Worker
from inboxd.store.accounts import Account, Accounts
from inboxd.sync.task import sync_dedupe_key
from inboxd.tasks import load_tasks

if TYPE_CHECKING:
    from tests.services.dovecot import ImapUser

REPO = Path(__file__).resolve().parents[2]
TEST_TASKS = "tests.support.tasks"


def make_app(database_url: str, tmp_path: Path, **overrides: Any) -> App:
    """An App on ``database_url`` with fast test timings, test tasks loaded."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "job_lease_seconds": 2.0,
        "retry_base_seconds": 0.2,
        "poll_interval_ms": 20,
        "progress_interval_ms": 50,
        "task_modules": [TEST_TASKS],
    }
    values.update(overrides)
    load_tasks([TEST_TASKS])
    return App.open(Settings(**values))


@contextmanager
def running_worker(app: App, **kwargs: Any) -> Iterator[Worker]:
    """A worker running in a thread of this process, stopped on exit."""
    worker = Worker(app, **kwargs)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop(hard=True)
        thread.join(timeout=15)
        assert not thread.is_alive(), "worker did not stop"


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_finished(app: App, job_id: str, timeout: float = 20.0) -> Job:
    """Wait until a job reaches an end state."""
    return wait_for(lambda: (j := app.queue.get(job_id)).status.finished and j, timeout)  # type: ignore[no-any-return]


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m inboxd ARGS`` in a child process with ``env``; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "inboxd", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def subprocess_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for an ``inboxd`` child process."""
    env = dict(os.environ)
    env.update(
        {
            "INBOXD_DATABASE_URL": database_url,
            "INBOXD_DATA_DIR": str(data_dir),
            "INBOXD_TASK_MODULES": TEST_TASKS,
            "PYTHONPATH": str(REPO),
            "INBOXD_JOB_LEASE_SECONDS": "2",
            "INBOXD_POLL_INTERVAL_MS": "20",
        }
    )
    env.update(extra)
    return env


def start_worker_process(
    env: dict[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``inboxd worker`` as a child process."""
    command = [sys.executable, "-m", "inboxd", "worker", *args]
    if log is None:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def add_imap_account(
    app: App,
    user: ImapUser,
    *,
    port: int | None = None,
    password: str | None = None,
    name: str | None = None,
    **settings: Any,
) -> Account:
    """Register ``user``'s mailbox as an IMAP account (plain IMAP unless ``settings`` say
    otherwise), with its own password unless another is given."""
    base = {"host": user.host, "port": port or user.port, "security": "none"}
    return Accounts(app.engine, app.settings).add(
        "imap",
        name or user.username,
        base | {"username": user.username} | settings,
        secret={"password": password or user.password},
    )


def sync_now(app: App, account: Account, timeout: float = 60) -> Job:
    """Enqueue a sync of ``account``, run it on a worker of this process, return the job."""
    job = app.queue.enqueue("sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id))
    with running_worker(app, concurrency=1):
        return wait_finished(app, job.id, timeout=timeout)


def sync_and_index(app: App, account: Account, timeout: float = 120) -> Job:
    """Sync ``account``, then wait for the index job the sync queued (words, threads);
    returns that index job."""
    job = app.queue.enqueue("sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id))
    with running_worker(app, concurrency=1):
        synced = wait_finished(app, job.id, timeout=timeout)
        assert synced.status == JobStatus.COMPLETED, synced.error
        queued = app.queue.list_jobs(kind="index", account_id=account.id, limit=1)
        assert queued, "the sync queued no index job"
        indexed = wait_finished(app, queued[0].id, timeout=timeout)
    assert indexed.status == JobStatus.COMPLETED, indexed.error
    return indexed


class AsgiClient:
    """The API of an App in this process, over ASGI, as one user."""

    def __init__(self, api: Any, key: str) -> None:
        self.api = api
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request, its answer read whole."""
        return asyncio.run(self._call(method, path, body))

    async def _call(self, method: str, path: str, body: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=self.headers
        ) as client:
            response = await client.request(method, path, json=body)
            await response.aread()
            return response
