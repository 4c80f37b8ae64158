"""Real public mail (tests/fixtures/realmail) through every step: none lost, none merged
with another, none breaking a step (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.store.bodies import read_body
from tests.support.apps import make_app, sync_now

REAL_MAIL = Path(__file__).parents[1] / "fixtures" / "realmail"


def real_messages() -> list[Path]:
    """Every message file of the fixtures (not their licences and notes)."""
    notes = ("LICENSE", "NOTICE", "README.md")
    return sorted(p for p in REAL_MAIL.rglob("*") if p.is_file() and p.name not in notes)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=20)
    yield opened
    opened.close()


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, bytes]:
    """A Maildir of every real message, keyed by its unique file name."""
    root = tmp_path / "real"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    found: dict[str, bytes] = {}
    for n, path in enumerate(real_messages()):
        key = f"{n:04d}.realmail"
        found[key] = path.read_bytes()
        (root / "cur" / f"{key}:2,S").write_bytes(found[key])
    return found


def synced(app: App, tmp_path: Path) -> Account:
    """The real Maildir as a synced account."""
    account = Accounts(app.engine, app.settings).add(
        "maildir", "real", {"path": str(tmp_path / "real")}
    )
    done = sync_now(app, account, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    return account


def test_every_real_message_is_stored_with_its_own_bytes(
    app: App, tmp_path: Path, sources: dict[str, bytes]
) -> None:
    assert len(sources) >= 100
    account = synced(app, tmp_path)
    with reading(app.engine) as conn:
        placed = dict(
            conn.execute(
                select(locations.c.remote_key, locations.c.message_pk)
                .join(folders, folders.c.id == locations.c.folder_id)
                .where(folders.c.account_id == account.id)
            ).all()
        )
        assert placed.keys() == sources.keys()
        # Different bytes are different messages, whatever their Message-IDs say.
        for key, pk in placed.items():
            assert read_body(conn, pk) == sources[key], key
    distinct = {raw for raw in sources.values()}
    assert len(set(placed.values())) == len(distinct)
