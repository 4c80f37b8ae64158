"""Telling a full disk apart from other errors, and the reserve that lets a worker record it."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from inboxd.db.faults import RESERVE_NAME, ensure_reserve, is_disk_full, release_reserve


def _sqlite_full() -> sqlite3.OperationalError:
    """A real SQLITE_FULL: the database may not grow past its one page."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    return caught.value


class _PgDiskFull(Exception):
    sqlstate = "53100"


def test_full_disks_are_recognised_through_wrappers_and_chains() -> None:
    full = _sqlite_full()
    assert is_disk_full(full)
    assert is_disk_full(OperationalError("COMMIT", {}, full))
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(_PgDiskFull())
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise RuntimeError("while packing") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)


def test_other_errors_are_not_a_full_disk() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert not is_disk_full(locked)
    assert not is_disk_full(OperationalError("SELECT 1", {}, locked))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("nope"))


def test_the_reserve_is_set_aside_and_given_back(tmp_path: Path) -> None:
    assert ensure_reserve(tmp_path, 64 * 1024)
    assert (tmp_path / RESERVE_NAME).stat().st_size == 64 * 1024
    assert (tmp_path / RESERVE_NAME).stat().st_mode & 0o777 == 0o600
    assert ensure_reserve(tmp_path, 64 * 1024), "already there"
    assert release_reserve(tmp_path)
    assert not (tmp_path / RESERVE_NAME).exists()
    assert not release_reserve(tmp_path), "nothing left to give back"
    assert not ensure_reserve(tmp_path, 0), "a size of 0 turns it off"
