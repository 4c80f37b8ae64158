"""The ``sync`` job: bring one account's local copy up to date, whatever its provider.

The web process imports this module to enqueue syncs; the sync engine (helper processes,
the providers) is imported only where a worker runs or prepares the task.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from inboxd.config import Settings
from inboxd.db.engine import reading
from inboxd.db.faults import is_disk_full, release_reserve
from inboxd.db.tables import messages
from inboxd.db.types import utcnow
from inboxd.errors import (
    DiskFull,
    InboxdError,
    InvalidParams,
    InvalidRequest,
    PermanentError,
)
from inboxd.jobs.model import Job
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.queue import Queue
from inboxd.jobs.registry import task
from inboxd.jobs.scheduler import Schedule, schedule_source
from inboxd.jobs.services import JobServices
from inboxd.providers.base import ProviderOptions
from inboxd.providers.oauth import SignInRequired
from inboxd.providers.registry import open_provider
from inboxd.store.accounts import (
    NEEDS_ATTENTION,
    NEEDS_SIGN_IN,
    OK,
    WAITING_STATES,
    Account,
    Accounts,
)
from inboxd.sync.report import SyncReport


class SyncParams(BaseModel, extra="forbid"):
    """Parameters of ``sync`` (the account is the job's account_id)."""


def sync_dedupe_key(account_id: str) -> str:
    """At most one active sync per account."""
    return f"sync:{account_id}"


def enqueue_sync(queue: Queue, account: Account) -> Job:
    """Queue a sync of ``account`` now; at most one is active per account (that one is
    returned when it exists)."""
    return queue.enqueue(
        "sync",
        {},
        owner=account.owner,
        account_id=account.id,
        dedupe_key=sync_dedupe_key(account.id),
        priority=10,
    )


def _prepare(settings: Settings) -> None:
    """Start the sync helper processes, and load the sync engine, before the first sync
    job needs them."""
    from inboxd.sync import engine  # noqa: F401  (the first job must not pay for this)
    from inboxd.sync.helpers import prepare_worker

    prepare_worker(settings)


@task("sync", params=SyncParams, prepare=_prepare)
def sync(ctx: TaskContext, params: SyncParams) -> dict[str, Any]:
    """Fetch new mail, flag changes and deletions of one account into the local store."""
    account_id = ctx.job.account_id
    if account_id is None:
        raise InvalidParams("a sync job needs an account_id")
    registry = Accounts(ctx.engine, ctx.settings)
    account = registry.get(account_id)
    try:
        report = _run(ctx, registry, account)
    except PermanentError as exc:
        # Wrong password, bad TLS, missing file: a person has to act; retrying won't help.
        state = NEEDS_SIGN_IN if isinstance(exc, SignInRequired) else NEEDS_ATTENTION
        _needs_attention(registry, account, exc.message, state)
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        full = DiskFull()
        release_reserve(ctx.settings.data_dir)  # the room to write down why
        _needs_attention(registry, account, full.message)
        raise full from exc
    registry.set_state(account.id, OK, None, last_sync_at=utcnow(), last_sync_job_id=ctx.job_id)
    _enqueue_index(ctx, account)
    return report


def _enqueue_index(ctx: TaskContext, account: Account) -> None:
    """Index what the sync stored, as a job of its own (inboxd.pipeline.index): the sync
    does not wait for it. By kind name: sync/ does not import pipeline/. Not when nothing
    waits for the index (most periodic syncs): no empty job every few minutes."""
    m = messages.c
    try:
        with reading(ctx.engine) as conn:
            waiting = conn.execute(
                select(m.id).where(m.account_id == account.id, m.indexed_at.is_(None)).limit(1)
            ).first()
        if waiting is None:
            return
        Queue(ctx.engine, ctx.settings).enqueue(
            "index",
            {"account_id": account.id},
            owner=account.owner,
            account_id=account.id,
            dedupe_key=f"index:{account.id}",  # pipeline.index.index_dedupe_key
        )
    except (InboxdError, SQLAlchemyError) as exc:
        # The mail is stored; the next sync queues the index run again.
        ctx.log.warning("could not queue the index job: %s", exc)


def _needs_attention(
    registry: Accounts, account: Account, message: str, state: str = NEEDS_ATTENTION
) -> None:
    # On a full disk even this small write may fail; the job's error still says why.
    with contextlib.suppress(SQLAlchemyError):
        registry.set_state(account.id, state, message)


def _run(ctx: TaskContext, registry: Accounts, account: Account) -> dict[str, Any]:
    settings = ctx.settings
    options = ProviderOptions(
        timeout=settings.imap_timeout_seconds,
        batch_messages=settings.sync_batch_messages,
        batch_bytes=settings.sync_batch_bytes,
    )
    try:
        provider = open_provider(account, registry, options)
    except InvalidRequest as exc:  # a provider this version does not know
        raise PermanentError(f"provider {account.provider!r} cannot sync: {exc.message}") from exc
    # Here, not at the top: see the module's docstring.
    from inboxd.sync.engine import SyncEngine

    # A retried or rescued attempt adds to what the earlier ones did: the result is the job's.
    # Totals are saved with each batch this process stores, and with every progress write
    # (which also covers what helper processes stored).
    saved = ctx.checkpoint if isinstance(ctx.checkpoint, dict) else {}
    engine = SyncEngine(
        ctx.engine,
        settings,
        account.id,
        provider,
        ctx.progress,
        ctx.log,
        earlier=SyncReport.from_dict(saved.get("report")),
        keep=ctx.progress.keep_in,
    )
    ctx.progress.keep(engine.totals)
    return asdict(engine.run())


@schedule_source
def _periodic_syncs(app: JobServices) -> list[Schedule]:
    """Every enabled account syncs on its own interval (default: the setting), except one
    that needs attention: retrying a rejected password every few minutes gets the account
    locked or the address banned by many servers. Changing its password or settings (or
    a sync asked for by hand that succeeds) brings it back."""
    found = []
    for account in Accounts(app.engine, app.settings).list():
        every = account.sync_interval_seconds
        if every is None:
            every = app.settings.sync_interval_seconds
        if account.enabled and every > 0 and account.state not in WAITING_STATES:
            found.append(
                Schedule(
                    name=f"sync:{account.id}",
                    kind="sync",
                    every=float(every),
                    owner=account.owner,
                    account_id=account.id,
                    dedupe_key=sync_dedupe_key(account.id),
                )
            )
    return found
