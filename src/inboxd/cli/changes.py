"""``inboxd mark`` and ``inboxd undo``: change a message on the server, put a job's
changes back (as the local operator: any message or job)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from inboxd.actions import changes as actions
from inboxd.cli.common import JsonOpt, err, out
from inboxd.cli.sync import run_job
from inboxd.jobs.model import Job, JobStatus
from inboxd.vocabulary import MarkAction

_MARKS = "|".join(a.value for a in MarkAction)


def mark_cmd(
    message: Annotated[int, typer.Argument(help="The message's id (see inboxd search).")],
    action: Annotated[str, typer.Argument(help=f"One of {_MARKS}.", metavar=_MARKS)],
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the job id and return at once.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Mark a message read, unread, flagged or unflagged on the server (a journaled job
    that `inboxd undo` can put back); waits for it (exit 1 if it did not complete)."""
    run_job(
        lambda opened: actions.mark(opened, message, action, owner=None),
        wait=not no_wait,
        as_json=as_json,
        summary=_summary("mark"),
    )


def undo_cmd(
    job: Annotated[str, typer.Argument(help="The job whose changes to put back.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end, showing progress.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Put back what a finished job changed (folders, flags, labels), as a job of its own;
    prints its id (with --wait: waits, exit 1 if it did not complete)."""
    run_job(
        lambda opened: actions.undo_job(opened, job, owner=None),
        wait=wait,
        as_json=as_json,
        summary=_summary("undo"),
    )


def _summary(what: str) -> Callable[[Job], None]:
    def show(job: Job) -> None:
        result = job.result or {}
        if job.status != JobStatus.COMPLETED:
            err.print(
                f"[red]{what} {job.status.value}[/red]: {job.error or ''} (job {job.id})",
                highlight=False,
            )
            return
        reasons = result.get("skipped_reasons") or {}
        why = "; ".join(f"{n} {reason}" for reason, n in reasons.items())
        out.print(
            f"[green]{what} completed[/green]: {result.get('done', 0)} changed, "
            f"{result.get('skipped', 0)} skipped{f' ({why})' if why else ''}, "
            f"{result.get('failed', 0)} failed (job {job.id})",
            highlight=False,
        )
        for error in result.get("errors") or []:
            err.print(f"  failed: {error}", highlight=False)

    return show
