#!/usr/bin/env python3
"""Benchmark of a ``/metrics`` scrape (figures, not a test).

    python bench/metrics.py [--jobs 50000] [--runs 200000] [--new-runs 500] [--pg-url URL]

Fills a fresh database (SQLite file, then a throwaway PostgreSQL cluster unless --pg-url
is given) with ``--jobs`` jobs of mixed kinds and statuses and ``--runs`` rows of run
history, then times whole scrapes (the registry rendered as Prometheus text, as the route
does): the first one, and repeated ones with ``--new-runs`` runs finished between each.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the other imports)

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bench._pg import ThrowawayPostgres
from inboxd.api.metrics import build_registry
from inboxd.api.pump import EventPump
from inboxd.app import App
from inboxd.config import Settings
from inboxd.db.engine import writing
from inboxd.db.tables import job_runs, jobs
from inboxd.db.types import utcnow

KINDS = ("sync", "index", "triage", "label", "noop", "prune", "export", "newsletters")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


def _job_rows(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for n in range(count):
        status = random.choices(STATUSES, weights=(5, 1, 80, 10, 4))[0]
        rows.append(
            {
                "id": f"bench-{n:08d}",
                "kind": random.choice(KINDS),
                "status": status,
                "queue": "default",
                "params": {},
                "max_attempts": 5,
                "run_at": now - timedelta(seconds=random.uniform(0, 7 * 86400)),
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _run_rows(count: int, *, newest: bool = False) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for n in range(count):
        kind = random.choice(KINDS)
        seconds = random.expovariate(1 / 20)
        finished = now if newest else now - timedelta(seconds=random.uniform(120, 365 * 86400))
        rows.append(
            {
                "job_id": f"run-{n}",
                "kind": kind,
                "status": random.choice(("completed", "completed", "failed")),
                "attempts": 1,
                "started_at": finished - timedelta(seconds=seconds),
                "finished_at": finished,
                "duration_seconds": seconds,
                "result": {"fetched": random.randint(0, 500), "new": 0} if kind == "sync" else {},
            }
        )
    return rows


def _insert(app: App, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        with writing(app.engine) as conn:
            conn.execute(insert(table), rows[start : start + 5000])


def measure(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    """Fill one database and print its scrape times."""
    random.seed(7)
    with App.open(Settings(database_url=url, data_dir=tmp / name)) as app:
        _insert(app, jobs, _job_rows(args.jobs))
        _insert(app, job_runs, _run_rows(args.runs))
        registry = build_registry(app.engine, EventPump(app.engine))
        started = time.perf_counter()
        size = len(generate_latest(registry))
        first = time.perf_counter() - started
        times = []
        for _ in range(args.scrapes):
            _insert(app, job_runs, _run_rows(args.new_runs, newest=True))
            started = time.perf_counter()
            generate_latest(registry)
            times.append(time.perf_counter() - started)
        print(
            f"{name:<11} first {first * 1000:7.1f} ms   then p50 "
            f"{statistics.median(times) * 1000:7.1f} ms, max {max(times) * 1000:7.1f} ms "
            f"({args.new_runs} new runs each)   {size:,} bytes"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--new-runs", type=int, default=500)
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-bench-metrics-"))
    server: ThrowawayPostgres | None = None
    try:
        print(f"{args.jobs:,} jobs, {args.runs:,} runs of history")
        measure("SQLite", f"sqlite:///{tmp / 'inboxd.db'}", args, tmp)
        pg_url = args.pg_url
        if pg_url is None:
            server = ThrowawayPostgres()
            server.start()
            pg_url = server.url()
        url = make_url(pg_url).set(drivername="postgresql+psycopg").render_as_string(False)
        measure("PostgreSQL", url, args, tmp)
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
