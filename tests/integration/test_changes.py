"""The one path for changes (``inboxd.pipeline.changes``) on SQLite and PostgreSQL, over
an in-memory server that takes mutations: journaled before acting, the store updated to
match, undo putting folders and flags back exactly, a crash between acting and settling
resumed from the journal, read-only accounts refused."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import change_journal, folders, locations, messages
from inboxd.jobs.model import JobStatus
from inboxd.providers import registry
from inboxd.providers.base import (
    Applied,
    Capabilities,
    Marks,
    Mutation,
    ProviderError,
    ProviderOptions,
)
from inboxd.providers.fake import MAILBOXES, FakeMailbox, FakeProvider
from inboxd.providers.registry import ProviderEntry
from inboxd.store.accounts import Account, Accounts
from tests.support.apps import make_app, running_worker, sync_now, wait_finished


class MutableFake(FakeProvider):
    """The fake server, taking mutations as an IMAP server with MOVE would."""

    name = "fakemut"
    #: mutations applied, for the tests to count
    applied: list[Mutation] = []
    #: raise after applying this many batches (a crash between acting and settling)
    crash_after: int | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(reconnects=True, mutations=True)

    def current_marks(self, folder: str, keys: Sequence[str]) -> dict[str, Marks]:
        box = self._server().folders[folder]
        return {k: Marks(box.messages[int(k)][1]) for k in keys if int(k) in box.messages}

    def locate(self, folder: str, message_id: str) -> list[str]:
        box = self._server().folders.get(folder)
        if box is None:
            return []
        return [str(u) for u, (raw, _) in box.messages.items() if message_id.encode() in raw]

    def archive_folder(self) -> str:
        self._server().folder("Archive")
        return "Archive"

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        server = self._server()
        out = []
        for m in mutations:
            box = server.folders[m.folder]
            uid = int(m.key)
            if uid not in box.messages:
                out.append(Applied(m.key, m.folder, None, error=f"not in {m.folder} any more"))
                continue
            raw, flags = box.messages[uid]
            new = tuple(sorted((set(flags) | set(m.add_flags)) - set(m.remove_flags)))
            server.set_flags(m.folder, uid, new)
            MutableFake.applied.append(m)
            if m.move_to:
                server.remove(m.folder, uid)
                moved = server.add(m.move_to, raw, new)
                out.append(Applied(m.key, m.move_to, str(moved), Marks(new)))
            else:
                out.append(Applied(m.key, m.folder, m.key, Marks(new)))
        if MutableFake.crash_after is not None:
            MutableFake.crash_after -= 1
            if MutableFake.crash_after < 0:
                MutableFake.crash_after = None
                raise ProviderError("connection lost between acting and settling")
        return out


def open_fake(account: Any, secrets: Any, options: ProviderOptions) -> MutableFake:
    """The registry's factory for "fakemut"."""
    return MutableFake(MAILBOXES[account.settings["mailbox"]], options)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    registry.register(
        ProviderEntry(
            "fakemut",
            validator="inboxd.providers.fake:validate_settings",
            factory="tests.integration.test_changes:open_fake",
        )
    )
    MutableFake.applied = []
    opened = make_app(database_url, tmp_path)
    yield opened
    opened.close()
    registry.unregister("fakemut")


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{n}@example.org"
    msg["To"] = "me@example.org"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content(f"body {n}\n")
    return msg.as_bytes()


@pytest.fixture
def synced(app: App) -> tuple[Account, FakeMailbox]:
    box = FakeMailbox()
    for n in range(12):
        box.add("INBOX", mail(n), ("\\Flagged",) if n % 3 == 0 else ())
    box.folder("Archive")
    name = f"box{id(box)}"
    MAILBOXES[name] = box
    account = Accounts(app.engine, app.settings).add("fakemut", "fake", {"mailbox": name})
    assert sync_now(app, account).status == JobStatus.COMPLETED
    return account, box


def pks(app: App, account: Account) -> dict[str, int]:
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.subject, messages.c.id).where(messages.c.account_id == account.id)
        )
        return {subject: int(pk) for subject, pk in rows}


def where(app: App, pk: int) -> tuple[list[str], list[str]]:
    """A message's live folders and its flags, as the store has them."""
    with reading(app.engine) as conn:
        names = conn.execute(
            select(folders.c.name)
            .join(locations, locations.c.folder_id == folders.c.id)
            .where(locations.c.message_pk == pk, locations.c.expunged_at.is_(None))
        ).scalars()
        flags = conn.execute(select(messages.c.flags).where(messages.c.id == pk)).scalar_one()
        return sorted(names), sorted(flags)


def server_state(box: FakeMailbox) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Folder -> (subject line, flags) of each message, sorted."""
    out = {}
    for name, folder in box.folders.items():
        found = []
        for raw, flags in folder.messages.values():
            subject = next(line for line in raw.split(b"\n") if line.startswith(b"Subject:"))
            found.append((subject.decode().strip(), tuple(sorted(flags))))
        out[name] = sorted(found)
    return out


def run(app: App, kind: str, params: dict[str, Any], account: Account) -> Any:
    job = app.queue.enqueue(kind, params, account_id=account.id)
    with running_worker(app, concurrency=1):
        return wait_finished(app, job.id)


def test_mark_archive_and_undo(app: App, synced: tuple[Account, FakeMailbox]) -> None:
    account, box = synced
    ids = pks(app, account)
    original = server_state(box)
    read = run(app, "change", {"message_ids": [ids["message 1"]], "mark": "read"}, account)
    assert read.status == JobStatus.COMPLETED, read.error
    assert read.result["done"] == 1
    assert where(app, ids["message 1"]) == (["INBOX"], ["\\Seen"])
    chosen = [ids[f"message {n}"] for n in (0, 2, 3)]
    archived = run(app, "change", {"message_ids": chosen, "archive": True}, account)
    assert archived.status == JobStatus.COMPLETED, archived.error
    assert archived.result["done"] == 3
    for pk in chosen:
        assert where(app, pk)[0] == ["Archive"]
    assert len(box.folders["Archive"].messages) == 3
    # Undo the archive, then the mark: the server is as it was.
    for job in (archived, read):
        back = run(app, "undo", {"job_id": job.id}, account)
        assert back.status == JobStatus.COMPLETED, back.error
        assert back.result["done"] == job.result["done"]
    assert server_state(box) == original
    for n, pk in ((0, chosen[0]), (1, ids["message 1"]), (2, chosen[1])):
        assert where(app, pk) == (["INBOX"], ["\\Flagged"] if n % 3 == 0 else [])
    with reading(app.engine) as conn:
        states = conn.execute(
            select(change_journal.c.job_id, change_journal.c.state, change_journal.c.undone_by)
        ).all()
    assert {(j, s) for j, s, _ in states if j in (read.id, archived.id)} == {
        (read.id, "undone"),
        (archived.id, "undone"),
    }


def test_resume_after_crash_does_nothing_twice(
    app: App, synced: tuple[Account, FakeMailbox]
) -> None:
    account, box = synced
    ids = sorted(pks(app, account).values())
    MutableFake.crash_after = 0
    job = app.queue.enqueue(
        "change", {"message_ids": ids, "archive": True, "mark": "read"}, account_id=account.id
    )
    with running_worker(app, concurrency=1):
        final = wait_finished(app, job.id, timeout=30)
    assert final.status == JobStatus.COMPLETED, final.error
    assert final.attempts == 2
    assert len(MutableFake.applied) == len(ids)  # each message moved once
    assert len(box.folders["Archive"].messages) == len(ids)
    assert not box.folders["INBOX"].messages
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(change_journal.c.message_pk, change_journal.c.state).where(
                change_journal.c.job_id == job.id
            )
        ).all()
    assert sorted(pk for pk, _ in rows) == ids
    assert {state for _, state in rows} == {"done"}
    for pk in ids:
        assert where(app, pk)[0] == ["Archive"]
