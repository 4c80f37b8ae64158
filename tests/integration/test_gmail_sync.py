"""A sync of a Gmail account against a server answering as Gmail does (X-GM-EXT-1): one
copy per X-GM-MSGID across labels, labels kept and followed, Spam and Trash left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations, messages
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import Accounts
from tests.support.apps import sync_now
from tests.support.gmail_server import GmailMessage, GmailServer
from tests.support.mail import make_message


@pytest.fixture
def gmail() -> Iterator[GmailServer]:
    server = GmailServer()
    yield server
    server.close()


def stored(app: App) -> dict[int, tuple[list[str], list[str], list[tuple[str, int]]]]:
    """X-GM-MSGID -> (labels, flags, [(folder, uid)])."""
    with reading(app.engine) as conn:
        rows = {r.id: r for r in conn.execute(select(messages))}
        places = conn.execute(
            select(locations.c.message_pk, folders.c.name, locations.c.uid)
            .join(folders, folders.c.id == locations.c.folder_id)
            .where(locations.c.expunged_at.is_(None))
            .order_by(folders.c.name, locations.c.uid)
        ).all()
    out: dict[int, tuple[list[str], list[str], list[tuple[str, int]]]] = {
        r.gm_msgid: (list(r.labels), list(r.flags), []) for r in rows.values()
    }
    for pk, name, uid in places:
        out[rows[pk].gm_msgid][2].append((name, uid))
    return out


def test_a_gmail_account_stores_each_message_once_and_follows_its_labels(
    app: App, gmail: GmailServer
) -> None:
    hello = GmailMessage(17_000_000_000_000_001, make_message(1), ["\\Inbox", "\\Important"])
    receipt = GmailMessage(17_000_000_000_000_002, make_message(2), ['Receipts "2026"'])
    junk = GmailMessage(17_000_000_000_000_003, make_message(3), ["\\Spam"])
    gmail.deliver(hello, "INBOX", "[Gmail]/All Mail")
    gmail.deliver(receipt, "[Gmail]/All Mail")
    gmail.deliver(junk, "[Gmail]/Spam")
    account = Accounts(app.engine, app.settings).add(
        "imap",
        "gmail",
        {"host": "127.0.0.1", "port": gmail.port, "security": "none", "username": "me"},
        secret={"password": "app-password"},
    )
    first = sync_now(app, account)
    assert first.status == JobStatus.COMPLETED, first.error
    assert first.result["new"] == 2 and first.result["duplicates"] == 1
    assert stored(app) == {
        hello.msgid: (["\\Inbox", "\\Important"], [], [("INBOX", 1), ("[Gmail]/All Mail", 1)]),
        receipt.msgid: (['Receipts "2026"'], [], [("[Gmail]/All Mail", 2)]),
    }
    fetches = [c for c in gmail.commands if "BODY.PEEK[]" in c]
    assert fetches and all("X-GM-MSGID X-GM-LABELS" in c for c in fetches)
    examined = {c.split(" ", 1)[1].strip('"') for c in gmail.commands if c.startswith("EXAMINE")}
    assert examined == {"INBOX", "[Gmail]/All Mail", "[Gmail]/Sent Mail"}  # no Spam, Trash
    assert not [c for c in gmail.commands if c.split(" ")[0] in ("SELECT", "STORE", "UID STORE")]

    # Labels change (MODSEQ moves), a message is read elsewhere, and one new one arrives.
    gmail.relabel(receipt, ['Receipts "2026"', "Taxes"])
    hello.flags = ["\\Seen"]
    gmail.relabel(hello, ["\\Important"])  # archived: out of the inbox, kept in All Mail
    gmail.folders["INBOX"].uids.clear()
    later = GmailMessage(17_000_000_000_000_004, make_message(4), ["\\Inbox"])
    gmail.deliver(later, "INBOX", "[Gmail]/All Mail")
    gmail.commands.clear()
    second = sync_now(app, account)
    assert second.status == JobStatus.COMPLETED, second.error
    assert second.result["new"] == 1 and second.result["expunged"] == 1
    assert second.result["flags_changed"] == 2
    assert stored(app) == {
        hello.msgid: (["\\Important"], ["\\Seen"], [("[Gmail]/All Mail", 1)]),
        receipt.msgid: (['Receipts "2026"', "Taxes"], [], [("[Gmail]/All Mail", 2)]),
        later.msgid: (["\\Inbox"], [], [("INBOX", 2), ("[Gmail]/All Mail", 3)]),
    }
    assert any("CHANGEDSINCE" in c and "X-GM-LABELS" in c for c in gmail.commands)
