"""``inboxd jobs …``: enqueue, list, watch, cancel, retry and approve jobs."""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from inboxd.actions import jobs as actions
from inboxd.app import App
from inboxd.cli.common import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    JsonOpt,
    app_session,
    err,
    out,
    print_json,
)
from inboxd.cli.remote import Remote, ServerOpt
from inboxd.cli.watch import LocalFeed, RemoteFeed, follow
from inboxd.config import load_settings
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest
from inboxd.jobs.model import Job, JobEvent, JobStatus

jobs_app = typer.Typer(help="Enqueue, watch and manage jobs.", no_args_is_help=True)


def _parse_param(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InvalidRequest(f"--param wants key=value, got {item!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: str,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value (value may be JSON).")
    ] = None,
    dedupe_key: Annotated[str | None, typer.Option("--dedupe-key")] = None,
    priority: Annotated[int, typer.Option()] = 0,
    queue: Annotated[str | None, typer.Option()] = None,
    delay: Annotated[float, typer.Option(help="Seconds to wait before it may run.")] = 0.0,
    owner: Annotated[str | None, typer.Option()] = None,
    max_attempts: Annotated[int | None, typer.Option(min=1)] = None,
    approval: Annotated[
        bool, typer.Option("--approval", help="Wait for `jobs approve` before running.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Enqueue a job and print its id."""
    params = dict(_parse_param(p) for p in param or [])
    with app_session() as opened:
        job = actions.enqueue_job(
            opened,
            kind,
            params,
            dedupe_key=dedupe_key,
            priority=priority,
            queue=queue,
            run_at=utcnow() + timedelta(seconds=delay) if delay else None,
            owner=owner,
            max_attempts=max_attempts,
            awaiting_approval=approval,
        )
    if as_json:
        print_json(job.to_dict() | {"deduplicated": job.deduplicated})
    else:
        if job.deduplicated:
            err.print(f"an active job already holds dedupe key {dedupe_key!r}: {job.id}")
        sys.stdout.write(job.id + "\n")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Filter (repeatable).")
    ] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    with app_session() as opened:
        found = actions.list_jobs(opened, status=status, kind=kind, limit=limit)
    if as_json:
        print_json([j.to_dict() for j in found])
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=36)
    for name in ("kind", "status", "step", "progress", "attempts", "created"):
        table.add_column(name, no_wrap=name in ("kind", "created"))
    for job in found:
        table.add_row(
            job.id,
            job.kind,
            _status_text(job),
            job.step or "",
            _progress_text(job),
            f"{job.attempts}/{job.max_attempts}",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: JsonOpt = False) -> None:
    """Show one job."""
    with app_session() as opened:
        job = actions.get_job(opened, job_id)
    if as_json:
        print_json(job.to_dict())
        return
    _print_job(job)


@jobs_app.command("wait")
def jobs_wait(
    job_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until a job finishes; exit 0 if it completed, 1 if not, 3 on timeout."""
    with app_session() as opened:
        job = _wait(opened, job_id, timeout, show=not as_json)
    if as_json:
        print_json(job.to_dict())
    elif job.status.finished:
        _print_job(job)
    if not job.status.finished:
        err.print(f"timed out; job {job_id} is still {job.status.value}")
        raise typer.Exit(EXIT_TIMEOUT)
    if job.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_FAILED)


def _wait(opened: App, job_id: str, timeout: float | None, *, show: bool) -> Job:
    deadline = None if timeout is None else time.monotonic() + timeout
    job = actions.get_job(opened, job_id)
    last = ""
    while not job.status.finished:
        if deadline is not None and time.monotonic() >= deadline:
            break
        line = f"{_status_text(job)} {job.step or ''} {_progress_text(job)}".strip()
        if show and line != last and sys.stderr.isatty():
            err.print(line)
            last = line
        time.sleep(0.1)
        job = actions.get_job(opened, job_id)
    return job


@jobs_app.command("watch")
def jobs_watch(job_id: str, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Follow a job with a live progress bar; exit 0 if it completed, 1 if not. Ctrl-C asks
    whether to cancel the job or stop watching (exit 130)."""
    if server:
        with Remote.connect(server) as remote:
            follow(RemoteFeed(remote, job_id), job_id, as_json=as_json)
        return
    with app_session() as opened:
        follow(LocalFeed(opened, job_id), job_id, as_json=as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job (a running job stops at its next checkpoint)."""
    with app_session() as opened:
        job = actions.cancel_job(opened, job_id)
    if as_json:
        print_json(job.to_dict())
    elif job.status == JobStatus.RUNNING:
        out.print(f"cancellation requested; job {job.id} stops at its next checkpoint")
    else:
        out.print(f"job {job.id} {job.status.value}")


@jobs_app.command("retry")
def jobs_retry(job_id: str, as_json: JsonOpt = False) -> None:
    """Queue a failed or cancelled job again (same id, attempts reset)."""
    with app_session() as opened:
        job = actions.retry_job(opened, job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        out.print(f"job {job.id} {job.status.value}")


@jobs_app.command("approve")
def jobs_approve(job_id: str, as_json: JsonOpt = False) -> None:
    """Let a job that awaits approval run."""
    with app_session() as opened:
        job = actions.approve_job(opened, job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        out.print(f"job {job.id} {job.status.value}")


@jobs_app.command("events")
def jobs_events(
    job_id: str,
    after: Annotated[int, typer.Option(help="Only events after this id.")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's events (JSON lines with --json)."""
    with app_session() as opened:
        actions.get_job(opened, job_id)
        while True:
            batch = actions.job_events(opened, job_id, after_id=after)
            for event in batch:
                _print_event(event, as_json)
                after = event.id
            if not follow:
                return
            if not batch and actions.get_job(opened, job_id).status.finished:
                # one more read: events written together with the final status
                for event in actions.job_events(opened, job_id, after_id=after):
                    _print_event(event, as_json)
                return
            if not batch:
                time.sleep(0.2)


def _print_event(event: JobEvent, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(event.to_dict(), default=str) + "\n")
    else:
        stamp = event.created_at.strftime("%H:%M:%S.%f")[:-3]
        body = " ".join(f"{k}={v}" for k, v in event.payload.items() if v is not None)
        sys.stdout.write(f"{event.id:>8} {stamp} {event.type.value:<8} {body}\n")
    sys.stdout.flush()


@jobs_app.command("kinds")
def jobs_kinds(as_json: JsonOpt = False) -> None:
    """List the job kinds this installation can run."""
    specs = actions.job_kinds(load_settings())
    if as_json:
        print_json(
            [{"kind": s.kind, "queue": s.queue, "description": s.description} for s in specs]
        )
        return
    for spec in specs:
        out.print(f"[bold]{spec.kind}[/bold]  ({spec.queue})  {spec.description}")


def _status_text(job: Job) -> str:
    text = job.status.value
    if job.status == JobStatus.PENDING and job.queue_position:
        text += f" #{job.queue_position}"
    if job.cancel_requested and job.status == JobStatus.RUNNING:
        text += " (cancelling)"
    return text


def _progress_text(job: Job) -> str:
    if job.progress_total:
        return f"{job.progress_current}/{job.progress_total} ({job.percent}%)"
    return str(job.progress_current) if job.progress_current else ""


def _print_job(job: Job) -> None:
    data = job.to_dict()
    table = Table(show_header=False, box=None)
    for key in (
        "id",
        "kind",
        "status",
        "step",
        "message",
        "queue_position",
        "attempts",
        "error",
        "result",
        "created_at",
        "started_at",
        "finished_at",
    ):
        value = data[key]
        if key == "status":
            value = _status_text(job)
        if value is not None:
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    table.add_row("progress", _progress_text(job))
    if job.eta_seconds is not None and job.status == JobStatus.RUNNING:
        table.add_row("eta", f"{job.eta_seconds:.0f}s")
    out.print(table)
