"""``inboxd search`` and ``inboxd show`` as a user runs them, on a store a Maildir sync
filled (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.store.accounts import Account, Accounts
from tests.support.apps import make_app, run_cli, subprocess_env, sync_and_index
from tests.support.mail import MALFORMED, make_message


def _with_attachment() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Carol <carol@example.org>"
    msg["To"] = "reader@example.com"
    msg["Subject"] = "Invoice attached"
    msg["Date"] = "Sun, 01 Mar 2026 09:00:00 +0000"
    msg["Message-ID"] = "<invoice@example.org>"
    msg.set_content("Please find the invoice attached.\n[bold]not markup[/bold]\n")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="inv.pdf")
    return msg.as_bytes()


#: Made once: its MIME boundary is random.
INVOICE = _with_attachment()


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[App, Account, dict[str, str]]]:
    """Ten plain messages, one with a PDF and a malformed one, synced; the CLI's env."""
    root = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    raws = [make_message(n) for n in range(10)] + [INVOICE, MALFORMED]
    for n, raw in enumerate(raws):
        (root / "cur" / f"{2000 + n}.host:2,").write_bytes(raw)
    app = make_app(database_url, tmp_path)
    account = Accounts(app.engine, app.settings).add("maildir", "md", {"path": str(root)})
    sync_and_index(app, account)
    try:
        yield app, account, subprocess_env(database_url, tmp_path / "data")
    finally:
        app.close()


def _id_of(app: App, subject_part: str) -> int:
    with reading(app.engine) as conn:
        found = conn.execute(
            select(messages.c.id).where(messages.c.subject.contains(subject_part))
        ).scalar_one()
    return int(found)


def test_search_json_lists_message_objects_newest_first(
    store: tuple[App, Account, dict[str, str]],
) -> None:
    _app, account, env = store
    done = run_cli(env, "search", "--json", "--limit", "5")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, list) and len(found) == 5
    assert {"id", "account_id", "subject", "from", "folders", "snippet"} <= set(found[0])
    order = [(m["sort_date"], m["id"]) for m in found]
    assert order == sorted(order, reverse=True)
    one = json.loads(run_cli(env, "search", "number 3", "--json").stdout)
    assert [m["subject"] for m in one] == ["Message number 3"]
    assert one[0]["account_id"] == account.id and one[0]["folders"] == ["INBOX"]
    every = json.loads(run_cli(env, "search", "--account", account.id, "--json").stdout)
    assert len(every) == 12
    table = run_cli(env, "search", "Invoice")
    assert table.returncode == 0 and "Invoice attached" in table.stdout
    assert "Carol" in table.stdout


def test_malformed_query_exits_2_naming_the_problem(
    store: tuple[App, Account, dict[str, str]],
) -> None:
    _app, _account, env = store
    done = run_cli(env, "search", 'subject:"never closed')
    assert done.returncode == 2
    assert "quote" in done.stderr and done.stdout == ""
    unknown = run_cli(env, "search", "--account", "no-such-account")
    assert unknown.returncode == 1 and "no account" in unknown.stderr


def test_show_prints_text_files_and_parse_notes(
    store: tuple[App, Account, dict[str, str]],
) -> None:
    app, _account, env = store
    pk = _id_of(app, "Invoice")
    shown = run_cli(env, "show", str(pk))
    assert shown.returncode == 0, shown.stderr
    assert "Subject: Invoice attached" in shown.stdout
    # The message's text is printed as it is, never read as console markup.
    assert "[bold]not markup[/bold]" in shown.stdout
    assert "inv.pdf" in shown.stdout and "application/pdf" in shown.stdout
    detail = json.loads(run_cli(env, "show", str(pk), "--json").stdout)
    assert detail["attachments"][0]["filename"] == "inv.pdf"
    assert detail["text"].startswith("Please find the invoice")
    broken = _id_of(app, "broken 8-bit")
    noted = run_cli(env, "show", str(broken))
    assert noted.returncode == 0 and "note:" in noted.stdout and "boundary" in noted.stdout
    missing = run_cli(env, "show", "999999")
    assert missing.returncode == 1 and "no message 999999" in missing.stderr


def test_show_raw_writes_the_exact_bytes(store: tuple[App, Account, dict[str, str]]) -> None:
    app, _account, env = store
    for subject, expected in (("broken 8-bit", MALFORMED), ("Invoice", INVOICE)):
        done = subprocess.run(
            [sys.executable, "-m", "inboxd", "show", str(_id_of(app, subject)), "--raw"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected
