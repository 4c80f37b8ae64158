"""Jobs as people and programs act on them: start, inspect, cancel, retry, approve."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from inboxd.actions.changes import start_change, undo_job
from inboxd.actions.cleanups import start_cleanup_job
from inboxd.actions.export import start_export_job
from inboxd.actions.newsletters import start_extraction
from inboxd.actions.triage import start_triage_job
from inboxd.app import App
from inboxd.config import Settings
from inboxd.errors import Forbidden, InvalidField, InvalidState
from inboxd.jobs.model import Job, JobEvent
from inboxd.jobs.registry import TaskSpec, all_tasks, get_task
from inboxd.pipeline.index import index_dedupe_key
from inboxd.pipeline.labels import enqueue_label
from inboxd.store.accounts import Account
from inboxd.sync.task import enqueue_sync
from inboxd.tasks import load_tasks

#: Queues whose kinds only an admin may start by hand (housekeeping).
ADMIN_QUEUES = frozenset({"maintenance"})


def check_may_start(kind: str, *, admin: bool) -> TaskSpec:
    """The spec of ``kind`` if this user may start it by hand (UnknownJobKind, Forbidden)."""
    spec = get_task(kind)
    if spec.queue in ADMIN_QUEUES and not admin:
        raise Forbidden(f"only an admin may start {kind!r} jobs")
    return spec


#: Kinds whose job is always for one account: started with an ``account_id``.
ACCOUNT_KINDS = frozenset({"sync", "index", "triage", "change", "cleanup", "label"})


def start_job(
    app: App,
    kind: str,
    params: dict[str, Any],
    *,
    user_id: str,
    admin: bool,
    account: Account | None = None,
) -> Job:
    """Start a job of ``kind`` for a user (a sync goes through its one-per-account rule, an
    export through its own rules)."""
    check_may_start(kind, admin=admin)
    own = _by_own_rules(app, kind, params, user_id=user_id, admin=admin, account=account)
    if own is not None:
        return own
    if kind == "undo":
        # Through the undo's own rules; the account is the undone job's.
        wanted = str(get_task(kind).validate(params)["job_id"])
        owner = None if admin else user_id
        if account is not None and app.queue.get(wanted, owner=owner).account_id != account.id:
            raise InvalidField("account_id must be the undone job's account")
        return undo_job(app, wanted, owner=owner)
    if kind in ACCOUNT_KINDS and account is None:
        raise InvalidField(f"a {kind} job needs an account_id")
    named = params.get("account_id")
    if named is not None and (account is None or named != account.id):
        # The job's account_id is the one checked against the caller: params may not name
        # another (someone else's) account for the task to work on.
        raise InvalidField("params.account_id must be the job's account_id")
    if kind == "index":
        assert account is not None
        return app.queue.enqueue(
            kind,
            params,
            owner=account.owner,
            account_id=account.id,
            dedupe_key=index_dedupe_key(account.id),
        )
    if kind == "sync":
        assert account is not None
        return enqueue_sync(app.queue, account)
    if kind == "triage":
        assert account is not None
        return start_triage_job(app, params, account)
    if kind == "cleanup":
        assert account is not None
        return start_cleanup_job(app, params, account)
    if kind == "change":
        assert account is not None
        return start_change(app, account, params)
    if kind == "label":
        assert account is not None
        return enqueue_label(app.queue, account)  # one per account; off: it does nothing
    return app.queue.enqueue(
        kind,
        params,
        owner=account.owner if account else user_id,
        account_id=account.id if account else None,
    )


def _by_own_rules(
    app: App,
    kind: str,
    params: dict[str, Any],
    *,
    user_id: str,
    admin: bool,
    account: Account | None,
) -> Job | None:
    """Kinds for one user, an account optional, started through their own rules (None:
    not one of them)."""
    if kind == "export":
        return start_export_job(
            app, params, user_id=user_id, admin=admin, account_id=account.id if account else None
        )
    if kind == "newsletter_extraction":
        extra = {"account_id": account.id} if account is not None else {}
        owner = account.owner if account is not None and account.owner else user_id
        return start_extraction(app, params | extra, owner=owner, any_account=admin)
    return None


def enqueue_job(
    app: App,
    kind: str,
    params: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    priority: int = 0,
    queue: str | None = None,
    run_at: datetime | None = None,
    owner: str | None = None,
    max_attempts: int | None = None,
    awaiting_approval: bool = False,
) -> Job:
    """Enqueue any job with every option of the queue (the operator's command line)."""
    return app.queue.enqueue(
        kind,
        params,
        dedupe_key=dedupe_key,
        priority=priority,
        queue=queue,
        run_at=run_at,
        owner=owner,
        max_attempts=max_attempts,
        awaiting_approval=awaiting_approval,
    )


def list_jobs(
    app: App,
    *,
    status: Sequence[str] | None = None,
    kind: str | None = None,
    owner: str | None = None,
    account_id: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs, newest first; ``owner`` limits them to one owner's."""
    return app.queue.list_jobs(
        status=list(status) if status else None,
        kind=kind,
        owner=owner,
        account_id=account_id,
        limit=limit,
    )


def get_job(app: App, job_id: str, *, owner: str | None = None) -> Job:
    """One job's snapshot (NotFound for another owner's job)."""
    return app.queue.get(job_id, owner=owner)


def cancel_job(app: App, job_id: str, *, owner: str | None = None) -> Job:
    """Cancel at once when waiting, at the next checkpoint when running."""
    return app.queue.cancel(job_id, owner=owner)


def retry_job(app: App, job_id: str, *, owner: str | None = None) -> Job:
    """Queue a failed or cancelled job again (same id, attempts reset)."""
    return app.queue.retry(job_id, owner=owner)


def approve_job(app: App, job_id: str, *, owner: str | None = None) -> Job:
    """Let a job that awaits a person's approval run (not a clean-up: a clean-up is
    approved with its exact list, through the clean-up actions)."""
    job = app.queue.get(job_id, owner=owner)
    if job.kind == "cleanup":
        raise InvalidState(
            f"job {job_id} is a clean-up: approve it with `inboxd cleanup approve {job_id}`"
            " (or POST /api/cleanups/{id}/approve), which records the exact list"
        )
    return app.queue.approve(job_id, owner=owner)


def job_events(app: App, job_id: str, *, after_id: int = 0) -> list[JobEvent]:
    """A job's events after ``after_id``, oldest first."""
    return app.queue.events(job_id, after_id=after_id)


def job_kinds(settings: Settings) -> list[TaskSpec]:
    """The job kinds this installation can run (its own task modules included)."""
    load_tasks(settings.task_modules)
    return all_tasks()


def job_params_schemas() -> list[tuple[str, dict[str, Any]]]:
    """Each job kind registered in this process with the JSON schema of its params
    (nested models as OpenAPI component references), sorted by kind."""
    template = "#/components/schemas/{model}"
    return [
        (spec.kind, spec.params_model.model_json_schema(ref_template=template))
        for spec in all_tasks()
    ]
