"""Column values in the database driver's own form, for statements run with
``exec_driver_sql`` on the hot paths of a sync.

They must match what the SQLAlchemy column types in :mod:`inboxd.db.tables` write, so that
rows written either way read back the same: on SQLite, ``UTCDateTime`` is naive-UTC text in
SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff`` format, JSON is ``json.dumps`` text and booleans
are 0/1; on PostgreSQL (psycopg 3) they are aware datetimes, ``Jsonb`` and ``bool``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine

#: Encoded lists of strings, by value (see RowEncoder.json).
_JSON_LISTS: dict[tuple[str, ...], str] = {}
_JSON_LISTS_MAX = 4096


class RowEncoder:
    """SQLite's encoder; :class:`PostgresEncoder` overrides what differs."""

    #: The driver's positional placeholder.
    mark = "?"

    def time(self, value: datetime | None) -> Any:
        """A UTC-aware datetime as the driver stores a ``UTCDateTime``."""
        if value is None:
            return None
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def json(self, value: Any) -> Any:
        """A JSON document."""
        if type(value) is list and all(type(v) is str for v in value):
            # Mostly the same few values over and over (no flags, the owner's address).
            key = tuple(value)
            found = _JSON_LISTS.get(key)
            if found is None:
                if len(_JSON_LISTS) >= _JSON_LISTS_MAX:
                    _JSON_LISTS.clear()
                found = _JSON_LISTS[key] = json.dumps(value)
            return found
        return json.dumps(value)

    def flag(self, value: bool) -> Any:
        """A boolean."""
        return 1 if value else 0

    def insert(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT INTO table (columns) VALUES (placeholders)``."""
        marks = ", ".join([self.mark] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


class PostgresEncoder(RowEncoder):
    """psycopg 3's forms."""

    mark = "%s"

    def time(self, value: datetime | None) -> Any:
        return value.astimezone(UTC) if value is not None else None

    def json(self, value: Any) -> Any:
        return Jsonb(value)

    def flag(self, value: bool) -> Any:
        return bool(value)


_SQLITE = RowEncoder()
_POSTGRES = PostgresEncoder()


def encoder_for(conn: Connection | Engine) -> RowEncoder:
    """The encoder of the connection's (or engine's) dialect."""
    return _POSTGRES if conn.dialect.name == "postgresql" else _SQLITE
