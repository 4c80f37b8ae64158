"""Engine factory: SQLite in WAL mode with a busy timeout, or PostgreSQL through psycopg 3.

SQLite transactions that write start with ``BEGIN IMMEDIATE`` so that two writers queue on
the busy timeout instead of failing on a lock upgrade; read-only work uses :func:`reading`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_READONLY = "inboxd_readonly"
#: Page size of SQLite databases inboxd creates.
NEW_DATABASE_PAGE_SIZE = 16384


def is_sqlite(engine: Engine | Connection) -> bool:
    """True when the engine (or connection) talks to SQLite."""
    return engine.dialect.name == "sqlite"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return str(parsed.set(drivername="postgresql+psycopg").render_as_string(False))
    return url


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> Engine:
    """Create the engine for ``url``; creates the SQLite file's directory when needed."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(url, parsed.database, busy_timeout_ms, pool_size)
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, future=True
    )


#: Files of a SQLite database that hold mail metadata (subjects, addresses, snippets).
_SQLITE_FILES = ("", "-wal", "-shm", "-journal", "-writer.lock")


def private_sqlite_files(database: Path) -> None:
    """Make the database's files readable by their owner only: created 0600 (SQLite gives
    its -wal and -shm files the database file's mode), existing ones tightened."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in _SQLITE_FILES:
        path = Path(f"{database}{suffix}")
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)


def _sqlite_engine(url: str, database: str | None, busy_ms: int, pool_size: int) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        private_sqlite_files(Path(database).expanduser())
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        pool_size=pool_size,
        max_overflow=pool_size,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # pysqlite's own transaction handling is switched off so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Only a new, empty database takes this (an existing one keeps its page size).
        # Stored mail is mostly blobs of 1-500 KB in overflow pages: 16 KB pages make
        # writing and checkpointing them two to three times cheaper than 4 KB ones.
        cur.execute(f"PRAGMA page_size={NEW_DATABASE_PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can
        # lose the last commits, never corrupt the database.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


class _WriterLock:
    """Serialises SQLite writers: threads of this process on an RLock, processes on an
    flock of a file beside the database.

    Waiting in SQLite's busy handler means sleeping 1, 2, 5, 10… up to 100 ms per retry
    and no fairness: a writer that commits and begins again at once keeps winning, so a
    web request's one small write could wait for many of a busy worker's transactions. A
    blocked flock wakes as soon as the holder lets go."""

    def __init__(self, database: str | None) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        if database and database != ":memory:":
            path = Path(database).expanduser()
            self.fd = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            outermost = self.depth == 0
            if outermost and self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if outermost and self.fd is not None:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_sqlite_writers: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _sqlite_writer_lock(engine: Engine) -> _WriterLock:
    with _sqlite_writers_guard:
        lock = _sqlite_writers.get(engine)
        if lock is None:
            lock = _sqlite_writers[engine] = _WriterLock(engine.url.database)
            weakref.finalize(engine, lock.close)
        return lock


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success.

    On SQLite, writers of all processes queue on :class:`_WriterLock` first."""
    if is_sqlite(engine):
        with _sqlite_writer_lock(engine).held(), engine.begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        yield conn


def checkpoint_wal(engine: Engine) -> None:
    """Copy what is committed in SQLite's write-ahead log into the database file without
    waiting for readers or writers (a PASSIVE checkpoint); nothing on PostgreSQL.

    Bulk writers call it between their transactions: otherwise the commit that fills the
    log past ``wal_autocheckpoint`` pages does the copy, holding the writer lock."""
    if not is_sqlite(engine):
        return
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        raw.close()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that never takes SQLite's write lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_READONLY: True})
        with conn.begin():
            yield conn
