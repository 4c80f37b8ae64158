"""Telling a full disk apart from other database and file errors.

A full disk looks like a transient database error (SQLite: "database or disk is full";
PostgreSQL: SQLSTATE 53100) or a plain OSError (a pack file's write), and retrying it in a
loop only fills logs: it needs a person to free space first.
"""

from __future__ import annotations

import errno
import sqlite3

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
