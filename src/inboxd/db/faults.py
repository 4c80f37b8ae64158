"""Telling a full disk apart from other database and file errors.

A full disk looks like a transient database error (SQLite: "database or disk is full";
PostgreSQL: SQLSTATE 53100) or a plain OSError (a pack file's write), and retrying it in a
loop only fills logs: it needs a person to free space first. SQLite on a full disk cannot
even record that a job failed, so a little room is set aside beforehand (the reserve) and
given back when the disk is found full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from pathlib import Path

#: errno values of a write that found no room.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: PostgreSQL's SQLSTATE for disk_full.
_PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_full(current):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        if isinstance(orig, BaseException) and _says_full(orig):
            return True
        current = current.__cause__ or current.__context__
    return False


def _says_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    return getattr(exc, "sqlstate", None) == _PG_DISK_FULL


#: The reserve's file name in the data directory.
RESERVE_NAME = "disk-reserve"


def ensure_reserve(data_dir: Path, size: int) -> bool:
    """Set ``size`` bytes of the data dir's disk aside in a file, when there is room (twice
    that free): on a full disk, :func:`release_reserve` gives them back so that a worker can
    still record why its job failed. True when the reserve is in place."""
    path = data_dir / RESERVE_NAME
    if size <= 0:
        return False
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size >= size:
            return True
    try:
        if shutil.disk_usage(data_dir).free < 2 * size:
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    return True


def release_reserve(data_dir: Path) -> bool:
    """Give the reserve's room back to the disk; True when there was one."""
    try:
        (data_dir / RESERVE_NAME).unlink()
    except FileNotFoundError:
        return False
    return True
