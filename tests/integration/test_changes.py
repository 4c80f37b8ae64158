"""The one path for changes (``inboxd.pipeline.changes``) on SQLite and PostgreSQL, over
the fake server's write side: journaled before acting, the store updated to match, undo
putting folders and flags back exactly, a connection lost mid-batch resumed from the
journal with nothing done twice, a recheck skipping what changed, read-only accounts
refused, the undo rules and the owner checks; the API around them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Connection, select

from inboxd.actions import changes as actions
from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import change_journal, folders, locations, messages
from inboxd.errors import InvalidRequest, InvalidState, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.queue import Queue
from inboxd.jobs.registry import task
from inboxd.pipeline.changes import ARCHIVE, Change, Located, apply_changes
from inboxd.providers import registry
from inboxd.providers.fake import ENTRY, MAILBOXES, FakeMailbox
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.support.apps import AsgiClient as Client
from tests.support.apps import (
    make_app,
    running_worker,
    sync_now,
    wait_finished,
)

MESSAGES = 12


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    registry.register(ENTRY)
    opened = make_app(database_url, tmp_path)
    yield opened
    opened.close()
    registry.unregister("fake")


def mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{n}@example.org"
    msg["To"] = "me@example.org"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content(f"body {n}\n")
    return msg.as_bytes()


@dataclass
class Synced:
    account: Account
    box: FakeMailbox
    ids: dict[str, int]


def add_synced(app: App, *, owner: str | None = None, labels: bool = False) -> Synced:
    """A fake mailbox (every third message flagged), registered and synced."""
    box = FakeMailbox(labels=labels)
    for n in range(MESSAGES):
        box.add("INBOX", mail(n), ("\\Flagged",) if n % 3 == 0 else ())
    box.folder("Work")
    name = f"box{id(box)}"
    MAILBOXES[name] = box
    account = Accounts(app.engine, app.settings).add("fake", name, {"mailbox": name}, owner=owner)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.subject, messages.c.id).where(messages.c.account_id == account.id)
        )
        ids = {subject: int(pk) for subject, pk in rows}
    return Synced(account, box, ids)


@pytest.fixture
def synced(app: App) -> Synced:
    return add_synced(app)


def stored(app: App, pk: int) -> tuple[list[str], list[str]]:
    """A message's live folders and its flags, as the store has them."""
    with reading(app.engine) as conn:
        names = conn.execute(
            select(folders.c.name)
            .join(locations, locations.c.folder_id == folders.c.id)
            .where(locations.c.message_pk == pk, locations.c.expunged_at.is_(None))
        ).scalars()
        flags = conn.execute(select(messages.c.flags).where(messages.c.id == pk)).scalar_one()
        return sorted(names), sorted(flags)


def on_server(box: FakeMailbox) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Folder -> (subject, flags) of each message there, sorted (empty folders left out)."""
    out = {}
    for name, folder in box.folders.items():
        found = []
        for raw, flags in folder.messages.values():
            subject = next(line for line in raw.split(b"\n") if line.startswith(b"Subject:"))
            found.append((subject.decode().strip(), tuple(sorted(flags))))
        if found:
            out[name] = sorted(found)
    return out


def journal_rows(app: App, job_id: str) -> list[tuple[int, str, str | None]]:
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(
                change_journal.c.message_pk, change_journal.c.state, change_journal.c.reason
            ).where(change_journal.c.job_id == job_id)
        ).all()
    return [(int(pk), state, reason) for pk, state, reason in rows]


def finish(app: App, job: Job, timeout: float = 30) -> Job:
    with running_worker(app, concurrency=1):
        return wait_finished(app, job.id, timeout=timeout)


def change(app: App, account: Account, **params: Any) -> Job:
    return finish(app, app.queue.enqueue("change", params, account_id=account.id))


def undo(app: App, job_id: str) -> Job:
    return finish(app, actions.undo_job(app, job_id, owner=None))


# -- the path ------------------------------------------------------------------------------


def test_mark_archive_and_undo_exactly(app: App, synced: Synced) -> None:
    """Marks and a move reach the server and the store; each undo puts back exactly what
    its job changed (folders and flags), journaled under its own id."""
    box, ids = synced.box, synced.ids
    original = on_server(box)
    read = finish(app, actions.mark(app, ids["message 1"], "read", owner=None))
    assert read.status == JobStatus.COMPLETED, read.error
    assert read.result["done"] == 1
    assert stored(app, ids["message 1"]) == (["INBOX"], ["\\Seen"])
    unflag = finish(app, actions.mark(app, ids["message 3"], "unflagged", owner=None))
    assert unflag.result["done"] == 1
    assert stored(app, ids["message 3"]) == (["INBOX"], [])
    chosen = [ids[f"message {n}"] for n in (0, 1, 2, 6)]
    moved = change(app, synced.account, message_ids=chosen, archive=True, add_flags=["$done"])
    assert moved.status == JobStatus.COMPLETED, moved.error
    assert moved.result["done"] == 4
    assert sorted(s for s, _ in on_server(box)["Archive"]) == [
        f"Subject: message {n}" for n in (0, 1, 2, 6)
    ]
    for pk in chosen:
        assert stored(app, pk)[0] == ["Archive"]
        assert "$done" in stored(app, pk)[1]
    # Newest first, as a person would: each undo restores its own job's changes.
    for job in (moved, unflag, read):
        back = undo(app, job.id)
        assert back.status == JobStatus.COMPLETED, back.error
        assert back.result["done"] == job.result["done"]
        assert back.result["undoes"] == job.id
        assert {state for _, state, _ in journal_rows(app, job.id)} == {"undone"}
    assert on_server(box) == original
    for n in range(MESSAGES):
        assert stored(app, ids[f"message {n}"]) == (
            ["INBOX"],
            ["\\Flagged"] if n % 3 == 0 else [],
        )


def test_labels_written_and_undone(app: App) -> None:
    """Gmail labels (a mailbox with labels) change and come back exactly."""
    synced = add_synced(app, labels=True)
    pk = synced.ids["message 4"]
    box = synced.box
    uid = next(u for u, (raw, _) in box.folders["INBOX"].messages.items() if b"message 4" in raw)
    box.set_labels("INBOX", uid, ("\\Inbox", "Family"))
    job = finish(
        app,
        app.queue.enqueue("test.labels", {"message_pk": pk}, account_id=synced.account.id),
    )
    assert job.status == JobStatus.COMPLETED, job.error
    assert box.marks("INBOX", uid).labels == ("\\Inbox", "inboxd/Newsletter")
    with reading(app.engine) as conn:
        labels = conn.execute(select(messages.c.labels).where(messages.c.id == pk)).scalar_one()
    assert labels == ["\\Inbox", "inboxd/Newsletter"]
    assert undo(app, job.id).status == JobStatus.COMPLETED
    assert set(box.marks("INBOX", uid).labels or ()) == {"\\Inbox", "Family"}


class LabelParams(BaseModel, extra="forbid"):
    message_pk: int


@task("test.labels", params=LabelParams)
def _label_task(ctx: TaskContext, params: LabelParams) -> dict[str, Any]:
    account = Accounts(ctx.engine, ctx.settings).get(str(ctx.job.account_id))
    wanted = Change(
        params.message_pk,
        "label newsletter",
        add_labels=("inboxd/Newsletter",),
        remove_labels=("Family",),
    )
    return apply_changes(ctx, account, [wanted]).to_dict()


class RecheckParams(BaseModel, extra="forbid"):
    message_ids: list[int]


@task("test.recheck", params=RecheckParams)
def _recheck_task(ctx: TaskContext, params: RecheckParams) -> dict[str, Any]:
    account = Accounts(ctx.engine, ctx.settings).get(str(ctx.job.account_id))
    seen: list[Located] = []

    def recheck(conn: Connection, located: Any) -> dict[int, str]:
        seen.extend(located)
        return {x.message_pk: "flagged since" for x in located if "\\Flagged" in x.flags}

    changes = [Change(pk, "archive", move_to=ARCHIVE) for pk in params.message_ids]
    done = apply_changes(ctx, account, changes, recheck=recheck)
    return done.to_dict() | {"rechecked": len(seen)}


def test_recheck_skips_what_changed_and_gone_mail_is_skipped(app: App, synced: Synced) -> None:
    """The recheck sees the server's marks right before acting; what it names is skipped
    with its reason, as is a message gone from the server since the sync."""
    box, ids = synced.box, synced.ids
    gone = next(u for u, (raw, _) in box.folders["INBOX"].messages.items() if b"message 5" in raw)
    box.remove("INBOX", gone)
    flagged_now = next(
        u for u, (raw, _) in box.folders["INBOX"].messages.items() if b"message 4\n" in raw
    )
    box.set_flags("INBOX", flagged_now, ("\\Flagged",))
    wanted = [ids[f"message {n}"] for n in (3, 4, 5, 7)]
    job = finish(
        app,
        app.queue.enqueue("test.recheck", {"message_ids": wanted}, account_id=synced.account.id),
    )
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["done"] == 1  # message 7
    assert job.result["rechecked"] == 3
    assert job.result["skipped_reasons"] == {"flagged since": 2, "not in INBOX any more": 1}
    assert [s for s, _ in on_server(box)["Archive"]] == ["Subject: message 7"]
    assert sorted(pk for pk, _, _ in journal_rows(app, job.id)) == sorted(wanted)


class CancelParams(BaseModel, extra="forbid"):
    message_ids: list[int]


@task("test.cancel_midway", params=CancelParams)
def _cancel_midway(ctx: TaskContext, params: CancelParams) -> dict[str, Any]:
    account = Accounts(ctx.engine, ctx.settings).get(str(ctx.job.account_id))
    asked: list[int] = []

    def recheck(conn: Connection, located: Any) -> dict[int, str]:
        if not asked:
            asked.append(len(located))
            Queue(ctx.engine, ctx.settings).cancel(ctx.job_id)
            time.sleep(0.3)  # past the Progress handle's cancel poll interval
        return {}

    changes = [Change(pk, "archive", move_to=ARCHIVE) for pk in params.message_ids]
    return apply_changes(ctx, account, changes, recheck=recheck).to_dict()


def test_cancel_between_batches(app: App, synced: Synced, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled during its first batch, a change settles that batch, reports its progress
    and stops before the next: no row left planned; the cancelled job can be undone."""
    monkeypatch.setattr(app.settings, "change_batch", 5)
    ids = sorted(synced.ids.values())
    job = finish(
        app,
        app.queue.enqueue("test.cancel_midway", {"message_ids": ids}, account_id=synced.account.id),
    )
    assert job.status == JobStatus.CANCELLED
    assert job.step == "applying changes" and job.progress_current == 5
    assert job.progress_total == MESSAGES
    assert sorted(state for _, state, _ in journal_rows(app, job.id)) == ["done"] * 5
    assert len(synced.box.folders["Archive"].messages) == 5
    assert undo(app, job.id).result["done"] == 5
    assert len(synced.box.folders["INBOX"].messages) == MESSAGES


def test_copies_in_two_folders(app: App) -> None:
    """A message stored once with copies in two folders: a mark reaches both copies (two
    rows); an archive moves the one outside the archive and leaves the other alone."""
    box = FakeMailbox()
    box.add("INBOX", mail(1))
    box.add("Archive", mail(1), ("\\Seen",))
    box.add("INBOX", mail(2))
    MAILBOXES["copies"] = box
    account = Accounts(app.engine, app.settings).add("fake", "copies", {"mailbox": "copies"})
    assert sync_now(app, account).status == JobStatus.COMPLETED
    with reading(app.engine) as conn:
        pk = conn.execute(
            select(messages.c.id).where(
                messages.c.account_id == account.id, messages.c.subject == "message 1"
            )
        ).scalar_one()
    assert stored(app, pk)[0] == ["Archive", "INBOX"]
    flagged = change(app, account, message_ids=[pk], mark="flagged")
    assert flagged.result["done"] == 2
    assert {f for _, f in box.folders["Archive"].messages.values()} == {("\\Seen", "\\Flagged")}
    archived = change(app, account, message_ids=[pk], archive=True)
    assert (archived.result["done"], archived.result["skipped"]) == (1, 0)
    assert len(box.folders["Archive"].messages) == 2
    assert stored(app, pk)[0] == ["Archive", "Archive"]  # two copies there now
    assert undo(app, archived.id).result["done"] == 1
    assert stored(app, pk)[0] == ["Archive", "INBOX"]


def test_lost_connection_mid_batch_resumes_without_doing_twice(app: App, synced: Synced) -> None:
    """The server drops the connection after applying part of a batch: the rows stay
    planned, the retry asks the server (moved ones found in the target by Message-ID) and
    finishes; every message moved once and journaled once."""
    box = synced.box
    ids = sorted(synced.ids.values())
    box.drop_after_mutations = 5
    job = change(app, synced.account, message_ids=ids, archive=True, mark="read")
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.attempts == 2
    assert len(box.folders["Archive"].messages) == MESSAGES
    assert not box.folders["INBOX"].messages
    moves = [m for call in box.applied for m in call]
    assert len({m.key for m in moves}) == MESSAGES
    # The first call reached 5 messages; the retry only the 7 others.
    assert len(moves) == MESSAGES + MESSAGES - 5
    assert len(box.applied[-1]) == MESSAGES - 5
    rows = journal_rows(app, job.id)
    assert sorted(pk for pk, _, _ in rows) == ids
    assert {state for _, state, _ in rows} == {"done"}
    for pk in ids:
        assert stored(app, pk) == (["Archive"], sorted(stored(app, pk)[1]))
        assert "\\Seen" in stored(app, pk)[1]
    # And undo brings all of them back.
    assert undo(app, job.id).result["done"] == MESSAGES
    assert len(box.folders["INBOX"].messages) == MESSAGES


def test_refusals(app: App, synced: Synced, tmp_path: Path) -> None:
    """mbox is read-only; undo refuses a job that has not finished, one that changed
    nothing, one already undone (and a second undo while one is active is that one)."""
    mbox = tmp_path / "mail.mbox"
    mbox.write_bytes(b"From a@b Thu Jan  1 00:00:00 2026\n" + mail(99) + b"\n")
    account = Accounts(app.engine, app.settings).add("mbox", "old", {"path": str(mbox)})
    assert sync_now(app, account).status == JobStatus.COMPLETED
    with reading(app.engine) as conn:
        pk = conn.execute(
            select(messages.c.id).where(messages.c.account_id == account.id)
        ).scalar_one()
    with pytest.raises(InvalidRequest, match="mbox accounts are read-only"):
        actions.mark(app, pk, "read", owner=None)
    # A job that gets there anyway (queued by hand) fails saying so, and touches nothing.
    forced = change(app, account, message_ids=[pk], mark="read")
    assert forced.status == JobStatus.FAILED
    assert "read-only" in (forced.error or "")
    with pytest.raises(InvalidState, match="changed nothing"):
        actions.undo_job(app, forced.id, owner=None)

    pending = actions.mark(app, synced.ids["message 2"], "read", owner=None)
    with pytest.raises(InvalidState, match="has not finished"):
        actions.undo_job(app, pending.id, owner=None)
    assert finish(app, pending).result["done"] == 1
    first = actions.undo_job(app, pending.id, owner=None)
    assert actions.undo_job(app, pending.id, owner=None).id == first.id  # deduplicated
    assert finish(app, first).status == JobStatus.COMPLETED
    with pytest.raises(InvalidState, match="already undone"):
        actions.undo_job(app, pending.id, owner=None)
    # Marking what is already so changes nothing: nothing to undo either.
    again = finish(app, actions.mark(app, synced.ids["message 0"], "flagged", owner=None))
    assert again.result == {
        "account_id": synced.account.id,
        "done": 0,
        "skipped": 1,
        "failed": 0,
        "skipped_reasons": {"nothing to change": 1},
        "errors": [],
    }
    with pytest.raises(InvalidState, match="changed nothing"):
        actions.undo_job(app, again.id, owner=None)


# -- the API -------------------------------------------------------------------


def test_api(app: App) -> None:
    """Mark, read the journal, undo over HTTP; another user's message or job is not
    found."""
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    api = create_api(app)
    as_alice = Client(api, users.create_key(alice).key)
    as_bob = Client(api, users.create_key(bob).key)
    synced = add_synced(app, owner=alice.id)
    pk = synced.ids["message 1"]

    assert as_bob.call("POST", f"/api/messages/{pk}/mark", {"action": "read"}).status_code == 404
    bad = as_alice.call("POST", f"/api/messages/{pk}/mark", {"action": "starred"})
    assert bad.status_code == 422
    answer = as_alice.call("POST", f"/api/messages/{pk}/mark", {"action": "read"})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    early = as_alice.call("POST", f"/api/jobs/{job_id}/undo")
    assert early.status_code == 409
    assert "has not finished" in early.json()["error"]["message"]
    done = finish(app, app.queue.get(job_id))
    assert done.status == JobStatus.COMPLETED

    seen = as_alice.call("GET", f"/api/jobs/{job_id}/journal")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["counts"] == {"done": 1}
    assert body["undoable"] is True and body["undone_by"] is None
    (entry,) = body["entries"]
    assert entry["message_pk"] == pk and entry["op"] == "mark read"
    assert entry["before"]["flags"] == [] and entry["after"]["flags"] == ["\\Seen"]
    assert entry["before"]["folder"] == entry["after"]["folder"] == "INBOX"
    assert as_bob.call("GET", f"/api/jobs/{job_id}/journal").status_code == 404
    assert as_bob.call("POST", f"/api/jobs/{job_id}/undo").status_code == 404

    undone = as_alice.call("POST", f"/api/jobs/{job_id}/undo")
    assert undone.status_code == 202, undone.text
    assert undone.json()["undoes"] == job_id
    assert finish(app, app.queue.get(undone.json()["job_id"])).status == JobStatus.COMPLETED
    after = as_alice.call("GET", f"/api/jobs/{job_id}/journal?state=undone").json()
    assert after["undoable"] is False and after["undone_by"] == undone.json()["job_id"]
    assert as_alice.call("POST", f"/api/jobs/{job_id}/undo").status_code == 409
    assert stored(app, pk) == (["INBOX"], [])

    with pytest.raises(NotFound):
        actions.mark(app, pk, "read", owner=bob.id)
