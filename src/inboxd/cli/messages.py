"""``inboxd search``, ``inboxd top`` and ``inboxd show``: reading the stored mail from a
terminal (as an admin: every account's mail)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from inboxd.actions import messages as actions
from inboxd.cli.common import JsonOpt, app_session, out, print_json
from inboxd.vocabulary import Category


class SortBy(StrEnum):
    """The orders ``inboxd search`` lists in."""

    DATE = "date"
    PRIORITY = "priority"


def search_cmd(
    query: Annotated[str, typer.Argument(help="Search query (Gmail and notmuch syntax).")] = "",
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (its id).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="At most N messages.")] = 50,
    sort: Annotated[
        SortBy,
        typer.Option("--sort", help="date: newest first; priority: most important first."),
    ] = SortBy.DATE,
    as_json: JsonOpt = False,
) -> None:
    """Messages matching QUERY, newest first (or most important first)."""
    with app_session() as opened:
        page = actions.search(
            opened, query, owner=None, account_id=account, limit=limit, sort=sort.value
        )
    found: list[dict[str, Any]] = page["messages"]
    if as_json:
        print_json(found)
        return
    table = Table(box=None)
    columns = ("id", "date", "priority", "category", "from", "subject")
    for column in columns if sort is SortBy.PRIORITY else ("id", "date", "from", "subject"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "subject")
    for item in found:
        cells = [str(item["id"]), _when(item)]
        if sort is SortBy.PRIORITY:
            cells += [_priority(item), item["category"] or "-"]
        table.add_row(*cells, escape(_sender(item)), escape(item["subject"] or ""))
    out.print(table)


def top_cmd(
    n: Annotated[int, typer.Option("--n", min=1, max=100, help="How many messages.")] = 10,
    category: Annotated[
        Category | None, typer.Option("--category", help="Only this category.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="today (from 00:00 UTC), 7d, 2w or a day (YYYY-MM-DD)."),
    ] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread messages.")] = False,
    query: Annotated[
        str, typer.Option("--query", help="Only messages matching this search query.")
    ] = "",
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (its id).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The N most important messages (triaged ones), each with its reasons."""
    with app_session() as opened:
        found = actions.top(
            opened,
            owner=None,
            n=n,
            category=category.value if category else None,
            since=since,
            unread=unread,
            text=query,
            account_id=account,
        )
    if as_json:
        print_json(found)
        return
    if not found["messages"]:
        out.print("no triaged message matches", highlight=False)
        return
    # One block per message rather than a table: the reasons are the point, and a table
    # squeezes them into a column a word wide on an 80-column terminal.
    for item in found["messages"]:
        out.print(
            f"[bold]{_priority(item):>3}[/bold]  {escape(item['category'] or '-'):<15}  "
            f"{_when(item)}  {escape(_sender(item))}  [dim]#{item['id']}[/dim]",
            highlight=False,
        )
        out.print(f"     {escape(item['subject'] or '(no subject)')}", highlight=False)
        if item["reasons"]:
            out.print(f"     [dim]why: {escape('; '.join(item['reasons']))}[/dim]", highlight=False)


def _sender(item: dict[str, Any]) -> str:
    return str(item["from"]["name"] or item["from"]["address"] or "")


def _when(item: dict[str, Any]) -> str:
    return str(item["date"] or item["sort_date"] or "")[:16].replace("T", " ")


def _priority(item: dict[str, Any]) -> str:
    return "-" if item["priority"] is None else str(item["priority"])


def show_cmd(
    message: Annotated[int, typer.Argument(help="The message's id (see inboxd search).")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Write the exact stored bytes to standard output.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a message: its headers, text, files and parse notes."""
    with app_session() as opened:
        if raw:
            data = actions.raw_message(opened, message, owner=None)
        else:
            found = actions.detail(opened, message, owner=None)
    if raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        print_json(found)
        return
    _print_message(found)


def _print_message(found: dict[str, Any]) -> None:
    for name in ("From", "To", "Cc", "Subject", "Date"):
        value = _header(found, name)
        if value:
            out.print(f"[bold]{name}:[/bold] {escape(value)}", highlight=False)
    out.print(f"[bold]Folders:[/bold] {escape(', '.join(found['folders']))}", highlight=False)
    if found["flags"]:
        out.print(f"[bold]Flags:[/bold] {escape(' '.join(found['flags']))}", highlight=False)
    out.print()
    # The text as it is: no markup, no highlighting, however odd the message.
    sys.stdout.write((found["text"] or "(no text)").rstrip("\n") + "\n")
    if found["attachments"]:
        out.print()
        for part in found["attachments"]:
            name = part["filename"] or "(no name)"
            out.print(
                f"[{part['index']}] {escape(name)}  {part['content_type']}, {part['size']} bytes",
                highlight=False,
            )
    if found["parse_notes"]:
        out.print()
        for note in found["parse_notes"]:
            out.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


def _header(found: dict[str, Any], name: str) -> str | None:
    for header in found["headers"]:
        if header["name"].lower() == name.lower():
            return str(header["value"])
    return None
