"""CLI for users and API keys (``inboxd users …``, ``inboxd keys …``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from inboxd.cli.common import JsonOpt, app_session, err, out, print_json
from inboxd.store.users import Users

users_app = typer.Typer(help="People who own accounts and jobs.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys (for the API, the dashboard and agents).", no_args_is_help=True
)


@users_app.command("add")
def users_add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="May see and manage everything.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user; prints its id."""
    with app_session() as opened:
        user = Users(opened.engine).add(name, admin=admin)
    if as_json:
        print_json(user.to_dict())
    else:
        sys.stdout.write(user.id + "\n")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List users."""
    with app_session() as opened:
        found = Users(opened.engine).all()
    if as_json:
        print_json([u.to_dict() for u in found])
        return
    table = Table(box=None)
    for col in ("id", "name", "admin"):
        table.add_column(col, no_wrap=True)
    for user in found:
        table.add_row(user.id, user.name, "yes" if user.is_admin else "")
    out.print(table)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Whose key (a user name).")],
    label: Annotated[str | None, typer.Option("--label", help="What the key is for.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key and print it once (only a hash is kept)."""
    with app_session() as opened:
        registry = Users(opened.engine)
        issued = registry.create_key(registry.by_name(user), label=label)
    if as_json:
        print_json({"key": issued.key, "id": issued.id, "user": issued.user.name})
        return
    sys.stdout.write(issued.key + "\n")
    if sys.stderr.isatty():
        err.print("Store this key now: it is not shown again.")


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user")] = None, as_json: JsonOpt = False
) -> None:
    """List keys (prefix, owner, use; never the key)."""
    with app_session() as opened:
        registry = Users(opened.engine)
        found = registry.list_keys(registry.by_name(user) if user else None)
    if as_json:
        print_json(found)
        return
    table = Table(box=None)
    for col in ("id", "prefix", "user", "label", "created", "last used", "revoked"):
        table.add_column(col, no_wrap=True)
    for key in found:
        table.add_row(
            key["id"],
            key["prefix"],
            key["user"],
            key["label"] or "",
            key["created_at"][:19],
            (key["last_used_at"] or "")[:19],
            "yes" if key["revoked"] else "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(ref: str, as_json: JsonOpt = False) -> None:
    """Revoke a key (by id, prefix or the key itself); its dashboard sessions end too."""
    with app_session() as opened:
        result = Users(opened.engine).revoke_key(ref)
    if as_json:
        print_json(result)
    else:
        out.print(f"revoked key {result['prefix']} ({result['id']})")
