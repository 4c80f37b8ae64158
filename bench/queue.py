#!/usr/bin/env python3
"""Benchmark of inboxd's durable job queue on SQLite and PostgreSQL, with procrastinate and
pgqueuer measured on the same PostgreSQL in the same run (figures, not a test).

    python bench/queue.py [--jobs N] [--pg-url URL] [--skip-others]

Without ``--pg-url`` a throwaway PostgreSQL cluster (default durability settings) is started
on 127.0.0.1 and removed at the end. Unless ``--skip-others`` is given, the script re-runs
itself inside ``.bench/venv`` (created on first use from bench/requirements.txt plus inboxd,
editable) when procrastinate or pgqueuer cannot be imported. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/queue.py`, this file's folder heads sys.path, and this very file would
# shadow the standard library's `queue` module (that inboxd's worker imports). Move that
# entry to the end (append first, so the remove finds one even when imported as a module),
# and put the checkout first so `bench._pg` imports.
sys.path.append(str(Path(__file__).resolve().parent))
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from bench._pg import ThrowawayPostgres
from inboxd.app import App
from inboxd.config import Settings
from inboxd.jobs.model import Job
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.queue import Queue
from inboxd.jobs.registry import task
from inboxd.jobs.worker import Worker

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
BENCH_VENV = ROOT / ".bench" / "venv"
REQUIREMENTS = _HERE / "requirements.txt"
OTHERS = ("procrastinate", "pgqueuer", "asyncpg", "uvloop")
_REEXEC_FLAG = "INBOXD_BENCH_REEXEC"

COLUMNS = ("inboxd SQLite", "inboxd PostgreSQL", "procrastinate", "pgqueuer")
#: (key, label) of each row of the table.
ROWS = (
    ("enqueue_one", "enqueue, 1 job per transaction   jobs/s"),
    ("enqueue_batch", "enqueue, batches of 100          jobs/s"),
    ("drain_1", "drain no-op, concurrency 1       jobs/s"),
    ("drain_10", "drain no-op, concurrency 10      jobs/s"),
    ("drain_unlimited", "drain no-op, unlimited           jobs/s"),
    ("wake_p50", "idle wake-up p50                     ms"),
    ("wake_p95", "idle wake-up p95                     ms"),
    ("wake_max", "idle wake-up max                     ms"),
)
BATCH = 100
Cells = dict[str, str]


@dataclass(frozen=True)
class Plan:
    """How many jobs each measurement uses."""

    jobs: int  # drained at concurrency 10 (and pgqueuer unlimited); all enqueued first
    single: int  # of those, enqueued one per transaction (the rest in batches of 100)
    c1_jobs: int  # drained at concurrency 1
    samples: int  # idle wake-up samples


# -- wake-up and completion marks shared by the task handlers of every queue -----------------

_marks_lock = threading.Condition()
_woken: dict[int, float] = {}
_handled = [0]  # no-op handler calls of procrastinate and pgqueuer


def _mark_woken(key: int) -> None:
    now = time.perf_counter()
    with _marks_lock:
        _woken.setdefault(key, now)
        _marks_lock.notify_all()


def _wait_woken(key: int, timeout: float) -> float:
    with _marks_lock:
        if not _marks_lock.wait_for(lambda: key in _woken, timeout):
            raise TimeoutError(f"wake-up job {key} did not start within {timeout:.0f}s")
        return _woken[key]


def _wait(done: Callable[[], bool], timeout: float, what: str, poll: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(poll)


class _WakeParams(BaseModel, extra="forbid"):
    key: int


def _inboxd_wake(ctx: TaskContext, params: _WakeParams) -> None:
    _mark_woken(params.key)


task("bench_wake", params=_WakeParams, queue="default")(_inboxd_wake)


class Bench(Protocol):
    """One queue under test. Durations are in seconds."""

    def enqueue_one(self, n: int) -> float:
        """Enqueue n no-op jobs, one transaction each."""

    def enqueue_batch(self, n: int) -> float:
        """Enqueue n no-op jobs in batches of BATCH."""

    def drain(self, n: int, concurrency: int) -> float:
        """Start a worker, wait until the n pending no-op jobs are completed, stop it;
        concurrency 0 means the library's unlimited mode."""

    def wake_samples(self, samples: int) -> list[float]:
        """With one idle worker running: enqueue → task start latencies."""

    def close(self) -> None:
        """Release connections."""


def _sample_wakeups(enqueue: Callable[[int], float], samples: int, warmup: int = 3) -> list[float]:
    """``enqueue(key)`` commits a wake job and returns time.perf_counter() of its commit."""
    with _marks_lock:
        _woken.clear()
    rng = random.Random(1234)
    out: list[float] = []
    for key in range(samples + warmup):
        # Gaps spread over two 50 ms poll periods, so pollers are sampled at random phases.
        time.sleep(rng.uniform(0.005, 0.105))
        committed = enqueue(key)
        started = _wait_woken(key, timeout=10)
        if key >= warmup:
            out.append(started - committed)
    return out


# -- inboxd -----------------------------------------------------------------------------------


class _StampingQueue(Queue):
    """inboxd's Queue; remembers when the enqueue transaction committed (``enqueue`` looks
    the new job up with ``get`` right after its commit)."""

    committed_at = 0.0

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        self.committed_at = time.perf_counter()
        return super().get(job_id, owner=owner)


class InboxdBench:
    """inboxd's own Queue and Worker (in-process worker thread)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        settings = Settings(data_dir=data_dir, database_url=url, worker_concurrency=10)
        self.app = App.open(settings)
        self.queue = _StampingQueue(self.app.engine, settings)

    def enqueue_one(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            self.queue.enqueue("noop")
        return time.perf_counter() - start

    def enqueue_batch(self, n: int) -> float:
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            self.queue.enqueue_many("noop", [{}] * min(BATCH, n - first))
        return time.perf_counter() - start

    @contextlib.contextmanager
    def _worker(self, concurrency: int) -> Iterator[tuple[Worker, threading.Thread]]:
        worker = Worker(self.app, concurrency=concurrency, queues=["default"])
        thread = threading.Thread(
            target=worker.run, kwargs={"install_signals": False}, name="bench-worker", daemon=True
        )
        thread.start()
        try:
            yield worker, thread
        finally:
            worker.stop()
            thread.join(60)

    def drain(self, n: int, concurrency: int) -> float:
        completed = self.app.queue.counts().get("completed", 0)
        start = time.perf_counter()
        with self._worker(concurrency) as (worker, thread):
            # jobs_finished counts outcomes after their transaction committed.
            _wait(
                lambda: worker.jobs_finished >= n or not thread.is_alive(),
                _drain_timeout(n),
                "inboxd drain",
            )
            elapsed = time.perf_counter() - start
        done = self.app.queue.counts().get("completed", 0) - completed
        if done != n:
            raise RuntimeError(f"{done} of {n} jobs completed (worker alive: {thread.is_alive()})")
        return elapsed

    def _enqueue_wake(self, key: int) -> float:
        self.queue.committed_at = 0.0
        self.queue.enqueue("bench_wake", {"key": key})
        return self.queue.committed_at or time.perf_counter()

    def wake_samples(self, samples: int) -> list[float]:
        with self._worker(10):
            time.sleep(1.0)  # let it settle into idle
            return _sample_wakeups(self._enqueue_wake, samples)

    def close(self) -> None:
        self.app.close()


# -- procrastinate ----------------------------------------------------------------------------


async def _pc_noop() -> None:
    _handled[0] += 1


async def _pc_wake(key: int) -> None:
    _mark_woken(key)


def _procrastinate_app(connector: Any) -> Any:
    import procrastinate  # type: ignore[import-not-found,unused-ignore]

    # It warns that the App is made in __main__ (a worker CLI could not import it): moot here.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = procrastinate.App(connector=connector)
    app.task(name="noop", queue="default")(_pc_noop)
    app.task(name="bench_wake", queue="default")(_pc_wake)
    return app


class _LoopThread:
    """An event loop in a daemon thread running ``main()``; for the libraries' workers."""

    def __init__(
        self, main: Callable[[], Coroutine[Any, Any, None]], loop_factory: Callable[[], Any]
    ) -> None:
        self._main = main
        self._loop_factory = loop_factory
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-loop", daemon=True)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self._loop_factory) as runner:
                self.loop = runner.get_loop()
                runner.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(30):
            raise TimeoutError("worker did not start within 30s")
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"worker died: {self.error!r}") from self.error

    def call(self, fn: Callable[[], Any]) -> None:
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing left to stop
                self.loop.call_soon_threadsafe(fn)

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)


class ProcrastinateBench:
    """procrastinate: sync App (SyncPsycopgConnector) defers, an async App runs the worker."""

    def __init__(self, conninfo: str) -> None:
        import procrastinate

        self.conninfo = conninfo
        self.app = _procrastinate_app(procrastinate.SyncPsycopgConnector(conninfo=conninfo))
        self.app.open()
        self.app.schema_manager.apply_schema()
        self.db = psycopg.connect(conninfo, autocommit=True)

    def enqueue_one(self, n: int) -> float:
        noop = self.app.tasks["noop"]
        start = time.perf_counter()
        for _ in range(n):
            noop.defer()
        return time.perf_counter() - start

    def enqueue_batch(self, n: int) -> float:
        noop = self.app.tasks["noop"]
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            noop.batch_defer(*([{}] * min(BATCH, n - first)))
        return time.perf_counter() - start

    def _succeeded(self) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        ).fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def _worker(self, concurrency: int) -> Iterator[_LoopThread]:
        import procrastinate

        holder: dict[str, asyncio.Task[None]] = {}
        runner: _LoopThread

        async def main() -> None:
            connector = procrastinate.PsycopgConnector(
                conninfo=self.conninfo, min_size=2, max_size=concurrency + 4
            )
            app = _procrastinate_app(connector)
            async with app.open_async():
                holder["task"] = asyncio.create_task(
                    app.run_worker_async(
                        queues=["default"],
                        concurrency=concurrency,
                        install_signal_handlers=False,
                        wait=True,
                    )
                )
                runner.ready.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await holder["task"]

        runner = _LoopThread(main, asyncio.new_event_loop)
        runner.start()
        try:
            yield runner
        finally:
            runner.call(lambda: holder["task"].cancel())
            runner.join()

    def drain(self, n: int, concurrency: int) -> float:
        before = self._succeeded()
        _handled[0] = 0
        start = time.perf_counter()
        with self._worker(concurrency) as runner:
            _wait(lambda: _handled[0] >= n or runner.error is not None, _drain_timeout(n), "run")
            runner.check()
            _wait(lambda: self._succeeded() - before >= n, 30, "procrastinate drain")
            elapsed = time.perf_counter() - start
        return elapsed

    def _enqueue_wake(self, key: int) -> float:
        self.app.tasks["bench_wake"].defer(key=key)
        return time.perf_counter()

    def wake_samples(self, samples: int) -> list[float]:
        with self._worker(10):
            time.sleep(1.0)
            return _sample_wakeups(self._enqueue_wake, samples)

    def close(self) -> None:
        self.db.close()
        self.app.close()


# -- pgqueuer ---------------------------------------------------------------------------------


async def _pgq_noop(job: Any) -> None:
    _handled[0] += 1


async def _pgq_wake(job: Any) -> None:
    _mark_woken(int(job.payload))


class PgqueuerBench:
    """pgqueuer on asyncpg and uvloop (as its CLI runs it); enqueues from this thread's own
    event loop, the QueueManager runs in another thread."""

    def __init__(self, dsn: str) -> None:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        self.dsn = dsn
        self._new_loop: Callable[[], Any] = uvloop.new_event_loop
        self.runner = asyncio.Runner(loop_factory=self._new_loop)
        self.queries: Any = self.runner.run(self._connect())
        self.runner.run(self.queries.install())

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-not-found,unused-ignore]
        from pgqueuer import AsyncpgDriver, Queries  # type: ignore[import-not-found,unused-ignore]

        self.conn: Any = await asyncpg.connect(self.dsn)
        return Queries(AsyncpgDriver(self.conn))

    def enqueue_one(self, n: int) -> float:
        async def go() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await self.queries.enqueue("noop", None)
            return time.perf_counter() - start

        return self.runner.run(go())

    def enqueue_batch(self, n: int) -> float:
        async def go() -> float:
            start = time.perf_counter()
            for first in range(0, n, BATCH):
                size = min(BATCH, n - first)
                await self.queries.enqueue(["noop"] * size, [None] * size, [0] * size)
            return time.perf_counter() - start

        return self.runner.run(go())

    def _remaining(self) -> int:
        async def go() -> int:
            return sum(int(s.count) for s in await self.queries.queue_size())

        return self.runner.run(go())

    @contextlib.contextmanager
    def _worker(self, limit: int) -> Iterator[_LoopThread]:
        holder: dict[str, Any] = {}
        runner: _LoopThread

        async def main() -> None:
            import asyncpg
            from pgqueuer import AsyncpgDriver, Queries, QueueManager

            conn = await asyncpg.connect(self.dsn)
            try:
                qm = QueueManager(Queries(AsyncpgDriver(conn)))
                qm.entrypoint("noop", concurrency_limit=limit)(_pgq_noop)
                qm.entrypoint("bench_wake", concurrency_limit=limit)(_pgq_wake)
                holder["qm"] = qm
                asyncio.get_running_loop().call_soon(runner.ready.set)
                # Completions are logged in batches of batch_size or every 0.1 s, and a
                # job counts against its entrypoint's limit until then: at limit 1 the
                # default batch of 10 would run one job per 0.1 s.
                await qm.run(batch_size=1 if limit == 1 else 10)
            finally:
                await conn.close()

        runner = _LoopThread(main, self._new_loop)
        runner.start()
        try:
            yield runner
        finally:
            runner.call(lambda: holder["qm"].shutdown.set())
            runner.join()

    def drain(self, n: int, concurrency: int) -> float:
        _handled[0] = 0
        start = time.perf_counter()
        with self._worker(concurrency) as runner:
            _wait(lambda: _handled[0] >= n or runner.error is not None, _drain_timeout(n), "run")
            runner.check()
            # A job is done when its row has left the queue table (logged in the same statement).
            _wait(lambda: self._remaining() == 0, 30, "pgqueuer drain")
            elapsed = time.perf_counter() - start
        return elapsed

    def _enqueue_wake(self, key: int) -> float:
        self.runner.run(self.queries.enqueue("bench_wake", str(key).encode()))
        return time.perf_counter()

    def wake_samples(self, samples: int) -> list[float]:
        with self._worker(0):
            time.sleep(1.0)
            return _sample_wakeups(self._enqueue_wake, samples)

    def close(self) -> None:
        self.runner.run(self.conn.close())
        self.runner.close()


# -- running the plan -------------------------------------------------------------------------


def _drain_timeout(n: int) -> float:
    return max(60.0, n / 20)


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _na(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"n/a ({text[:60]})"


def _step(cells: Cells, keys: Sequence[str], name: str, fn: Callable[[], Cells]) -> None:
    print(f"  {name} …", end="", flush=True, file=sys.stderr)
    started = time.monotonic()
    try:
        cells.update(fn())
        print(f" {time.monotonic() - started:.1f}s", file=sys.stderr)
    except Exception as exc:
        print(" failed", file=sys.stderr)
        traceback.print_exc()
        for key in keys:
            cells[key] = _na(exc)


def _wake_cells(samples: list[float]) -> Cells:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "wake_p50": _ms(statistics.median(ordered)),
        "wake_p95": _ms(p95),
        "wake_max": _ms(ordered[-1]),
    }


def run_plan(name: str, make: Callable[[], Bench], plan: Plan, *, unlimited: bool) -> Cells:
    """Every measurement of one queue; a failing one reads "n/a (reason)"."""
    print(f"{name}:", file=sys.stderr)
    cells: Cells = {}
    try:
        bench = make()
    except Exception as exc:
        traceback.print_exc()
        return {key: _na(exc) for key, _ in ROWS if key != "drain_unlimited" or unlimited}
    try:
        rest = plan.jobs - plan.single
        _step(
            cells,
            ["enqueue_one"],
            f"enqueue {plan.single} one by one",
            lambda: {"enqueue_one": _rate(plan.single, bench.enqueue_one(plan.single))},
        )
        _step(
            cells,
            ["enqueue_batch"],
            f"enqueue {rest} in batches",
            lambda: {"enqueue_batch": _rate(rest, bench.enqueue_batch(rest))},
        )
        _step(
            cells,
            ["drain_10"],
            f"drain {plan.jobs} at concurrency 10",
            lambda: {"drain_10": _rate(plan.jobs, bench.drain(plan.jobs, 10))},
        )

        def drain_again(concurrency: int, n: int, key: str) -> Cells:
            bench.enqueue_batch(n)
            return {key: _rate(n, bench.drain(n, concurrency))}

        _step(
            cells,
            ["drain_1"],
            f"drain {plan.c1_jobs} at concurrency 1",
            lambda: drain_again(1, plan.c1_jobs, "drain_1"),
        )
        if unlimited:
            _step(
                cells,
                ["drain_unlimited"],
                f"drain {plan.jobs} unlimited",
                lambda: drain_again(0, plan.jobs, "drain_unlimited"),
            )
        _step(
            cells,
            ["wake_p50", "wake_p95", "wake_max"],
            f"{plan.samples} idle wake-ups",
            lambda: _wake_cells(bench.wake_samples(plan.samples)),
        )
    finally:
        bench.close()
    return cells  # fmt: skip


# -- environment ------------------------------------------------------------------------------


def _importable(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def ensure_bench_env() -> None:
    """Re-run this script inside .bench/venv (created if missing) when the comparison
    libraries are not importable here."""
    if _importable(*OTHERS):
        return
    if os.environ.get(_REEXEC_FLAG):
        raise SystemExit(f"{', '.join(OTHERS)} still not importable inside {sys.executable}")
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BENCH_VENV} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    probe = f"import {', '.join(OTHERS)}, inboxd; assert inboxd.__file__.startswith({str(ROOT)!r})"
    if subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode:
        print(f"installing bench requirements into {BENCH_VENV} …", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS), "-e", str(ROOT)], check=True)
    os.environ[_REEXEC_FLAG] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    """nproc, RAM, CPU, OS and Python."""
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine: nproc {nproc}, RAM {ram}, CPU {cpu}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()} ({sys.executable})",
    ]


def pg_settings(conninfo: str) -> str:
    """Server version and the settings that decide commit cost."""
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
             "shared_buffers")  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:
        values = {n: str((conn.execute(f"SHOW {n}").fetchone() or ("?",))[0]) for n in names}
    version = values.pop("server_version")
    return f"PostgreSQL {version}: " + ", ".join(f"{k}={v}" for k, v in values.items())


def versions_line(with_others: bool) -> str:
    parts = [f"inboxd {_version('inboxd')}", f"SQLAlchemy {_version('sqlalchemy')}",
             f"psycopg {_version('psycopg')}", f"SQLite {sqlite3.sqlite_version}"]  # fmt: skip
    if with_others:
        parts += [f"{name} {_version(name)}" for name in OTHERS]
    return "versions: " + ", ".join(parts)


def print_table(results: dict[str, Cells], columns: Sequence[str]) -> None:
    label_width = max(len(label) for _, label in ROWS)
    widths = [max(len(col), *(len(results[col].get(k, "")) for k, _ in ROWS)) for col in columns]
    head = " | ".join(col.rjust(w) for col, w in zip(columns, widths, strict=True))
    print(f"{'metric':<{label_width}} | {head}")
    print("-" * label_width + "-+-" + "-+-".join("-" * w for w in widths))
    for key, label in ROWS:
        cells = [
            results[col].get(key, "—").rjust(w) for col, w in zip(columns, widths, strict=True)
        ]
        print(f"{label:<{label_width}} | " + " | ".join(cells))


def _number(text: str | None) -> float | None:
    try:
        return float((text or "").replace(",", ""))
    except ValueError:
        return None


def print_targets(results: dict[str, Cells]) -> None:
    pg, lite = results.get("inboxd PostgreSQL", {}), results.get("inboxd SQLite", {})
    checks = [
        ("PostgreSQL drain, concurrency 10 >= 2,000 jobs/s", _number(pg.get("drain_10")), 2000, 1),
        ("PostgreSQL idle wake-up p95 <= 5 ms", _number(pg.get("wake_p95")), 5.0, -1),
        ("SQLite drain, concurrency 10 >= 10,000 jobs/s", _number(lite.get("drain_10")), 10000, 1),
    ]
    print("\ntargets (issue):")
    for label, value, bound, sign in checks:
        verdict = "n/a" if value is None else "met" if (value - bound) * sign >= 0 else "NOT met"
        print(f"  {label}: {verdict}")


# -- main -------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs drained at concurrency 10")
    parser.add_argument("--pg-url", help="PostgreSQL URL of a server where databases can be "
                        "created (default: start a throwaway cluster)")  # fmt: skip
    parser.add_argument("--skip-others", action="store_true",
                        help="measure inboxd only (no procrastinate, no pgqueuer)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=200, help="idle wake-up samples")
    parser.add_argument("--c1-jobs", type=int, help="jobs drained at concurrency 1 (N/5)")
    args = parser.parse_args(argv)
    if args.jobs < BATCH:
        parser.error(f"--jobs must be at least {BATCH}")
    return args


class _Databases:
    """Creates (and at the end drops) one database per queue on the PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin = make_url(admin_url).set(drivername="postgresql")
        self.created: list[str] = []

    def conninfo(self, name: str | None = None) -> str:
        url = self.admin if name is None else self.admin.set(database=name)
        return url.render_as_string(hide_password=False)

    def create(self, system: str) -> str:
        name = f"bench_{system}_{os.getpid()}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.conninfo(name)

    def drop_all(self) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlalchemy_url(conninfo: str) -> str:
    return make_url(conninfo).set(drivername="postgresql+psycopg").render_as_string(False)


def run_all(args: argparse.Namespace, pg_url: str, tmp: Path) -> dict[str, Cells]:
    n = args.jobs
    plan = Plan(jobs=n, single=min(n // 5, 2000), c1_jobs=args.c1_jobs or max(BATCH, n // 5),
                samples=args.samples)  # fmt: skip
    dbs = _Databases(pg_url)
    results: dict[str, Cells] = {}
    try:
        print(pg_settings(dbs.conninfo()))
        sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
        results["inboxd SQLite"] = run_plan(
            "inboxd SQLite", lambda: InboxdBench(sqlite_url, tmp), plan, unlimited=False
        )
        inboxd_pg = _sqlalchemy_url(dbs.create("inboxd"))
        results["inboxd PostgreSQL"] = run_plan(
            "inboxd PostgreSQL", lambda: InboxdBench(inboxd_pg, tmp), plan, unlimited=False
        )
        if not args.skip_others:
            pc = dbs.create("procrastinate")
            results["procrastinate"] = run_plan(
                "procrastinate", lambda: ProcrastinateBench(pc), plan, unlimited=False
            )
            pq = dbs.create("pgqueuer")
            results["pgqueuer"] = run_plan(
                "pgqueuer", lambda: PgqueuerBench(pq), plan, unlimited=True
            )
    finally:
        with contextlib.suppress(psycopg.Error):
            dbs.drop_all()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if not args.skip_others:
        ensure_bench_env()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="inboxd-bench-"))
    server: ThrowawayPostgres | None = None
    try:
        pg_url = args.pg_url
        if pg_url is None:
            server = ThrowawayPostgres()
            server.start()
            pg_url = server.url()
        print("\n".join(machine_lines()))
        print(versions_line(not args.skip_others))
        results = run_all(args, pg_url, tmp)
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    columns = [c for c in COLUMNS if c in results]
    print(f"\njobs: {args.jobs:,} drained at concurrency 10; see bench/README.md for each row")
    print_table(results, columns)
    print_targets(results)
    print(f"\ntotal time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
