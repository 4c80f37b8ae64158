"""``inboxd webhooks``: URLs told when jobs finish or fail; their delivery log; a test."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from inboxd.actions import webhooks as actions
from inboxd.actions.accounts import find_account
from inboxd.cli.common import JsonOpt, app_session, err, out, print_json
from inboxd.store.users import Users

webhooks_app = typer.Typer(
    help="Webhooks: POST a signed JSON note when a job finishes or fails.", no_args_is_help=True
)

IdArg = Annotated[str, typer.Argument(help="The webhook's id.")]


@webhooks_app.command("add")
def add_cmd(
    url: Annotated[str, typer.Argument(help="http(s) URL the notes are POSTed to.")],
    user: Annotated[
        str | None,
        typer.Option("--user", help="Whose jobs (a user name; default: the first admin)."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="job.finished or job.failed (repeatable; default both)."),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", help="Only this account's jobs (id or name; repeatable)."),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only jobs of this kind (repeatable).")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the webhook is for.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a webhook; prints its id and its signing secret (shown this once)."""
    with app_session() as opened:
        owner = Users(opened.engine).resolve_owner(user).id
        account_ids = [find_account(opened, a, owner=owner).id for a in account or ()] or None
        created = actions.add(
            opened,
            owner=owner,
            url=url,
            events=event or actions.EVENTS,
            account_ids=account_ids,
            kinds=kind or None,
            description=description,
        )
    if as_json:
        print_json(created)
        return
    out.print(created["id"], highlight=False)
    out.print(f"secret: {created['secret']}", highlight=False)
    err.print("Store the secret now: it is not shown again.")


@webhooks_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Every webhook, with its state."""
    with app_session() as opened:
        found = actions.list_webhooks(opened, owner=None)
    if as_json:
        print_json({"webhooks": found})
        return
    table = Table(box=None)
    for col in ("id", "url", "events", "filters", "state"):
        table.add_column(col, overflow="fold")
    for hook in found:
        table.add_row(
            hook["id"],
            escape(hook["url"]),
            ", ".join(hook["events"]),
            escape(_filters(hook)),
            "enabled" if hook["enabled"] else f"disabled: {escape(hook['disabled_reason'] or '')}",
        )
    out.print(table)


def _filters(hook: dict[str, Any]) -> str:
    parts = []
    if hook["account_ids"] is not None:
        parts.append("accounts " + ", ".join(hook["account_ids"]))
    if hook["kinds"] is not None:
        parts.append("kinds " + ", ".join(hook["kinds"]))
    return "; ".join(parts) or "all jobs"


@webhooks_app.command("remove")
def remove_cmd(webhook_id: IdArg) -> None:
    """Remove a webhook and its delivery log."""
    with app_session() as opened:
        actions.remove(opened, webhook_id, owner=None)
    err.print(f"removed webhook {webhook_id}")


@webhooks_app.command("enable")
def enable_cmd(webhook_id: IdArg) -> None:
    """Enable a webhook again (forgets its past failures)."""
    with app_session() as opened:
        actions.change(opened, webhook_id, {"enabled": True}, owner=None)
    err.print(f"enabled webhook {webhook_id}")


@webhooks_app.command("disable")
def disable_cmd(webhook_id: IdArg) -> None:
    """Stop sending to a webhook (kept, with its log)."""
    with app_session() as opened:
        actions.change(opened, webhook_id, {"enabled": False}, owner=None)
    err.print(f"disabled webhook {webhook_id}")


@webhooks_app.command("deliveries")
def deliveries_cmd(
    webhook_id: IdArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The webhook's deliveries, newest first."""
    with app_session() as opened:
        found = actions.deliveries(opened, webhook_id, owner=None, limit=limit)
    if as_json:
        print_json({"deliveries": found})
        return
    table = Table(box=None)
    for col in ("id", "event", "job", "status", "tries", "answer", "at"):
        table.add_column(col, overflow="fold")
    for d in found:
        answer = d["last_error"] or (str(d["last_status_code"]) if d["last_status_code"] else "")
        table.add_row(
            str(d["id"]),
            d["event"],
            d["job_id"] or "",
            d["status"],
            str(d["attempts"]),
            escape(answer),
            d["last_attempt_at"] or d["created_at"],
        )
    out.print(table)


@webhooks_app.command("test")
def test_cmd(webhook_id: IdArg, as_json: JsonOpt = False) -> None:
    """Queue a test delivery (a worker sends it); see it with ``deliveries``."""
    with app_session() as opened:
        delivery = actions.send_test(opened, webhook_id, owner=None)
    if as_json:
        print_json(delivery)
        return
    out.print(f"test delivery {delivery['id']} queued", highlight=False)
