"""Newsletter extractions as people run them: start one (a job), show it, list them, export
its result. An extraction is its job: another user's is "not found"."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from inboxd.app import App
from inboxd.errors import InvalidField, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.pipeline.newsletters import KIND, NewsletterParams, result_as_text
from inboxd.store.accounts import Accounts

__all__ = [
    "LIVE",
    "export",
    "get_extraction",
    "list_extractions",
    "live_count",
    "result_as_text",
    "start_extraction",
    "view",
]

#: States in which an extraction counts against its user's limit.
LIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def _params(raw: dict[str, Any]) -> NewsletterParams:
    try:
        return NewsletterParams.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidField(f"{where}: {first['msg']}") from None


def live_count(app: App, owner: str) -> int:
    """How many of ``owner``'s extractions wait or run now."""
    return len(app.queue.list_jobs(status=list(LIVE), kind=KIND, owner=owner, limit=1000))


def start_extraction(
    app: App, params: dict[str, Any], *, owner: str | None, any_account: bool
) -> Job:
    """Start an extraction for ``owner`` (the account, when named, must be theirs unless
    ``any_account``: the operator or an admin; no owner: every account's newsletters)."""
    checked = _params(params)
    account_id = checked.account_id
    if account_id is not None:
        Accounts(app.engine, app.settings).get(account_id, owner=None if any_account else owner)
    return app.queue.enqueue(
        KIND,
        checked.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
        owner=owner,
        account_id=account_id,
    )


def get_extraction(app: App, job_id: str, *, owner: str | None) -> Job:
    """The extraction's job (NotFound for another owner's, or a job of another kind)."""
    job = app.queue.get(job_id, owner=owner)
    if job.kind != KIND:
        raise NotFound(f"no newsletter extraction {job_id!r}")
    return job


def view(job: Job, *, with_result: bool = True) -> dict[str, Any]:
    """An extraction as shown: its state and, once completed, its result."""
    done = job.status == JobStatus.COMPLETED
    return {
        "extraction_id": job.id,
        "status": job.status.value,
        "params": job.params,
        "step": job.step,
        "progress_current": job.progress_current,
        "progress_total": job.progress_total,
        "message": job.message,
        "error": job.error,
        "queue_position": job.queue_position,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.finished_at.isoformat() if job.finished_at else None,
        "counts": (job.result or {}).get("counts")
        if done and isinstance(job.result, dict)
        else None,
        "result": job.result if done and with_result else None,
    }


def list_extractions(app: App, *, owner: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """The user's extractions (everyone's for ``owner`` None), newest first, without results."""
    jobs = app.queue.list_jobs(kind=KIND, owner=owner, limit=limit)
    return [view(j, with_result=False) for j in jobs]


def export(app: App, job_id: str, *, owner: str | None, fmt: str) -> str:
    """A completed extraction's result as JSON or plain text (InvalidField otherwise)."""
    job = get_extraction(app, job_id, owner=owner)
    if job.status != JobStatus.COMPLETED or not isinstance(job.result, dict):
        raise InvalidField(f"extraction {job_id} is {job.status.value}: nothing to export yet")
    if fmt == "json":
        return json.dumps(job.result, indent=2, ensure_ascii=False) + "\n"
    if fmt == "text":
        return result_as_text(job.result)
    raise InvalidField("format must be json or text")
