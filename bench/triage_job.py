#!/usr/bin/env python3
"""Benchmark of the ``triage`` job over a large store, on SQLite and PostgreSQL (figures,
not a test).

    python bench/triage_job.py [--count 100000] [--rules 10] [--skip-postgres] [--work DIR]

The mailbox is bench/sync.py's generated one (cached under .bench/sync-mail), hard-linked
into a Maildir, plus a Sent folder of messages "me" wrote to some of its senders (the
people-you-wrote-to history). For each database one child process syncs it, another runs
the index job the sync queued, then each measured run is a child of its own (so its peak
RSS is that job's alone):

- ``first``: the triage job the index job queued (every message new: classify, the
  model trained on the confident decisions, then applied to what stayed unsure);
- ``rules``: ``--all`` again with ``--rules`` user rules (query language: list:, from:,
  subject:, is:, has:) and the stored model: the tiers as a user's re-triage runs them.

Per run: messages, wall seconds of the job, messages/s, CPU seconds of the child (user +
system) and messages per CPU second, peak RSS. Targets (issue 18): >= 5,000 msg/s per
core for rules + model, 100k in < 60 s, RSS < 300 MB.
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
import email.utils
import json
import os
import platform
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.search import build_maildir

TARGET_PER_CORE = 5000.0
TARGET_WALL_S = 60.0
TARGET_RSS_MB = 300.0
ME = "me@example.com"
SENT = 500

#: Rules of the kinds people write (column operators and words of the full-text index).
RULES: tuple[tuple[str, str, int | None], ...] = (
    ("list:news", "newsletter", None),
    ("from:alice", "personal", 70),
    ("subject:invoice OR subject:receipt", "receipt", None),
    ("is:flagged", "action_required", 90),
    ("from:bob subject:meeting", "calendar", None),
    ("has:attachment from:carol", "personal", None),
    ("-is:read list:news", "promotion", 10),
    ("subject:build failed", "notification", None),
    ("from:example.org", "forum", None),
    ("from:noreply OR from:notifications", "notification", None),
    ("subject:sale OR subject:offer", "promotion", None),
    ("from:dave OR from:erin", "personal", None),
)


def write_sent(maildir: Path, count: int) -> None:
    """A Sent folder: ``count`` messages from ``ME`` to people of the generated mailbox."""
    from bench.sync import _address

    sent = maildir / ".Sent"
    for sub in ("cur", "new", "tmp"):
        (sent / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    base = datetime(2022, 1, 1, tzinfo=UTC)
    for n in range(count):
        name, addr = _address(rng)
        when = base + timedelta(hours=n * 7)
        raw = (
            f"From: Me <{ME}>\nTo: {name} <{addr}>\nSubject: About our plans {n}\n"
            f"Date: {email.utils.format_datetime(when)}\n"
            f"Message-ID: <sent{n}@example.com>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n\nSee you soon.\n"
        ).encode()
        (sent / "cur" / f"sent{n:05d}.bench:2,S").write_bytes(raw)


# --------------------------------------------------------------------------- children


def child(spec: dict[str, Any]) -> None:
    """Inside a child process: sync, index, or run one triage job."""
    from inboxd.app import App
    from inboxd.config import Settings
    from inboxd.jobs.worker import Worker

    settings = Settings(
        database_url=spec["url"], data_dir=Path(spec["data_dir"]), poll_interval_ms=20
    )
    app = App.open(settings)
    try:
        job = _job(app, spec)
        Worker(app, concurrency=1).run(install_signals=False, max_jobs=1)
        done = app.queue.get(job.id)
        assert done.started_at is not None and done.finished_at is not None
        out = {
            "status": str(getattr(done.status, "value", done.status)),
            "error": done.error,
            "result": done.result,
            "seconds": (done.finished_at - done.started_at).total_seconds(),
        }
    finally:
        app.close()
    Path(spec["result"]).write_text(json.dumps(out, default=str))


def _job(app: Any, spec: dict[str, Any]) -> Any:
    """The job a child runs: queued here, or by the step before."""
    from sqlalchemy import delete

    from inboxd.actions.triage import start_triage
    from inboxd.db.engine import writing
    from inboxd.db.tables import triage_models, triage_rules
    from inboxd.store import triage as rules
    from inboxd.store.accounts import Accounts
    from inboxd.sync.task import sync_dedupe_key
    from inboxd.vocabulary import Category

    mode = spec["mode"]
    if mode == "sync":
        account = Accounts(app.engine, app.settings).add(
            "maildir", "bench", {"path": spec["maildir"]}, addresses=[ME], owner_name="Me"
        )
        return app.queue.enqueue(
            "sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id)
        )
    if mode == "index":
        return _pending(app, "index")
    [account] = Accounts(app.engine, app.settings).list()
    if mode == "first":
        pending = app.queue.list_jobs(kind="triage", status=["pending"], limit=1)
        if pending:
            return pending[0]
        # A store kept from an earlier run (--work): from scratch again, no model, no rules.
        with writing(app.engine) as conn:
            conn.execute(delete(triage_models))
            conn.execute(delete(triage_rules))
        return start_triage(app, account, all_messages=True)
    with writing(app.engine) as conn:
        conn.execute(delete(triage_rules))
        for match, category, priority in RULES[: spec["rules"]]:
            rules.add_rule(
                conn,
                owner=account.owner,
                account_id=None,
                match=match,
                category=Category(category),
                priority=priority,
            )
    return start_triage(app, account, all_messages=True)


def _pending(app: Any, kind: str) -> Any:
    pending = app.queue.list_jobs(kind=kind, status=["pending"], limit=1)
    if not pending:
        raise SystemExit(f"no {kind} job was queued")
    return pending[0]


@dataclass
class Run:
    """One measured child."""

    name: str
    messages: int
    seconds: float
    cpu: float
    rss_kb: int
    result: dict[str, Any]


def run_child(work: Path, spec: dict[str, Any], log: Path) -> Run:
    """Run one child; its job's figures, CPU time and peak RSS."""
    result = work / f"result-{time.monotonic_ns()}.json"
    spec_file = result.with_suffix(".spec")
    spec_file.write_text(json.dumps({**spec, "result": str(result)}))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not result.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{spec['mode']} child failed ({code}):\n{tail}")
    got: dict[str, Any] = json.loads(result.read_text())
    if got["status"] != "completed":
        raise RuntimeError(f"{spec['mode']} job {got['status']}: {got['error']}")
    res = got["result"] or {}
    count = int(res.get("triaged", res.get("indexed", res.get("new", 0))) or 0)
    return Run(
        spec["mode"],
        count,
        float(got["seconds"]),
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        res,
    )


def side(name: str, work: Path, url: str, maildir: Path, rules: int) -> list[Run]:
    """Sync and index the Maildir into one database, then the two triage runs."""
    data_dir = work / f"data-{name}"
    log = work / f"inboxd-{name}.log"
    base = {"url": url, "data_dir": str(data_dir), "maildir": str(maildir), "rules": rules}
    runs = []
    stored = data_dir / "bench-stored"
    # A store kept from an earlier run (--work) is synced and indexed already.
    modes = ("first", "rules") if stored.exists() else ("sync", "index", "first", "rules")
    for mode in modes:
        _progress(f"{name}: {mode}")
        runs.append(run_child(work, {**base, "mode": mode}, log))
        _progress(f"  {runs[-1].seconds:.1f}s, {runs[-1].rss_kb / 1024:.0f} MB")
        if mode == "index" and url.startswith("sqlite"):
            stored.touch()
    return runs


def report(sides: dict[str, list[Run]]) -> list[str]:
    """The figures as a table."""
    lines = [
        f"{'database':11} {'run':6} {'messages':>9} {'job s':>7} {'msg/s':>8} "
        f"{'cpu s':>7} {'msg/cpu-s':>10} {'RSS MB':>7}  notes"
    ]
    for name, runs in sides.items():
        for run in runs:
            if run.name not in ("first", "rules"):
                continue
            rate = run.messages / run.seconds if run.seconds else 0.0
            per_core = run.messages / run.cpu if run.cpu else 0.0
            model = run.result.get("model")
            notes = []
            if model:
                notes.append(
                    f"trained on {model['samples']} in {model['seconds']}s, "
                    f"re-applied to {model['reapplied']}"
                )
            notes.append(f"rules {run.result.get('rules')}")
            by_source = run.result.get("by_source") or {}
            notes.append("by " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())))
            lines.append(
                f"{name:11} {run.name:6} {run.messages:>9,} {run.seconds:>7.1f} {rate:>8,.0f} "
                f"{run.cpu:>7.1f} {per_core:>10,.0f} {run.rss_kb / 1024:>7.0f}  " + "; ".join(notes)
            )
        cats: dict[str, int] = next(
            (r.result.get("by_category") or {} for r in runs if r.name == "first"), {}
        )
        lines.append(f"{'':11} categories (first run): {json.dumps(cats, sort_keys=True)}")
    lines.append(
        f"targets: >= {TARGET_PER_CORE:,.0f} msg per CPU-second (rules + model), "
        f"< {TARGET_WALL_S:.0f} s for 100k, RSS < {TARGET_RSS_MB:.0f} MB"
    )
    return lines


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=100_000, help="messages (default 100,000)")
    parser.add_argument("--rules", type=int, default=10, help=f"user rules (at most {len(RULES)})")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to use")
    parser.add_argument("--work", help="a directory for the Maildir and databases (kept)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(Path(args.child).read_text()))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="inboxd-triage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    sides: dict[str, list[Run]] = {}
    try:
        _progress(f"building a Maildir of {args.count:,} messages (+{SENT} sent) in {work}")
        maildir = build_maildir(work, args.count)
        if not (maildir / ".Sent").exists():
            write_sent(maildir, SENT)
        if not args.skip_sqlite:
            url = f"sqlite:///{work}/inboxd.db"
            sides["SQLite"] = side("SQLite", work, url, maildir, args.rules)
        if not args.skip_postgres:
            url = args.pg_url
            if url is None:
                from bench._pg import ThrowawayPostgres

                server = ThrowawayPostgres()
                server.start()
                url = server.url()
            sides["PostgreSQL"] = side("PostgreSQL", work, url, maildir, args.rules)
        print(f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print("\n".join(report(sides)))
    finally:
        if server is not None:
            server.close()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
