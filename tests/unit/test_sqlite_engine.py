"""The SQLite engine's settings: what a new database gets, what an old one keeps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
