"""The triage job in worker processes, with the optional refiner asking a local fake model
server (tests/support/fake_openai.py): it refines what stays unsure, and a SIGKILLed worker's
triage resumes where its last batch was committed (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inboxd.actions import triage as actions
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.jobs.model import Job, JobStatus
from inboxd.store import triage as store
from inboxd.store.accounts import Account
from inboxd.vocabulary import TriageSource
from tests.integration.test_triage import mail, make_account, write_maildir
from tests.support.apps import (
    make_app,
    running_worker,
    start_worker_process,
    subprocess_env,
    sync_and_index,
    wait_finished,
    wait_for,
)
from tests.support.fake_openai import FakeOpenAI

#: Messages that say little: not to the user, no list, bulk or machine headers.
VAGUE = 300
#: How long the fake model thinks about each message, in seconds.
THINKING = 0.02


def slow_receipt(request: dict[str, Any]) -> str:
    time.sleep(THINKING)
    return json.dumps({"category": "receipt", "confidence": 0.75})


@pytest.fixture
def model_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(answer=slow_receipt)
    yield server
    server.close()


@pytest.fixture
def app(database_url: str, tmp_path: Path, model_server: FakeOpenAI) -> Iterator[App]:
    opened = make_app(
        database_url,
        tmp_path,
        sync_batch_messages=100,
        triage_refiner_url=model_server.url,
        triage_refiner_max_per_job=10_000,
    )
    yield opened
    opened.close()


def vague_account(app: App, tmp_path: Path) -> Account:
    files = {
        f"vague{n}": mail(
            f"Desk {n} <desk{n}@power.example>",
            f"other{n}@power.example",
            f"Statement {n} for the account",
            f"Statement {n}: 42.00 EUR, paid by card.\n",
        )
        for n in range(VAGUE)
    }
    root = tmp_path / "mail"
    write_maildir(root, {"": files})
    account = make_account(app, root)
    sync_and_index(app, account)
    # The index queued a triage of its own; this test starts and watches its own.
    for queued in app.queue.list_jobs(kind="triage", account_id=account.id):
        if not queued.status.finished:
            app.queue.cancel(queued.id)
            wait_for(lambda q=queued: app.queue.get(q.id).status.finished)  # type: ignore[misc]
    return account


def sources(app: App, account: Account) -> dict[str, int]:
    m = messages.c
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(m.triage_source, func.count())
            .where(m.account_id == account.id)
            .group_by(m.triage_source)
        ).all()
    return {str(source): int(n) for source, n in rows}


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_sigkilled_triage_resumes_from_its_last_batch(
    app: App, database_url: str, tmp_path: Path, model_server: FakeOpenAI
) -> None:
    account = vague_account(app, tmp_path)
    job = actions.start_triage(app, account, all_messages=True)
    env = subprocess_env(
        database_url,
        tmp_path / "data",
        INBOXD_TRIAGE_REFINER_URL=model_server.url,
        INBOXD_TRIAGE_REFINER_MAX_PER_JOB="10000",
    )
    first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
    try:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 100, timeout=90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert app.queue.get(job.id).status == JobStatus.RUNNING  # nobody told the queue
    with reading(app.engine) as conn:
        left = store.untriaged_count(conn, account.id)
    assert 0 < left <= VAGUE - 100
    asked = len(model_server.requests)
    second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
    try:
        done: Job = wait_finished(app, job.id, timeout=120)
    finally:
        stop(second)
    assert done.status == JobStatus.COMPLETED and done.attempts == 2, done.error
    # The second attempt did the rest, and only the rest: what was committed stays, the
    # account was not marked untriaged again, each message is counted once.
    assert len(model_server.requests) - asked <= left
    assert done.result["triaged"] == VAGUE
    assert done.result["by_source"] == {"refiner": VAGUE}
    assert sources(app, account) == {TriageSource.REFINER: VAGUE}
    with reading(app.engine) as conn:
        assert store.untriaged_count(conn, account.id) == 0


def test_a_refiner_that_fails_leaves_the_decisions_and_the_job_completes(
    app: App, tmp_path: Path, model_server: FakeOpenAI
) -> None:
    account = vague_account(app, tmp_path)
    model_server.scripted = ["500"] * 3  # three failures in a row: not asked again
    done = run_in_process(app, actions.start_triage(app, account, all_messages=True))
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.result["refined"] == 0 and len(model_server.requests) == 3
    assert sources(app, account) == {TriageSource.HEADERS: VAGUE}


def run_in_process(app: App, job: Job) -> Job:
    with running_worker(app, concurrency=1):
        return wait_finished(app, job.id, timeout=120)
