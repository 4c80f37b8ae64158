"""The search query language (Gmail's and notmuch's): parsing and turning a query into a
filter over the ``messages`` table.

Interface used by the reading side (store/messages.py, actions, API, CLI):
- :func:`parse_query` turns text into a :class:`Query`; a malformed query raises
  :class:`inboxd.errors.InvalidQuery` naming the bad part.
- :func:`message_filter` turns a Query into a SQLAlchemy condition over
  ``inboxd.db.tables.messages`` for the given dialect (full text through the FTS index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, true

from inboxd.errors import InvalidQuery


@dataclass(frozen=True)
class Query:
    """A parsed query (placeholder form until the full language lands)."""

    text: str
    terms: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the query matches every message."""
        return not self.terms


def parse_query(text: str) -> Query:
    """Parse ``text``; raises InvalidQuery naming the bad part."""
    terms = text.split()
    if any(t.count('"') % 2 for t in [text]):
        raise InvalidQuery(f"unclosed quote in query {text!r}")
    return Query(text, terms)


def message_filter(query: Query, *, dialect: str, now: datetime) -> ColumnElement[bool]:
    """A condition over ``messages`` that holds for the messages ``query`` matches."""
    from inboxd.db.tables import messages as m

    cond: ColumnElement[bool] = true()
    for term in query.terms:
        cond = cond & m.c.subject.ilike(f"%{term}%")
    return cond
