"""The sync engine on the in-memory fake provider, into a real SQLite store: what a first
sync stores, what a re-sync changes, and how it survives drops, cancellation and crashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import folders, locations, message_bodies, messages
from inboxd.errors import JobCancelled
from inboxd.providers.base import AuthenticationFailed, ProviderOptions
from inboxd.providers.fake import FakeMailbox, FakeProvider
from inboxd.providers.mbox import MboxProvider
from inboxd.store.accounts import Accounts
from inboxd.store.bodies import read_body
from inboxd.sync.engine import SyncEngine
from inboxd.sync.report import SyncReport
from tests.support.apps import make_app
from tests.support.mail import make_message
from tests.support.progress import Recorder

OPTIONS = ProviderOptions(batch_messages=10)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    opened = make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def account_id(app: App, tmp_path: Path) -> str:
    # Any account row will do: the engine is handed its provider.
    (tmp_path / "maildir" / "cur").mkdir(parents=True)
    return Accounts(app.engine, app.settings).add("maildir", "t", {"path": tmp_path / "maildir"}).id


@pytest.fixture
def mailbox() -> FakeMailbox:
    box = FakeMailbox()
    for n in range(25):
        box.add("INBOX", make_message(n), ("\\Seen",) if n % 2 else ())
    for n in range(25, 30):
        box.add("Archive", make_message(n))
    return box


def sync(
    app: App, account_id: str, mailbox: FakeMailbox, progress: Recorder | None = None
) -> SyncReport:
    provider = FakeProvider(mailbox, OPTIONS)
    engine = SyncEngine(app.engine, app.settings, account_id, provider, progress or Recorder())
    return engine.run()


def stored(app: App) -> tuple[int, int]:
    """(messages, live locations) in the store."""
    with reading(app.engine) as conn:
        return (
            conn.execute(select(func.count()).select_from(messages)).scalar_one(),
            conn.execute(
                select(func.count()).select_from(locations).where(locations.c.expunged_at.is_(None))
            ).scalar_one(),
        )


def flags_of(app: App, key: str, folder: str = "INBOX") -> list[str]:
    with reading(app.engine) as conn:
        return list(
            conn.execute(
                select(messages.c.flags)
                .join(locations, locations.c.message_pk == messages.c.id)
                .join(folders, folders.c.id == locations.c.folder_id)
                .where(folders.c.name == folder, locations.c.remote_key == key)
            ).scalar_one()
        )


def gone_folders(app: App) -> set[str]:
    with reading(app.engine) as conn:
        return set(
            conn.execute(select(folders.c.name).where(folders.c.gone_at.is_not(None))).scalars()
        )


def test_a_first_sync_stores_everything_in_the_usual_steps(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    progress = Recorder()
    report = sync(app, account_id, mailbox, progress)
    assert progress.steps == ["connecting", "listing folders", "fetching", "storing"]
    assert (report.folders, report.fetched, report.new, report.duplicates) == (2, 30, 30, 0)
    assert report.per_folder == {"Archive": 5, "INBOX": 25}
    assert stored(app) == (30, 30)
    assert flags_of(app, "2") == ["\\Seen"] and flags_of(app, "1") == []
    assert mailbox.batches_served == 4  # INBOX in 3 batches of at most 10, Archive in 1


def test_a_resync_with_nothing_new_fetches_nothing(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    sync(app, account_id, mailbox)
    served = mailbox.batches_served
    report = sync(app, account_id, mailbox)
    assert (report.fetched, report.folders_unchanged, report.flags_changed) == (0, 2, 0)
    assert mailbox.batches_served == served
    assert stored(app) == (30, 30)


def test_new_flagged_and_removed_messages_are_followed(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    sync(app, account_id, mailbox)
    mailbox.add("INBOX", make_message(100))
    mailbox.set_flags("INBOX", 1, ("\\Flagged",))
    mailbox.remove("INBOX", 3)
    report = sync(app, account_id, mailbox)
    assert (report.fetched, report.new, report.flags_changed, report.expunged) == (1, 1, 1, 1)
    assert report.folders_unchanged == 1  # Archive
    assert flags_of(app, "1") == ["\\Flagged"]
    assert stored(app) == (31, 30)


def test_a_folder_gone_from_the_server_is_marked_gone(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    sync(app, account_id, mailbox)
    mailbox.remove_folder("Archive")
    report = sync(app, account_id, mailbox)
    assert report.folders == 1
    assert gone_folders(app) == {"Archive"}


def test_a_folder_the_server_will_not_open_is_skipped_and_kept(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    sync(app, account_id, mailbox)
    mailbox.refused["Archive"] = "fake.invalid would not open it: NO"
    mailbox.add("Archive", make_message(200))
    progress = Recorder()
    report = sync(app, account_id, mailbox, progress)
    assert (report.folders, report.folders_skipped, report.fetched) == (1, 1, 0)
    assert gone_folders(app) == set()
    assert any(m.startswith("skipped folder Archive this time") for m in progress.logs)


def test_a_connection_dropped_mid_fetch_is_reopened_and_the_folder_resumed(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    mailbox.drop_after_batches = 1
    progress = Recorder()
    report = sync(app, account_id, mailbox, progress)
    assert report.reconnects == 1 and mailbox.logins == 2
    # The first batch was committed with its checkpoint: nothing is fetched twice.
    assert (report.fetched, report.new, report.duplicates) == (30, 30, 0)
    assert stored(app) == (30, 30)
    assert any("dropped the connection; reconnecting" in m for m in progress.logs)


def test_a_cancelled_sync_keeps_what_it_committed_and_the_next_one_resumes(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    # The progress bar moves once per stored batch: cancelled after the second (Archive's
    # only batch, then INBOX's first).
    with pytest.raises(JobCancelled):
        sync(app, account_id, mailbox, Recorder(stop_after=2))
    assert stored(app) == (15, 15)
    report = sync(app, account_id, mailbox)
    assert (report.fetched, report.new, report.duplicates) == (15, 15, 0)
    assert stored(app) == (30, 30)


def test_a_crash_mid_sync_resumes_after_the_last_committed_batch(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    with pytest.raises(RuntimeError):
        sync(app, account_id, mailbox, Recorder(stop_after=2, stop=RuntimeError("killed")))
    assert stored(app) == (15, 15)
    served = mailbox.batches_served
    report = sync(app, account_id, mailbox)
    assert (report.fetched, report.duplicates) == (15, 0)
    assert mailbox.batches_served == served + 2  # INBOX's last two batches


def test_a_changed_uidvalidity_refetches_the_folder_without_duplicates(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    sync(app, account_id, mailbox)
    mailbox.renumber("Archive")
    progress = Recorder()
    report = sync(app, account_id, mailbox, progress)
    assert report.uidvalidity_resets == 1
    assert (report.fetched, report.new, report.duplicates) == (5, 0, 5)
    assert stored(app) == (30, 30)
    assert "UIDVALIDITY of Archive changed; fetching it again" in progress.logs


def test_a_rejected_login_fails_at_once(app: App, account_id: str, mailbox: FakeMailbox) -> None:
    mailbox.reject_login = True
    with pytest.raises(AuthenticationFailed):
        sync(app, account_id, mailbox)
    assert mailbox.logins == 0


def test_an_mbox_resumes_at_its_offset_and_counts_the_bytes_it_read(
    app: App, account_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "all.mbox"

    def append(first: int, count: int) -> None:
        with path.open("ab") as out:
            for n in range(first, first + count):
                out.write(b"From a@b Sat Jan  3 01:05:34 2024\n" + make_message(n) + b"\n")

    def sync_file(progress: Recorder) -> SyncReport:
        provider = MboxProvider(path, OPTIONS)
        return SyncEngine(app.engine, app.settings, account_id, provider, progress).run()

    append(0, 12)
    first = Recorder()
    report = sync_file(first)
    assert first.steps == ["listing folders", "fetching", "storing"]
    assert (report.fetched, report.bytes) == (12, path.stat().st_size)
    size = path.stat().st_size
    append(12, 3)
    report = sync_file(Recorder())
    assert (report.fetched, report.new, report.bytes) == (3, 3, path.stat().st_size - size)
    assert stored(app) == (15, 15)


def test_messages_sharing_a_message_id_stay_apart_and_a_collapsed_pair_is_fetched_again(
    app: App, account_id: str, mailbox: FakeMailbox
) -> None:
    first = make_message(100)
    second = first.replace(b"Line of message 100.", b"Line of message 100, sent again.", 1)
    mailbox.add("INBOX", first)
    mailbox.add("INBOX", second)
    report = sync(app, account_id, mailbox)
    assert (report.new, report.duplicates) == (32, 0)
    # As a header-keyed store held them: the second collapsed into the first.
    with writing(app.engine) as conn:
        pk_first, pk_second = (
            conn.execute(
                select(locations.c.message_pk).where(locations.c.remote_key == key)
            ).scalar_one()
            for key in ("26", "27")
        )
        conn.execute(
            update(locations).where(locations.c.message_pk == pk_second).values(message_pk=pk_first)
        )
        conn.execute(delete(message_bodies).where(message_bodies.c.message_pk == pk_second))
        conn.execute(delete(messages).where(messages.c.id == pk_second))
        conn.execute(update(messages).values(identity="h:" + messages.c.identity))
    progress = Recorder()
    report = sync(app, account_id, mailbox, progress)
    assert progress.steps[0] == "repairing" and report.repaired == 31
    # Only what lies above the collapsed pair's lower UID is fetched again.
    assert (report.fetched, report.new, report.duplicates) == (2, 1, 1)
    with reading(app.engine) as conn:
        bodies = {
            key: read_body(conn, pk)
            for key, pk in conn.execute(
                select(locations.c.remote_key, locations.c.message_pk).where(
                    locations.c.remote_key.in_(["26", "27"])
                )
            )
        }
    assert bodies == {"26": first, "27": second}
    assert stored(app) == (32, 32)
