"""Maildir and mbox imports, and the demo mailbox (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.jobs.model import JobStatus
from inboxd.mail.demo import generate_demo_maildir
from inboxd.store.accounts import Account, Accounts
from tests.support.apps import make_app, sync_now
from tests.support.mail import MALFORMED, make_message


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=50)
    yield opened
    opened.close()


def _sync(app: App, account: Account) -> dict[str, Any]:
    done = sync_now(app, account, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    assert isinstance(done.result, dict)
    return done.result


def _mbox_entry(raw: bytes) -> bytes:
    body = b"\n".join(
        b">" + line if line.startswith(b"From ") else line for line in raw.splitlines()
    )
    return b"From sender@example.org Thu Jan  1 00:00:00 2026\n" + body + b"\n\n"


def test_demo_maildir_imports_completely_and_incrementally(app: App, tmp_path: Path) -> None:
    summary = generate_demo_maildir(tmp_path / "demo", count=400)
    registry = Accounts(app.engine, app.settings)
    account = registry.add("maildir", "demo", {"path": str(tmp_path / "demo")})
    result = _sync(app, account)
    assert result["fetched"] == 400
    counts = registry.counts(account.id)
    assert sum(counts["folders"].values()) == 400
    assert counts["folders"]["INBOX"] == summary.folders["INBOX"]
    again = _sync(app, account)
    assert again["fetched"] == 0 and again["new"] == 0


def test_maildir_flags_and_removals_follow_the_files(app: App, tmp_path: Path) -> None:
    root = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for n in range(5):
        (root / "cur" / f"100{n}.host:2,").write_bytes(make_message(n))
    registry = Accounts(app.engine, app.settings)
    account = registry.add("maildir", "md", {"path": str(root)})
    _sync(app, account)
    (root / "cur" / "1000.host:2,").rename(root / "cur" / "1000.host:2,FS")
    (root / "cur" / "1001.host:2,").unlink()
    result = _sync(app, account)
    assert result["expunged"] == 1 and result["flags_changed"] >= 1
    with reading(app.engine) as conn:
        flags = conn.execute(
            select(messages.c.flags).where(messages.c.subject == "Message number 0")
        ).scalar_one()
    assert set(flags) == {"\\Flagged", "\\Seen"}
    assert registry.counts(account.id)["message_count"] == 4


def test_mbox_import_is_incremental_without_duplicates(app: App, tmp_path: Path) -> None:
    path = tmp_path / "all.mbox"
    path.write_bytes(
        b"".join(_mbox_entry(make_message(n)) for n in range(30)) + _mbox_entry(MALFORMED)
    )
    registry = Accounts(app.engine, app.settings)
    account = registry.add("mbox", "takeout", {"path": str(path)})
    first = _sync(app, account)
    assert first["new"] == 31 and first["parse_errors"] >= 1
    with path.open("ab") as handle:
        handle.write(b"".join(_mbox_entry(make_message(n)) for n in range(100, 110)))
    second = _sync(app, account)
    assert second["fetched"] == 10 and second["new"] == 10
    third = _sync(app, account)
    assert third["fetched"] == 0
    with reading(app.engine) as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 41


def test_missing_path_is_a_clear_error(app: App, tmp_path: Path) -> None:
    from inboxd.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="no Maildir"):
        Accounts(app.engine, app.settings).add("maildir", "x", {"path": str(tmp_path / "nope")})
