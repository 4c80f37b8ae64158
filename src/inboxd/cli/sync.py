"""``inboxd sync`` and ``inboxd demo``: start a sync and follow its progress."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from inboxd.actions import accounts as actions
from inboxd.actions.demo import start_demo
from inboxd.actions.jobs import get_job
from inboxd.app import App
from inboxd.cli.common import EXIT_FAILED, JsonOpt, app_session, err, out, print_json
from inboxd.cli.remote import Remote, ServerOpt
from inboxd.cli.watch import LocalFeed, RemoteFeed, StoppedWatching, follow, report, stopped
from inboxd.cli.watch import watch as watch_job
from inboxd.jobs.model import Job, JobStatus


def sync_cmd(
    account: str,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end, showing progress.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Follow it with a live progress bar (Ctrl-C: cancel or stop)."
        ),
    ] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sync an account now; prints the job id (with --wait or --watch: follows it, exit 1
    if it failed)."""
    if server:
        _sync_remote(server, account, follow_it=watch or wait, as_json=as_json)
        return
    if watch:
        _sync_watch(account, as_json=as_json)
        return
    run_job(
        lambda opened: actions.sync_now(opened, actions.find_account(opened, account)),
        wait=wait,
        as_json=as_json,
        summary=_summary,
    )


def _sync_remote(server: str, account: str, *, follow_it: bool, as_json: bool) -> None:
    """Start the sync as the dashboard does (``POST /api/accounts/{id}/sync``)."""
    with Remote.connect(server) as remote:
        job = remote.sync_account(str(remote.find_account(account)["id"]))
        if follow_it:
            follow(RemoteFeed(remote, job["id"]), job["id"], as_json=as_json)
        elif as_json:
            print_json(job)
        else:
            sys.stdout.write(f"{job['id']}\n")


def _sync_watch(account: str, *, as_json: bool) -> None:
    """Start the sync here and watch it; it runs in this process when no worker is alive."""
    with app_session() as opened:
        job = actions.sync_now(opened, actions.find_account(opened, account))
        here = False
        try:
            with worker_here(opened, job) as here:
                view = watch_job(LocalFeed(opened, job.id), err, quiet=as_json)
        except StoppedWatching:
            stopped(job.id, here=here)
    report(view, as_json=as_json)


def run_job(
    start: Callable[[App], Job], *, wait: bool, as_json: bool, summary: Callable[[Job], None]
) -> None:
    """Start a job and print its id, or (``wait``) follow it to its end and print
    ``summary`` of it (the job with --json); exit 1 when it did not complete."""
    with app_session() as opened:
        job = start(opened)
        if not wait:
            if as_json:
                print_json(job.to_dict())
            else:
                sys.stdout.write(job.id + "\n")
            return
        final = wait_with_progress(opened, job, quiet=as_json)
    if as_json:
        print_json(final.to_dict())
    else:
        summary(final)
    if final.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_FAILED)


@contextmanager
def worker_here(opened: App, job: Job) -> Iterator[bool]:
    """Run ``job`` in this process while the block waits for it, when it is pending and no
    worker is alive (yields whether it does); Ctrl-C stops that worker at once (the job goes
    back to the queue)."""
    from inboxd.jobs.worker import Worker, live_workers

    if job.status != JobStatus.PENDING or live_workers(opened) > 0:
        yield False
        return
    # Through the queue all the same, so history and progress look as with a worker.
    worker = Worker(opened, concurrency=1, only=[job.id], queues=[job.queue])
    runner = threading.Thread(
        target=worker.run, kwargs={"install_signals": False, "max_jobs": 1}, daemon=True
    )
    runner.start()
    try:
        yield True
    except KeyboardInterrupt:
        worker.stop(hard=True)
        raise
    finally:
        worker.stop()
        runner.join(timeout=30)


def wait_with_progress(opened: App, job: Job, *, quiet: bool = False) -> Job:
    """Wait for a job, showing its progress; runs it here when no worker is alive."""
    with worker_here(opened, job):
        return _watch(opened, job.id, quiet)


def _watch(opened: App, job_id: str, quiet: bool) -> Job:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=True) as bar:
        task = bar.add_task("queued", total=None, rate="")
        while True:
            job = get_job(opened, job_id)
            rate = f"{job.rate:,.0f}/s" if job.rate else ""
            bar.update(
                task,
                description=f"{job.step or job.status.value}",
                total=job.progress_total,
                completed=job.progress_current,
                rate=rate,
            )
            if job.status.finished:
                return job
            time.sleep(0.1)


def _summary(job: Job) -> None:
    if job.status == JobStatus.COMPLETED:
        result = job.result or {}
        out.print(
            f"[green]sync completed[/green]: {result.get('new', 0)} new, "
            f"{result.get('fetched', 0)} fetched, {result.get('expunged', 0)} deleted on the "
            f"server, {result.get('flags_changed', 0)} flag changes (job {job.id})"
        )
    else:
        err.print(
            f"[red]sync {job.status.value}[/red]: {job.error or ''} (job {job.id})", highlight=False
        )


def demo_cmd(
    count: Annotated[int, typer.Option(help="How many messages to generate.")] = 3000,
    as_json: JsonOpt = False,
) -> None:
    """Create a demo mailbox (generated mail), register it as an account and sync it."""
    with app_session() as opened:
        account, job = start_demo(opened, count)
        final = wait_with_progress(opened, job, quiet=as_json)
    if as_json:
        print_json({"account_id": account.id, "job": final.to_dict()})
    else:
        _summary(final)
        out.print(f"demo account: {account.name} ({account.id})")
