"""IMAP sync against a real Dovecot, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations, messages
from inboxd.jobs.model import EventType, JobStatus
from inboxd.store.accounts import NEEDS_ATTENTION, Account, Accounts
from inboxd.store.bodies import read_body
from inboxd.sync.task import sync_dedupe_key
from tests.services.dovecot import ImapUser
from tests.support.apps import (
    add_imap_account,
    make_app,
    running_worker,
    start_worker_process,
    subprocess_env,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.mail import MALFORMED, huge_message, make_message
from tests.support.proxy import Proxy

pytestmark = pytest.mark.dovecot


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path, sync_batch_messages=25)
    yield opened
    opened.close()


def stored(app: App, account: Account) -> dict[str, object]:
    return Accounts(app.engine, app.settings).counts(account.id)


def stored_bodies(app: App, account: Account, folder: str = "INBOX") -> dict[int, bytes]:
    """UID -> the raw message as the store gives it back."""
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(locations.c.uid, locations.c.message_pk)
            .join(folders, folders.c.id == locations.c.folder_id)
            .where(folders.c.account_id == account.id, folders.c.name == folder)
        ).all()
        return {int(uid): read_body(conn, pk) for uid, pk in rows}


def server_bodies(user: ImapUser, folder: str = "INBOX") -> dict[int, bytes]:
    return {m.uid: m.raw for m in user.server.fetch_all(user.username, user.password, folder)}


def fill(user: ImapUser, folder: str, start: int, count: int) -> list[int]:
    if folder != "INBOX":
        user.create_folder(folder)
    return [user.append(folder, make_message(n)) for n in range(start, start + count)]


def test_full_sync_matches_the_server_per_folder(app: App, imap_user: ImapUser) -> None:
    fill(imap_user, "INBOX", 0, 60)
    fill(imap_user, "Archive", 100, 30)
    fill(imap_user, "Trash", 200, 5)
    account = add_imap_account(app, imap_user)
    job = sync_now(app, account)
    assert job.status == JobStatus.COMPLETED, job.error
    counts = stored(app, account)
    assert counts["folders"] == {"Archive": 30, "INBOX": 60}  # Trash is skipped by default
    assert counts["message_count"] == 90
    assert job.result["new"] == 90 and job.result["fetched"] == 90
    steps = [
        e.payload.get("step") for e in app.queue.events(job.id) if e.type == EventType.PROGRESS
    ]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == [
        "connecting",
        "listing folders",
        "fetching",
        "storing",
    ]
    with reading(app.engine) as conn:
        row = conn.execute(select(messages).where(messages.c.subject == "Message number 5")).one()
    assert row.from_addr == "sender5@example.org" and "\\Seen" not in row.flags
    # Fetching never marks mail as read on the server.
    assert all(
        "\\Seen" not in m.flags
        for m in imap_user.server.fetch_all(imap_user.username, imap_user.password, "INBOX")
    )
    # What the store keeps is the server's message, byte for byte.
    assert stored_bodies(app, account) == server_bodies(imap_user)
    assert stored_bodies(app, account, "Archive") == server_bodies(imap_user, "Archive")


def test_a_folder_the_server_will_not_open_is_skipped_and_its_copy_kept(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, "INBOX", 0, 4)
    fill(imap_user, "Archive", 100, 3)
    account = add_imap_account(app, imap_user)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    fill(imap_user, "INBOX", 10, 2)
    fill(imap_user, "Archive", 110, 1)
    archive = imap_user.maildir / ".Archive"  # Maildir++: Dovecot cannot open it now
    archive.chmod(0)
    try:
        job = sync_now(app, account)
    finally:
        archive.chmod(0o700)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["folders_skipped"] == 1 and job.result["per_folder"] == {"INBOX": 2}
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any(m.startswith("skipped folder Archive this time: ") for m in logs), logs
    # Not gone: the three messages stored before stay, and the next sync catches up.
    assert stored(app, account)["folders"] == {"INBOX": 6, "Archive": 3}
    later = sync_now(app, account)
    assert later.result["folders_skipped"] == 0 and later.result["per_folder"] == {"Archive": 1}


def test_awkward_folder_names_and_many_folders(app: App, imap_user: ImapUser) -> None:
    # Names that need modified UTF-7, quoting and escaping; more folders than STATUS
    # commands go on the wire at once.
    awkward = ["Ärchiv 2024", 'Say "hi"', "Reports (old)", "Back\\slash"]
    plain = [f"Box{n:02d}" for n in range(36)]
    for n, name in enumerate(awkward):
        fill(imap_user, name, 100 * (n + 1), n + 1)
    for name in plain:
        fill(imap_user, name, 10_000 + len(name), 1)
    fill(imap_user, "INBOX", 0, 3)
    account = add_imap_account(app, imap_user)
    job = sync_now(app, account)
    assert job.status == JobStatus.COMPLETED, job.error
    counts = stored(app, account)["folders"]
    assert isinstance(counts, dict)
    assert {name: counts[name] for name in awkward} == {
        name: n + 1 for n, name in enumerate(awkward)
    }
    assert all(counts[name] == 1 for name in plain) and counts["INBOX"] == 3
    assert stored_bodies(app, account, awkward[0]) == server_bodies(imap_user, awkward[0])
    again = sync_now(app, account)
    assert again.result["fetched"] == 0
    assert again.result["folders_unchanged"] == len(awkward) + len(plain) + 1
    fill(imap_user, awkward[1], 5000, 2)
    third = sync_now(app, account)
    assert third.result["per_folder"] == {awkward[1]: 2}


def test_incremental_sync_fetches_exactly_the_new_messages(app: App, imap_user: ImapUser) -> None:
    fill(imap_user, "INBOX", 0, 40)
    account = add_imap_account(app, imap_user)
    assert sync_now(app, account).result["new"] == 40
    again = sync_now(app, account)
    assert again.result["fetched"] == 0 and again.result["folders_unchanged"] == 1
    fill(imap_user, "INBOX", 1000, 7)
    third = sync_now(app, account)
    assert third.result["fetched"] == 7 and third.result["new"] == 7
    assert stored(app, account)["message_count"] == 47


def test_flag_changes_and_expunges_on_the_server_are_seen(app: App, imap_user: ImapUser) -> None:
    uids = fill(imap_user, "INBOX", 0, 20)
    account = add_imap_account(app, imap_user)
    sync_now(app, account)
    imap_user.set_flags("INBOX", uids[:3], ["\\Flagged", "\\Seen"])
    imap_user.delete_messages("INBOX", uids[10:12])
    job = sync_now(app, account)
    assert job.result["flags_changed"] >= 3 and job.result["expunged"] == 2
    with reading(app.engine) as conn:
        flagged = conn.execute(
            select(func.count())
            .select_from(messages)
            .where(
                messages.c.account_id == account.id,
                messages.c.flags.cast(type_=messages.c.subject.type).like("%Flagged%"),
            )
        ).scalar_one()
        expunged = (
            conn.execute(select(messages.c.subject).where(messages.c.expunged_at.is_not(None)))
            .scalars()
            .all()
        )
    assert flagged == 3
    assert sorted(expunged) == ["Message number 10", "Message number 11"]  # kept, marked
    assert stored(app, account)["folders"] == {"INBOX": 18}


def test_uidvalidity_change_resyncs_without_duplicates(app: App, imap_user: ImapUser) -> None:
    fill(imap_user, "INBOX", 0, 15)
    account = add_imap_account(app, imap_user)
    sync_now(app, account)
    before = imap_user.uidvalidity()
    assert imap_user.change_uidvalidity() != before
    job = sync_now(app, account)
    assert job.status == JobStatus.COMPLETED
    assert job.result["uidvalidity_resets"] == 1 and job.result["new"] == 0
    assert stored(app, account) == {"message_count": 15, "folders": {"INBOX": 15}}
    with reading(app.engine) as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 15


def test_wrong_password_fails_at_once_without_retries(app: App, imap_user: ImapUser) -> None:
    account = add_imap_account(app, imap_user, password="not-the-password")
    job = sync_now(app, account)
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert job.error == f"password rejected by {imap_user.host} for {imap_user.username}"
    assert "not-the-password" not in str(job.to_dict())
    again = Accounts(app.engine, app.settings).get(account.id)
    assert again.state == NEEDS_ATTENTION and again.state_message == job.error


def test_malformed_and_huge_messages_are_stored_with_notes(app: App, imap_user: ImapUser) -> None:
    imap_user.append("INBOX", make_message(1))
    imap_user.append("INBOX", MALFORMED)
    imap_user.append("INBOX", huge_message())
    imap_user.append("INBOX", make_message(2))
    account = add_imap_account(app, imap_user)
    job = sync_now(app, account)
    assert job.status == JobStatus.COMPLETED and job.result["fetched"] == 4
    with reading(app.engine) as conn:
        rows = {r.subject: r for r in conn.execute(select(messages))}
    assert rows["A very large message"].size > 5_000_000
    broken = [r for r in rows.values() if r.parse_errors]
    assert broken, "the malformed message should carry parse notes"
    assert len(rows) == 4
    assert stored_bodies(app, account) == server_bodies(imap_user)


def test_a_message_the_server_cannot_read_is_skipped_and_the_rest_stored(
    app: App, imap_user: ImapUser
) -> None:
    fill(imap_user, "INBOX", 0, 40)
    assert imap_user.message_count() == 40  # Dovecot has indexed every file
    files = sorted((imap_user.maildir / "new").iterdir()) + sorted(
        (imap_user.maildir / "cur").iterdir()
    )
    unreadable = files[7]
    # Dovecot answers a FETCH of it with "* BYE FETCH failed: Internal error occurred".
    unreadable.chmod(0)
    try:
        account = add_imap_account(app, imap_user)
        job = sync_now(app, account)
        assert job.status == JobStatus.COMPLETED, job.error
        assert job.result["unavailable"] == 1 and job.result["fetched"] == 39
        assert stored(app, account)["message_count"] == 39
        logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
        assert any("skipped message UID" in m for m in logs)
        # Once the file is readable again, nothing else was lost: every other message is
        # stored exactly once, byte for byte.
    finally:
        unreadable.chmod(0o600)
        os.utime(unreadable)
    server = server_bodies(imap_user)
    kept = stored_bodies(app, account)
    assert len(kept) == 39 and all(server[uid] == raw for uid, raw in kept.items())


def test_a_message_the_server_cannot_even_size_is_skipped_and_the_rest_stored(
    app: App, imap_user: ImapUser
) -> None:
    # Files without ",S=<size>" in their names (not delivered by Dovecot itself): it must
    # read one to answer RFC822.SIZE, and for an unreadable one it hangs up instead.
    owner = imap_user.maildir.stat()
    names = [f"{1_700_000_000 + n}.M{n}P1.unsized" for n in range(30)]
    for n, name in enumerate(names):
        path = imap_user.maildir / "new" / name
        path.write_bytes(make_message(n))
        if os.geteuid() == 0:
            os.chown(path, owner.st_uid, owner.st_gid)
    assert imap_user.message_count() == 30
    (unreadable,) = [
        p for sub in ("new", "cur") for p in (imap_user.maildir / sub).glob(f"{names[12]}*")
    ]
    unreadable.chmod(0)
    try:
        account = add_imap_account(app, imap_user)
        job = sync_now(app, account)
    finally:
        unreadable.chmod(0o600)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["unavailable"] == 1 and job.result["fetched"] == 29
    assert stored(app, account)["message_count"] == 29
    logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
    assert any("could not list the sizes" in m for m in logs)
    assert any("skipped message UID" in m for m in logs)


@pytest.mark.parametrize("stall", [False, True], ids=["cut", "stalled"])
def test_connection_cut_or_stalled_mid_fetch_completes(
    database_url: str, tmp_path: Path, imap_user: ImapUser, stall: bool
) -> None:
    # A stalled server (open, silent) is left by the socket timeout, a cut one at once.
    fill(imap_user, "INBOX", 0, 120)
    app = make_app(database_url, tmp_path, sync_batch_messages=25, imap_timeout_seconds=1.0)
    try:
        with Proxy(imap_user.port, drop_after=60_000, stall=stall) as proxy:
            account = add_imap_account(app, imap_user, port=proxy.port)
            job = sync_now(app, account)
            assert proxy.drops == 1
        assert job.status == JobStatus.COMPLETED, job.error
        assert job.result["reconnects"] >= 1
        assert stored(app, account)["message_count"] == 120
        with reading(app.engine) as conn:
            assert conn.execute(select(func.count()).select_from(locations)).scalar_one() == 120
        assert stored_bodies(app, account) == server_bodies(imap_user)
        if stall:
            logs = [str(e.payload.get("message")) for e in app.queue.events(job.id)]
            assert any("timed out" in m for m in logs), logs
    finally:
        app.close()


def test_two_accounts_sync_at_once(
    app: App, dovecot_server: object, imap_user: ImapUser, tmp_path: Path
) -> None:
    from tests.services.dovecot import DovecotServer

    assert isinstance(dovecot_server, DovecotServer)
    other = dovecot_server.add_user("second" + imap_user.username, "pw-second-123")
    fill(imap_user, "INBOX", 0, 80)
    fill(other, "INBOX", 500, 80)
    first_acc, second_acc = add_imap_account(app, imap_user), add_imap_account(app, other)
    jobs = [
        app.queue.enqueue("sync", account_id=a.id, dedupe_key=sync_dedupe_key(a.id))
        for a in (first_acc, second_acc)
    ]
    with running_worker(app, concurrency=2):
        wait_for(
            lambda: (
                all(app.queue.get(j.id).status == JobStatus.RUNNING for j in jobs)
                or all(app.queue.get(j.id).status.finished for j in jobs)
            )
        )
        done = [wait_finished(app, j.id, timeout=60) for j in jobs]
    assert [d.status for d in done] == [JobStatus.COMPLETED] * 2
    assert stored(app, first_acc)["message_count"] == 80
    assert stored(app, second_acc)["message_count"] == 80


def test_sigkill_mid_sync_resumes_with_every_message_once(
    app: App, imap_user: ImapUser, database_url: str, tmp_path: Path
) -> None:
    fill(imap_user, "INBOX", 0, 600)
    account = add_imap_account(app, imap_user)
    job = app.queue.enqueue("sync", account_id=account.id)
    env = subprocess_env(database_url, tmp_path / "data", INBOXD_SYNC_BATCH_MESSAGES="10")
    first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
    try:
        wait_for(lambda: app.queue.get(job.id).progress_current >= 100, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
    try:
        done = wait_finished(app, job.id, timeout=90)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
    assert done.status == JobStatus.COMPLETED and done.attempts == 2
    # The result is the whole job's: both attempts' work, each message counted once.
    assert done.result["fetched"] == done.result["new"] == 600
    assert done.result["per_folder"] == {"INBOX": 600}
    fetching = [
        e.payload
        for e in app.queue.events(job.id)
        if e.type == EventType.PROGRESS and e.payload.get("step") == "fetching"
    ]
    assert fetching[-1]["total"] < 600  # the second attempt resumed, it did not start over
    with reading(app.engine) as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == 600
        assert conn.execute(select(func.count()).select_from(locations)).scalar_one() == 600
