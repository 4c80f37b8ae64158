"""The ``label`` job against a real Dovecot, on SQLite and PostgreSQL: with an account's
labels on, triage's categories appear on the server as ``$inboxd_<category>`` keywords
(read back with a separate IMAP client); with them off, none; a re-categorised message
gets its keyword swapped; ``undo`` takes them off again; an mbox account refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from inboxd.actions import accounts as account_actions
from inboxd.actions import triage as triage_actions
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.errors import InvalidRequest
from inboxd.jobs.model import EventType, Job, JobStatus
from inboxd.pipeline.labels import Scan, gmail_label, keyword
from inboxd.providers import fake, registry
from inboxd.store import journal
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import Step
from tests.services.dovecot import ImapUser
from tests.support.apps import (
    make_app,
    run_cli,
    running_worker,
    subprocess_env,
    sync_now,
    wait_finished,
    wait_for,
)
from tests.support.gmail_server import GmailMessage, GmailServer

ME = "dana@home.example"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    opened = make_app(database_url, tmp_path)
    yield opened
    opened.close()


def mail(sender: str, subject: str, body: str, headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"Dana Reader <{ME}>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOW - timedelta(hours=2))
    msg["Message-ID"] = make_msgid(domain="test.example")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


MAILBOX = {
    "newsletter": mail(
        "The Weekly Digest <news@digest.example>",
        "This week: ten stories you missed",
        "Top stories this week.\n\nUnsubscribe: https://digest.example/u\n",
        {
            "List-Unsubscribe": "<https://digest.example/unsubscribe?u=1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
            "List-Id": "Weekly Digest <weekly.digest.example>",
        },
    ),
    "ci": mail(
        "CI <noreply@builds.example>",
        "[builds] Pipeline failed on main",
        "Pipeline #4411 failed. See https://builds.example/p/4411\n",
        {"Auto-Submitted": "auto-generated"},
    ),
    "stranger": mail(
        "Bob Stranger <bob@elsewhere.example>",
        "A question about your talk",
        "Hello Dana,\n\nI saw your talk last week. Could you send me the slides?\n\nBob\n",
    ),
    "shop": mail(
        "Deals <deals@shop.example>",
        "50% off everything this weekend",
        "Huge sale! Shop now at https://shop.example\n",
        {"List-Unsubscribe": "<mailto:unsub@shop.example>", "Precedence": "bulk"},
    ),
}


def fill(user: ImapUser) -> dict[str, int]:
    """The mailbox in the user's INBOX; name -> UID."""
    return {name: user.append("INBOX", raw) for name, raw in MAILBOX.items()}


def add_account(app: App, user: ImapUser) -> Account:
    return Accounts(app.engine, app.settings).add(
        "imap",
        user.username,
        {"host": user.host, "port": user.port, "security": "none", "username": user.username},
        secret={"password": user.password},
        addresses=[ME],
        owner_name="Dana Reader",
    )


def server_keywords(user: ImapUser) -> dict[int, set[str]]:
    """UID -> the keywords of ours the server has, read by a client of its own."""
    with IMAPClient(user.host, port=user.port, ssl=False) as client:
        client.login(user.username, user.password)
        client.select_folder("INBOX", readonly=True)
        found = client.fetch(client.search("ALL"), ["FLAGS"])
    out: dict[int, set[str]] = {}
    for uid, data in found.items():
        flags = {f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"]}
        out[int(uid)] = {f for f in flags if f.startswith("$inboxd_")}
    return out


def settle(app: App, account: Account, timeout: float = 60) -> list[Job]:
    """Run a worker until every job of the account is finished (each one queues the next:
    sync, index, triage, label); the jobs, newest first."""

    def done() -> bool:
        return all(j.status.finished for j in app.queue.list_jobs(account_id=account.id))

    with running_worker(app, concurrency=1):
        wait_for(done, timeout=timeout)
    jobs = app.queue.list_jobs(account_id=account.id)
    failed = [(j.kind, j.error) for j in jobs if j.status != JobStatus.COMPLETED]
    assert not failed, failed
    return jobs


def categories(app: App, account: Account) -> dict[str, tuple[int, str, list[str]]]:
    """Subject -> (pk, category, flags) as the store has them."""
    m = messages.c
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(m.id, m.subject, m.category, m.flags).where(m.account_id == account.id)
        ).all()
    return {r.subject: (int(r.id), r.category, list(r.flags)) for r in rows}


def subject_of(name: str) -> str:
    return str(message_from_bytes(MAILBOX[name])["Subject"])


def expected(app: App, account: Account, uids: dict[str, int]) -> dict[int, set[str]]:
    """UID -> the one keyword each message's stored category asks for."""
    stored = categories(app, account)
    return {uid: {keyword(stored[subject_of(name)][1])} for name, uid in uids.items()}


def test_labels_on_write_keywords_swap_them_and_undo_takes_them_off(
    app: App, imap_user: ImapUser
) -> None:
    uids = fill(imap_user)
    account = add_account(app, imap_user)
    account = account_actions.update_account(app, account, admin=True, labels=True)
    assert account.labels_enabled
    sync_now(app, account)
    jobs = settle(app, account)
    kinds = [j.kind for j in reversed(jobs)]
    # Turning labels on queued one (nothing triaged yet: it found nothing to do); the
    # triage after the sync queued the one that wrote.
    assert kinds == ["label", "sync", "index", "triage", "label"], kinds
    first = jobs[0]
    assert first.result["done"] == len(MAILBOX) and first.result["failed"] == 0
    assert first.result["gmail"] is False
    steps = {
        e.payload.get("step") for e in app.queue.events(first.id) if e.type == EventType.PROGRESS
    }
    assert Step.LABELING in steps

    want = expected(app, account, uids)
    assert len({next(iter(k)) for k in want.values()}) >= 3  # several categories
    assert server_keywords(imap_user) == want
    # The store has what the server has, so nothing is left to do.
    for _, category, flags in categories(app, account).values():
        assert keyword(category) in flags
    again = app.queue.enqueue("label", {"account_id": account.id}, account_id=account.id)
    with running_worker(app, concurrency=1):
        idle = wait_finished(app, again.id)
    assert idle.status == JobStatus.COMPLETED and idle.result["done"] == 0, idle.result

    # The user files the newsletter as a receipt: its keyword follows.
    subject = subject_of("newsletter")
    pk, old, _ = categories(app, account)[subject]
    assert old != "receipt"
    triage_actions.categorize(app, pk, "receipt", owner=None)
    swap = settle(app, account)[0]
    assert swap.kind == "label" and swap.result["done"] == 1, swap.result
    now = server_keywords(imap_user)
    assert now[uids["newsletter"]] == {"$inboxd_receipt"}
    assert {u: k for u, k in now.items() if u != uids["newsletter"]} == {
        u: k for u, k in want.items() if u != uids["newsletter"]
    }

    # Undo, newest first: the swap goes back, then every keyword goes.
    for job in (swap, first):
        undo = app.queue.enqueue(
            "undo", {"job_id": job.id}, account_id=account.id, dedupe_key=f"undo:{job.id}"
        )
        with running_worker(app, concurrency=1):
            undone = wait_finished(app, undo.id)
        assert undone.status == JobStatus.COMPLETED, undone.error
        if job is swap:
            assert server_keywords(imap_user)[uids["newsletter"]] == {keyword(old)}
    assert server_keywords(imap_user) == {uid: set() for uid in uids.values()}
    for _, _, flags in categories(app, account).values():
        assert not [f for f in flags if f.startswith("$inboxd_")]


def test_labels_off_write_nothing(app: App, imap_user: ImapUser) -> None:
    uids = fill(imap_user)
    account = add_account(app, imap_user)
    assert not account.labels_enabled  # off by default
    sync_now(app, account)
    jobs = settle(app, account)
    assert "triage" in {j.kind for j in jobs}
    assert "label" not in {j.kind for j in jobs}
    assert all(c for _, c, _ in categories(app, account).values())
    assert server_keywords(imap_user) == {uid: set() for uid in uids.values()}
    # Queued by hand while off, the job does nothing.
    job = app.queue.enqueue("label", {"account_id": account.id}, account_id=account.id)
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id)
    assert done.result == {"account_id": account.id, "labels": False, "done": 0}
    assert server_keywords(imap_user) == {uid: set() for uid in uids.values()}


def test_an_mbox_account_refuses_labels(app: App, tmp_path: Path) -> None:
    path = tmp_path / "all.mbox"
    path.write_bytes(b"From a@b Thu Jan  1 00:00:00 2026\n" + MAILBOX["ci"] + b"\n")
    account = Accounts(app.engine, app.settings).add("mbox", "archive", {"path": str(path)})
    with pytest.raises(InvalidRequest, match="read-only"):
        account_actions.update_account(app, account, admin=True, labels=True)
    assert not Accounts(app.engine, app.settings).get(account.id).labels_enabled
    assert app.queue.list_jobs(kind="label") == []
    # Off is always allowed (it already is).
    off = account_actions.update_account(app, account, admin=True, labels=False)
    assert not off.labels_enabled


@pytest.mark.parametrize("gmail", [False, True])
def test_a_message_needs_exactly_its_category_mark_of_ours(gmail: bool) -> None:
    scan = Scan(None, "acct", gmail=gmail)  # type: ignore[arg-type]  # no database used
    mark = gmail_label if gmail else keyword
    other = [mark("newsletter"), "\\Seen", "Work"]
    change: Any = scan.change_for(7, "receipt", other)
    assert change.message_pk == 7 and change.op == "label receipt"
    added, removed = (
        (change.add_labels, change.remove_labels)
        if gmail
        else (change.add_flags, change.remove_flags)
    )
    assert added == (mark("receipt"),) and removed == (mark("newsletter"),)
    assert scan.change_for(7, "receipt", [mark("receipt"), "\\Seen"]) is None
    assert scan.change_for(7, "action_required", []) is not None
    assert mark("action_required") == (
        "inboxd/Action required" if gmail else "$inboxd_action_required"
    )
    if not gmail:
        # Keywords are case-insensitive: the server's spelling counts as ours.
        assert scan.change_for(7, "receipt", ["$INBOXD_Receipt"]) is None


def test_the_cli_turns_labels_on_and_mbox_says_why_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inboxd.db"
    env = subprocess_env(url, tmp_path / "data")
    (tmp_path / "md" / "cur").mkdir(parents=True)
    box = tmp_path / "all.mbox"
    box.write_bytes(b"")
    opened = make_app(url, tmp_path)
    try:
        accounts = Accounts(opened.engine, opened.settings)
        maildir = accounts.add("maildir", "md", {"path": str(tmp_path / "md")})
        mbox = accounts.add("mbox", "mb", {"path": str(box)})
    finally:
        opened.close()
    on = run_cli(env, "account", "update", maildir.id, "--labels", "on", "--json")
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["labels"] is True
    refused = run_cli(env, "account", "update", mbox.id, "--labels", "on")
    assert refused.returncode != 0
    assert "read-only" in refused.stderr


@pytest.fixture
def fake_provider() -> Iterator[None]:
    registry.register(fake.ENTRY)
    yield
    registry.unregister("fake")


def test_gmail_gets_labels_not_keywords_and_undo_takes_them_off(app: App) -> None:
    gmail = GmailServer()
    try:
        msgid = 17_000_000_000_000_000
        sent = {
            n: GmailMessage(msgid + i, raw, ["\\Inbox", "Work"])
            for i, (n, raw) in enumerate(MAILBOX.items())
        }
        for message in sent.values():
            gmail.deliver(message, "INBOX", "[Gmail]/All Mail")
        account = Accounts(app.engine, app.settings).add(
            "imap",
            "gmail",
            {"host": "127.0.0.1", "port": gmail.port, "security": "none", "username": "me"},
            secret={"password": "app-password"},
            addresses=[ME],
            owner_name="Dana Reader",
        )
        account = account_actions.update_account(app, account, admin=True, labels=True)
        sync_now(app, account)
        first = settle(app, account)[0]
        assert first.kind == "label" and first.result["gmail"] is True, first.result
        assert first.result["failed"] == 0, first.result
        stored = categories(app, account)
        for n, message in sent.items():
            mark = gmail_label(stored[subject_of(n)][1])
            assert sorted(message.labels) == sorted(["\\Inbox", "Work", mark]), n
            assert not [f for f in message.flags if f.startswith("$inboxd_")]
        assert any("X-GM-LABELS" in c and '"inboxd/' in c for c in gmail.commands if "STORE" in c)
        # Undo: the labels the user had, and nothing of inboxd's.
        undo = app.queue.enqueue(
            "undo", {"job_id": first.id}, account_id=account.id, dedupe_key=f"undo:{first.id}"
        )
        with running_worker(app, concurrency=1):
            assert wait_finished(app, undo.id).status == JobStatus.COMPLETED
        assert {n: sorted(m.labels) for n, m in sent.items()} == {
            n: sorted(["\\Inbox", "Work"]) for n in sent
        }
    finally:
        gmail.close()


def test_a_connection_lost_mid_write_resumes_with_each_message_written_once(
    app: App, fake_provider: None
) -> None:
    box = fake.FakeMailbox()
    uids = {n: box.add("INBOX", raw) for n, raw in MAILBOX.items()}
    box.drop_after_mutations = 2  # the first attempt dies with two keywords written
    name = f"drop{id(box)}"
    fake.MAILBOXES[name] = box
    try:
        account = Accounts(app.engine, app.settings).add(
            "fake", "drops", {"mailbox": name}, addresses=[ME], owner_name="Dana Reader"
        )
        account = account_actions.update_account(app, account, admin=True, labels=True)
        sync_now(app, account)
        job = settle(app, account)[0]
        assert job.kind == "label" and job.attempts == 2, (job.kind, job.attempts)
        assert job.result["done"] == len(MAILBOX) and job.result["failed"] == 0, job.result
        with reading(app.engine) as conn:
            assert journal.counts(conn, job.id) == {"done": len(MAILBOX)}
        stored = categories(app, account)
        for n, uid in uids.items():
            flags = box.folders["INBOX"].messages[uid][1]
            assert [f for f in flags if f.startswith("$inboxd_")] == [
                keyword(stored[subject_of(n)][1])
            ]
    finally:
        del fake.MAILBOXES[name]
