"""``inboxd export``: write an account's mail to an mbox file or a Maildir tree, as a job."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from inboxd.actions.accounts import find_account
from inboxd.actions.export import start_export
from inboxd.cli.common import EXIT_FAILED, JsonOpt, app_session, err, out, print_json
from inboxd.cli.sync import wait_with_progress
from inboxd.jobs.model import Job, JobStatus


class ExportFormat(StrEnum):
    """The output formats."""

    MBOX = "mbox"
    MAILDIR = "maildir"


class ExportLayout(StrEnum):
    """How a Maildir export lays out folders."""

    FOLDERS = "folders"
    FLAT = "flat"


def export_cmd(
    account: Annotated[str, typer.Argument(help="Account id or name.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")],
    out_path: Annotated[
        Path, typer.Option("--out", help="New file (mbox), or new or empty directory (maildir).")
    ],
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Only the messages this query matches.")
    ] = None,
    layout: Annotated[
        ExportLayout | None,
        typer.Option(help="Maildir: a folder per folder (default) or all in one."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end, showing progress.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export an account's messages byte for byte; prints the job id (with --wait: waits,
    exit 1 if it did not complete)."""
    # The command runs on the server's host, so a relative path means this directory.
    target = str(out_path.expanduser().absolute())
    with app_session() as opened:
        found = find_account(opened, account)
        job = start_export(
            opened,
            found.id,
            fmt=fmt.value,
            out=target,
            user_id=found.owner or "",
            admin=True,  # whoever runs the command line runs the server
            query=query,
            layout=layout.value if layout else None,
        )
        if not wait:
            if as_json:
                print_json({"job_id": job.id})
            else:
                sys.stdout.write(job.id + "\n")
            return
        final = wait_with_progress(opened, job, quiet=as_json)
    if as_json:
        print_json({"job_id": final.id} | final.to_dict())
    else:
        _summary(final)
    if final.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_FAILED)


def _summary(job: Job) -> None:
    if job.status == JobStatus.COMPLETED:
        result = job.result or {}
        missing = result.get("missing", 0)
        out.print(
            f"[green]export completed[/green]: {result.get('messages', 0)} messages, "
            f"{result.get('bytes', 0):,} bytes to {result.get('out')}"
            + (f" ({missing} without a stored body)" if missing else "")
            + f" (job {job.id})",
            highlight=False,
        )
    else:
        err.print(
            f"[red]export {job.status.value}[/red]: {job.error or ''} (job {job.id})",
            highlight=False,
        )
