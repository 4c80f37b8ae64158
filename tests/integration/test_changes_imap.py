"""Changes on a real IMAP server (Dovecot), on SQLite and PostgreSQL: an account synced
from Dovecot is marked read, unread, flagged and archived with a keyword through the
change jobs; each is checked over a separate IMAP connection and in the store, and the
undos put every folder, flag and keyword back exactly as the server had them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from inboxd.actions import changes as actions
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations, messages
from inboxd.jobs.model import Job, JobStatus
from tests.services.dovecot import ImapUser
from tests.support.apps import add_imap_account, make_app, running_worker, sync_now, wait_finished
from tests.support.mail import make_message

pytestmark = pytest.mark.dovecot

#: Where each message's state on the server is read from: Message-ID -> (folder, flags).
Snapshot = dict[str, tuple[str, tuple[str, ...]]]


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path)
    yield opened
    opened.close()


def snapshot(user: ImapUser) -> Snapshot:
    """Every message of every folder with its flags, over a connection of its own."""
    out: Snapshot = {}
    with IMAPClient(user.host, port=user.port, ssl=False) as client:
        client.login(user.username, user.password)
        for _flags, _delim, name in client.list_folders():
            folder = name if isinstance(name, str) else name.decode()
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            found = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for data in found.values():
                header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode()
                mid = header.partition(":")[2].strip()
                flags = tuple(sorted(f.decode() for f in data[b"FLAGS"] if f != b"\\Recent"))
                assert mid not in out, f"{mid} twice on the server"
                out[mid] = (folder, flags)
    return out


def stored(app: App, pk: int) -> tuple[list[str], list[str]]:
    with reading(app.engine) as conn:
        names = conn.execute(
            select(folders.c.name)
            .join(locations, locations.c.folder_id == folders.c.id)
            .where(locations.c.message_pk == pk, locations.c.expunged_at.is_(None))
        ).scalars()
        flags = conn.execute(select(messages.c.flags).where(messages.c.id == pk)).scalar_one()
    return sorted(names), sorted(flags)


def finish(app: App, job: Job) -> Job:
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=60)
    assert done.status == JobStatus.COMPLETED, done.error
    return done


def test_marks_archive_and_undo_over_imap(app: App, imap_user: ImapUser) -> None:
    flags = [(), ("\\Seen",), ("\\Flagged",), ("$Work",), (), ("\\Seen", "\\Flagged")]
    for n, marks in enumerate(flags):
        imap_user.append("INBOX", make_message(n), marks)
    account = add_imap_account(app, imap_user)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    original = snapshot(imap_user)
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.subject, messages.c.message_id, messages.c.id).where(
                messages.c.account_id == account.id
            )
        ).all()
    by_mid = {f"<{mid}>": int(pk) for _, mid, pk in rows}
    assert set(by_mid) == set(original)
    by_n = {int(subject.rsplit(" ", 1)[1]): int(pk) for subject, _, pk in rows}
    first, second, third, fourth, fifth, sixth = (by_n[n] for n in range(6))

    read = finish(app, actions.mark(app, first, "read", owner=None))
    unread = finish(app, actions.mark(app, second, "unread", owner=None))
    flagged = finish(app, actions.mark(app, fifth, "flagged", owner=None))
    assert [j.result["done"] for j in (read, unread, flagged)] == [1, 1, 1]
    now = snapshot(imap_user)
    pk_mid = {pk: mid for mid, pk in by_mid.items()}
    assert "\\Seen" in now[pk_mid[first]][1] and "\\Seen" not in now[pk_mid[second]][1]
    assert "\\Flagged" in now[pk_mid[fifth]][1]
    assert stored(app, first)[1] == sorted({*original[pk_mid[first]][1], "\\Seen"})

    archive = finish(
        app,
        app.queue.enqueue(
            "change",
            {
                "message_ids": [third, fourth, sixth],
                "archive": True,
                "add_flags": ["$inboxd_newsletter"],
            },
            account_id=account.id,
        ),
    )
    assert archive.result["done"] == 3
    now = snapshot(imap_user)
    for pk in (third, fourth, sixth):
        folder, marks = now[pk_mid[pk]]
        assert folder == "Archive" and "$inboxd_newsletter" in marks
        assert set(original[pk_mid[pk]][1]) <= set(marks)  # flags travel with the move
        assert stored(app, pk)[0] == ["Archive"]
        assert "$inboxd_newsletter" in stored(app, pk)[1]

    for job in (archive, flagged, unread, read):
        back = finish(app, actions.undo_job(app, job.id, owner=None))
        assert back.result["done"] == job.result["done"], back.result
    assert snapshot(imap_user) == original
    for mid, (folder, marks) in original.items():
        assert stored(app, by_mid[mid]) == ([folder], sorted(marks))
