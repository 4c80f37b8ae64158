"""Exports as people ask for them: who may export an account, and where to."""

from __future__ import annotations

from typing import Any

from inboxd.actions.accounts import get_account
from inboxd.app import App
from inboxd.errors import Forbidden, InvalidField
from inboxd.jobs.model import Job
from inboxd.jobs.registry import get_task
from inboxd.pipeline.export import ExportParams, Format, Layout, check_target, export_dedupe_key
from inboxd.store.search import parse_query


def start_export(
    app: App,
    account_id: str,
    *,
    fmt: Format,
    out: str,
    user_id: str,
    admin: bool,
    query: str | None = None,
    layout: Layout | None = None,
) -> Job:
    """Queue an export of an account to ``out`` on the server's host: an admin may export
    any account, its owner their own (NotFound otherwise); writing a file of the server's
    host is an admin's right, like reading one for a path account."""
    account = get_account(app, account_id, owner=None if admin else user_id)
    if not admin:
        raise Forbidden("only an admin may export to a path on the server's host")
    check_target(fmt, out, layout)
    if query and query.strip():
        parse_query(query)  # a bad query is refused now, not by a failed job later
    params = ExportParams(
        account_id=account.id, format=fmt, out=out, query=query or None, layout=layout
    )
    return app.queue.enqueue(
        "export",
        params.model_dump(mode="json", exclude_none=True),
        owner=account.owner,
        account_id=account.id,
        dedupe_key=export_dedupe_key(out),
    )


def start_export_job(
    app: App, params: dict[str, Any], *, user_id: str, admin: bool, account_id: str | None
) -> Job:
    """An export asked for as a generic job (``POST /api/jobs``): the same rules as
    :func:`start_export`, so no one writes a path or reads an account they may not."""
    checked = ExportParams.model_validate(get_task("export").validate(params))
    if account_id is not None and account_id != checked.account_id:
        raise InvalidField("the job's account_id and its params' account_id differ")
    return start_export(
        app,
        checked.account_id,
        fmt=checked.format,
        out=checked.out,
        user_id=user_id,
        admin=admin,
        query=checked.query,
        layout=checked.layout,
    )
