"""Changes in worker processes on a Maildir (SQLite and PostgreSQL): a worker SIGKILLed while
a batch is journaled ``planned`` (between acting and settling) leaves the job to the next
worker, which settles those rows by asking the server and finishes: every message moved
once and journaled once, and the undo puts all of them back. And the command line (SQLite):
``inboxd mark`` waits for its job, ``inboxd undo`` undoes it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxd.actions import changes as actions
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import change_journal, folders, locations, messages
from inboxd.errors import InvalidState
from inboxd.jobs.model import Job, JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import JournalState
from tests.support.apps import (
    make_app,
    run_cli,
    running_worker,
    start_worker_process,
    subprocess_env,
    sync_now,
    wait_finished,
    wait_for,
)

#: Messages in the INBOX: two batches of the change job.
COUNT = 1000


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=500)
    yield opened
    opened.close()


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{n % 7}@lists.example"
    msg["To"] = "me@example.org"
    msg["Subject"] = f"digest {n}"
    msg["Message-ID"] = f"<d{n}@lists.example>"
    msg.set_content(f"digest number {n}\n")
    return msg.as_bytes()


def maildir_account(app: App, root: Path, count: int) -> Account:
    for name in (root, root / ".Archive"):
        for sub in ("cur", "new", "tmp"):
            (name / sub).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (root / "cur" / f"{1_700_000_000 + n}.M{n}P1.test:2,").write_bytes(mail(n))
    account = Accounts(app.engine, app.settings).add("maildir", "home", {"path": str(root)})
    assert sync_now(app, account, timeout=120).status == JobStatus.COMPLETED
    # The index job the sync queued is not this test's: out of the workers' way.
    for queued in app.queue.list_jobs(account_id=account.id):
        if not queued.status.finished:
            app.queue.cancel(queued.id)
    return account


def files(folder: Path) -> list[Path]:
    return [p for sub in ("cur", "new") for p in (folder / sub).iterdir()]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def planned_rows(app: App, job_id: str) -> int:
    cj = change_journal.c
    with reading(app.engine) as conn:
        return int(
            conn.execute(
                select(func.count()).where(cj.job_id == job_id, cj.state == JournalState.PLANNED)
            ).scalar_one()
        )


def test_sigkill_between_acting_and_settling_then_resume(
    app: App, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "mail"
    account = maildir_account(app, root, COUNT)
    with reading(app.engine) as conn:
        ids = sorted(
            int(pk)
            for pk in conn.execute(
                select(messages.c.id).where(messages.c.account_id == account.id)
            ).scalars()
        )
    job = app.queue.enqueue(
        "change", {"message_ids": ids, "archive": True, "mark": "read"}, account_id=account.id
    )
    # Batches of 500: the kill lands after the first, while a later one is only planned.
    env = subprocess_env(database_url, tmp_path / "data", INBOXD_CHANGE_BATCH="500")
    first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
    try:
        # Past the first batch, and a later one journaled but not settled: kill it there.
        wait_for(lambda: app.queue.get(job.id).progress_current >= 500, timeout=60)
        wait_for(lambda: planned_rows(app, job.id) > 0, timeout=30, interval=0.001)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    left = planned_rows(app, job.id)
    assert left > 0
    assert app.queue.get(job.id).status == JobStatus.RUNNING  # nobody told the queue
    second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
    try:
        done: Job = wait_finished(app, job.id, timeout=90)
    finally:
        stop(second)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2, done.error
    assert done.result["done"] == COUNT and done.result["failed"] == 0
    # On the server: each message once, in the archive, read.
    assert files(root) == []
    archived = files(root / ".Archive")
    assert len(archived) == COUNT
    assert all(p.name.endswith(":2,S") for p in archived)
    # In the journal: one row per message, all done; in the store: each in Archive.
    cj = change_journal.c
    with reading(app.engine) as conn:
        rows = conn.execute(select(cj.message_pk, cj.state).where(cj.job_id == job.id)).all()
        placed = conn.execute(
            select(folders.c.name, func.count())
            .join(locations, locations.c.folder_id == folders.c.id)
            .where(folders.c.account_id == account.id, locations.c.expunged_at.is_(None))
            .group_by(folders.c.name)
        ).all()
    assert sorted(int(pk) for pk, _ in rows) == ids
    assert {state for _, state in rows} == {JournalState.DONE}
    assert dict(placed) == {"Archive": COUNT}

    back = actions.undo_job(app, job.id, owner=None)
    with running_worker(app, concurrency=1):
        undone = wait_finished(app, back.id, timeout=90)
    assert undone.status == JobStatus.COMPLETED and undone.result["done"] == COUNT
    assert files(root / ".Archive") == []
    assert len(files(root)) == COUNT
    assert all(p.name.endswith(":2,") for p in files(root))


def test_cli_mark_and_undo(tmp_path: Path) -> None:
    """The commands are thin shells over the actions tested on both databases: SQLite
    alone here (each command is a process start)."""
    database_url = f"sqlite:///{tmp_path}/inboxd.db"
    app = make_app(database_url, tmp_path)
    try:
        cli_mark_and_undo(app, database_url, tmp_path)
    finally:
        app.close()


def cli_mark_and_undo(app: App, database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "mail"
    account = maildir_account(app, root, 3)
    with reading(app.engine) as conn:
        pk = conn.execute(
            select(messages.c.id).where(messages.c.account_id == account.id).limit(1)
        ).scalar_one()
    env = subprocess_env(database_url, tmp_path / "data")
    # No worker runs: the command runs the job itself, waiting by default.
    marked = run_cli(env, "mark", str(pk), "flagged", "--json")
    assert marked.returncode == 0, marked.stderr
    job = json.loads(marked.stdout)
    assert job["status"] == "completed" and job["result"]["done"] == 1
    assert sum(p.name.endswith(":2,F") for p in files(root)) == 1
    undone = run_cli(env, "undo", job["id"], "--wait")
    assert undone.returncode == 0, undone.stderr
    assert "undo completed: 1 changed" in undone.stdout
    assert all(p.name.endswith(":2,") for p in files(root))
    with pytest.raises(InvalidState, match="already undone"):  # as the command would say
        actions.undo_job(app, job["id"], owner=None)
