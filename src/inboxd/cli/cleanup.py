"""``inboxd cleanup``: propose a clean-up, review it, approve it (the local operator is the
person approving), and list them."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from inboxd.actions import cleanups as actions
from inboxd.actions.accounts import find_account
from inboxd.actions.jobs import get_job
from inboxd.app import App
from inboxd.cli.common import EXIT_FAILED, JsonOpt, app_session, err, out, print_json
from inboxd.cli.sync import wait_with_progress, worker_here
from inboxd.jobs.model import Job, JobStatus
from inboxd.vocabulary import Category, CleanupAction

cleanup_app = typer.Typer(
    help="Clean-ups a person approves: propose, show, approve, list.", no_args_is_help=True
)

#: Who approved, when it was the command line (whoever runs it runs the server).
OPERATOR = "operator"
_ACTIONS = ", ".join(a.value for a in CleanupAction)
_CATEGORIES = ", ".join(c.value for c in Category)

WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait for the job, showing progress.")]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _ids(values: list[str] | None, option: str) -> list[int]:
    found: list[int] = []
    for value in _split(values):
        if not value.isdigit():
            raise typer.BadParameter(f"{value!r} is not a message id", param_hint=option)
        found.append(int(value))
    return found


def _until_parked(opened: App, job: Job) -> Job:
    """Wait until discovery parked the job for approval (or ended); runs it here when no
    worker is alive."""
    with worker_here(opened, job):
        while True:
            job = get_job(opened, job.id)
            if job.status == JobStatus.AWAITING_APPROVAL or job.status.finished:
                return job
            time.sleep(0.1)


@cleanup_app.command("propose")
def propose_cmd(
    account: Annotated[str, typer.Argument(help="Account id or name.")],
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help=f"Categories, comma-separated ({_CATEGORIES})."),
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Only mail older than 7d, 2w, 3m, 1y.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="A search query.")] = None,
    action: Annotated[
        str, typer.Option("--action", help=f"What to do once approved ({_ACTIONS}).")
    ] = CleanupAction.ARCHIVE.value,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find what a clean-up would touch, read-only; nothing changes until you approve it
    (inboxd cleanup approve). Prints the clean-up's id."""
    with app_session() as opened:
        job = actions.propose(
            opened,
            find_account(opened, account),
            categories=_split(category),
            older_than=older_than,
            query=query,
            action=action,
        )
        if wait:
            job = _until_parked(opened, job)
            shown = actions.show(opened, job.id, owner=None) if not job.status.finished else None
        else:
            shown = None
    if as_json:
        print_json(
            {"job_id": job.id, "status": job.status.value}
            | ({"counts": shown["counts"]} if shown else {})
        )
    elif shown is not None:
        _print_summary(shown)
        out.print(f"review: inboxd cleanup show {job.id}; approve: inboxd cleanup approve {job.id}")
    else:
        out.print(job.id, highlight=False)
    if job.status.finished and job.status != JobStatus.COMPLETED:
        err.print(f"[red]clean-up {job.status.value}[/red]: {job.error or ''}", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def _print_summary(shown: dict[str, Any]) -> None:
    counts = shown["counts"]
    criteria = shown["criteria"]
    looked = ", ".join(
        part
        for part in (
            ",".join(criteria.get("categories") or ()),
            f"older than {criteria['older_than']}" if criteria.get("older_than") else "",
            f"query {criteria['query']!r}" if criteria.get("query") else "",
        )
        if part
    )
    out.print(
        f"clean-up {shown['job_id']} ({shown['status']}): {shown['action']} "
        f"{counts['candidates']} messages, {counts['protected']} protected"
        + (f" — {escape(looked)}" if looked else ""),
        highlight=False,
    )
    if shown.get("approved_at"):
        out.print(
            f"approved by {shown['approved_by']} at {shown['approved_at']}: "
            f"{shown['approved_count']} messages",
            highlight=False,
        )


@cleanup_app.command("show")
def show_cmd(
    cleanup_id: Annotated[str, typer.Argument(help="The clean-up's id.")],
    as_json: JsonOpt = False,
) -> None:
    """A proposal: its senders, each candidate with its reasons and each protected message
    with why; once executed, what was done and skipped."""
    with app_session() as opened:
        shown = actions.show(opened, cleanup_id, owner=None)
    if as_json:
        print_json(shown)
        return
    _print_summary(shown)
    if shown["senders"]:
        senders = Table("messages", "from", title="senders")
        for s in shown["senders"][:20]:
            senders.add_row(str(s["count"]), escape(s["from"] or "(none)"))
        out.print(senders)
    candidates = Table("id", "from", "subject", "reasons", title="candidates")
    for c in shown["candidates"]:
        candidates.add_row(
            str(c["id"]),
            escape(c["from"] or ""),
            escape(c["subject"] or ""),
            escape("; ".join(c["reasons"])),
        )
    out.print(candidates)
    protected = Table("id", "from", "subject", "why", title="protected")
    for p in shown["protected"]:
        protected.add_row(
            str(p["id"]),
            escape(p["from"] or ""),
            escape(p["subject"] or ""),
            escape("; ".join(p["why"])),
        )
    out.print(protected)
    execution = shown.get("execution")
    if execution:
        out.print(
            f"executed: {execution['done']} done, {len(execution['skipped'])} skipped, "
            f"{execution['failed']} failed",
            highlight=False,
        )
        for s in execution["skipped"][:50]:
            out.print(f"  skipped {s['id']}: {escape(s['why'])}", highlight=False)
    unsubscribe = shown.get("unsubscribe")
    if unsubscribe:
        for p in unsubscribe.get("posted", ()):
            out.print(f"unsubscribed: {escape(str(p.get('list')))}", highlight=False)
        for p in unsubscribe.get("mailto_only", ()):
            out.print(
                f"unsubscribe by mail yourself: {escape(str(p.get('list')))} "
                f"({escape(str(p.get('mailto')))})",
                highlight=False,
            )


@cleanup_app.command("approve")
def approve_cmd(
    cleanup_id: Annotated[str, typer.Argument(help="The clean-up's id.")],
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Only these message ids (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="All but these message ids.")
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve a proposal (all candidates, --only some, or all but --exclude); the clean-up
    then runs. Approving again does nothing."""
    only_ids = _ids(only, "--only") if only else None
    exclude_ids = _ids(exclude, "--exclude")
    with app_session() as opened:
        done = actions.approve(
            opened, cleanup_id, owner=None, by=OPERATOR, only=only_ids, exclude=exclude_ids
        )
        final = None
        if wait and not done["already_approved"]:
            final = wait_with_progress(opened, get_job(opened, cleanup_id), quiet=as_json)
            shown = actions.show(opened, cleanup_id, owner=None)
    if as_json:
        print_json(
            done | ({"job": final.to_dict(), "execution": shown["execution"]} if final else {})
        )
    elif done["already_approved"]:
        out.print(f"clean-up {cleanup_id} was approved already: nothing more to do")
    elif final is None:
        out.print(f"approved {done['approved']} messages; running as job {cleanup_id}")
    else:
        _print_summary(shown)
        execution = shown.get("execution") or {"done": 0, "skipped": [], "failed": 0}
        out.print(
            f"{final.status.value}: {execution['done']} done, {len(execution['skipped'])} "
            f"skipped, {execution['failed']} failed",
            highlight=False,
        )
    if final is not None and final.status != JobStatus.COMPLETED:
        err.print(f"[red]clean-up {final.status.value}[/red]: {final.error or ''}", highlight=False)
        raise typer.Exit(EXIT_FAILED)


@cleanup_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Clean-ups, newest first."""
    with app_session() as opened:
        found = actions.list_cleanups(opened, owner=None)
    if as_json:
        print_json({"cleanups": found})
        return
    table = Table("id", "account", "status", "action", "candidates", "protected", "approved")
    for c in found:
        table.add_row(
            c["job_id"],
            c["account_id"],
            str(c["status"]),
            c["action"],
            str(c["counts"]["candidates"]),
            str(c["counts"]["protected"]),
            str(c["approved_count"]) if c["approved_at"] else "",
        )
    out.print(table)
