"""Gmail's messages in the store: one copy per X-GM-MSGID however many labels (folders) show
it, its labels kept, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import folders, locations, messages
from inboxd.providers.base import FetchedMessage
from inboxd.store.accounts import Accounts
from inboxd.store.bodies import read_body
from inboxd.store.folders import ensure_folder
from inboxd.sync.batch_store import BatchStore
from inboxd.sync.report import SyncReport
from tests.support.mail import make_message


def fetched(
    folder: str, uid: int, raw: bytes, msgid: int, labels: tuple[str, ...]
) -> FetchedMessage:
    return FetchedMessage(
        remote_key=f"{folder}:1:{uid}", raw=raw, uid=uid, gm_msgid=msgid, labels=labels
    )


def test_a_message_under_several_labels_is_stored_once_with_a_location_per_folder(
    app: App, tmp_path: Path
) -> None:
    maildir = tmp_path / "unused"
    maildir.mkdir()
    account = Accounts(app.engine, app.settings).add("maildir", "gmail", {"path": str(maildir)})
    with writing(app.engine) as conn:
        inbox = ensure_folder(conn, account.id, "INBOX").id
        everything = ensure_folder(conn, account.id, "[Gmail]/All Mail").id
    shared, alone = make_message(1), make_message(2)
    # The same Message-ID twice under different X-GM-MSGIDs: Gmail says they are two.
    twin = make_message(1).replace(b"Subject:", b"X-Copy: 2\r\nSubject:", 1)
    report = SyncReport()
    with BatchStore(app.engine, account.id, report, None) as store:
        store.put(
            inbox,
            "INBOX",
            [fetched("INBOX", 7, shared, 1001, ("\\Inbox", "Work"))],
        )
        store.put(
            everything,
            "[Gmail]/All Mail",
            [
                fetched("[Gmail]/All Mail", 40, shared, 1001, ("\\Inbox", "Work", "Travel")),
                fetched("[Gmail]/All Mail", 41, alone, 1002, ()),
                fetched("[Gmail]/All Mail", 42, twin, 1003, ("Work",)),
            ],
        )
    assert (report.new, report.duplicates) == (3, 1)
    with reading(app.engine) as conn:
        rows = {r.gm_msgid: r for r in conn.execute(select(messages))}
        places = conn.execute(
            select(messages.c.gm_msgid, folders.c.name, locations.c.uid)
            .join(locations, locations.c.message_pk == messages.c.id)
            .join(folders, folders.c.id == locations.c.folder_id)
            .order_by(locations.c.uid)
        ).all()
        assert read_body(conn, rows[1001].id) == shared
    assert set(rows) == {1001, 1002, 1003}
    # Labels as Gmail gave them last (a label added since the INBOX copy was read).
    assert rows[1001].labels == ["\\Inbox", "Work", "Travel"]
    assert rows[1002].labels == [] and rows[1003].labels == ["Work"]
    assert [tuple(p) for p in places] == [
        (1001, "INBOX", 7),
        (1001, "[Gmail]/All Mail", 40),
        (1002, "[Gmail]/All Mail", 41),
        (1003, "[Gmail]/All Mail", 42),
    ]
