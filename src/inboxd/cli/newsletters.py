"""``inboxd newsletters``: extract the articles behind newsletters (a job), show one, list,
delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from inboxd.actions import newsletters as actions
from inboxd.actions.accounts import find_account
from inboxd.cli.common import EXIT_FAILED, JsonOpt, app_session, err, out, print_json
from inboxd.cli.sync import wait_with_progress
from inboxd.jobs.model import JobStatus

newsletters_app = typer.Typer(
    help="The articles behind your newsletters: extract, show, list, delete.",
    no_args_is_help=True,
)


@newsletters_app.command("extract")
def extract_cmd(
    account: Annotated[
        str | None, typer.Option("--account", help="Account id or name (default: all).")
    ] = None,
    hours_back: Annotated[
        int | None, typer.Option("--hours-back", min=1, help="Newsletters of the last N hours.")
    ] = None,
    days_back: Annotated[
        int | None, typer.Option("--days-back", min=1, help="Newsletters of the last N days.")
    ] = None,
    max_results: Annotated[
        int, typer.Option("--max-results", min=1, max=1000, help="Most newsletters read.")
    ] = 50,
    sender: Annotated[
        list[str] | None,
        typer.Option("--sender", help="Only from this address or domain (repeatable)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job, showing progress.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an extraction (a job); prints its id, or with --wait its result. Both
    --days-back and --hours-back: one window of their sum."""
    params: dict[str, Any] = {"max_results": max_results, "senders": list(sender or ())}
    if hours_back is not None:
        params["hours_back"] = hours_back
    if days_back is not None:
        params["days_back"] = days_back
    with app_session() as opened:
        owner = None
        if account is not None:
            found = find_account(opened, account)
            params["account_id"] = found.id
            owner = found.owner
        job = actions.start_extraction(opened, params, owner=owner, any_account=True)
        if job.deduplicated:
            err.print(f"the same extraction is {job.status.value} already: {job.id}")
        if job.queue_position is not None and job.queue_position > 1 and not as_json:
            err.print(f"waiting for a worker: position {job.queue_position} in the queue")
        shown: dict[str, Any] | None = None
        if wait:
            job = wait_with_progress(opened, job, quiet=as_json)
            shown = actions.show(opened, job.id, owner=None)
    if as_json:
        print_json(
            shown
            if shown is not None
            else {
                "extraction_id": job.id,
                "status": job.status,
                "deduplicated": job.deduplicated,
            }
        )
    elif shown is not None and job.status == JobStatus.COMPLETED:
        out.print(escape(actions.result_as_text(shown["result"])), highlight=False, end="")
    else:
        out.print(job.id, highlight=False)
    if job.status.finished and job.status != JobStatus.COMPLETED:
        err.print(f"[red]extraction {job.status.value}[/red]: {escape(job.error or '')}")
        raise typer.Exit(EXIT_FAILED)


@newsletters_app.command("show")
def show_cmd(
    extraction_id: Annotated[str, typer.Argument(help="The extraction's id.")],
    fmt: Annotated[str, typer.Option("--format", help="json or text (the result only).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """An extraction: its state and, once completed, its result."""
    with app_session() as opened:
        shown = actions.show(opened, extraction_id, owner=None)
        if fmt:
            out.print(
                escape(actions.export(opened, extraction_id, owner=None, fmt=fmt)),
                highlight=False,
                end="",
            )
            return
    if as_json:
        print_json(shown)
        return
    step, position = shown["step"], shown["queue_position"]
    where = ""
    if step:
        where = f" ({step} {shown['progress_current']}/{shown['progress_total'] or '?'})"
    elif position is not None:
        where = f" (position {position} in the queue)"
    out.print(f"{shown['extraction_id']}: {shown['status']}{where}", highlight=False)
    if shown["error"]:
        out.print(f"error: {escape(shown['error'])}", highlight=False)
    if shown["result"] is not None:
        out.print(escape(actions.result_as_text(shown["result"])), highlight=False, end="")


@newsletters_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Extractions, newest first."""
    with app_session() as opened:
        found = actions.list_extractions(opened, owner=None, limit=limit)
    if as_json:
        print_json({"extractions": found})
        return
    for e in found:
        counts = e["counts"] or {}
        out.print(
            f"{e['extraction_id']}  {e['status']:<10} {e['created_at']}  "
            f"{counts.get('newsletters', '-')} newsletters, {counts.get('articles', '-')} articles",
            highlight=False,
        )


@newsletters_app.command("delete")
def delete_cmd(
    extraction_id: Annotated[str, typer.Argument(help="The extraction's id.")],
) -> None:
    """Remove an ended extraction and its result (cancel a running one first)."""
    with app_session() as opened:
        actions.delete_extraction(opened, extraction_id, owner=None)
    out.print(f"deleted {extraction_id}", highlight=False)
