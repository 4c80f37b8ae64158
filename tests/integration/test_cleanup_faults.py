"""Clean-ups when things go wrong, end to end on a real Dovecot, on SQLite and PostgreSQL:
a server without MOVE (COPY, \\Deleted and UID EXPUNGE of exactly the clean-up's UIDs, so
mail another client marked \\Deleted stays), and a worker SIGKILLed mid-execution whose
clean-up a second worker finishes (every candidate archived once); both undone exactly,
as a separate IMAP client sees the server."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from inboxd.actions import changes as changes_actions
from inboxd.actions import cleanups as actions
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import change_journal
from inboxd.jobs.model import Job, JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import JournalState
from tests.integration.test_cleanup import ALL, DIGEST, ME, NAME, finished, mail, parked, settle
from tests.integration.test_imap_changes import sent_commands, without
from tests.services.dovecot import ImapUser
from tests.support.apps import (
    make_app,
    start_worker_process,
    subprocess_env,
    wait_finished,
)
from tests.support.proxy import Proxy

#: A folder as a client of its own sees it: UID -> (Message-ID, flags without \Recent).
Folder = dict[int, tuple[str, frozenset[str]]]


def folder_state(user: ImapUser, folder: str) -> Folder:
    """Every message of ``folder`` by UID, read straight from Dovecot (not through inboxd
    or the proxy); an absent folder is empty."""
    with IMAPClient(user.host, port=user.port, ssl=False) as client:
        client.login(user.username, user.password)
        if not client.folder_exists(folder):
            return {}
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        got = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
    return {
        int(uid): (
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip(),
            frozenset(
                name
                for f in data[b"FLAGS"]
                if (name := f.decode() if isinstance(f, bytes) else str(f)) != "\\Recent"
            ),
        )
        for uid, data in got.items()
    }


def by_id(state: Folder) -> dict[str, frozenset[str]]:
    """Message-ID -> flags (each Message-ID once: a duplicate fails here)."""
    found = {msgid: flags for msgid, flags in state.values()}
    assert len(found) == len(state), "a message is there twice"
    return found


def uid_set(text: str) -> set[int]:
    """The UIDs an IMAP UID set such as ``3:5,9`` names."""
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        out.update(range(int(low), int(high or low) + 1))
    return out


def uids_in(proxy: Proxy, verb: str) -> set[int]:
    """Every UID named by the ``verb`` commands the client sent through the proxy."""
    out: set[int] = set()
    for command in sent_commands(proxy, verb):
        match = re.match(rf"{verb} ([0-9:,]+)", command)
        assert match is not None, command
        out |= uid_set(match.group(1))
    return out


def add_account(app: App, user: ImapUser, port: int) -> Account:
    return Accounts(app.engine, app.settings).add(
        "imap",
        user.username,
        {"host": user.host, "port": port, "security": "none", "username": user.username},
        secret={"password": user.password},
        addresses=[ME],
        owner_name=NAME,
    )


def digest(n: int) -> bytes:
    return mail("Digest <news@digest.example>", f"Digest {n}", msgid=f"<dg{n}@x>", headers=DIGEST)


def person() -> bytes:
    return mail(
        "Bob Stone <bob@people.example>",
        "Lunch tomorrow?",
        msgid="<lunch@x>",
        body="Dana, are you free for lunch tomorrow?\n\nBob\n",
    )


def propose(app: App, account: Account) -> tuple[Job, set[str]]:
    """A clean-up (archive) of every category run to its proposal; its candidates'
    Message-IDs as the server writes them."""
    job = actions.propose(app, account, categories=ALL)
    parked(app, job)
    shown = actions.show(app, job.id, owner=None)
    return job, {f"<{c['message_id']}>" for c in shown["candidates"]}


def undo(app: App, job_id: str) -> None:
    back = changes_actions.undo_job(app, job_id, owner=None)
    assert finished(app, back.id).result["failed"] == 0


def test_without_move_only_our_uids_are_expunged_and_undo_restores_the_inbox(
    database_url: str, tmp_path: Path, imap_user: ImapUser
) -> None:
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        for n in range(6):
            client.append("INBOX", digest(n), flags=("\\Seen",) if n % 2 else ())
        client.append("INBOX", digest(6), flags=("\\Flagged",))  # protected: starred
        client.append("INBOX", person())  # protected: a person wrote to Dana
    with Proxy(imap_user.port, rewrite=without("MOVE")) as proxy:
        app = make_app(database_url, tmp_path, change_batch=4)  # two batches
        try:
            account = add_account(app, imap_user, proxy.port)
            settle(app, account)
            job, candidates = propose(app, account)
            assert candidates == {f"<dg{n}@x>" for n in range(6)}
            # Another client marks a message \Deleted and does not expunge it (yet).
            inbox = folder_state(imap_user, "INBOX")
            lunch = next(uid for uid, (msgid, _) in inbox.items() if msgid == "<lunch@x>")
            imap_user.set_flags("INBOX", [lunch], ["\\Deleted"])
            before = folder_state(imap_user, "INBOX")
            ours = {uid for uid, (msgid, _) in before.items() if msgid in candidates}
            assert actions.approve(app, job.id, owner=None, by="operator")["approved"] == 6
            del proxy.sent[:]
            done = finished(app, job.id)
            assert done.result["done"] == 6 and done.result["failed"] == 0
            assert not sent_commands(proxy, "UID MOVE")
            assert not sent_commands(proxy, "EXPUNGE")  # never the whole folder's
            assert uids_in(proxy, "UID COPY") == ours
            deleted = [c for c in sent_commands(proxy, "UID STORE") if "\\Deleted" in c]
            assert uids_in(proxy, "UID EXPUNGE") == ours
            assert set().union(*(uid_set(c.split()[2]) for c in deleted)) == ours
            after = folder_state(imap_user, "INBOX")
            assert after == {uid: held for uid, held in before.items() if uid not in ours}
            assert after[lunch] == ("<lunch@x>", frozenset({"\\Deleted"}))
            archived = by_id(folder_state(imap_user, "Archive"))
            assert archived == {
                msgid: flags for msgid, flags in before.values() if msgid in candidates
            }

            undo(app, job.id)
        finally:
            app.close()
    restored = folder_state(imap_user, "INBOX")
    assert folder_state(imap_user, "Archive") == {}
    # What no one moved keeps its UID (the \Deleted one too); what came back has new UIDs
    # and exactly its Message-ID and flags of before.
    kept = {uid: held for uid, held in before.items() if uid not in ours}
    assert {uid: held for uid, held in restored.items() if uid in kept} == kept
    back = {uid: held for uid, held in restored.items() if uid not in kept}
    assert min(back) > max(before)
    assert by_id(back) == {msgid: flags for uid, (msgid, flags) in before.items() if uid in ours}


#: Candidates of the killed clean-up: ten batches of INBOXD_CHANGE_BATCH.
COUNT = 200
BATCH = 20


def rows_in(app: App, job_id: str, state: JournalState) -> int:
    """The job's journal rows in ``state``."""
    cj = change_journal.c
    with reading(app.engine) as conn:
        return int(
            conn.execute(
                select(func.count()).where(cj.job_id == job_id, cj.state == state)
            ).scalar_one()
        )


class Holdup:
    """A proxy rewrite that holds back the server's answer to the clean-up's second UID
    MOVE (the first batch goes through): Dovecot has moved the batch, the worker has not
    heard, and its journal rows are still ``planned`` for as long as it waits."""

    def __init__(self) -> None:
        self.moves = 0
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, data: bytes) -> bytes:
        if b"[COPYUID " in data and not self.release.is_set():
            self.moves += 1
            if self.moves == 2:
                self.held.set()
                self.release.wait(30)
        return data


@pytest.fixture
def holdup(imap_user: ImapUser) -> Iterator[tuple[Proxy, Holdup]]:
    rewrite = Holdup()
    with Proxy(imap_user.port, rewrite=rewrite) as proxy:
        try:
            yield proxy, rewrite
        finally:
            rewrite.release.set()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_sigkill_mid_execution_then_a_second_worker_archives_each_once(
    database_url: str, tmp_path: Path, imap_user: ImapUser, holdup: tuple[Proxy, Holdup]
) -> None:
    proxy, held = holdup
    with IMAPClient(imap_user.host, port=imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        for n in range(COUNT):
            client.append("INBOX", digest(n), flags=("\\Seen",) if n % 3 == 0 else ())
        for n in range(COUNT, COUNT + 3):
            client.append("INBOX", digest(n), flags=("\\Flagged",))
        client.append("INBOX", person())
    protected = {f"<dg{n}@x>" for n in range(COUNT, COUNT + 3)} | {"<lunch@x>"}
    app = make_app(database_url, tmp_path)
    try:
        account = add_account(app, imap_user, proxy.port)
        settle(app, account)
        job, candidates = propose(app, account)
        assert candidates == {f"<dg{n}@x>" for n in range(COUNT)}
        before = folder_state(imap_user, "INBOX")
        assert actions.approve(app, job.id, owner=None, by="operator")["approved"] == COUNT

        env = subprocess_env(database_url, tmp_path / "data", INBOXD_CHANGE_BATCH=str(BATCH))
        first = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w1.log")
        try:
            # The second batch moved on the server, its rows planned: kill the worker there.
            assert held.held.wait(60), "the second batch was never moved"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
            held.release.set()
        assert rows_in(app, job.id, JournalState.DONE) == BATCH
        assert rows_in(app, job.id, JournalState.PLANNED) == BATCH
        assert len(folder_state(imap_user, "Archive")) == 2 * BATCH
        assert app.queue.get(job.id).status == JobStatus.RUNNING  # nobody told the queue

        second = start_worker_process(env, "-c", "1", "--no-scheduler", log=tmp_path / "w2.log")
        try:
            done: Job = wait_finished(app, job.id, timeout=60)
        finally:
            stop(second)
        assert done.status == JobStatus.COMPLETED and done.attempts == 2, done.error
        assert done.result["done"] == COUNT and done.result["failed"] == 0
        assert done.result["skipped"] == 0
        cj = change_journal.c
        with reading(app.engine) as conn:
            rows = conn.execute(select(cj.message_pk, cj.state).where(cj.job_id == job.id)).all()
        assert len(rows) == COUNT and len({pk for pk, _ in rows}) == COUNT
        assert {state for _, state in rows} == {JournalState.DONE}
        # On the server: each candidate once in the archive with its flags, none left behind.
        inbox = folder_state(imap_user, "INBOX")
        assert {msgid for msgid, _ in inbox.values()} == protected
        assert by_id(folder_state(imap_user, "Archive")) == {
            msgid: flags for msgid, flags in before.values() if msgid in candidates
        }

        undo(app, job.id)
    finally:
        app.close()
    assert folder_state(imap_user, "Archive") == {}
    assert by_id(folder_state(imap_user, "INBOX")) == by_id(before)
