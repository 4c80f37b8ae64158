"""Graph accounts over the local Graph server (tests/support/graph_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations, messages
from inboxd.store.accounts import Account, Accounts
from tests.support.graph_server import GraphServer
from tests.support.mail import make_message

REALMAIL = Path(__file__).resolve().parent.parent / "fixtures" / "realmail" / "mikel-mail"


def add_graph_account(app: App, graph: GraphServer, **settings: Any) -> Account:
    """A Graph account of the server's mailbox, with a fresh refresh token."""
    return Accounts(app.engine, app.settings).add(
        "graph",
        "outlook",
        {
            "client_id": graph.tokens.client_id,
            "tenant": "common",
            "authority": graph.authority,
            "graph_url": graph.graph_url,
        }
        | settings,
        secret={"refresh_token": graph.tokens.issue()},
    )


def fill(graph: GraphServer, folder: str, start: int, count: int) -> list[str]:
    """Deliver generated messages ``start..start+count-1``; returns their ids."""
    return [graph.add_message(folder, make_message(n)) for n in range(start, start + count)]


def real_mail(limit: int = 40) -> list[bytes]:
    """Real messages from the fixtures (plain, MIME, charsets, attachments)."""
    files = sorted(p for p in REALMAIL.rglob("*.eml") if p.is_file())
    return [p.read_bytes() for p in files[:limit]]


def stored_keys(app: App, account: Account, folder: str) -> dict[str, dict[str, Any]]:
    """Live remote keys of ``folder`` with their message's flags and labels."""
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(locations.c.remote_key, messages.c.flags, messages.c.labels)
            .join(folders, folders.c.id == locations.c.folder_id)
            .join(messages, messages.c.id == locations.c.message_pk)
            .where(
                folders.c.account_id == account.id,
                folders.c.name == folder,
                locations.c.expunged_at.is_(None),
            )
        ).all()
    return {r.remote_key: {"flags": list(r.flags), "labels": list(r.labels)} for r in rows}


def message_count(app: App, account: Account) -> int:
    """Messages stored for the account (each once)."""
    with reading(app.engine) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.account_id == account.id)
            ).scalar_one()
        )


def folder_cursor(app: App, account: Account, folder: str) -> Any:
    """The folder's stored sync state (its delta link and what it carries)."""
    with reading(app.engine) as conn:
        return conn.execute(
            select(folders.c.cursor).where(
                folders.c.account_id == account.id, folders.c.name == folder
            )
        ).scalar_one()
