"""``inboxd triage``, ``inboxd categorize`` and ``inboxd rules``: steering triage from a
terminal (as an admin: any account, message or rule)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from inboxd.actions import triage as actions
from inboxd.actions.accounts import find_account
from inboxd.cli.common import JsonOpt, app_session, err, out, print_json
from inboxd.cli.sync import run_job
from inboxd.jobs.model import Job, JobStatus
from inboxd.vocabulary import Category

rules_app = typer.Typer(
    help="Triage rules: a search query and the category it files.", no_args_is_help=True
)

_CATEGORIES = ", ".join(c.value for c in Category)


def triage_cmd(
    account: Annotated[str, typer.Argument(help="Account id or name.")],
    all_messages: Annotated[
        bool, typer.Option("--all", help="Triage every message again (after rules change).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end, showing progress.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Triage an account's new mail now (--all: all of it); prints the job id (with --wait:
    waits, exit 1 if it did not complete)."""
    run_job(
        lambda opened: actions.start_triage(
            opened, find_account(opened, account), all_messages=all_messages
        ),
        wait=wait,
        as_json=as_json,
        summary=_summary,
    )


def _summary(job: Job) -> None:
    if job.status != JobStatus.COMPLETED:
        err.print(
            f"[red]triage {job.status.value}[/red]: {job.error or ''} (job {job.id})",
            highlight=False,
        )
        return
    result = job.result or {}
    counts = result.get("by_category") or {}
    shown = ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    out.print(
        f"[green]triage completed[/green]: {result.get('triaged', 0)} messages"
        + (f" ({shown})" if shown else "")
        + f" (job {job.id})",
        highlight=False,
    )


def categorize_cmd(
    message: Annotated[int, typer.Argument(help="The message's id (see inboxd search).")],
    category: Annotated[str, typer.Argument(help=f"One of: {_CATEGORIES}.")],
    sender: Annotated[
        bool, typer.Option("--sender", help="Always file this sender's mail so (a rule).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a message's category (kept by every later triage); --sender also makes a rule
    for its sender and re-triages their mail in a job."""
    with app_session() as opened:
        done = actions.categorize(opened, message, category, owner=None, sender=sender)
    if as_json:
        print_json(done)
        return
    item = done["message"]
    out.print(
        f"message {item['id']}: {item.get('category')} (priority {item.get('priority')})",
        highlight=False,
    )
    if done["rule"] is not None:
        rule = done["rule"]
        out.print(
            f"rule {rule['id']}: {escape(rule['match'])} -> {rule['category']}; "
            f"re-triaging in job {done['job_id']}",
            highlight=False,
        )


@rules_app.command("add")
def rules_add(
    match: Annotated[str, typer.Option("--match", help="A search query (as inboxd search).")],
    category: Annotated[str, typer.Option("--category", help=f"One of: {_CATEGORIES}.")],
    priority: Annotated[
        int | None, typer.Option("--priority", min=0, max=100, help="Priority 0-100.")
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (id or name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a rule and re-triage the mail it matches."""
    with app_session() as opened:
        account_id = find_account(opened, account).id if account is not None else None
        rule, jobs = actions.add_rule(
            opened,
            match=match,
            category=category,
            priority=priority,
            account_id=account_id,
            user_id=None,
            admin=True,  # whoever runs the command line runs the server
        )
    if as_json:
        print_json({"rule": rule.to_dict(), "job_ids": [job.id for job in jobs]})
        return
    out.print(f"rule {rule.id} added; re-triaging in {len(jobs)} job(s)", highlight=False)


@rules_app.command("list")
def rules_list(as_json: JsonOpt = False) -> None:
    """Every rule, newest first (the first that matches a message decides)."""
    with app_session() as opened:
        found = [rule.to_dict() for rule in actions.list_rules(opened, owner=None)]
    if as_json:
        print_json({"rules": found})
        return
    table = Table(box=None)
    for column in ("id", "account", "match", "category", "priority", "source"):
        table.add_column(column, overflow="fold")
    for rule in found:
        table.add_row(*_cells(rule))
    out.print(table)


def _cells(rule: dict[str, Any]) -> list[str]:
    return [
        str(rule["id"]),
        rule["account_id"] or "all",
        escape(rule["match"]),
        rule["category"],
        "" if rule["priority"] is None else str(rule["priority"]),
        rule["source"],
    ]


@rules_app.command("remove")
def rules_remove(
    rule_id: Annotated[int, typer.Argument(help="The rule's id (see inboxd rules list).")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a rule and re-triage the mail it matched."""
    with app_session() as opened:
        jobs = actions.remove_rule(opened, rule_id, owner=None)
    if as_json:
        print_json({"removed": rule_id, "job_ids": [job.id for job in jobs]})
        return
    out.print(f"rule {rule_id} removed; re-triaging in {len(jobs)} job(s)", highlight=False)
