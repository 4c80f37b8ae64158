"""The account CLI and `inboxd sync`, as a user runs them (real Dovecot, SQLite)."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from inboxd.db.types import utcnow
from inboxd.jobs.scheduler import Scheduler
from inboxd.store.accounts import Accounts
from tests.services.dovecot import ImapUser
from tests.support.apps import make_app, run_cli, subprocess_env
from tests.support.mail import make_message

_cli = run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return subprocess_env(f"sqlite:///{tmp_path}/inboxd.db", tmp_path / "data")


def _add(env: dict[str, str], user: ImapUser, password: str, port: int | None = None) -> str:
    made = _cli(
        env,
        "account",
        "add",
        "imap",
        "--name",
        "work",
        "--host",
        user.host,
        "--port",
        str(port or user.port),
        "--security",
        "none",
        "--username",
        user.username,
        "--password-stdin",
        "--json",
        stdin=password + "\n",
    )
    assert made.returncode == 0, made.stderr
    account_id = json.loads(made.stdout)["id"]
    assert isinstance(account_id, str)
    return account_id


def test_add_show_test_sync_remove(env: dict[str, str], imap_user: ImapUser) -> None:
    for n in range(12):
        imap_user.append("INBOX", make_message(n))
    account_id = _add(env, imap_user, imap_user.password)
    shown = json.loads(_cli(env, "account", "show", account_id, "--json").stdout)
    assert shown["settings"]["host"] == imap_user.host and shown["message_count"] == 0
    assert imap_user.password not in json.dumps(shown)
    tested = _cli(env, "account", "test", account_id)
    assert tested.returncode == 0 and "INBOX: 12" in tested.stdout
    synced = _cli(env, "sync", "work", "--wait", "--json")  # no worker alive: runs here
    assert synced.returncode == 0, synced.stderr
    final = json.loads(synced.stdout)
    assert final["status"] == "completed" and final["result"]["new"] == 12
    shown = json.loads(_cli(env, "account", "show", "work", "--json").stdout)
    assert shown["message_count"] == 12 and shown["folders"] == {"INBOX": 12}
    assert shown["state"] == "ok" and shown["last_sync_job_id"] == final["id"]
    removed = _cli(env, "account", "remove", account_id, "--yes")
    assert removed.returncode == 0
    assert _cli(env, "account", "show", account_id).returncode == 1


def test_account_test_says_what_is_wrong(env: dict[str, str], imap_user: ImapUser) -> None:
    wrong = _add(env, imap_user, "wrong-password")
    tested = _cli(env, "account", "test", wrong)
    assert tested.returncode == 1
    assert f"password rejected by {imap_user.host}" in tested.stderr
    failed = _cli(env, "sync", wrong, "--wait")
    assert failed.returncode == 1 and "password rejected" in failed.stderr
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    refused = _add(env, imap_user, imap_user.password, port=free_port)
    tested = _cli(env, "account", "test", refused)
    assert tested.returncode == 1 and "refused" in tested.stderr


def test_password_never_comes_from_arguments(env: dict[str, str]) -> None:
    made = _cli(
        env, "account", "add", "imap", "--name", "x", "--host", "127.0.0.1", "--username", "u"
    )
    assert made.returncode == 2 and "--password-stdin" in made.stderr


def test_periodic_sync_is_scheduled_per_account(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/inboxd.db", tmp_path)
    try:
        maildir = tmp_path / "md"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        registry = Accounts(app.engine, app.settings)
        every_minute = registry.add(
            "maildir", "a", {"path": str(maildir)}, sync_interval_seconds=60
        )
        registry.add("maildir", "off", {"path": str(maildir)}, sync_interval_seconds=0)
        scheduler = Scheduler(app)
        now = utcnow()
        first = [j for j in scheduler.tick(now) if j.kind == "sync"]
        assert [j.account_id for j in first] == [every_minute.id]
        assert scheduler.tick(now) == []  # same slot: nothing more
        later = [j for j in scheduler.tick(now + timedelta(seconds=61)) if j.kind == "sync"]
        assert [j.id for j in later] == [first[0].id]  # still pending: deduplicated
    finally:
        app.close()


def test_a_rejected_password_pauses_periodic_syncs_until_it_is_changed(
    env: dict[str, str], tmp_path: Path, imap_user: ImapUser
) -> None:
    for n in range(3):
        imap_user.append("INBOX", make_message(n))
    account_id = _add(env, imap_user, "expired-password")
    failed = _cli(env, "sync", account_id, "--wait")
    assert failed.returncode == 1 and "password rejected" in failed.stderr
    app = make_app(env["INBOXD_DATABASE_URL"], tmp_path)
    try:
        assert Accounts(app.engine, app.settings).get(account_id).state == "needs_attention"
        scheduler = Scheduler(app)
        now = utcnow()
        # Not retried on schedule: servers lock accounts (or ban addresses) that keep
        # failing to log in.
        assert [j for j in scheduler.tick(now) if j.kind == "sync"] == []
        updated = _cli(
            env,
            "account",
            "update",
            account_id,
            "--password-stdin",
            "--json",
            stdin=imap_user.password + "\n",
        )
        assert updated.returncode == 0, updated.stderr
        assert json.loads(updated.stdout)["state"] == "ok"
        assert imap_user.password not in updated.stdout
        due = [j for j in scheduler.tick(now + timedelta(minutes=6)) if j.kind == "sync"]
        assert [j.account_id for j in due] == [account_id]
    finally:
        app.close()
    synced = _cli(env, "sync", account_id, "--wait", "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["result"]["new"] == 3
    nothing = _cli(env, "account", "update", account_id)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
