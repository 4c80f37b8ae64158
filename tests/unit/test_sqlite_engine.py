"""The SQLite engine's settings: what a new database gets, what an old one keeps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from inboxd.app import App
from inboxd.config import Settings
from inboxd.db.engine import NEW_DATABASE_PAGE_SIZE, make_engine, writing


def _pragma(engine_url: str, name: str) -> object:
    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()
    finally:
        engine.dispose()


def test_a_new_database_gets_large_pages_and_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert _pragma(url, "page_size") == NEW_DATABASE_PAGE_SIZE == 16384
    assert _pragma(url, "journal_mode") == "wal"


def test_an_existing_database_keeps_its_page_size_and_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # made by an older inboxd: 4 KB pages
        old.execute("CREATE TABLE t (x INTEGER)")
        old.execute("INSERT INTO t VALUES (1)")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with writing(engine) as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    finally:
        engine.dispose()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_database_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "inboxd.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with writing(engine) as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as conn:  # a reader keeps -wal and -shm in place
            conn.exec_driver_sql("SELECT * FROM t").all()
            for name in ("inboxd.db", "inboxd.db-wal", "inboxd.db-shm"):
                assert _mode(path.parent / name) == 0o600, name
    finally:
        engine.dispose()
    assert _mode(path.parent) == 0o700


def test_files_left_readable_by_an_older_inboxd_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE t (x INTEGER)")
    wal = tmp_path / "old.db-wal"
    wal.touch()
    for made in (path, wal):
        made.chmod(0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert _mode(path) == _mode(wal) == 0o600


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with App.open(Settings(data_dir=data)):
        pass
    assert _mode(data) == 0o700
