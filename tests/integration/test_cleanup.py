"""Clean-ups a person approves, end to end on a real Dovecot mailbox, on SQLite and
PostgreSQL: discovery is read-only and protects direct mail, flagged mail, threads the user
wrote in, people the user wrote to and mail naming the user; nothing on the server changes
before approval (checked over IMAP with a separate client); only/exclude; a second approval
does nothing; another user's clean-up is not found; the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from inboxd.actions import cleanups as actions
from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.cli.main import app as cli_app
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.errors import InvalidField, InvalidRequest, InvalidState, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from inboxd.vocabulary import Category
from tests.services.dovecot import ImapUser
from tests.support.apps import AsgiClient as Client
from tests.support.apps import (
    make_app,
    running_worker,
    subprocess_env,
    wait_finished,
    wait_for,
)
from tests.support.link_server import LinkServer, Route, tls_contexts
from tests.support.mail import make_message

ME = "dana@home.example"
NAME = "Dana Reader"
NOW = datetime.now(UTC).replace(microsecond=0)
ALL = [c.value for c in Category]


def mail(
    sender: str,
    subject: str,
    *,
    to: str = ME,
    msgid: str,
    days: int = 40,
    headers: dict[str, str] | None = None,
    body: str = "Hello.\n",
) -> bytes:
    """One hand-made message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOW - timedelta(days=days))
    msg["Message-ID"] = msgid
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


DIGEST = {
    "List-Id": "Weekly Digest <weekly.digest.example>",
    "List-Unsubscribe": "<https://digest.example/u?1>, <mailto:leave@digest.example>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "Precedence": "bulk",
}
SHOP = {"List-Unsubscribe": "<mailto:unsub@shop.example>", "Precedence": "bulk"}
TICKET = "<ticket-42@home.example>"

#: subject -> (folder, raw, server flags)
MAILBOX: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
    "Ticket 42": (
        "Sent",
        mail(f"{NAME} <{ME}>", "Ticket 42", to="support@tracker.example", msgid=TICKET),
        ("\\Seen",),
    ),
    "My notes": (
        "Sent",
        mail(f"{NAME} <{ME}>", "My notes", to="carol@work.example", msgid="<notes@home.example>"),
        ("\\Seen",),
    ),
    "Weekly digest 1": (
        "INBOX",
        mail("Digest <news@digest.example>", "Weekly digest 1", msgid="<d1@x>", headers=DIGEST),
        (),
    ),
    "Weekly digest 2": (
        "INBOX",
        mail("Digest <news@digest.example>", "Weekly digest 2", msgid="<d2@x>", headers=DIGEST),
        (),
    ),
    "Weekly digest 3": (
        "INBOX",
        mail("Digest <news@digest.example>", "Weekly digest 3", msgid="<d3@x>", headers=DIGEST),
        ("\\Flagged",),
    ),
    "Big sale this week": (
        "INBOX",
        mail("Shop <deals@shop.example>", "Big sale this week", msgid="<s1@x>", headers=SHOP),
        (),
    ),
    f"{NAME}, an offer for you": (
        "INBOX",
        mail(
            "Shop <deals@shop.example>", f"{NAME}, an offer for you", msgid="<s2@x>", headers=SHOP
        ),
        (),
    ),
    "Lunch tomorrow?": (
        "INBOX",
        mail(
            "Bob Stone <bob@people.example>",
            "Lunch tomorrow?",
            msgid="<b1@x>",
            body="Dana, are you free for lunch tomorrow?\n\nBob\n",
        ),
        (),
    ),
    "Re: Ticket 42": (
        "INBOX",
        mail(
            "Tracker <noreply@tracker.example>",
            "Re: Ticket 42",
            msgid="<t1@x>",
            headers={"In-Reply-To": TICKET, "References": TICKET, "Auto-Submitted": "auto-replied"},
        ),
        (),
    ),
    "Team news": (
        "INBOX",
        mail(
            "Carol <carol@work.example>",
            "Team news",
            msgid="<c1@x>",
            headers={"List-Id": "Team <team.work.example>", "Precedence": "list"},
        ),
        (),
    ),
}
CANDIDATES = {"Weekly digest 1", "Weekly digest 2", "Big sale this week"}
PROTECTED = {
    "Weekly digest 3": "flagged (starred)",
    f"{NAME}, an offer for you": "names you (in the subject)",
    "Lunch tomorrow?": "sent directly to you",
    "Re: Ticket 42": "a thread you wrote in",
    "Team news": "from someone you wrote to (carol@work.example)",
}


def fill(user: ImapUser) -> None:
    """The mailbox above, plus a few generated messages from strangers to someone else."""
    user.create_folder("Sent")
    for folder, raw, flags in MAILBOX.values():
        user.append(folder, raw, flags=flags)
    for n in range(3):
        user.append("INBOX", make_message(n, to="someone@else.example"))


def server_state(user: ImapUser) -> dict[str, dict[str, tuple[str, ...]]]:
    """Every message on the server by folder and Message-ID, with its flags, read over IMAP
    by a client of its own (not inboxd's)."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    with IMAPClient(user.host, port=user.port, ssl=False) as client:
        client.login(user.username, user.password)
        for _flags, _sep, name in client.list_folders():
            folder = name if isinstance(name, str) else name.decode()
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            got = (
                client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
                if uids
                else {}
            )
            found[folder] = {
                data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip(): tuple(
                    sorted(
                        name
                        for f in data[b"FLAGS"]
                        if (name := f.decode() if isinstance(f, bytes) else str(f)) != "\\Recent"
                    )
                )
                for data in got.values()
            }
    return found


@dataclass
class World:
    app: App
    user: ImapUser
    account: Account
    alice: Client
    bob: Client
    data_dir: Path
    database_url: str

    def ids(self) -> dict[str, int]:
        """Each stored message's id by subject."""
        with reading(self.app.engine) as conn:
            rows = conn.execute(
                select(messages.c.subject, messages.c.id).where(
                    messages.c.account_id == self.account.id
                )
            ).all()
        return {str(s): int(pk) for s, pk in rows}


def settle(app: App, account: Account) -> None:
    """Sync, index and triage the account, each job run to its end."""
    job = app.queue.enqueue("sync", account_id=account.id)
    with running_worker(app, concurrency=1):
        assert wait_finished(app, job.id, timeout=60).status == JobStatus.COMPLETED
        for kind in ("index", "triage"):
            queued: list[Job] = wait_for(
                lambda k=kind: app.queue.list_jobs(kind=k, account_id=account.id)  # type: ignore[misc]
            )
            for j in queued:
                done = wait_finished(app, j.id, timeout=60)
                assert done.status == JobStatus.COMPLETED, done.error


def parked(app: App, job: Job) -> Job:
    """Run a clean-up's discovery until it waits for approval."""
    with running_worker(app, concurrency=1):
        found = wait_for(
            lambda: (
                (j := app.queue.get(job.id)).status
                in (JobStatus.AWAITING_APPROVAL, JobStatus.FAILED)
                and j
            ),
            timeout=30,
        )
    assert found.status == JobStatus.AWAITING_APPROVAL, found.error
    return found  # type: ignore[no-any-return]


@pytest.fixture
def w(database_url: str, tmp_path: Path, imap_user: ImapUser) -> Iterator[World]:
    app = make_app(database_url, tmp_path)
    users = Users(app.engine)
    alice, bob = users.add("alice"), users.add("bob")
    fill(imap_user)
    account = Accounts(app.engine, app.settings).add(
        "imap",
        imap_user.username,
        {"host": imap_user.host, "port": imap_user.port, "security": "none",
         "username": imap_user.username},
        secret={"password": imap_user.password},
        owner=alice.id,
        addresses=[ME],
        owner_name=NAME,
    )  # fmt: skip
    settle(app, account)
    api = create_api(app)
    try:
        yield World(
            app,
            imap_user,
            account,
            Client(api, users.create_key(alice).key),
            Client(api, users.create_key(bob).key),
            tmp_path / "data",
            database_url,
        )
    finally:
        app.close()


def propose_all(w: World, **extra: Any) -> dict[str, Any]:
    """Propose (over the API, as Alice) a clean-up of every category; run it to its proposal."""
    answer = w.alice.call(
        "POST", "/api/cleanups", {"account_id": w.account.id, "categories": ALL} | extra
    )
    assert answer.status_code == 202, answer.text
    parked(w.app, w.app.queue.get(answer.json()["job_id"]))
    shown = w.alice.call("GET", f"/api/cleanups/{answer.json()['job_id']}")
    assert shown.status_code == 200, shown.text
    return shown.json()  # type: ignore[no-any-return]


def test_discovery_protects_what_a_person_would_keep_and_changes_nothing(w: World) -> None:
    before = server_state(w.user)
    shown = propose_all(w)
    assert shown["status"] == "awaiting_approval"
    candidates = {c["subject"]: c for c in shown["candidates"]}
    protected = {p["subject"]: p for p in shown["protected"]}
    # The strangers' generated mail is a candidate only if triage filed it as bulk; the
    # hand-made mail is decided by the rules.
    assert set(candidates) >= CANDIDATES
    for subject, why in PROTECTED.items():
        assert subject in protected, subject
        assert why in protected[subject]["why"], (subject, protected[subject]["why"])
    assert not set(PROTECTED) & set(candidates)
    assert not {"Ticket 42", "My notes"} & (set(candidates) | set(protected))  # Sent untouched
    digest = candidates["Weekly digest 1"]
    assert digest["message_id"] == "d1@x" and digest["from"] == "news@digest.example"
    assert digest["reasons"] and digest["date"]
    assert shown["counts"] == {"candidates": len(candidates), "protected": len(protected)}
    assert {"from": "news@digest.example", "count": 2} in shown["senders"]
    assert len(shown["preview"]) == len(candidates)
    assert shown["approved_at"] is None and shown["execution"] is None
    job = w.app.queue.get(shown["job_id"])
    assert job.result["counts"] == shown["counts"]  # the job's result is the proposal
    assert server_state(w.user) == before


def test_default_categories_and_criteria(w: World) -> None:
    answer = w.alice.call(
        "POST", "/api/cleanups", {"account_id": w.account.id, "older_than": "30d"}
    )
    assert answer.status_code == 202, answer.text
    parked(w.app, w.app.queue.get(answer.json()["job_id"]))
    shown = w.alice.call("GET", f"/api/cleanups/{answer.json()['job_id']}").json()
    assert shown["criteria"] == {
        "categories": ["newsletter", "promotion", "notification"],
        "older_than": "30d",
        "query": None,
    }
    assert {c["subject"] for c in shown["candidates"]} >= {"Weekly digest 1", "Weekly digest 2"}
    assert "Lunch tomorrow?" not in {c["subject"] for c in shown["candidates"]}
    # Newer than the age asked for: not even looked at.
    recent = w.alice.call(
        "POST", "/api/cleanups", {"account_id": w.account.id, "older_than": "1y"}
    ).json()
    parked(w.app, w.app.queue.get(recent["job_id"]))
    assert w.alice.call("GET", f"/api/cleanups/{recent['job_id']}").json()["counts"] == {
        "candidates": 0,
        "protected": 0,
    }
    queried = propose_all(w, query="from:news@digest.example")
    assert {c["subject"] for c in queried["candidates"]} == {"Weekly digest 1", "Weekly digest 2"}
    assert {p["subject"] for p in queried["protected"]} == {"Weekly digest 3"}
    assert any("matches" in r for r in queried["candidates"][0]["reasons"])


def test_approval_is_a_persons_once_with_only_and_exclude(w: World) -> None:
    shown = propose_all(w)
    job_id = shown["job_id"]
    ids = w.ids()
    digest1, digest2 = ids["Weekly digest 1"], ids["Weekly digest 2"]
    base = f"/api/cleanups/{job_id}/approve"
    # Another user sees no such clean-up, and cannot approve it.
    assert w.bob.call("GET", f"/api/cleanups/{job_id}").status_code == 404
    assert w.bob.call("POST", base, {}).status_code == 404
    assert w.bob.call("GET", "/api/cleanups").json() == {"cleanups": []}
    # A protected message cannot be approved; an unknown id is refused.
    refused = w.alice.call("POST", base, {"only": [ids["Lunch tomorrow?"]]})
    assert refused.status_code == 422 and "protected" in refused.text
    assert w.alice.call("POST", base, {"exclude": [10**9]}).status_code == 422
    assert w.alice.call("POST", base, {"only": ["1"]}).status_code == 422

    first = w.alice.call("POST", base, {"only": [digest1, digest2], "exclude": [digest2]})
    assert first.status_code == 202, first.text
    assert first.json() == {
        "job_id": job_id,
        "status": "pending",
        "approved": 1,
        "already_approved": False,
    }
    again = w.alice.call("POST", base, {})
    assert again.status_code == 200
    assert again.json()["already_approved"] is True and again.json()["approved"] == 1
    shown = w.alice.call("GET", f"/api/cleanups/{job_id}").json()
    approved = {c["id"] for c in shown["candidates"] if c["approved"]}
    assert approved == {digest1}
    assert shown["approved_by"] and shown["approved_count"] == 1
    listed = w.alice.call("GET", "/api/cleanups").json()["cleanups"]
    assert [c["job_id"] for c in listed] == [job_id]


def test_approval_waits_for_a_proposal_and_races_approve_once(w: World) -> None:
    job = actions.propose(w.app, w.account, categories=ALL)
    with pytest.raises(InvalidState):
        actions.approve(w.app, job.id, owner=None, by="operator")  # nothing proposed yet
    parked(w.app, job)
    with pytest.raises(NotFound):
        actions.show(w.app, job.id, owner="someone-else")
    with pytest.raises(InvalidField):
        actions.propose(w.app, w.account, older_than="soon")
    with pytest.raises(InvalidField):
        actions.propose(w.app, w.account, action="delete")
    # Many approvals at once: exactly one wins, the rest are told it was approved already.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: actions.approve(w.app, job.id, owner=None, by="operator"), range(4))
        )
    assert sorted(a["already_approved"] for a in answers) == [False, True, True, True]
    assert w.app.queue.get(job.id).status == JobStatus.PENDING


def test_mbox_accounts_are_read_only(database_url: str, tmp_path: Path) -> None:
    app = make_app(database_url, tmp_path)
    try:
        box = tmp_path / "old.mbox"
        box.write_bytes(b"From a@b Thu Jan  1 00:00:00 2026\n" + make_message(1) + b"\n")
        account = Accounts(app.engine, app.settings).add("mbox", "old", {"path": str(box)})
        for action in ("archive", "mark-read", "label"):
            with pytest.raises(InvalidRequest, match="read-only"):
                actions.propose(app, account, action=action)
        # Unsubscribing posts to the list's server and changes no mail: it may be proposed.
        assert actions.propose(app, account, action="unsubscribe").kind == "cleanup"
    finally:
        app.close()


def cli(w: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``inboxd ARGS`` in this process (a child process costs seconds of imports each)."""
    for name, value in subprocess_env(w.database_url, w.data_dir).items():
        if name.startswith("INBOXD_"):
            monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli_app, list(args))


def test_the_command_line(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    categories = ",".join(ALL)
    proposed = cli(w, monkeypatch, "cleanup", "propose", w.account.id, "--category", categories,
                   "--wait", "--json")  # fmt: skip
    assert proposed.exit_code == 0, proposed.output
    body = json.loads(proposed.stdout)
    assert body["status"] == "awaiting_approval" and body["counts"]["candidates"] >= 3
    job_id = body["job_id"]
    detail = json.loads(cli(w, monkeypatch, "cleanup", "show", job_id, "--json").stdout)
    assert {c["subject"] for c in detail["candidates"]} >= CANDIDATES
    text = cli(w, monkeypatch, "cleanup", "show", job_id)
    assert "sent directly to you" in text.stdout and "Weekly digest 1" in text.stdout
    listed = cli(w, monkeypatch, "cleanup", "list", "--json")
    assert [c["job_id"] for c in json.loads(listed.stdout)["cleanups"]] == [job_id]
    assert cli(w, monkeypatch, "cleanup", "approve", job_id, "--only", "x").exit_code == 2
    generic = cli(w, monkeypatch, "jobs", "approve", job_id)  # would skip the exact list
    assert "inboxd cleanup approve" in str(generic.exception)
    assert w.app.queue.get(job_id).status.value == "awaiting_approval"
    plain = cli(w, monkeypatch, "cleanup", "propose", w.account.id)
    assert plain.exit_code == 0 and w.app.queue.get(plain.stdout.strip()).kind == "cleanup"
    ids = w.ids()
    approved = cli(w, monkeypatch, "cleanup", "approve", job_id, "--exclude",
                   str(ids["Weekly digest 1"]), "--json")  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["already_approved"] is False
    again = cli(w, monkeypatch, "cleanup", "approve", job_id)
    assert again.exit_code == 0 and "approved already" in again.stdout


def uid_of(user: ImapUser, folder: str, message_id: str) -> int:
    """A message's UID in a folder, found over IMAP by its Message-ID."""
    with IMAPClient(user.host, port=user.port, ssl=False) as client:
        client.login(user.username, user.password)
        client.select_folder(folder, readonly=True)
        [uid] = client.search(["HEADER", "Message-ID", message_id])
    return int(uid)


def non_empty(state: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, Any]:
    """The server's state without empty folders (an archive folder made and emptied)."""
    return {folder: held for folder, held in state.items() if held}


def finished(app: App, job_id: str) -> Job:
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job_id, timeout=60)
    assert done.status == JobStatus.COMPLETED, done.error
    return done


def test_execution_archives_what_was_approved_skips_what_changed_and_undo_restores(
    w: World,
) -> None:
    shown = propose_all(w)
    job_id = shown["job_id"]
    ids = w.ids()
    candidates = {c["id"] for c in shown["candidates"]}
    # Between the proposal and the execution the user flags one candidate elsewhere.
    w.user.set_flags("INBOX", [uid_of(w.user, "INBOX", "<s1@x>")], ["\\Flagged"])
    before = server_state(w.user)
    assert non_empty(before) == before  # no archive folder yet
    answer = w.alice.call(
        "POST", f"/api/cleanups/{job_id}/approve", {"exclude": [ids["Weekly digest 2"]]}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["approved"] == len(candidates) - 1
    job = finished(w.app, job_id)
    assert job.result["done"] == len(candidates) - 2
    assert job.result["skipped_reasons"] == {"flagged since the proposal": 1}

    after = server_state(w.user)
    archive = next(f for f in after if f not in before)
    assert "<d1@x>" in after[archive] and "<d1@x>" not in after["INBOX"]
    assert "<d2@x>" in after["INBOX"]  # excluded by the person
    assert "\\Flagged" in after["INBOX"]["<s1@x>"]  # skipped: flagged since
    for subject in PROTECTED:
        msgid = MAILBOX[subject][1].split(b"Message-ID: ")[1].split(b"\n")[0].decode().strip()
        assert after["INBOX"][msgid] == before["INBOX"][msgid], subject
    shown = w.alice.call("GET", f"/api/cleanups/{job_id}").json()
    execution = shown["execution"]
    assert execution["done"] == len(candidates) - 2 and execution["failed"] == 0
    assert execution["skipped"] == [
        {"id": ids["Big sale this week"], "why": "flagged since the proposal"}
    ]
    # A second approval runs nothing again.
    again = w.alice.call("POST", f"/api/cleanups/{job_id}/approve", {})
    assert again.status_code == 200 and again.json()["already_approved"] is True
    assert w.app.queue.get(job_id).status == JobStatus.COMPLETED

    # Undo puts every archived message back where it was, flags and all.
    undo = w.alice.call("POST", f"/api/jobs/{job_id}/undo")
    assert undo.status_code == 202, undo.text
    finished(w.app, undo.json()["job_id"])
    assert non_empty(server_state(w.user)) == before


def test_mark_read_of_only_some_and_labels(w: World) -> None:
    shown = propose_all(w, action="mark-read")
    ids = w.ids()
    digest1 = ids["Weekly digest 1"]
    answer = actions.approve(w.app, shown["job_id"], owner=None, by="operator", only=[digest1])
    assert answer["approved"] == 1
    finished(w.app, shown["job_id"])
    state = server_state(w.user)["INBOX"]
    assert "\\Seen" in state["<d1@x>"]
    assert "\\Seen" not in state["<d2@x>"] and "\\Seen" not in state["<s1@x>"]
    # Labels: the category as an IMAP keyword, on what the query found and was not protected.
    labeled = propose_all(w, action="label", query="from:news@digest.example")
    category = {c["subject"]: c["category"] for c in labeled["candidates"]}
    actions.approve(w.app, labeled["job_id"], owner=None, by="operator")
    finished(w.app, labeled["job_id"])
    state = server_state(w.user)["INBOX"]
    for n in (1, 2):
        assert f"$inboxd_{category[f'Weekly digest {n}']}" in state[f"<d{n}@x>"]
    assert not any(f.startswith("$inboxd_") for f in state["<d3@x>"])  # flagged: protected


def test_unsubscribe_posts_once_per_list_and_lists_mailto_only(
    database_url: str, tmp_path: Path, imap_user: ImapUser
) -> None:
    """One RFC 8058 POST per list (never a GET), to a loopback HTTPS server inboxd was told
    to allow; a list with only a mailto address is listed; the mail itself is unchanged."""
    tls = tls_contexts(["127.0.0.1"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls.ca_pem)
    with LinkServer(tls=tls.server) as lists:
        lists.routes["/u"] = Route(status=200, body=b"bye")
        one_click = {
            "List-Id": "Weekly Digest <weekly.digest.example>",
            "List-Unsubscribe": f"<{lists.url('/u')}>, <mailto:leave@digest.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
        }
        imap_user.create_folder("Sent")
        for n in range(3):
            imap_user.append(
                "INBOX", mail("Digest <news@digest.example>", f"Digest {n}", msgid=f"<u{n}@x>",
                              headers=one_click),
            )  # fmt: skip
        imap_user.append(
            "INBOX", mail("Shop <deals@shop.example>", "Big sale", msgid="<s@x>", headers=SHOP)
        )
        app = make_app(
            database_url, tmp_path, fetch_allow_networks=["127.0.0.1"], fetch_ca_file=str(ca)
        )
        try:
            account = Accounts(app.engine, app.settings).add(
                "imap",
                imap_user.username,
                {"host": imap_user.host, "port": imap_user.port, "security": "none",
                 "username": imap_user.username},
                secret={"password": imap_user.password},
                addresses=[ME],
            )  # fmt: skip
            settle(app, account)
            before = server_state(imap_user)
            job = actions.propose(app, account, categories=ALL, action="unsubscribe")
            parked(app, job)
            assert lists.seen == []  # discovery asks no list anything
            assert actions.approve(app, job.id, owner=None, by="operator")["approved"] == 4
            done = finished(app, job.id)
            shown = actions.show(app, job.id, owner=None)
        finally:
            app.close()
        assert [(s.method, s.path, s.body) for s in lists.seen] == [
            ("POST", "/u", b"List-Unsubscribe=One-Click")
        ]
    assert done.result["unsubscribe"] == {"posted": 1, "mailto_only": 1, "failed": 0}
    unsubscribe = shown["unsubscribe"]
    assert [p["list"] for p in unsubscribe["posted"]] == ["weekly.digest.example"]
    assert unsubscribe["mailto_only"] == [
        {"list": "deals@shop.example", "mailto": "mailto:unsub@shop.example", "messages": 1}
    ]
    assert shown["execution"]["done"] == 3
    assert shown["execution"]["skipped"][0]["why"].startswith("no one-click unsubscribe")
    assert server_state(imap_user) == before
