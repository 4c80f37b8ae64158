#!/usr/bin/env python3
"""Benchmark of the Microsoft Graph provider against the local Graph server of the tests
(figures, not a test).

    python bench/graph.py [--messages 20000] [--delay-ms 20] [--page-size 500]

The local server (tests/support/graph_server.py) holds a generated mailbox (INBOX and two
folders; message sizes like real mail) and sleeps ``--delay-ms`` in every request before
it answers, as a far-away Graph would. Each measurement is a child process (its peak RSS
is the sync's alone) that opens an App on one SQLite database in a temp dir, enqueues a
``sync`` job and runs a Worker for that job. Measured: the full sync, then a re-sync with
nothing changed, then a re-sync after 100 new messages, 100 read and 20 removed: wall time
of the job, requests by kind (the server's counters), requests per message, peak RSS.
See bench/README.md.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as `python bench/graph.py`, this file's folder heads sys.path, and bench/queue.py
# would then shadow the standard library's `queue`.
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import tempfile
import time
from typing import Any

MIB = 1024


def _mailbox(graph: Any, messages: int) -> None:
    """INBOX with most of the mail, two smaller folders; sizes from 600 B to ~60 KB."""
    from tests.support.mail import make_message

    rng = random.Random(messages)
    projects = graph.add_folder("Projects", parent=graph.folder_id("inbox"))
    homes = ["Inbox"] * 8 + [projects, "Sent Items"]
    for n in range(messages):
        size = int(min(60_000, rng.lognormvariate(8.0, 1.0)))
        graph.add_message(
            rng.choice(homes), make_message(n, body_size=max(200, size)), is_read=rng.random() < 0.7
        )


def _child(spec: dict[str, Any]) -> None:
    """One sync, in this process: the account made on first use."""
    from inboxd.app import App
    from inboxd.config import Settings
    from inboxd.jobs.worker import Worker
    from inboxd.store.accounts import Accounts
    from inboxd.sync.task import sync_dedupe_key

    settings = Settings(
        database_url=spec["database_url"],
        data_dir=Path(spec["data_dir"]),
        poll_interval_ms=20,
        task_modules=[],
        schedules=[],
    )
    app = App.open(settings)
    try:
        registry = Accounts(app.engine, app.settings)
        found = registry.list()
        account = found[0] if found else None
        if account is None:
            account = registry.add(
                "graph",
                "bench",
                {
                    "client_id": spec["client_id"],
                    "authority": spec["authority"],
                    "graph_url": spec["graph_url"],
                    "page_size": spec["page_size"],
                },
                secret={"refresh_token": spec["refresh_token"]},
            )
        # The index job an earlier sync queued is not what is measured here.
        for earlier in app.queue.list_jobs(status=["pending"]):
            app.queue.cancel(earlier.id)
        job = app.queue.enqueue(
            "sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id)
        )
        Worker(app, concurrency=1).run(install_signals=False, max_jobs=1)
        done = app.queue.get(job.id)
        assert done.started_at is not None and done.finished_at is not None
        out = {
            "status": str(getattr(done.status, "value", done.status)),
            "error": done.error,
            "result": done.result,
            "job_seconds": (done.finished_at - done.started_at).total_seconds(),
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    finally:
        app.close()
    Path(spec["result"]).write_text(json.dumps(out, default=str))


def _run(spec: dict[str, Any], graph: Any) -> dict[str, Any]:
    graph.counts.clear()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the sync child failed ({proc.returncode})")
    out: dict[str, Any] = json.loads(Path(spec["result"]).read_text())
    out["wall"] = wall
    out["counts"] = {k: v for k, v in sorted(graph.counts.items()) if v}
    return out


def _row(name: str, out: dict[str, Any], messages: int) -> str:
    counts = out["counts"]
    # "batch:value" counts the parts of $batch requests: not HTTP requests of their own.
    total = sum(v for k, v in counts.items() if not k.startswith("batch:"))
    kinds = ", ".join(f"{k} {v}" for k, v in counts.items() if not k.startswith("batch:"))
    if parts := counts.get("batch:value"):
        kinds += f"; {parts} bodies in the batches"
    new = (out["result"] or {}).get("new", 0)
    per = f"{total / new:.3f}" if new else "n/a"
    return (
        f"| {name} | {out['status']} | {out['job_seconds']:.1f} s | {new} | {total} ({kinds}) "
        f"| {per} | {out['rss_kb'] / MIB:.0f} MB |"
    )


def main() -> None:
    """Run the measurements; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return

    from tests.support.graph_server import GraphServer

    graph = GraphServer()
    print(f"filling {args.messages} messages", file=sys.stderr)
    _mailbox(graph, args.messages)
    graph.delay = args.delay_ms / 1000
    with tempfile.TemporaryDirectory(prefix="inboxd-bench-graph-") as tmp:
        spec = {
            "database_url": f"sqlite:///{tmp}/inboxd.db",
            "data_dir": f"{tmp}/data",
            "client_id": graph.tokens.client_id,
            "authority": graph.authority,
            "graph_url": graph.graph_url,
            "page_size": args.page_size,
            "refresh_token": graph.tokens.issue(),
            "result": f"{tmp}/result.json",
        }
        rows = []
        print("full sync", file=sys.stderr)
        rows.append(_row("full sync", _run(spec, graph), args.messages))
        print("no-change re-sync", file=sys.stderr)
        rows.append(_row("no-change re-sync", _run(spec, graph), args.messages))
        inbox = [m.id for m in graph.in_folder("Inbox")]
        for key in inbox[:100]:
            graph.change(key, is_read=not graph.messages[key].is_read)
        for key in inbox[100:120]:
            graph.delete(key)
        from tests.support.mail import make_message

        for n in range(100):
            graph.add_message("Inbox", make_message(10_000_000 + n))
        print("re-sync after changes", file=sys.stderr)
        rows.append(_row("100 new, 100 read, 20 gone", _run(spec, graph), args.messages))
    graph.close()
    print(
        f"Graph sync, {args.messages} messages, {args.delay_ms:g} ms per request, page size "
        f"{args.page_size}; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        "| run | status | job time | new | HTTP requests (by kind) | requests/new message "
        "| peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
