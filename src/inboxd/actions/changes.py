"""Changing mail as people ask for it: mark a message (read, unread, flagged, unflagged),
undo a job's changes, read a job's journal. Each change is a job of the one journaled path
(:mod:`inboxd.pipeline.changes`); read-only accounts (mbox) are refused before anything is
queued. Another user's message or job is "not found"."""

from __future__ import annotations

from typing import Any

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.errors import InvalidField, InvalidRequest, InvalidState, NotFound
from inboxd.jobs.model import Job
from inboxd.jobs.registry import get_task
from inboxd.pipeline.changes import ChangeParams, read_only_reason, undo_dedupe_key
from inboxd.store import journal
from inboxd.store import messages as reader
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import JournalState, MarkAction

__all__ = ["journal_of", "mark", "start_change", "undo_job"]

#: Journal rows a page holds when the caller does not say, and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _writable(app: App, account: Account) -> None:
    reason = read_only_reason(app.engine, app.settings, account)
    if reason is not None:
        raise InvalidRequest(reason)


def _action(value: str) -> MarkAction:
    try:
        return MarkAction(value)
    except ValueError:
        names = ", ".join(a.value for a in MarkAction)
        raise InvalidField(f"unknown mark {value!r}; one of {names}") from None


def mark(app: App, message_pk: int, action: str, *, owner: str | None) -> Job:
    """Queue a job that marks one message on the server (and in the store)."""
    chosen = _action(action)
    with reading(app.engine) as conn:
        row = reader.get_message(conn, message_pk, owner=owner)
    account = Accounts(app.engine, app.settings).get(row.account_id)
    _writable(app, account)
    return app.queue.enqueue(
        "change",
        {"message_ids": [row.id], "mark": chosen.value},
        owner=account.owner,
        account_id=account.id,
        priority=20,  # a person clicked and is looking at it
    )


def start_change(app: App, account: Account, params: dict[str, Any]) -> Job:
    """A change asked for as a generic job (``POST /api/jobs``): every message must be
    the account's."""
    checked = ChangeParams.model_validate(get_task("change").validate(params))
    _writable(app, account)
    with reading(app.engine) as conn:
        owned = journal.of_account(conn, account.id, checked.message_ids)
    missing = [pk for pk in checked.message_ids if pk not in owned]
    if missing:
        raise NotFound(f"no message {missing[0]}")
    return app.queue.enqueue(
        "change",
        checked.model_dump(mode="json", exclude_defaults=True),
        owner=account.owner,
        account_id=account.id,
    )


def undo_job(app: App, job_id: str, *, owner: str | None) -> Job:
    """Queue the undo of a finished job's changes (at most one active per job; that one
    is returned when it exists). InvalidState while the job runs, when it changed nothing
    or when it is already undone."""
    job = app.queue.get(job_id, owner=owner)
    if not job.status.finished:
        raise InvalidState(
            f"job {job_id} has not finished ({job.status.value}): nothing to undo yet"
        )
    with reading(app.engine) as conn:
        counts = journal.counts(conn, job_id)
        by = journal.undone_by(conn, job_id)
    if not counts.get(JournalState.DONE):
        if counts.get(JournalState.UNDONE):
            raise InvalidState(f"job {job_id} is already undone (by job {by})")
        raise InvalidState(f"job {job_id} changed nothing: nothing to undo")
    if job.account_id is None:
        raise InvalidState(f"job {job_id} names no account")
    account = Accounts(app.engine, app.settings).get(job.account_id)
    _writable(app, account)
    return app.queue.enqueue(
        "undo",
        {"job_id": job_id},
        owner=job.owner,
        account_id=account.id,
        dedupe_key=undo_dedupe_key(job_id),
        priority=20,
    )


def journal_of(
    app: App,
    job_id: str,
    *,
    owner: str | None,
    state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> dict[str, Any]:
    """A job's journal: counts per state, whether it can be undone, by whom it was, and a
    page of its rows in the order they were written."""
    job = app.queue.get(job_id, owner=owner)
    if state is not None and state not in {s.value for s in JournalState}:
        names = ", ".join(s.value for s in JournalState)
        raise InvalidField(f"unknown state {state!r}; one of {names}")
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidField(f"limit must be 1-{MAX_LIMIT} and offset at least 0")
    with reading(app.engine) as conn:
        counts = journal.counts(conn, job_id)
        rows = journal.entries(conn, job_id, state=state, limit=limit, offset=offset)
        by = journal.undone_by(conn, job_id)
    return {
        "job_id": job.id,
        "counts": counts,
        "undoable": job.status.finished and counts.get(JournalState.DONE, 0) > 0,
        "undone_by": by,
        "entries": [row.to_dict() for row in rows],
    }
