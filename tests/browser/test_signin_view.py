"""The dashboard's Connect Gmail and Connect Outlook against local identity servers: a real
``inboxd serve``, the system Chromium, the browser sent to the Google-like sign-in and back
through the server's callback; the Outlook device code shown until the sign-in ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from inboxd.store.accounts import Accounts
from tests.support.oauth_servers import IdentityServer
from tests.support.server import ServerProcess, start_server

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def identity() -> Iterator[IdentityServer]:
    server = IdentityServer(client_id="dash-client", client_secret="dash-secret", user="me@x.test")
    yield server
    server.close()


@pytest.fixture(scope="module")
def microsoft() -> Iterator[IdentityServer]:
    server = IdentityServer(client_id="dash-public-client", user="me@work.test")
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, identity: IdentityServer, microsoft: IdentityServer
) -> Iterator[ServerProcess]:
    env = {
        "INBOXD_SYNC_INTERVAL_SECONDS": "0",
        "INBOXD_GRAPH_AUTHORITY": microsoft.base,
        "INBOXD_MICROSOFT_CLIENT_ID": microsoft.client_id,
        "INBOXD_GOOGLE_CLIENT_ID": identity.client_id,
        "INBOXD_GOOGLE_CLIENT_SECRET": "dash-secret",
        "INBOXD_GOOGLE_AUTH_URL": identity.google_auth_url,
        "INBOXD_GOOGLE_TOKEN_URL": identity.google_token_url,
    }
    started = start_server(Path(tmp_path_factory.mktemp("signin")) / "data", env=env)
    yield started
    started.stop()


@pytest.fixture
def tab(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.base_url + "/")
    page.get_by_test_id("login-key").fill(server.admin_key)
    page.get_by_test_id("login-submit").click()
    expect(page.locator("#dashboard-view")).to_be_visible()
    yield page
    context.close()
    assert errors == [], errors


def test_connect_gmail_goes_to_google_and_comes_back_with_the_account(
    tab: Page, server: ServerProcess, identity: IdentityServer
) -> None:
    tab.get_by_test_id("connect-name").fill("Personal")
    tab.get_by_test_id("connect-gmail").click()
    expect(tab.get_by_test_id("connect-status")).to_contain_text("Connected")
    assert "signed_in" not in tab.url
    row = tab.get_by_test_id("account-row").filter(has_text="Personal")
    expect(row).to_contain_text("me@x.test")
    asked = identity.authorize_requests[-1]
    assert asked["redirect_uri"] == f"{server.base_url}/api/oauth/google/callback"
    assert asked["code_challenge_method"] == "S256"
    with server.app() as app:
        names = [a.name for a in Accounts(app.engine, app.settings).list()]
    assert "Personal" in names


def test_connect_outlook_shows_the_device_code_until_the_sign_in_ends(
    tab: Page, microsoft: IdentityServer
) -> None:
    microsoft.device_interval = 1.0
    microsoft.device_plan = ["authorization_pending"] * 3 + ["approve"]
    tab.get_by_test_id("connect-name").fill("Work")
    tab.get_by_test_id("connect-outlook").click()
    code = tab.get_by_test_id("connect-code")
    expect(code).to_be_visible()
    expect(tab.get_by_test_id("connect-url")).to_have_text(f"{microsoft.base}/devicelogin")
    assert microsoft.device(code.inner_text()).plan  # shown while the person has not approved
    expect(tab.get_by_test_id("connect-status")).to_have_text("Connected: Work.", timeout=60_000)
    row = tab.get_by_test_id("account-row").filter(has_text="me@work.test")
    expect(row).to_be_visible()
    expect(row).to_contain_text("graph")  # Outlook syncs through Microsoft Graph
