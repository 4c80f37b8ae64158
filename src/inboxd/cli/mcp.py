"""``inboxd mcp``: the MCP tools over stdio, for an AI agent's client that starts inboxd.

The agent acts as one user: named with ``--user`` (the operator's choice, who may use the
database anyway) or the owner of the API key in ``INBOXD_API_KEY``. Stdout carries the
protocol; logs go to stderr.
"""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from inboxd.app import App
from inboxd.cli.common import app_session
from inboxd.errors import Forbidden, InvalidRequest
from inboxd.store.users import User, Users


def caller(opened: App, name: str | None, key: str | None) -> User:
    """The user the agent acts as: the key's owner, or the named user (both: the same)."""
    users = Users(opened.engine)
    if key is None:
        if name is None:
            raise InvalidRequest("say who the agent acts as: --user NAME or INBOXD_API_KEY")
        return users.by_name(name)
    found = users.authenticate_key(key)
    if found is None:
        raise Forbidden("INBOXD_API_KEY is not a valid, unrevoked API key")
    user = found[0]
    if name is not None and name != user.name:
        raise InvalidRequest(f"the API key is {user.name!r}'s, not {name!r}'s")
    return user


def mcp_cmd(
    user: Annotated[
        str | None, typer.Option("--user", help="Act as this user (a user name).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="INBOXD_API_KEY",
            help="Act as this key's user (better set INBOXD_API_KEY than the option).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the MCP tools over stdio for an AI agent, as one user."""
    from inboxd.mcp.server import build_server

    with app_session() as opened:
        server = build_server(opened, user=caller(opened, user, api_key))
        anyio.run(server.run_stdio_async)
