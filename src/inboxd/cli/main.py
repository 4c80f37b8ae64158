"""The ``inboxd`` command line (Typer): a thin shell over the same services as the API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from inboxd import __version__
from inboxd.cli.accounts import account_app
from inboxd.cli.changes import mark_cmd, undo_cmd
from inboxd.cli.cleanup import cleanup_app
from inboxd.cli.common import LogFormatOpt, app_session, err, out
from inboxd.cli.export import export_cmd
from inboxd.cli.idle import idle_cmd
from inboxd.cli.jobs import jobs_app
from inboxd.cli.mcp import mcp_cmd
from inboxd.cli.messages import search_cmd, show_cmd, top_cmd
from inboxd.cli.newsletters import newsletters_app
from inboxd.cli.sync import demo_cmd, sync_cmd
from inboxd.cli.triage import categorize_cmd, rules_app, triage_cmd
from inboxd.cli.users import keys_app, users_app
from inboxd.cli.webhooks import webhooks_app
from inboxd.errors import InboxdError, InvalidRequest

app = typer.Typer(
    help="inboxd: mail accounts in sync, long mail work as durable jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(account_app, name="account")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(rules_app, name="rules")
app.add_typer(cleanup_app, name="cleanup")
app.add_typer(newsletters_app, name="newsletters")
app.add_typer(webhooks_app, name="webhooks")
app.command("sync")(sync_cmd)
app.command("demo")(demo_cmd)
app.command("export")(export_cmd)
app.command("search")(search_cmd)
app.command("show")(show_cmd)
app.command("top")(top_cmd)
app.command("triage")(triage_cmd)
app.command("categorize")(categorize_cmd)
app.command("mark")(mark_cmd)
app.command("undo")(undo_cmd)
app.command("idle")(idle_cmd)
app.command("mcp")(mcp_cmd)


def _print_version(wanted: bool) -> None:
    if wanted:
        sys.stdout.write(f"inboxd {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """inboxd: mail accounts in sync, long mail work as durable jobs."""


# -- worker, scheduler, db --------------------------------------------------------------------


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1)] = None,
    queues: Annotated[
        str, typer.Option("--queues", "-q", help="Comma-separated queues.")
    ] = "default,maintenance",
    scheduler: Annotated[
        bool, typer.Option("--scheduler/--no-scheduler", help="Also enqueue periodic jobs.")
    ] = True,
    grace: Annotated[
        float, typer.Option(help="Seconds to let running jobs finish on SIGTERM.")
    ] = 25.0,
    burst: Annotated[
        int | None, typer.Option(help="Stop after this many jobs (for scripts and tests).")
    ] = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Run jobs until SIGTERM/SIGINT (a second signal releases running jobs at once)."""
    from inboxd.jobs.worker import Worker

    with app_session(daemon=True, log_format=log_format) as opened:
        Worker(
            opened,
            concurrency=concurrency,
            queues=[q.strip() for q in queues.split(",") if q.strip()],
            grace_seconds=grace,
            scheduler=scheduler,
        ).run(max_jobs=burst)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765).")] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker", help="Run worker processes (off: they run elsewhere)."
        ),
    ] = True,
    scheduler: Annotated[
        bool, typer.Option("--scheduler/--no-scheduler", help="Enqueue periodic jobs here.")
    ] = True,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also set up and sync the demo mailbox.")
    ] = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Run the API, the dashboard, the scheduler and the workers (Ctrl-C stops all)."""
    from inboxd.cli.serve import serve as run_server

    with app_session(daemon=True, log_format=log_format) as opened:
        settings = opened.settings
        run_server(
            opened,
            host=host or settings.host,
            port=settings.port if port is None else port,
            workers=settings.embedded_workers if worker else 0,
            scheduler=scheduler,
            demo=demo,
        )


@app.command("scheduler")
def scheduler_cmd(log_format: LogFormatOpt = None) -> None:
    """Only enqueue periodic jobs (when workers run with --no-scheduler)."""
    import threading

    from inboxd.jobs.scheduler import Scheduler

    with app_session(daemon=True, log_format=log_format) as opened:
        stop = threading.Event()
        try:
            Scheduler(opened).run_until(stop)()
        except KeyboardInterrupt:
            stop.set()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (also done on every start)."""
    from inboxd.db import migrate

    with app_session() as opened:
        migrate.upgrade(opened.engine)
        out.print(f"database at revision {migrate.head_revision()}")


def main() -> None:
    """Entry point of the ``inboxd`` console script."""
    try:
        app()
    except InboxdError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        sys.exit(2 if isinstance(exc, InvalidRequest) else 1)
