#!/usr/bin/env python3
"""Benchmark of the ``label`` job: an account of many triaged messages whose labels are
just turned on (figures, not a test).

    python bench/labels.py [--count 100000] [--provider imap|maildir] [--postgres] [--undo]

A Maildir of small generated messages (the label job never reads a body) is synced into a
fresh store, either directly (``maildir``) or through a private Dovecot serving it
(``imap``, tests/services/dovecot.py). Every message then gets a category straight in the
store (ten categories, by id: triage itself is bench/triage_job.py's business), and labels
are turned on as a user does (``actions.accounts.update_account``), which queues the job.
Measured: the scan that finds what to write, then, each on a worker in this process, the
first label run (every message gets its keyword), a second run with nothing to do, and
with ``--undo`` the undo of the first run.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# As in bench/sync.py: bench/queue.py must not shadow the standard library's `queue`.
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from sqlalchemy import case, update
from tests.support.apps import make_app, running_worker, wait_finished

from inboxd.actions import accounts as actions
from inboxd.app import App
from inboxd.db.engine import writing
from inboxd.db.tables import messages
from inboxd.db.types import utcnow
from inboxd.jobs.model import Job, JobStatus
from inboxd.pipeline.labels import Scan
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import Category

CATEGORIES = [str(c) for c in Category]


def small_message(n: int) -> bytes:
    """A plain message of some 400 bytes, numbered ``n``."""
    date = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    return (
        f"From: Sender {n % 97} <s{n % 97}@example.org>\r\n"
        f"To: me@example.com\r\nSubject: message {n}\r\n"
        f"Date: {format_datetime(date)}\r\nMessage-ID: <n{n}@bench.example>\r\n"
        f"\r\nBody of message {n}.\r\n"
    ).encode()


def fill(maildir: Path, count: int, *, owner: tuple[int, int] | None = None) -> None:
    """``count`` messages in ``maildir``'s cur/, named as Dovecot names them."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for n in range(count):
        raw = small_message(n)
        path = maildir / "cur" / f"{stamp}.M{n:07d}P1Q1.bench,S={len(raw)}:2,"
        path.write_bytes(raw)
        if owner is not None:
            os.chown(path, *owner)


def run(app: App, job: Job, timeout: float = 3600) -> tuple[Job, float]:
    """Run ``job`` on a worker of this process; the finished job and its wall seconds."""
    started = time.perf_counter()
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=timeout)
    if done.status != JobStatus.COMPLETED:
        raise SystemExit(f"{done.kind} job {done.status}: {done.error}")
    return done, time.perf_counter() - started


def job_seconds(job: Job) -> float:
    """The job's own run time (claimed to finished), without the worker's start."""
    assert job.started_at is not None and job.finished_at is not None
    return (job.finished_at - job.started_at).total_seconds()


@contextlib.contextmanager
def mailbox(provider: str, count: int, work: Path) -> Iterator[dict[str, Any]]:
    """The account's provider, name and settings (and secret), with ``count`` messages."""
    if provider == "maildir":
        fill(work / "Maildir", count)
        yield {"provider": "maildir", "settings": {"path": str(work / "Maildir")}}
        return
    from tests.services.dovecot import DovecotServer

    server = DovecotServer()
    server.start()
    try:
        user = server.add_user("bench", secrets.token_urlsafe(12))
        st = user.maildir.stat()
        fill(user.maildir, count, owner=(st.st_uid, st.st_gid) if os.geteuid() == 0 else None)
        settings = {"host": user.host, "port": user.port, "security": "none"}
        yield {
            "provider": "imap",
            "settings": settings | {"username": user.username},
            "secret": {"password": user.password},
        }
    finally:
        server.close()


def categorise(app: App, account: Account) -> None:
    """Every message a category (ten, by id), as if triage had run."""
    m = messages.c
    by_id = case(
        *((m.id % len(CATEGORIES) == i, c) for i, c in enumerate(CATEGORIES)),
        else_=CATEGORIES[0],
    )
    with writing(app.engine) as conn:
        conn.execute(
            update(messages)
            .where(m.account_id == account.id)
            .values(category=by_id, triaged_at=utcnow(), confidence=0.9, priority=10)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--provider", choices=("imap", "maildir"), default="imap")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument("--undo", action="store_true", help="also undo the first run")
    parser.add_argument("--scan-only", action="store_true", help="stop after the scan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inboxd-labels-") as tmp:
        work = Path(tmp)
        with contextlib.ExitStack() as stack:
            url = f"sqlite:///{work}/inboxd.db"
            if args.postgres:
                from bench._pg import ThrowawayPostgres

                pg = stack.enter_context(ThrowawayPostgres())
                url = pg.url()
            box = stack.enter_context(mailbox(args.provider, args.count, work))
            app = make_app(url, work, job_lease_seconds=30.0)
            stack.callback(app.close)
            account = Accounts(app.engine, app.settings).add(
                box["provider"], "bench", box["settings"], secret=box.get("secret")
            )
            sync = app.queue.enqueue("sync", account_id=account.id)
            synced, _ = run(app, sync)
            print(f"sync: {args.count} messages in {job_seconds(synced):.1f}s", flush=True)
            for kind in ("index", "triage"):  # not measured here: the store is categorised
                for job in app.queue.list_jobs(kind=kind, account_id=account.id):
                    if not job.status.finished:
                        app.queue.cancel(job.id)
            categorise(app, account)
            started = time.perf_counter()
            found = sum(1 for _ in Scan(app.engine, account.id, gmail=False).changes())
            print(f"scan: {found} to write found in {time.perf_counter() - started:.2f}s")
            if args.scan_only:
                return
            account = actions.update_account(app, account, admin=True, labels=True)
            [first_job] = app.queue.list_jobs(kind="label", account_id=account.id)
            first, _ = run(app, first_job)
            seconds = job_seconds(first)
            rate = first.result["done"] / seconds if seconds else 0.0
            print(
                f"label, first run: {first.result['done']} done, {first.result['failed']} "
                f"failed in {seconds:.1f}s ({rate:,.0f} msg/s)",
                flush=True,
            )
            again_job = app.queue.enqueue(
                "label", {"account_id": account.id}, account_id=account.id
            )
            again, _ = run(app, again_job)
            print(
                f"label, nothing to do: {again.result['done']} done in {job_seconds(again):.2f}s",
                flush=True,
            )
            if args.undo:
                undo_job = app.queue.enqueue("undo", {"job_id": first.id}, account_id=account.id)
                undone, _ = run(app, undo_job)
                seconds = job_seconds(undone)
                print(
                    f"undo: {undone.result['done']} in {seconds:.1f}s "
                    f"({undone.result['done'] / seconds:,.0f} msg/s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
