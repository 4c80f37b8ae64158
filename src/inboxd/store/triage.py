"""Triage's own tables: the user's rules, their corrections, each account's model, and the
columns the triage job writes on ``messages``.

Rules and corrections are always read and changed through an owner: another user's rule
is "not found", like another user's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy import update as sql_update

from inboxd.db.tables import messages as m
from inboxd.db.tables import triage_corrections as c
from inboxd.db.tables import triage_models as tm
from inboxd.db.tables import triage_rules as r
from inboxd.db.types import utcnow
from inboxd.errors import NotFound
from inboxd.vocabulary import Category, TriageSource

__all__ = [
    "Correction",
    "Rule",
    "StoredModel",
    "add_rule",
    "correct",
    "corrections_for",
    "corrections_since",
    "get_rule",
    "list_rules",
    "load_model",
    "remove_rule",
    "rules_for_account",
    "save_model",
    "write_verdicts",
]

#: Rule sources: written by a person, or made from a correction ("always for this sender").
USER, SENDER = "user", "sender"


@dataclass(frozen=True, slots=True)
class Rule:
    """Messages matching ``match`` (the search language) get ``category`` (and
    ``priority`` when set); ``account_id`` None: every account of ``owner``."""

    id: int
    owner: str | None
    account_id: str | None
    match: str
    category: Category
    priority: int | None
    source: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """Build from a ``triage_rules`` row."""
        x = row._mapping
        return cls(
            id=int(x["id"]),
            owner=x["owner"],
            account_id=x["account_id"],
            match=x["match"],
            category=Category(x["category"]),
            priority=x["priority"],
            source=x["source"],
            created_at=x["created_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The rule object of the API and ``--json``."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "match": self.match,
            "category": str(self.category),
            "priority": self.priority,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }


def _same_owner(column: Column[Any], owner: str | None) -> ColumnElement[bool]:
    return column.is_(None) if owner is None else column == owner


def add_rule(
    conn: Connection,
    *,
    owner: str | None,
    account_id: str | None,
    match: str,
    category: Category,
    priority: int | None = None,
    source: str = USER,
) -> Rule:
    """Store a rule. A sender rule replaces the owner's earlier one with the same match and
    account (one "always" per sender), so the newest says what applies."""
    if source == SENDER:
        conn.execute(
            delete(r).where(
                _same_owner(r.c.owner, owner),
                _same_owner(r.c.account_id, account_id),
                r.c.match == match,
                r.c.source == SENDER,
            )
        )
    values = {
        "owner": owner,
        "account_id": account_id,
        "match": match,
        "category": str(category),
        "priority": priority,
        "source": source,
        "created_at": utcnow(),
    }
    pk = conn.execute(r.insert().values(values).returning(r.c.id)).scalar_one()
    return Rule.from_row(conn.execute(select(r).where(r.c.id == pk)).one())


def list_rules(conn: Connection, *, owner: str | None, all_owners: bool = False) -> list[Rule]:
    """The owner's rules (every rule when ``all_owners``), newest first."""
    stmt = select(r).order_by(r.c.created_at.desc(), r.c.id.desc())
    if not all_owners:
        stmt = stmt.where(_same_owner(r.c.owner, owner))
    return [Rule.from_row(row) for row in conn.execute(stmt)]


def get_rule(conn: Connection, rule_id: int, *, owner: str | None, any_owner: bool) -> Rule:
    """One rule; NotFound unless it is ``owner``'s (or ``any_owner``)."""
    stmt = select(r).where(r.c.id == rule_id)
    if not any_owner:
        stmt = stmt.where(_same_owner(r.c.owner, owner))
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no rule {rule_id}")
    return Rule.from_row(row)


def remove_rule(conn: Connection, rule_id: int) -> None:
    """Delete a rule (checked with :func:`get_rule` first)."""
    conn.execute(delete(r).where(r.c.id == rule_id))


def rules_for_account(conn: Connection, account_id: str, owner: str | None) -> list[Rule]:
    """The rules that apply to an account: its owner's, for it or for all their accounts,
    newest first (the first that matches a message decides)."""
    stmt = (
        select(r)
        .where(
            _same_owner(r.c.owner, owner),
            or_(r.c.account_id.is_(None), r.c.account_id == account_id),
        )
        .order_by(r.c.created_at.desc(), r.c.id.desc())
    )
    return [Rule.from_row(row) for row in conn.execute(stmt)]


# -- corrections --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Correction:
    """A person's category for one message."""

    message_pk: int
    category: Category
    from_addr: str | None


def correct(
    conn: Connection, message_pk: int, account_id: str, category: Category, from_addr: str | None
) -> None:
    """Record (or replace) the user's category for a message."""
    conn.execute(delete(c).where(c.c.message_pk == message_pk))
    conn.execute(
        c.insert().values(
            message_pk=message_pk,
            account_id=account_id,
            category=str(category),
            from_addr=from_addr,
            created_at=utcnow(),
        )
    )


def corrections_for(conn: Connection, pks: Sequence[int]) -> dict[int, Category]:
    """The corrections of these messages, by pk."""
    if not pks:
        return {}
    rows = conn.execute(
        select(c.c.message_pk, c.c.category).where(c.c.message_pk.in_(list(pks)))
    ).all()
    return {int(pk): Category(cat) for pk, cat in rows}


def corrections_since(conn: Connection, account_id: str, since: datetime | None) -> int:
    """How many of an account's corrections were made after ``since`` (None: all)."""
    stmt = select(func.count()).select_from(c).where(c.c.account_id == account_id)
    if since is not None:
        stmt = stmt.where(c.c.created_at > since)
    return int(conn.execute(stmt).scalar_one())


def corrected_pks(conn: Connection, account_id: str, category: Category, limit: int) -> list[int]:
    """Up to ``limit`` of the account's corrected messages of a category, newest first."""
    rows = conn.execute(
        select(c.c.message_pk)
        .where(c.c.account_id == account_id, c.c.category == str(category))
        .order_by(c.c.message_pk.desc())
        .limit(limit)
    )
    return [int(pk) for pk in rows.scalars()]


# -- models -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredModel:
    """An account's model as stored: its own serialisation and what it was trained on."""

    account_id: str
    trained_at: datetime
    samples: int
    labels: list[str]
    blob: bytes


def load_model(conn: Connection, account_id: str) -> StoredModel | None:
    """The account's model, if one was trained."""
    row = conn.execute(select(tm).where(tm.c.account_id == account_id)).first()
    if row is None:
        return None
    x = row._mapping
    return StoredModel(
        x["account_id"], x["trained_at"], int(x["samples"]), list(x["labels"]), bytes(x["blob"])
    )


def save_model(
    conn: Connection, account_id: str, *, samples: int, labels: Iterable[str], blob: bytes
) -> datetime:
    """Store (or replace) the account's model; returns its training time."""
    now = utcnow()
    conn.execute(delete(tm).where(tm.c.account_id == account_id))
    conn.execute(
        tm.insert().values(
            account_id=account_id, trained_at=now, samples=samples, labels=list(labels), blob=blob
        )
    )
    return now


# -- the triage columns of messages ------------------------------------------------------------


def write_verdicts(conn: Connection, rows: Sequence[dict[str, Any]], when: datetime) -> None:
    """Store many messages' triage at once: each row has ``b_pk``, ``b_category``,
    ``b_priority``, ``b_confidence``, ``b_reasons`` and ``b_source``."""
    if not rows:
        return
    conn.execute(
        sql_update(m)
        .where(m.c.id == bindparam("b_pk"))
        .values(
            category=bindparam("b_category"),
            priority=bindparam("b_priority"),
            confidence=bindparam("b_confidence"),
            reasons=bindparam("b_reasons", type_=m.c.reasons.type),
            triage_source=bindparam("b_source"),
            triaged_at=when,
        ),
        list(rows),
    )


def mark_untriaged(conn: Connection, account_id: str) -> int:
    """Make every message of an account wait for triage again (``--all``); how many."""
    result = conn.execute(
        sql_update(m)
        .where(m.c.account_id == account_id, m.c.triaged_at.is_not(None))
        .values(triaged_at=None)
    )
    return int(result.rowcount or 0)


def untriaged_count(conn: Connection, account_id: str) -> int:
    """How many of an account's messages wait for triage."""
    return int(
        conn.execute(
            select(func.count()).where(m.c.account_id == account_id, m.c.triaged_at.is_(None))
        ).scalar_one()
    )


def triage_of(conn: Connection, message_pk: int) -> dict[str, Any]:
    """One message's stored triage (category, priority, confidence, reasons, source)."""
    row = conn.execute(
        select(m.c.category, m.c.priority, m.c.confidence, m.c.reasons, m.c.triage_source).where(
            m.c.id == message_pk
        )
    ).first()
    if row is None:
        raise NotFound(f"no message {message_pk}")
    return {
        "category": row.category,
        "priority": row.priority,
        "confidence": row.confidence,
        "reasons": list(row.reasons or []),
        "source": row.triage_source,
    }


def unsure_condition(account_id: str, below: float) -> ColumnElement[bool]:
    """The account's messages triage decided without a rule or correction, and unsure of."""
    return and_(
        m.c.account_id == account_id,
        m.c.triaged_at.is_not(None),
        m.c.confidence < below,
        m.c.triage_source.not_in([str(TriageSource.CORRECTION), str(TriageSource.RULE)]),
    )
