#!/usr/bin/env python3
"""Benchmark of inboxd's full-text index and search against notmuch (Xapian), same Maildir,
same run (figures, not a test).

    python bench/search.py [--count 100000] [--repeat 20] [--skip-postgres] [--skip-notmuch]

The mailbox is bench/sync.py's generated one (cached under .bench/sync-mail), hard-linked
into a Maildir in a temp dir. For each database (SQLite, and PostgreSQL on a throwaway
cluster, bench/_pg.py) one child process syncs the Maildir (a ``sync`` job, which queues
the ``index`` job) and another runs that index job alone, so each peak RSS is that job's.
Then this process times a mix of queries (first 50 matches, newest first; and their count)
and the first page of the message list. notmuch indexes the same Maildir with its own
config in the temp dir (``notmuch new``) and answers the same queries through its command
line (``notmuch search --limit=50``, ``notmuch count``: process start included, measured on
its own as "notmuch --version"). notmuch is installed with apt-get when missing.
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
import calendar
import collections
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.sync import _pools, corpus, run_measured

# Targets from the issue.
TARGET_SEARCH_P95_MS = 50.0
TARGET_LIST_P95_MS = 20.0
TARGET_RSS_MB = 200.0
PAGE = 50


@dataclass(frozen=True)
class QuerySpec:
    """One query of the mix, in both languages."""

    label: str
    inboxd: str
    notmuch: str


@dataclass
class Side:
    """What one database (or notmuch) measured."""

    name: str
    index_seconds: float = 0.0
    index_rss_kb: int = 0
    sync_seconds: float = 0.0
    sync_rss_kb: int = 0
    indexed: int = 0
    search_ms: dict[str, list[float]] = field(default_factory=dict)
    count_ms: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    list_ms: dict[str, list[float]] = field(default_factory=dict)
    db_bytes: int = 0


# --------------------------------------------------------------------------- the query mix


def query_mix(count: int) -> list[QuerySpec]:
    """Queries over the generated mailbox: a common and a rarer word, a phrase, a sender,
    a month, and a combination, chosen from the generator's own text pool."""
    text = _pools().text.decode()
    lines = text.splitlines()
    freq = collections.Counter(w for w in text.split() if w.isascii() and w.isalpha())
    ranked = [w for w, _ in freq.most_common()]
    common, rare = ranked[20], ranked[len(ranked) // 3]
    line = next(ln for ln in lines[len(lines) // 2 :] if len(ln.split()) >= 3)
    first, second = line.split()[:2]
    # Messages are 4,000 s apart from 2022-01-01: the month in the middle of the mailbox's
    # past (a message dated ahead of its arrival sorts by its arrival, see store/writer.py).
    start = 1_640_995_200
    middle = start + min(count * 4000, int(time.time()) - start) // 2
    month = time.strftime("%Y-%m", time.gmtime(middle))
    year, mon = (int(p) for p in month.split("-"))
    after = f"{month}-01"
    before = f"{year + mon // 12}-{mon % 12 + 1:02d}-01"
    last = f"{month}-{calendar.monthrange(year, mon)[1]:02d}"  # notmuch: a whole last day
    return [
        QuerySpec("word (common)", common, common),
        QuerySpec("word (rare)", rare, rare),
        QuerySpec("phrase", f'"{first} {second}"', f'"{first} {second}"'),
        QuerySpec("from:", "from:alice", "from:alice"),
        QuerySpec(
            "date range",
            f"after:{after} before:{before}",
            f"date:{after}..{last}",
        ),
        QuerySpec(
            "combination",
            f"{common} from:bob -{rare} after:2022-01-01",
            f"{common} and from:bob and not {rare} and date:2022-01-01..",
        ),
    ]


# --------------------------------------------------------------------------- children


def child(spec: dict[str, Any]) -> None:
    """Inside a child process: sync the Maildir, or run the queued index job."""
    from inboxd.app import App
    from inboxd.config import Settings
    from inboxd.jobs.worker import Worker
    from inboxd.store.accounts import Accounts
    from inboxd.sync.task import sync_dedupe_key

    settings = Settings(
        database_url=spec["url"],
        data_dir=Path(spec["data_dir"]),
        poll_interval_ms=20,
        task_modules=[],
    )
    app = App.open(settings)
    try:
        if spec["mode"] == "sync":
            account = Accounts(app.engine, app.settings).add(
                "maildir", "bench", {"path": spec["maildir"]}
            )
            job = app.queue.enqueue(
                "sync", account_id=account.id, dedupe_key=sync_dedupe_key(account.id)
            )
        else:
            pending = app.queue.list_jobs(kind="index", status=["pending"], limit=1)
            if not pending:
                raise SystemExit("no index job was queued by the sync")
            job = pending[0]
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


def run_child(work: Path, spec: dict[str, Any], log: Path) -> tuple[dict[str, Any], int]:
    """Run one child; returns its figures and its peak RSS (KB)."""
    result = work / f"result-{time.monotonic_ns()}.json"
    spec_file = result.with_suffix(".spec")
    spec_file.write_text(json.dumps({**spec, "result": str(result)}))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)]
    _wall, code, rss, output = run_measured(command, log)
    if code != 0 or not result.exists():
        raise RuntimeError(f"inboxd {spec['mode']} child failed ({code}):\n{output[-3000:]}")
    got: dict[str, Any] = json.loads(result.read_text())
    if got["status"] != "completed":
        raise RuntimeError(f"inboxd {spec['mode']} job {got['status']}: {got['error']}")
    return got, rss


# --------------------------------------------------------------------------- measuring


def timed(call: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Milliseconds of each of ``repeat`` calls (after one warm-up call), and its answer."""
    answer = call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times, answer


def measure_inboxd(side: Side, url: str, mix: Sequence[QuerySpec], repeat: int) -> None:
    """Time the query mix and the message list's first page on one inboxd database."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from inboxd.db.engine import make_engine, reading
    from inboxd.db.tables import messages as m
    from inboxd.store.search import message_filter, parse_query

    engine = make_engine(url)
    dialect = engine.dialect.name
    now = datetime.now(UTC)
    columns = (m.c.id, m.c.subject, m.c.from_addr, m.c.from_name, m.c.sort_date, m.c.flags)
    try:
        with reading(engine) as conn:

            def page(query: str) -> Callable[[], Sequence[Any]]:
                cond = message_filter(parse_query(query), dialect=dialect, now=now)
                stmt = (
                    select(*columns)
                    .where(cond)
                    .order_by(m.c.sort_date.desc(), m.c.id.desc())
                    .limit(PAGE)
                )
                return lambda: conn.execute(stmt).all()

            def count(query: str) -> Callable[[], int]:
                cond = message_filter(parse_query(query), dialect=dialect, now=now)
                stmt = select(func.count()).select_from(m).where(cond)
                return lambda: int(conn.execute(stmt).scalar_one())

            for spec in mix:
                side.search_ms[spec.label], _ = timed(page(spec.inboxd), repeat)
                side.count_ms[spec.label], side.counts[spec.label] = timed(
                    count(spec.inboxd), repeat
                )
            for label, query in (
                ("all mail", ""),
                ("folder:INBOX", "folder:INBOX"),
                ("is:unread", "is:unread"),
            ):
                side.list_ms[label], _ = timed(page(query), repeat)
    finally:
        engine.dispose()


def notmuch_side(work: Path, maildir: Path, mix: Sequence[QuerySpec], repeat: int) -> Side:
    """Index the Maildir with notmuch and time the same queries through its CLI."""
    side = Side("notmuch")
    config = work / "notmuch-config"
    config.write_text(
        f"[database]\npath={maildir}\n\n[user]\nname=Bench\nprimary_email=me@example.com\n\n"
        "[new]\ntags=\nignore=\n\n[search]\nexclude_tags=\n\n[maildir]\nsynchronize_flags=true\n"
    )
    env = {"NOTMUCH_CONFIG": str(config)}
    log = work / "notmuch.log"
    seconds, code, rss, output = run_measured(["notmuch", "new", "--quiet"], log, env)
    if code != 0:
        raise RuntimeError(f"notmuch new failed ({code}):\n{output[-2000:]}")
    side.index_seconds, side.index_rss_kb = seconds, rss
    full_env = {**os.environ, **env}

    def run(*args: str) -> Callable[[], str]:
        def call() -> str:
            return subprocess.run(
                ["notmuch", *args], env=full_env, capture_output=True, text=True, check=True
            ).stdout

        return call

    for spec in mix:
        side.search_ms[spec.label], _ = timed(
            run(
                "search",
                "--output=messages",
                "--sort=newest-first",
                f"--limit={PAGE}",
                spec.notmuch,
            ),
            repeat,
        )
        side.count_ms[spec.label], answer = timed(run("count", spec.notmuch), repeat)
        side.counts[spec.label] = int(answer.strip() or 0)
    side.list_ms["all mail"], _ = timed(
        run("search", "--output=messages", "--sort=newest-first", f"--limit={PAGE}", "*"), repeat
    )
    side.list_ms["(process start)"], _ = timed(run("--version"), repeat)
    side.indexed = int(run("count", "*")().strip())
    side.db_bytes = _tree_bytes(maildir / ".notmuch")
    return side


def inboxd_side(
    name: str, work: Path, url: str, maildir: Path, mix: Sequence[QuerySpec], repeat: int
) -> Side:
    """Sync and index the Maildir into one database, then time the queries."""
    side = Side(name)
    data_dir = work / f"data-{name}"
    log = work / f"inboxd-{name}.log"
    base = {"url": url, "data_dir": str(data_dir), "maildir": str(maildir)}
    _progress(f"{name}: syncing")
    synced, side.sync_rss_kb = run_child(work, {**base, "mode": "sync"}, log)
    side.sync_seconds = synced["seconds"]
    _progress(f"{name}: indexing")
    indexed, side.index_rss_kb = run_child(work, {**base, "mode": "index"}, log)
    side.index_seconds = indexed["seconds"]
    side.indexed = int(indexed["result"]["indexed"])
    _progress(f"{name}: querying")
    measure_inboxd(side, url, mix, repeat)
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        side.db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
    return side


# --------------------------------------------------------------------------- reporting


def p(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def report(sides: Sequence[Side], mix: Sequence[QuerySpec], count: int) -> list[str]:
    """The figures as text lines."""
    out = [f"messages: {count:,}", ""]
    notmuch = next((s for s in sides if s.name == "notmuch"), None)
    head = f"{'':34}" + "".join(f"{s.name:>16}" for s in sides)
    out += ["indexing", head]
    out.append(f"{'  messages indexed':34}" + "".join(f"{s.indexed:>16,}" for s in sides))
    out.append(f"{'  index time (s)':34}" + "".join(f"{s.index_seconds:>16.1f}" for s in sides))
    rates = {s.name: s.indexed / s.index_seconds if s.index_seconds else 0.0 for s in sides}
    out.append(f"{'  rate (messages/s)':34}" + "".join(f"{rates[s.name]:>16,.0f}" for s in sides))
    out.append(
        f"{'  peak RSS of indexing (MB)':34}"
        + "".join(f"{s.index_rss_kb / 1024:>16.0f}" for s in sides)
    )
    out.append(
        f"{'  sync time (s), not in the rate':34}"
        + "".join(
            f"{s.sync_seconds:>16.1f}" if s.name != "notmuch" else f"{'-':>16}" for s in sides
        )
    )
    out.append(
        f"{'  peak RSS of the sync (MB)':34}"
        + "".join(
            f"{s.sync_rss_kb / 1024:>16.0f}" if s.sync_rss_kb else f"{'-':>16}" for s in sides
        )
    )
    out.append(
        f"{'  database size (MB)':34}"
        + "".join(f"{s.db_bytes / 2**20:>16.0f}" if s.db_bytes else f"{'-':>16}" for s in sides)
    )
    for title, attr in (
        ("search: first 50, newest first (ms, p50/p95)", "search_ms"),
        ("count (ms, p50/p95)", "count_ms"),
    ):
        out += ["", title, head]
        for spec in mix:
            cells = []
            for s in sides:
                times = getattr(s, attr).get(spec.label)
                cells.append(
                    f"{p(times, 0.5):>7.1f}/{p(times, 0.95):<8.1f}" if times else f"{'-':>16}"
                )
            out.append(f"  {spec.label:32}" + "".join(cells))
        cells = []
        for s in sides:
            every = [t for spec in mix for t in getattr(s, attr).get(spec.label, [])]
            cells.append(f"{p(every, 0.5):>7.1f}/{p(every, 0.95):<8.1f}" if every else f"{'-':>16}")
        out.append(f"  {'the whole mix':32}" + "".join(cells))
    out += ["", "matches (count)", head]
    for spec in mix:
        out.append(
            f"  {spec.label:32}" + "".join(f"{s.counts.get(spec.label, 0):>16,}" for s in sides)
        )
    out += ["", f"message list, first page of {PAGE} (ms, p50/p95)", head]
    labels = sorted(
        {label for s in sides for label in s.list_ms}, key=lambda x: (x.startswith("("), x)
    )
    for label in labels:
        cells = []
        for s in sides:
            times = s.list_ms.get(label)
            cells.append(f"{p(times, 0.5):>7.1f}/{p(times, 0.95):<8.1f}" if times else f"{'-':>16}")
        out.append(f"  {label:32}" + "".join(cells))
    out += ["", "targets"]
    for s in sides:
        if s.name == "notmuch":
            continue
        every = [t for spec in mix for t in s.search_ms.get(spec.label, [])]
        mix95 = p(every, 0.95)
        list95 = p(s.list_ms["all mail"], 0.95)
        checks = [
            ("index rate >= notmuch's", notmuch is None or rates[s.name] >= rates["notmuch"]),
            (
                f"search p95 {mix95:.1f} ms <= {TARGET_SEARCH_P95_MS:.0f} ms",
                mix95 <= TARGET_SEARCH_P95_MS,
            ),
            (
                f"list p95 {list95:.1f} ms <= {TARGET_LIST_P95_MS:.0f} ms",
                list95 <= TARGET_LIST_P95_MS,
            ),
            (
                f"peak RSS of indexing {s.index_rss_kb / 1024:.0f} MB < {TARGET_RSS_MB:.0f} MB",
                s.index_rss_kb / 1024 < TARGET_RSS_MB,
            ),
            (
                f"peak RSS of the sync {s.sync_rss_kb / 1024:.0f} MB < {TARGET_RSS_MB:.0f} MB",
                s.sync_rss_kb / 1024 < TARGET_RSS_MB,
            ),
        ]
        if notmuch is not None:
            nm95 = p([t for spec in mix for t in notmuch.search_ms.get(spec.label, [])], 0.95)
            checks.append(
                (f"search p95 <= notmuch's ({nm95:.1f} ms, process start included)", mix95 <= nm95)
            )
        for label, ok in checks:
            out.append(f"  {s.name:12} {'ok  ' if ok else 'MISS'} {label}")
    out.append(
        "  export mbox >= 5,000 messages/s: not measured here (export lands with the reading API)"
    )
    return out


def machine_facts() -> list[str]:
    """What the figures were measured on."""
    facts = [f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"]
    try:
        import sqlite3

        facts.append(f"sqlite {sqlite3.sqlite_version}")
        version = subprocess.run(["notmuch", "--version"], capture_output=True, text=True).stdout
        facts.append(version.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def ensure_notmuch() -> bool:
    """notmuch on PATH, installed with apt-get when missing (as root); False if impossible."""
    if shutil.which("notmuch"):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    _progress("installing notmuch (apt-get)")
    subprocess.run(["apt-get", "install", "-y", "notmuch"], check=False, capture_output=True)
    return shutil.which("notmuch") is not None


def build_maildir(work: Path, count: int) -> Path:
    """A Maildir of the first ``count`` generated messages (hard links into the cache)."""
    maildir = work / "maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for path in corpus(count).values():
        target = maildir / "cur" / path.name
        if target.exists():  # a kept --work directory
            continue
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    return maildir


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=100_000, help="messages (default 100,000)")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each query")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-notmuch", action="store_true")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to use")
    parser.add_argument("--work", help="a directory for the Maildir and databases (kept)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(Path(args.child).read_text()))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="inboxd-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        _progress(f"building a Maildir of {args.count:,} messages in {work}")
        maildir = build_maildir(work, args.count)
        mix = query_mix(args.count)
        sides = [
            inboxd_side("SQLite", work, f"sqlite:///{work}/inboxd.db", maildir, mix, args.repeat)
        ]
        if not args.skip_postgres:
            url = args.pg_url
            if url is None:
                from bench._pg import ThrowawayPostgres

                server = ThrowawayPostgres()
                server.start()
                url = server.url()
            sides.append(inboxd_side("PostgreSQL", work, url, maildir, mix, args.repeat))
        if not args.skip_notmuch and ensure_notmuch():
            _progress("notmuch: indexing and querying")
            sides.append(notmuch_side(work, maildir, mix, args.repeat))
        print("\n".join([*machine_facts(), "", *report(sides, mix, args.count)]))
        print("\nqueries:")
        for spec in mix:
            print(f"  {spec.label:16} inboxd: {spec.inboxd}\n  {'':16} notmuch: {spec.notmuch}")
    finally:
        if server is not None:
            server.close()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
