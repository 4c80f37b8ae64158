"""Triage as people steer it: triage an account now, correct a message's category (and
make it a rule for its sender), add, list and remove rules. Each change re-triages the mail
it concerns in a job. Another user's message or rule is "not found"."""

from __future__ import annotations

from typing import Any

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.errors import InvalidField, InvalidQuery
from inboxd.jobs.model import Job
from inboxd.jobs.registry import get_task
from inboxd.pipeline.labels import enqueue_label
from inboxd.pipeline.triage import TriageParams, retriage_messages, triage_dedupe_key
from inboxd.store import messages as reader
from inboxd.store import triage as store
from inboxd.store.accounts import Account, Accounts
from inboxd.store.search import parse_query
from inboxd.vocabulary import Category

__all__ = [
    "add_rule",
    "categorize",
    "list_rules",
    "remove_rule",
    "sender_match",
    "start_triage",
]

#: Characters the query language reads as syntax, kept out of a sender rule's address.
_SYNTAX = '()" \t\r\n'


def start_triage(
    app: App, account: Account, *, all_messages: bool = False, query: str | None = None
) -> Job:
    """Queue a triage of an account: its untriaged mail (one such job at a time), every
    message (``all_messages``) or the messages ``query`` matches."""
    query = query.strip() if query and query.strip() else None
    if query is not None:
        parse_query(query)  # a bad query is refused now, not by a failed job later
    params = TriageParams(account_id=account.id, all=all_messages, query=query)
    plain = not all_messages and query is None
    return app.queue.enqueue(
        "triage",
        params.model_dump(mode="json", exclude_defaults=True),
        owner=account.owner,
        account_id=account.id,
        dedupe_key=triage_dedupe_key(account.id) if plain else None,
    )


def start_triage_job(app: App, params: dict[str, Any], account: Account) -> Job:
    """A triage asked for as a generic job (``POST /api/jobs``)."""
    checked = TriageParams.model_validate(
        get_task("triage").validate({"account_id": account.id} | params)
    )
    if checked.account_id != account.id:
        raise InvalidField("params.account_id must be the job's account_id")
    return start_triage(app, account, all_messages=checked.all, query=checked.query)


def sender_match(address: str) -> str:
    """The match of a sender rule: ``from:"address"``."""
    clean = "".join(ch for ch in address.strip().lower() if ch not in _SYNTAX)
    return f'from:"{clean}"'


def _category(value: str) -> Category:
    try:
        return Category(value)
    except ValueError:
        names = ", ".join(c.value for c in Category)
        raise InvalidField(f"unknown category {value!r}; one of {names}") from None


def categorize(
    app: App, message_pk: int, category: str, *, owner: str | None, sender: bool = False
) -> dict[str, Any]:
    """File a message under ``category`` (kept by every later triage). With ``sender``,
    also always file its sender's mail so, and re-triage that mail in a job.
    ``{"message": ..., "rule": ... | None, "job_id": ... | None}``."""
    chosen = _category(category)
    with reading(app.engine) as conn:
        row = reader.get_message(conn, message_pk, owner=owner)
    account = Accounts(app.engine, app.settings).get(row.account_id)
    address = (row.from_addr or "").strip().lower() or None
    if sender and address is None:
        raise InvalidField("this message has no sender address to make a rule of")
    rule: store.Rule | None = None
    with writing(app.engine) as conn:
        store.correct(conn, row.id, account.id, chosen, address)
        if sender and address is not None:
            rule = store.add_rule(
                conn,
                owner=account.owner,
                account_id=account.id,
                match=sender_match(address),
                category=chosen,
                source=store.SENDER,
            )
    # The message itself at once, so lists show the change; its sender's mail in a job.
    retriage_messages(app.engine, app.settings, account, [row.id])
    job = start_triage(app, account, query=rule.match) if rule is not None else None
    if job is None and account.labels_enabled:
        enqueue_label(app.queue, account)  # its keyword follows its new category
    with reading(app.engine) as conn:
        shown = reader.get_message(conn, message_pk, owner=owner)
        triaged = store.triage_of(conn, message_pk)
    message = shown.to_dict()
    for key in ("category", "priority", "confidence", "reasons"):
        message.setdefault(key, triaged[key])
    return {
        "message": message,
        "rule": rule.to_dict() if rule is not None else None,
        "job_id": job.id if job is not None else None,
    }


def _affected(app: App, rule: store.Rule) -> list[Account]:
    """The accounts a rule applies to."""
    registry = Accounts(app.engine, app.settings)
    if rule.account_id is not None:
        return [registry.get(rule.account_id)]
    return [a for a in registry.list() if a.owner == rule.owner]


def _retriage(app: App, rule: store.Rule) -> list[Job]:
    """Re-triage the mail a rule matches (all the mail, if its match no longer parses)."""
    try:
        parse_query(rule.match)
    except InvalidQuery:
        return [start_triage(app, a, all_messages=True) for a in _affected(app, rule)]
    return [start_triage(app, a, query=rule.match) for a in _affected(app, rule)]


def add_rule(
    app: App,
    *,
    match: str,
    category: str,
    priority: int | None = None,
    account_id: str | None = None,
    user_id: str | None,
    admin: bool,
) -> tuple[store.Rule, list[Job]]:
    """Add a rule: messages matching ``match`` (the search language) get ``category`` (and
    ``priority``); for one account, or every account of the user. Starts a re-triage of the
    matching mail of each account it applies to."""
    chosen = _category(category)
    if not match.strip():
        raise InvalidField("a rule needs a match (a search query)")
    parse_query(match)
    if priority is not None and not 0 <= priority <= 100:
        raise InvalidField("priority must be within 0-100")
    owner = user_id
    if account_id is not None:
        account = Accounts(app.engine, app.settings).get(
            account_id, owner=None if admin else user_id
        )
        owner = account.owner
    with writing(app.engine) as conn:
        rule = store.add_rule(
            conn,
            owner=owner,
            account_id=account_id,
            match=match.strip(),
            category=chosen,
            priority=priority,
        )
    return rule, _retriage(app, rule)


def list_rules(app: App, *, owner: str | None) -> list[store.Rule]:
    """The user's rules, newest first (``owner`` None: an admin, every rule)."""
    with reading(app.engine) as conn:
        return store.list_rules(conn, owner=owner, all_owners=owner is None)


def remove_rule(app: App, rule_id: int, *, owner: str | None) -> list[Job]:
    """Remove a rule and re-triage the mail it matched (NotFound for another's rule)."""
    with writing(app.engine) as conn:
        rule = store.get_rule(conn, rule_id, owner=owner, any_owner=owner is None)
        store.remove_rule(conn, rule.id)
    return _retriage(app, rule)
