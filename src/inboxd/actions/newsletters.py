"""Newsletter extractions as people run them: start one (a job; the same one again while it
waits or runs), show it, list them, export its result, delete it.

An extraction is stored apart from its job (:mod:`inboxd.store.newsletters`), so it stays
readable once job retention pruned the job; while the job is there, its state (status,
step, progress, queue position) is the fresher one and is shown. Another user's extraction
is "not found"."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.errors import InboxdError, InvalidField, InvalidState, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.pipeline.newsletters import KIND, NewsletterParams, result_as_text
from inboxd.store import newsletters as store
from inboxd.store.accounts import Accounts

__all__ = [
    "LIVE",
    "AtLimit",
    "delete_extraction",
    "export",
    "list_extractions",
    "live_count",
    "result_as_text",
    "show",
    "start_extraction",
]

#: States in which an extraction counts against its user's limit (and is deduplicated).
LIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


class AtLimit(InboxdError):
    """The user has as many extractions waiting or running as they may."""

    code = "rate_limited"


def _params(raw: dict[str, Any]) -> NewsletterParams:
    try:
        return NewsletterParams.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidField(f"{where}: {first['msg']}") from None


def dedupe_key(params: NewsletterParams, owner: str | None) -> str:
    """What makes two starts the same extraction: owner, account, window (in hours, so 1 day
    and 24 hours are one), senders (in any order) and max_results."""
    hours = (params.days_back or 0) * 24 + (params.hours_back or 0) or 7 * 24
    same = [owner, params.account_id, hours, sorted(params.senders), params.max_results]
    digest = hashlib.sha256(json.dumps(same).encode()).hexdigest()[:40]
    return f"{KIND}:{digest}"


def live_count(app: App, owner: str) -> int:
    """How many of ``owner``'s extractions wait or run now."""
    return len(app.queue.list_jobs(status=list(LIVE), kind=KIND, owner=owner, limit=1000))


def start_extraction(
    app: App,
    params: dict[str, Any],
    *,
    owner: str | None,
    any_account: bool,
    limit: int | None = None,
) -> Job:
    """Start an extraction for ``owner`` (the account, when named, must be theirs unless
    ``any_account``: the operator or an admin; no owner: every account's newsletters).
    The same one waiting or running already is returned instead (``deduplicated``): a
    second click runs nothing twice. ``limit``: most live ones for ``owner`` (AtLimit)."""
    checked = _params(params)
    account_id = checked.account_id
    if account_id is not None:
        Accounts(app.engine, app.settings).get(account_id, owner=None if any_account else owner)
    key = dedupe_key(checked, owner)
    same = app.queue.list_jobs(status=list(LIVE), kind=KIND, owner=owner, limit=1000)
    for job in same:
        if job.dedupe_key == key:
            return job.evolve(deduplicated=True)
    if limit is not None and owner is not None and len(same) >= limit:
        raise AtLimit(
            f"{limit} newsletter extractions are waiting or running already; retry when one ends"
        )
    # The key is held by the queue's unique index while the job waits or runs: of two
    # starts at once, one inserts and the other gets that job back.
    job = app.queue.enqueue(
        KIND,
        checked.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
        owner=owner,
        account_id=account_id,
        dedupe_key=key,
    )
    if not job.deduplicated:
        with writing(app.engine) as conn:
            store.create(
                conn,
                extraction_id=job.id,
                owner=owner,
                account_id=account_id,
                params=job.params,
                created_at=job.created_at,
            )
    return job


def _job(app: App, extraction_id: str, owner: str | None) -> Job | None:
    try:
        job = app.queue.get(extraction_id, owner=owner)
    except NotFound:
        return None
    return job if job.kind == KIND else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _view(
    row: store.Extraction | None,
    job: Job | None,
    ended: tuple[str, str | None, Any] | None,
    *,
    with_result: bool,
) -> dict[str, Any]:
    """An extraction as shown: the job's live state while it is there, else the row's."""
    if row is None:
        assert job is not None
        ident, params, created = job.id, job.params, job.created_at
    else:
        ident, params, created = row.id, row.params, row.created_at
    if job is not None:
        status, error = job.status.value, job.error
        started, completed = job.started_at, job.finished_at
        if row is not None and row.status == status == JobStatus.COMPLETED.value:
            # The times of its result, the same before and after the job is pruned.
            started, completed = row.started_at, row.completed_at
    else:
        assert row is not None
        status, error = row.status, row.error
        started, completed = row.started_at, row.completed_at
        if status in store.LIVE:
            # Its job ended without the task writing the end, and was pruned since.
            status, error, completed = ended or (
                "failed",
                "its job was removed before the extraction ended",
                None,
            )
    done = status == JobStatus.COMPLETED.value and row is not None
    result = row.result if done and with_result and row is not None else None
    counts = row.counts if done and row is not None else None
    return {
        "extraction_id": ident,
        "status": status,
        "params": params,
        "step": job.step if job is not None else None,
        "progress_current": job.progress_current if job is not None else 0,
        "progress_total": job.progress_total if job is not None else None,
        "message": job.message if job is not None else None,
        "error": error,
        "queue_position": job.queue_position if job is not None else None,
        "created_at": _iso(created),
        "started_at": _iso(started),
        "completed_at": _iso(completed),
        "counts": counts,
        "result": result,
    }


def show(app: App, extraction_id: str, *, owner: str | None) -> dict[str, Any]:
    """One extraction with, once completed, its result (NotFound for another owner's)."""
    with reading(app.engine) as conn:
        row = store.get(conn, extraction_id, owner=owner)
        ended = store.ended(conn, [extraction_id]) if row and row.status in store.LIVE else {}
    job = _job(app, extraction_id, owner)
    if row is None and (job is None or job.status.value not in LIVE):
        # A job still waiting to start has no row when it was queued by the generic route.
        raise NotFound(f"no newsletter extraction {extraction_id!r}")
    return _view(row, job, ended.get(extraction_id), with_result=True)


def list_extractions(app: App, *, owner: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """The user's extractions (everyone's for ``owner`` None), newest first, no results."""
    with reading(app.engine) as conn:
        rows = store.list_extractions(conn, owner=owner, limit=limit)
        stale = [r.id for r in rows if r.status in store.LIVE]
        ended = store.ended(conn, stale)
    live = {j.id: j for j in app.queue.list_jobs(status=list(LIVE), kind=KIND, owner=owner)}
    views = [_view(r, live.pop(r.id, None), ended.get(r.id), with_result=False) for r in rows]
    # A row waits for a job the generic route queued until its task starts.
    views += [_view(None, j, None, with_result=False) for j in live.values()]
    views.sort(key=lambda v: (v["created_at"], v["extraction_id"]), reverse=True)
    return views[:limit]


def export(app: App, extraction_id: str, *, owner: str | None, fmt: str) -> str:
    """A completed extraction's result as JSON or plain text (InvalidField otherwise)."""
    if fmt not in ("json", "text"):
        raise InvalidField("format must be json or text")
    shown = show(app, extraction_id, owner=owner)
    result = shown["result"]
    if shown["status"] != JobStatus.COMPLETED.value or not isinstance(result, dict):
        raise InvalidField(
            f"extraction {extraction_id} is {shown['status']}: nothing to export yet"
        )
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    return result_as_text(result)


def delete_extraction(app: App, extraction_id: str, *, owner: str | None) -> None:
    """Remove an ended extraction and its result (InvalidState while it waits or runs)."""
    job = _job(app, extraction_id, owner)
    if job is not None and not job.status.finished:
        raise InvalidState(f"extraction {extraction_id} is {job.status.value}: cancel it first")
    with writing(app.engine) as conn:
        if not store.delete_one(conn, extraction_id, owner=owner):
            raise NotFound(f"no newsletter extraction {extraction_id!r}")
