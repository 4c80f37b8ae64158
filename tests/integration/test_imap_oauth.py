"""XOAUTH2 accounts against a real Dovecot that checks bearer tokens with a local OAuth 2.0
server: access tokens renewed from the refresh token, rotation, revocation, throttling."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from inboxd.app import App
from inboxd.db.types import utcnow
from inboxd.jobs.model import JobStatus
from inboxd.store.accounts import NEEDS_SIGN_IN, OK, Account, Accounts
from tests.services.dovecot import DovecotServer, ImapUser
from tests.support.apps import (
    run_cli,
    running_worker,
    subprocess_env,
    sync_now,
    wait_for,
)
from tests.support.mail import make_message
from tests.support.oauth_server import OAuthServer

pytestmark = pytest.mark.dovecot


@pytest.fixture
def oauth(oauth_server: OAuthServer) -> Iterator[OAuthServer]:
    """The session's OAuth server, back to plain service for each test."""
    yield oauth_server
    oauth_server.scripted.clear()
    oauth_server.rotate = False
    oauth_server.access_lifetime = 3600
    oauth_server.token_requests.clear()


@pytest.fixture
def mailbox(oauth_dovecot_server: DovecotServer) -> ImapUser:
    return oauth_dovecot_server.add_user(f"o{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(12))


def add_oauth_account(app: App, user: ImapUser, oauth: OAuthServer, refresh_token: str) -> Account:
    return Accounts(app.engine, app.settings).add(
        "imap",
        user.username,
        {
            "host": user.host,
            "port": user.port,
            "security": "none",
            "username": user.username,
            "auth": "xoauth2",
            "oauth": {"token_url": oauth.url, "client_id": oauth.client_id, "scope": "mail"},
        },
        secret={"refresh_token": refresh_token, "client_secret": oauth.client_secret},
    )


def xoauth2_logins(server: DovecotServer, user: ImapUser) -> int:
    log = server.log_path.read_text(errors="replace")
    return log.count(f"Login: user=<{user.username}>, method=XOAUTH2")


def test_access_tokens_are_renewed_from_the_refresh_token_and_reused_until_they_run_out(
    app: App, oauth: OAuthServer, mailbox: ImapUser, oauth_dovecot_server: DovecotServer
) -> None:
    for n in range(3):
        mailbox.append("INBOX", make_message(n))
    refresh_token = oauth.grant(mailbox.username)
    account = add_oauth_account(app, mailbox, oauth, refresh_token)

    first = sync_now(app, account)
    assert first.status == JobStatus.COMPLETED, first.error
    assert first.result["new"] == 3
    assert oauth.token_requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": oauth.client_id,
            "client_secret": "test-client-secret",
            "scope": "mail",
        }
    ]
    assert xoauth2_logins(oauth_dovecot_server, mailbox) >= 1
    secret = Accounts(app.engine, app.settings).secret(account.id)
    for value in (refresh_token, secret["access_token"], "test-client-secret"):
        assert value not in json.dumps(first.to_dict()) + json.dumps(account.to_dict())

    mailbox.append("INBOX", make_message(3))
    second = sync_now(app, account)  # the cached access token is still good
    assert second.status == JobStatus.COMPLETED and second.result["new"] == 1
    assert len(oauth.token_requests) == 1

    oauth.expire_access_tokens()  # the provider ends them before inboxd expected
    third = sync_now(app, account)
    assert third.status == JobStatus.COMPLETED, third.error
    assert len(oauth.token_requests) == 2 and third.attempts == 1
    assert Accounts(app.engine, app.settings).get(account.id).state == OK


def test_a_rotated_refresh_token_is_stored_and_used_next_time(
    app: App, oauth: OAuthServer, mailbox: ImapUser
) -> None:
    oauth.rotate = True
    oauth.access_lifetime = 60  # within the renewal margin: every login renews
    mailbox.append("INBOX", make_message(1))
    first_token = oauth.grant(mailbox.username)
    account = add_oauth_account(app, mailbox, oauth, first_token)
    assert sync_now(app, account).status == JobStatus.COMPLETED
    mailbox.append("INBOX", make_message(2))
    again = sync_now(app, account)
    assert again.status == JobStatus.COMPLETED, again.error
    used = [r["refresh_token"] for r in oauth.token_requests]
    assert len(used) == 2 and used[0] == first_token and used[1] != first_token
    assert first_token not in oauth.refresh_tokens  # rotated away: only the new one works


def test_a_revoked_grant_fails_at_once_and_waits_for_a_new_refresh_token(
    app: App, oauth: OAuthServer, mailbox: ImapUser
) -> None:
    mailbox.append("INBOX", make_message(1))
    revoked = oauth.grant(mailbox.username)
    oauth.revoke(revoked)
    account = add_oauth_account(app, mailbox, oauth, revoked)
    job = sync_now(app, account)
    assert job.status == JobStatus.FAILED and job.attempts == 1
    host = oauth.url.split("/")[2]
    assert job.error == (
        f"OAuth refresh token rejected by {host}: invalid_grant "
        "(Token has been expired or revoked.)"
    )
    registry = Accounts(app.engine, app.settings)
    assert registry.get(account.id).state == NEEDS_SIGN_IN
    assert len(oauth.token_requests) == 1  # no retry storm at the provider

    registry.update(account.id, secret={"refresh_token": oauth.grant(mailbox.username)})
    done = sync_now(app, account)
    assert done.status == JobStatus.COMPLETED and done.result["new"] == 1
    assert registry.get(account.id).state == OK


@pytest.mark.parametrize(
    ("status", "body", "headers", "retry_after"),
    [
        (429, {"error": "rate_limit_exceeded"}, {"Retry-After": "30"}, 30.0),
        (503, {}, {}, None),
    ],
    ids=["throttled", "unavailable"],
)
def test_a_throttled_or_failing_token_endpoint_means_trying_later(
    app: App,
    oauth: OAuthServer,
    mailbox: ImapUser,
    status: int,
    body: dict[str, str],
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    oauth.scripted.append((status, body, headers))
    account = add_oauth_account(app, mailbox, oauth, oauth.grant(mailbox.username))
    job = app.queue.enqueue("sync", account_id=account.id)
    started = utcnow()
    with running_worker(app, concurrency=1):
        waiting = wait_for(
            lambda: (j := app.queue.get(job.id)).attempts == 1 and j.status == "pending" and j,
            timeout=20,
        )
    assert f"answered {status}" in str(waiting.error)
    if retry_after is not None:
        assert waiting.run_at >= started + timedelta(seconds=retry_after - 1)
    assert Accounts(app.engine, app.settings).get(account.id).state == OK


def test_cli_adds_an_oauth_account_whose_secrets_never_show(
    tmp_path: Path, oauth: OAuthServer, mailbox: ImapUser
) -> None:
    for n in range(2):
        mailbox.append("INBOX", make_message(n))
    env = subprocess_env(f"sqlite:///{tmp_path}/inboxd.db", tmp_path / "data")
    refresh_token = oauth.grant(mailbox.username)
    made = run_cli(
        env,
        *("account", "add", "imap", "--name", "oauth", "--host", mailbox.host),
        *("--port", str(mailbox.port), "--security", "none", "--username", mailbox.username),
        *("--oauth-token-url", oauth.url, "--oauth-client-id", oauth.client_id),
        *("--oauth-client-secret-stdin", "--password-stdin", "--json"),
        stdin=f"{refresh_token}\n{oauth.client_secret}\n",
    )
    assert made.returncode == 0, made.stderr
    account_id = json.loads(made.stdout)["id"]
    tested = run_cli(env, "account", "test", account_id)
    assert tested.returncode == 0 and "INBOX: 2" in tested.stdout, tested.stderr
    synced = run_cli(env, "sync", account_id, "--wait", "--json")
    assert synced.returncode == 0, synced.stderr
    shown: dict[str, Any] = json.loads(run_cli(env, "account", "show", account_id, "--json").stdout)
    assert shown["settings"]["auth"] == "xoauth2" and shown["message_count"] == 2
    assert shown["settings"]["oauth"] == {"token_url": oauth.url, "client_id": oauth.client_id}
    everything = made.stdout + tested.stdout + synced.stdout + json.dumps(shown)
    assert refresh_token not in everything and str(oauth.client_secret) not in everything
    assert len(oauth.token_requests) == 1  # the test's token served the sync too

    missing = run_cli(
        env,
        *("account", "add", "imap", "--name", "x", "--host", mailbox.host),
        *("--username", "u", "--oauth-client-id", "id", "--password-stdin"),
        stdin="token\n",
    )
    assert missing.returncode == 2
    assert "token endpoint (or a provider)" in missing.stderr
