#!/usr/bin/env python3
"""Benchmark of a clean-up on loopback Dovecot (figures, not a test).

    python bench/cleanup.py [--messages 10000] [--postgres] [--keep]

A private Dovecot (tests/services/dovecot.py, as the tests start it) serves an INBOX of
generated mail: mostly newsletters and promotions from a few dozen lists, and one message
in twenty from a person to the user (which a clean-up must protect). inboxd syncs, indexes
and triages it (not measured), then a worker in this process runs the clean-up job:
discovery (propose to ``awaiting_approval``), execution of the approved archive (one
journaled MOVE per batch of UIDs) and J's undo of it. The server's INBOX is counted over
IMAP after each, so the figures are of work that reached the server. See bench/README.md.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as `python bench/cleanup.py`, this folder heads sys.path and bench/queue.py would
# shadow the standard library's `queue`.
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from inboxd.actions import changes as change_actions
from inboxd.actions import cleanups as actions
from inboxd.app import App
from inboxd.config import Settings
from inboxd.jobs.model import Job, JobStatus
from inboxd.jobs.worker import Worker
from inboxd.store.accounts import Account, Accounts
from inboxd.tasks import load_tasks

ME = "reader@home.example"
#: Targets from the issue.
TARGET_DISCOVERY_S = 5.0
TARGET_RATE = 1000.0
LISTS = 40
DIRECT_EVERY = 20


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def message(n: int, now: datetime) -> bytes:
    """Message ``n``: a list's issue, or (one in DIRECT_EVERY) a person's mail to the user."""
    msg = EmailMessage()
    msg["Date"] = format_datetime(now - timedelta(days=40 + n % 300, minutes=n))
    msg["Message-ID"] = f"<bench-{n}@gen.example>"
    if n % DIRECT_EVERY == 0:
        msg["From"] = f"Friend {n % 7} <friend{n % 7}@people.example>"
        msg["To"] = f"Reader <{ME}>"
        msg["Subject"] = f"About our plans, part {n}"
        msg.set_content(f"Hi,\n\ncan we talk about plan {n} this week?\n\nFriend\n")
        return msg.as_bytes()
    k = n % LISTS
    msg["From"] = f"List {k} News <news@list{k}.example>"
    msg["To"] = ME
    msg["Subject"] = f"List {k} weekly: issue {n}"
    msg["List-Id"] = f"List {k} <list{k}.example>"
    msg["List-Unsubscribe"] = f"<https://list{k}.example/u/{n}>, <mailto:leave@list{k}.example>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    body = f"This week at list {k}: stories, offers and news.\n" * 8
    msg.set_content(body + f"\nUnsubscribe: https://list{k}.example/u/{n}\n")
    return msg.as_bytes()


def fill(maildir: Path, count: int) -> None:
    """Write the INBOX straight into the user's Maildir before the first login."""
    now = datetime.now(UTC)
    st = maildir.stat()
    target = maildir / "cur"
    target.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        path = target / f"{1_700_000_000 + n}.M{n}P1.bench:2,"
        path.write_bytes(message(n, now))
        if os.geteuid() == 0:
            os.chown(path, st.st_uid, st.st_gid)


def inbox_count(user: Any) -> int:
    """Messages in the server's INBOX, asked over IMAP."""
    return int(user.message_count("INBOX"))


def run_until(
    app: App, job_id: str, done: Callable[[Job], bool], timeout: float
) -> tuple[Job, float]:
    """Poll the job until ``done``; (the job, seconds waited)."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        job = app.queue.get(job_id)
        if done(job):
            return job, time.perf_counter() - start
        if job.status.finished or time.perf_counter() > deadline:
            raise SystemExit(f"job {job_id} ({job.kind}) ended {job.status.value}: {job.error}")
        time.sleep(0.01)


def finished(job: Job) -> bool:
    return job.status == JobStatus.COMPLETED


def settle(app: App, account: Account) -> None:
    """Sync, index and triage (not measured)."""
    job = app.queue.enqueue("sync", account_id=account.id)
    run_until(app, job.id, finished, 1800)
    for kind in ("index", "triage"):
        while not (queued := app.queue.list_jobs(kind=kind, account_id=account.id)):
            time.sleep(0.05)
        for j in queued:
            run_until(app, j.id, finished, 1800)


def bench(args: argparse.Namespace, work: Path, url: str) -> list[str]:
    """One database's run; the report's lines."""
    from tests.services.dovecot import DovecotServer

    server = DovecotServer()
    server.start()
    try:
        user = server.add_user("bench", "bench-password")
        _progress(f"writing {args.messages:,} messages")
        fill(user.maildir, args.messages)
        load_tasks()
        app = App.open(
            Settings(
                database_url=url,
                data_dir=work / "data",
                poll_interval_ms=10,
                progress_interval_ms=200,
            )
        )
        worker = Worker(app, concurrency=1)
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
        thread.start()
        try:
            account = Accounts(app.engine, app.settings).add(
                "imap",
                "bench",
                {"host": user.host, "port": user.port, "security": "none", "username": "bench"},
                secret={"password": user.password},
                addresses=[ME],
                owner_name="Bench Reader",
            )
            _progress("sync, index and triage (not measured)")
            settle(app, account)
            before = inbox_count(user)

            _progress("discovery")
            job = actions.propose(app, account, categories=["newsletter", "promotion", "personal"])
            job, discovery_s = run_until(
                app, job.id, lambda j: j.status == JobStatus.AWAITING_APPROVAL, 600
            )
            shown = actions.show(app, job.id, owner=None)
            counts = shown["counts"]

            _progress("execution (archive)")
            t0 = time.perf_counter()
            approved = actions.approve(app, job.id, owner=None, by="bench")
            done, _ = run_until(app, job.id, finished, 1800)
            execution_s = time.perf_counter() - t0
            archived = int(done.result["done"])
            after = inbox_count(user)

            _progress("undo")
            t0 = time.perf_counter()
            undo = change_actions.undo_job(app, job.id, owner=None)
            undone, _ = run_until(app, undo.id, finished, 1800)
            undo_s = time.perf_counter() - t0
            restored = inbox_count(user)
        finally:
            worker.stop(hard=True)
            thread.join(timeout=30)
            app.close()
    finally:
        server.close()
    ok_discovery = discovery_s < TARGET_DISCOVERY_S
    rate = archived / execution_s if execution_s else 0.0
    undo_rate = int(undone.result["done"]) / undo_s if undo_s else 0.0
    return [
        f"database: {url.split(':', 1)[0]}; {args.messages:,} messages in the INBOX "
        f"({before:,} on the server)",
        f"proposal: {counts['candidates']:,} candidates, {counts['protected']:,} protected",
        f"discovery: {discovery_s:.2f} s (target < {TARGET_DISCOVERY_S:.0f} s: "
        f"{'met' if ok_discovery else 'NOT met'})",
        f"execution: {archived:,} archived of {approved['approved']:,} approved in "
        f"{execution_s:.2f} s = {rate:,.0f} msg/s (target >= {TARGET_RATE:,.0f}: "
        f"{'met' if rate >= TARGET_RATE else 'NOT met'}); INBOX now {after:,}",
        f"undo: {int(undone.result['done']):,} restored in {undo_s:.2f} s = "
        f"{undo_rate:,.0f} msg/s (target >= {TARGET_RATE:,.0f}: "
        f"{'met' if undo_rate >= TARGET_RATE else 'NOT met'}); INBOX now {restored:,}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="inboxd-bench-cleanup-"))
    lines = [
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    ]
    pg = None
    try:
        lines += bench(args, work / "sqlite", f"sqlite:///{work}/inboxd.db")
        if args.postgres:
            from bench._pg import ThrowawayPostgres

            pg = ThrowawayPostgres()
            pg.start()
            lines += bench(args, work / "pg", pg.url())
    finally:
        if pg is not None:
            pg.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
