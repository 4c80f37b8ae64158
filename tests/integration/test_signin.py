"""Signing in with OAuth against local Microsoft-like and Google-like identity servers:
the device-code flow (as a job, and in the CLI), the authorization-code flow with PKCE
(the CLI's loopback redirect and the server's callback), and signing in again after the
grant was revoked."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from inboxd.actions import signin
from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading
from inboxd.db.tables import accounts as accounts_table
from inboxd.jobs.model import JobStatus
from inboxd.providers.oauth_flows import (
    SignInFailed,
    begin_authorization,
    google_endpoints,
    microsoft_endpoints,
    poll_device_flow,
    redeem_code,
    start_device_flow,
)
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from inboxd.vocabulary import AccountState, Step
from tests.services.dovecot import DovecotServer
from tests.support.apps import (
    make_app,
    run_cli,
    running_worker,
    subprocess_env,
    sync_now,
    wait_finished,
)
from tests.support.mail import make_message
from tests.support.oauth_server import OAuthServer
from tests.support.oauth_servers import IdentityServer

GOOGLE_SECRET = "google-test-secret"


@pytest.fixture
def microsoft() -> Iterator[IdentityServer]:
    server = IdentityServer(client_id="ms-client", user="pat@contoso.test")
    yield server
    server.close()


@pytest.fixture
def google() -> Iterator[IdentityServer]:
    server = IdentityServer(
        client_id="google-client", client_secret=GOOGLE_SECRET, user="pat@gmail.test"
    )
    yield server
    server.close()


@pytest.fixture
def app(
    database_url: str, tmp_path: Path, microsoft: IdentityServer, google: IdentityServer
) -> Iterator[App]:
    opened = make_app(
        database_url,
        tmp_path,
        graph_authority=microsoft.base,
        microsoft_client_id=microsoft.client_id,
        google_client_id=google.client_id,
        google_client_secret=GOOGLE_SECRET,
        google_auth_url=google.google_auth_url,
        google_token_url=google.google_token_url,
    )
    yield opened
    opened.close()


def stored_row(app: App, account_id: str) -> str:
    with reading(app.engine) as conn:
        row = conn.execute(select(accounts_table).where(accounts_table.c.id == account_id)).one()
    return json.dumps([str(value) for value in row])


def assert_sealed(app: App, account: Account, server: IdentityServer) -> None:
    """The grant's tokens are in the vault, never in the clear in the row."""
    secret = Accounts(app.engine, app.settings).secret(account.id)
    assert secret["refresh_token"] in server.refresh_tokens
    row = stored_row(app, account.id)
    for value in (secret["refresh_token"], secret["access_token"], GOOGLE_SECRET):
        assert value not in row
    assert secret["refresh_token"] not in json.dumps(account.to_dict())


def follow_to(url: str, stop: str) -> str:
    """Act as the browser: follow redirects from ``url`` until one leads to ``stop``; its
    address (not requested)."""
    with httpx.Client() as client:
        while not url.startswith(stop):
            answer = client.get(url)
            assert answer.status_code in (302, 303), answer.text
            url = answer.headers["location"]
    return url


# -- the device-code flow ------------------------------------------------------------------


def test_device_flow_job_shows_the_code_waits_and_stores_the_account(
    app: App, microsoft: IdentityServer
) -> None:
    microsoft.device_plan = ["authorization_pending", "authorization_pending", "approve"]
    owner = Users(app.engine).add("pat")
    job = signin.start_device_sign_in(app, owner=owner.id, name="Work mail")
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=90)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.step == Step.SIGNING_IN
    user_code = next(code for code in microsoft.devices if not code.startswith("dc-"))
    assert done.message == (
        f"To sign in, open {microsoft.base}/devicelogin and enter the code {user_code}"
    )
    assert len(microsoft.device(user_code).polls) == 3
    account = Accounts(app.engine, app.settings).get(done.result["account_id"])
    assert (account.owner, account.provider, account.name) == (owner.id, "imap", "Work mail")
    assert account.settings["username"] == "pat@contoso.test"
    assert account.settings["host"] == "outlook.office365.com"
    assert account.settings["oauth"] == {
        "provider": "microsoft",
        "client_id": "ms-client",
        "token_url": microsoft.microsoft_token_url(),
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    }
    assert_sealed(app, account, microsoft)
    # The device code stays in the worker (a job's ids may hold "dc-" by chance: look for
    # the codes themselves).
    device_codes = [code for code in microsoft.devices if code.startswith("dc-")]
    shown = json.dumps(done.to_dict())
    assert device_codes and not [code for code in device_codes if code in shown]


def test_slow_down_makes_polls_further_apart(app: App, microsoft: IdentityServer) -> None:
    microsoft.device_plan = ["authorization_pending", "slow_down", "authorization_pending"]
    microsoft.device_plan.append("approve")
    endpoints = microsoft_endpoints(app.settings)
    code = start_device_flow(endpoints, timeout=5)
    granted = poll_device_flow(endpoints, code, timeout=5, slow_down=0.4)
    assert granted.username == "pat@contoso.test"
    polls = microsoft.device(code.user_code).polls
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) == 4
    assert gaps[0] < 0.35 and gaps[1] >= 0.45 and gaps[2] >= 0.45  # interval + 0.4 from then on


@pytest.mark.parametrize(
    ("plan", "lifetime", "said"),
    [
        (["authorization_pending", "expired_token"], 900.0, "expired"),
        (["authorization_pending", "access_denied"], 900.0, "refused"),
        ([], 0.2, "expired"),  # the code's own lifetime ran out while pending
    ],
    ids=["expired", "denied", "timed-out"],
)
def test_a_device_flow_that_expires_or_is_refused_fails_and_stores_nothing(
    app: App, microsoft: IdentityServer, plan: list[str], lifetime: float, said: str
) -> None:
    microsoft.device_plan, microsoft.device_lifetime = plan, lifetime
    job = signin.start_device_sign_in(app, owner=Users(app.engine).add("pat").id, name="W")
    with running_worker(app, concurrency=1):
        done = wait_finished(app, job.id, timeout=90)
    assert done.status == JobStatus.FAILED and done.attempts == 1
    assert said in str(done.error)
    assert Accounts(app.engine, app.settings).list() == []


# -- the authorization-code flow with PKCE -------------------------------------------------


def test_a_code_is_redeemed_only_with_its_own_verifier(app: App, google: IdentityServer) -> None:
    endpoints = google_endpoints(app.settings)
    redirect = "http://127.0.0.1:9/"
    started = begin_authorization(endpoints, redirect)
    query = parse_qs(urlsplit(started.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [started.state]
    assert query["access_type"] == ["offline"]
    back = parse_qs(urlsplit(follow_to(started.url, redirect)).query)
    other = begin_authorization(endpoints, redirect)
    with pytest.raises(SignInFailed, match="code_verifier does not match"):
        redeem_code(endpoints, back["code"][0], other.verifier, redirect, timeout=5)

    again = begin_authorization(endpoints, redirect)
    back = parse_qs(urlsplit(follow_to(again.url, redirect)).query)
    granted = redeem_code(endpoints, back["code"][0], again.verifier, redirect, timeout=5)
    assert granted.username == "pat@gmail.test"
    assert google.token_requests[-1]["client_secret"] == GOOGLE_SECRET


# -- the server's callback route -----------------------------------------------------------


class Browser:
    """A browser session with the API: cookies kept, redirects not followed."""

    def __init__(self, app: App, key: str | None) -> None:
        self.api = create_api(app)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.cookies: dict[str, str] = {}

    def call(self, method: str, url: str, body: Any = None) -> httpx.Response:
        return asyncio.run(self._call(method, url, body))

    async def _call(self, method: str, url: str, body: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=self.headers
        ) as client:
            client.cookies.update(self.cookies)
            response = await client.request(method, url, json=body)
            await response.aread()
            self.cookies.update(dict(response.cookies))
            return response


def start_connect(app: App, name: str = "Gmail") -> tuple[Browser, str, str]:
    """Log in as a new user and press Connect Gmail: the browser and the callback URL the
    provider sends it back to, and the user's id."""
    users = Users(app.engine)
    user = users.add(f"u{time.monotonic_ns()}")
    browser = Browser(app, users.create_key(user).key)
    started = browser.call("POST", "/api/oauth/google/start", {"name": name})
    assert started.status_code == 200, started.text
    assert "inboxd_signin" in browser.cookies
    callback = follow_to(started.json()["url"], "http://testserver/")
    return browser, callback, user.id


def test_connect_gmail_through_the_servers_callback(app: App, google: IdentityServer) -> None:
    browser, callback, user_id = start_connect(app)
    assert callback.startswith("http://testserver/api/oauth/google/callback?")
    browser.headers = {}  # the provider's redirect carries no session (SameSite=Strict)
    done = browser.call("GET", callback)
    assert done.status_code == 303, done.text
    account_id = parse_qs(urlsplit(done.headers["location"]).query)["signed_in"][0]
    account = Accounts(app.engine, app.settings).get(account_id, owner=user_id)
    assert account.settings["host"] == "imap.gmail.com"
    assert account.settings["username"] == "pat@gmail.test"
    assert account.settings["oauth"]["token_url"] == google.google_token_url
    assert Accounts(app.engine, app.settings).secret(account_id)["client_secret"] == GOOGLE_SECRET
    assert_sealed(app, account, google)
    again = browser.call("GET", callback)  # a replayed callback: the code is spent
    assert again.status_code == 400


def test_the_callback_refuses_a_wrong_state_or_another_browser(
    app: App, google: IdentityServer
) -> None:
    browser, callback, _ = start_connect(app)
    query = parse_qs(urlsplit(callback).query)
    code, state = query["code"][0], query["state"][0]
    base = "/api/oauth/google/callback"
    tampered = state[:-8] + ("A" * 8 if not state.endswith("A" * 8) else "B" * 8)
    for url in (
        f"{base}?code={code}&state={tampered}",
        f"{base}?code={code}&state=made-up",
        f"{base}?code={code}",
        f"/api/oauth/microsoft/callback?code={code}&state={state}",  # another provider's
    ):
        refused = browser.call("GET", url)
        assert refused.status_code == 403, url
        assert "not started here" in refused.json()["error"]["message"]
    stranger = Browser(app, None)  # the right state and code, from a browser without the nonce
    refused = stranger.call("GET", callback)
    assert refused.status_code == 403
    assert Accounts(app.engine, app.settings).list() == []
    assert google.token_requests == []  # nothing refused here reached the token endpoint


def test_a_refused_consent_stores_nothing(app: App, google: IdentityServer) -> None:
    google.deny = True
    browser, callback, _ = start_connect(app)
    refused = browser.call("GET", callback)
    assert refused.status_code == 400
    assert "access_denied" in refused.json()["error"]["message"]
    assert Accounts(app.engine, app.settings).list() == []


def test_a_revoked_gmail_account_signs_in_again_through_the_callback(
    app: App, google: IdentityServer
) -> None:
    browser, callback, user_id = start_connect(app)
    done = browser.call("GET", callback)
    account_id = parse_qs(urlsplit(done.headers["location"]).query)["signed_in"][0]
    registry = Accounts(app.engine, app.settings)
    old = registry.secret(account_id)["refresh_token"]
    google.revoke(old)
    registry.set_state(account_id, AccountState.NEEDS_SIGN_IN, "OAuth refresh token rejected")

    users = Users(app.engine)
    stranger = Browser(app, users.create_key(users.add("stranger")).key)
    refused = stranger.call("POST", f"/api/accounts/{account_id}/sign-in")
    assert refused.status_code == 404  # not theirs to sign in
    again = browser.call("POST", f"/api/accounts/{account_id}/sign-in")
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] is None
    back = browser.call("GET", follow_to(again.json()["url"], "http://testserver/"))
    assert back.status_code == 303, back.text
    renewed = registry.get(account_id, owner=user_id)
    assert renewed.state == AccountState.OK and len(registry.list()) == 1
    fresh = registry.secret(account_id)
    assert fresh["refresh_token"] != old and fresh["refresh_token"] in google.refresh_tokens


def test_connect_outlook_queues_a_device_sign_in_for_the_caller(
    app: App, microsoft: IdentityServer
) -> None:
    users = Users(app.engine)
    user = users.add("pat")
    browser = Browser(app, users.create_key(user).key)
    answer = browser.call("POST", "/api/oauth/microsoft/device", {"name": "Outlook"})
    assert answer.status_code == 202, answer.text
    with running_worker(app, concurrency=1):
        done = wait_finished(app, answer.json()["job_id"], timeout=90)
    assert done.status == JobStatus.COMPLETED and done.owner == user.id
    shown = browser.call("GET", f"/api/accounts/{done.result['account_id']}")
    assert shown.status_code == 200 and shown.json()["name"] == "Outlook"
    nameless = browser.call("POST", "/api/oauth/microsoft/device", {})
    assert nameless.status_code == 422


def test_a_microsoft_account_signs_in_again_with_a_device_code_job(
    app: App, microsoft: IdentityServer
) -> None:
    users = Users(app.engine)
    user = users.add("pat")
    browser = Browser(app, users.create_key(user).key)
    first = signin.start_device_sign_in(app, owner=user.id, name="Outlook")
    with running_worker(app, concurrency=1):
        account_id = wait_finished(app, first.id, timeout=90).result["account_id"]
        registry = Accounts(app.engine, app.settings)
        old = registry.secret(account_id)["refresh_token"]
        registry.set_state(account_id, AccountState.NEEDS_SIGN_IN, "revoked")
        answer = browser.call("POST", f"/api/accounts/{account_id}/sign-in")
        assert answer.status_code == 200, answer.text
        assert answer.json()["url"] is None
        done = wait_finished(app, answer.json()["job_id"], timeout=90)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.account_id == account_id and done.result["account_id"] == account_id
    assert registry.get(account_id).state == AccountState.OK
    assert registry.secret(account_id)["refresh_token"] not in (old, None)
    assert len(registry.list()) == 1


def test_signing_in_without_a_client_id_is_a_server_setting_problem(
    database_url: str, tmp_path: Path
) -> None:
    bare = make_app(database_url, tmp_path, microsoft_client_id=None, google_client_id=None)
    try:
        users = Users(bare.engine)
        browser = Browser(bare, users.create_key(users.add("pat")).key)
        for path in ("/api/oauth/microsoft/device", "/api/oauth/google/start"):
            answer = browser.call("POST", path, {"name": "x"})
            assert answer.status_code == 409, path
            assert "CLIENT_ID" in answer.json()["error"]["message"]
    finally:
        bare.close()


# -- the CLI -------------------------------------------------------------------------------


def cli_env(app: App, microsoft: IdentityServer, google: IdentityServer) -> dict[str, str]:
    return subprocess_env(
        app.settings.effective_database_url,
        app.settings.data_dir,
        INBOXD_GRAPH_AUTHORITY=microsoft.base,
        INBOXD_MICROSOFT_CLIENT_ID=microsoft.client_id,
        INBOXD_GOOGLE_CLIENT_ID=google.client_id,
        INBOXD_GOOGLE_CLIENT_SECRET=GOOGLE_SECRET,
        INBOXD_GOOGLE_AUTH_URL=google.google_auth_url,
        INBOXD_GOOGLE_TOKEN_URL=google.google_token_url,
        BROWSER="false",  # never a real browser, whatever --no-browser says
    )


class Cli:
    """An ``inboxd`` child process whose sign-in URL the test opens as the browser would."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inboxd", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sign_in_url(self) -> str:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("http"):
                return line.strip()
        raise AssertionError(f"no URL shown; exit {self.process.wait()}")

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err


def test_cli_device_flow_adds_an_outlook_account(
    app: App, microsoft: IdentityServer, google: IdentityServer
) -> None:
    microsoft.device_plan = ["authorization_pending", "approve"]
    made = run_cli(
        cli_env(app, microsoft, google),
        *("account", "add", "imap", "--name", "Outlook", "--oauth-provider", "microsoft"),
        *("--sign-in", "--json"),
    )
    assert made.returncode == 0, made.stderr
    user_code = next(code for code in microsoft.devices if not code.startswith("dc-"))
    assert f"enter the code {user_code}" in made.stderr
    account = Accounts(app.engine, app.settings).get(json.loads(made.stdout)["id"])
    assert account.settings["username"] == "pat@contoso.test"
    assert_sealed(app, account, microsoft)


def test_cli_loopback_refuses_a_redirect_with_another_state(
    app: App, microsoft: IdentityServer, google: IdentityServer
) -> None:
    cli = Cli(
        cli_env(app, microsoft, google),
        *("account", "add", "imap", "--name", "G", "--oauth-provider", "google"),
        *("--sign-in", "--no-browser"),
    )
    url = cli.sign_in_url()
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    assert urlsplit(redirect).hostname == "127.0.0.1"
    page = httpx.get(f"{redirect}?code=forged&state=not-the-one")
    assert page.status_code == 200 and b"did not succeed" in page.content
    code, _, err = cli.finish()
    assert code != 0 and "state does not match" in err
    assert google.token_requests == []
    assert Accounts(app.engine, app.settings).list() == []


def test_cli_sign_in_again_after_a_revoked_grant(
    app: App,
    microsoft: IdentityServer,
    oauth_server: OAuthServer,
    oauth_dovecot_server: DovecotServer,
) -> None:
    """Google: add with the browser and the loopback redirect, sync from Dovecot; the grant
    is revoked, a sync marks the account as needing sign-in, and ``account sign-in`` brings
    it back."""
    mailbox = oauth_dovecot_server.add_user(f"g{uuid.uuid4().hex[:12]}", "unused-password")
    mailbox.append("INBOX", make_message(1))
    google = IdentityServer(
        client_id="google-client",
        client_secret=GOOGLE_SECRET,
        user=mailbox.username,
        backend=oauth_server,  # its access tokens are the ones Dovecot accepts
    )
    try:
        env = cli_env(app, microsoft, google)
        cli = Cli(
            env,
            *("account", "add", "imap", "--name", "Gmail", "--oauth-provider", "google"),
            *("--host", mailbox.host, "--port", str(mailbox.port), "--security", "none"),
            *("--sign-in", "--no-browser", "--json"),
        )
        url = cli.sign_in_url()
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        page = httpx.get(follow_to(url, redirect))
        assert page.status_code == 200 and b"Signed in." in page.content
        code, out, err = cli.finish()
        assert code == 0, err
        registry = Accounts(app.engine, app.settings)
        account = registry.get(json.loads(out)["id"])
        assert account.settings["username"] == mailbox.username
        assert_sealed(app, account, google)
        first = sync_now(app, account)
        assert first.status == JobStatus.COMPLETED and first.result["new"] == 1, first.error

        revoked = registry.secret(account.id)["refresh_token"]
        google.revoke(revoked)
        oauth_server.expire_access_tokens()
        failed = sync_now(app, account)
        assert failed.status == JobStatus.FAILED and failed.attempts == 1
        assert "invalid_grant" in str(failed.error)
        assert registry.get(account.id).state == AccountState.NEEDS_SIGN_IN
        shown = run_cli(env, "account", "show", account.id)
        assert f"inboxd account sign-in {account.id}" in shown.stdout, shown.stderr

        again = Cli(env, "account", "sign-in", account.id, "--no-browser")
        url = again.sign_in_url()
        httpx.get(follow_to(url, parse_qs(urlsplit(url).query)["redirect_uri"][0]))
        code, out, err = again.finish()
        assert code == 0, err
        assert "state: ok" in out
        assert registry.get(account.id).state == AccountState.OK
        fresh = registry.secret(account.id)
        assert fresh["refresh_token"] != revoked
        assert fresh["refresh_token"] in google.refresh_tokens
        assert fresh["client_secret"] == GOOGLE_SECRET
        mailbox.append("INBOX", make_message(2))
        synced = sync_now(app, account)
        assert synced.status == JobStatus.COMPLETED and synced.result["new"] == 1, synced.error
    finally:
        google.close()


def test_cli_device_flow_adds_a_graph_account_that_signs_in_again(
    app: App, microsoft: IdentityServer, google: IdentityServer
) -> None:
    """``account add graph`` without a refresh token signs in with a device code and stores
    a Graph account on the service's endpoints; ``account sign-in`` renews its grant the
    same way (its OAuth client is derived from its Graph settings)."""
    env = cli_env(app, microsoft, google)
    microsoft.device_plan = ["authorization_pending", "approve"]
    made = run_cli(env, "account", "add", "graph", "--name", "Work", "--json")
    assert made.returncode == 0, made.stderr
    registry = Accounts(app.engine, app.settings)
    account = registry.get(json.loads(made.stdout)["id"])
    assert account.provider == "graph"
    assert account.settings["client_id"] == "ms-client"
    assert account.settings["tenant"] == "common"
    assert account.settings["authority"] == microsoft.base
    assert account.addresses == ["pat@contoso.test"]
    assert_sealed(app, account, microsoft)
    first = registry.secret(account.id)["refresh_token"]
    assert [code for code in microsoft.devices if not code.startswith("dc-")]

    microsoft.device_plan = ["approve"]
    again = run_cli(env, "account", "sign-in", account.id)
    assert again.returncode == 0, again.stderr
    assert "enter the code" in again.stderr
    fresh = registry.secret(account.id)["refresh_token"]
    assert fresh != first and fresh in microsoft.refresh_tokens
