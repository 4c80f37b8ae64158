"""Real public mail (tests/fixtures/realmail) through every step: none lost, none merged
with another, none breaking a step (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inboxd.actions import messages as reader
from inboxd.actions.export import start_export
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.store.bodies import read_body
from tests.support.apps import make_app, running_worker, sync_and_index, wait_finished

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
    sync_and_index(app, account)
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


def test_every_real_message_is_indexed_shown_and_found(
    app: App, tmp_path: Path, sources: dict[str, bytes]
) -> None:
    account = synced(app, tmp_path)
    [indexed] = app.queue.list_jobs(kind="index")
    assert indexed.status == JobStatus.COMPLETED, indexed.error
    listed: list[dict[str, object]] = []
    cursor = None
    while True:
        page = reader.search(app, "", owner=None, account_id=account.id, limit=37, cursor=cursor)
        listed += page["messages"]
        if not (cursor := page["next_cursor"]):
            break
    assert len(listed) == len({raw for raw in sources.values()})
    for item in listed:
        pk = int(str(item["id"]))
        shown = reader.detail(app, pk, owner=None)
        assert shown["id"] == pk
        view = reader.html_view(app, pk, owner=None, remote=False)
        assert "<script" not in view.document.lower()
        for part in shown["attachments"]:
            _, data = reader.attachment(app, pk, part["index"], owner=None)
            assert len(data) == part["size"]
    # Found by sender, by a word of a Japanese (ISO-2022-JP) body, and by list.
    assert _subjects(app, "from:julliard")
    assert _subjects(app, "すみません") == ["まみむめも"]
    assert _subjects(app, "list:spamassassin-talk.lists.sourceforge.net")
    assert len(_subjects(app, "has:attachment")) >= 10
    assert not _subjects(app, "from:nobody-sends-this")


def test_an_export_of_real_mail_gives_back_every_file(
    app: App, tmp_path: Path, sources: dict[str, bytes]
) -> None:
    account = synced(app, tmp_path)
    out = tmp_path / "out"
    job = start_export(
        app, account.id, fmt="maildir", out=str(out), user_id="", admin=True, layout="flat"
    )
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=120)
    assert done.status == JobStatus.COMPLETED, done.error
    exported = sorted(p.read_bytes() for p in (out / "cur").iterdir())
    assert exported == sorted(set(sources.values()))


def _subjects(app: App, query: str) -> list[object]:
    page = reader.search(app, query, owner=None, limit=200)
    return [m["subject"] for m in page["messages"]]
