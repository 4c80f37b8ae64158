"""The Webhooks section of the Settings tab in headless Chromium against a real ``inboxd
serve`` whose worker may reach one loopback receiver (allow-listed exactly): a webhook added
from the form shows its secret once, a test delivery shows as delivered in the log, a
failing receiver's delivery as failed with its answer, and disabling shows the reason."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.support.dashboard import logged_in_tab
from tests.support.link_server import LinkServer, Route
from tests.support.server import ServerProcess, served

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_FETCH_ALLOW_NETWORKS": "127.0.0.1",
    "INBOXD_WEBHOOK_MAX_ATTEMPTS": "1",
}

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def receiver() -> Iterator[LinkServer]:
    with LinkServer("127.0.0.1") as server:
        server.routes["/ok"] = Route(status=200)
        server.routes["/broken"] = Route(status=500)
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("hooks-view"), ENV) as started:
        yield started


@pytest.fixture
def page(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    with logged_in_tab(browser, server, "settings") as tab:
        yield tab


def _created(response: Response) -> bool:
    return response.url.endswith("/api/webhooks") and response.request.method == "POST"


def add(page: Page, url: str) -> str:
    """Add a webhook from the form; returns its secret as the page shows it."""
    form = page.get_by_test_id("webhook-form")
    form.get_by_label("URL").fill(url)
    with page.expect_response(_created) as created:
        page.get_by_test_id("webhook-add").click()
    assert created.value.status == 201, created.value.text()
    secret = page.get_by_test_id("webhook-secret")
    expect(secret).to_have_text(created.value.json()["secret"])
    return secret.inner_text()


def test_a_test_delivery_shows_in_the_log(
    page: Page, server: ServerProcess, receiver: LinkServer
) -> None:
    secret = add(page, receiver.url("/ok"))
    row = page.get_by_test_id("webhook-row").filter(has_text=receiver.url("/ok"))
    expect(row.get_by_test_id("webhook-state")).to_have_text("enabled")
    row.get_by_test_id("webhook-test").click()
    delivery = row.get_by_test_id("webhook-delivery")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("webhook.test")
    expect(delivery).to_contain_text("delivered")
    expect(delivery).to_contain_text("HTTP 200")
    (seen,) = [s for s in receiver.seen if s.path == "/ok"]
    t, v1 = (part.split("=", 1)[1] for part in seen.headers["x-inboxd-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + seen.body, hashlib.sha256)
    assert hmac.compare_digest(expected.hexdigest(), v1)
    assert json.loads(seen.body)["event"] == "webhook.test"
    # The secret is not shown again: a reload lists the webhook without it.
    page.reload()
    expect(page.get_by_test_id("webhook-row").first).to_be_visible()
    expect(page.get_by_test_id("webhook-secret-box")).to_be_hidden()
    assert secret not in page.content()


def test_a_failing_receiver_and_disabling(page: Page, receiver: LinkServer) -> None:
    add(page, receiver.url("/broken"))
    row = page.get_by_test_id("webhook-row").filter(has_text=receiver.url("/broken"))
    row.get_by_test_id("webhook-test").click()
    delivery = row.get_by_test_id("webhook-delivery")
    expect(delivery).to_contain_text("failed")
    expect(delivery).to_contain_text("HTTP 500")
    row.get_by_test_id("webhook-toggle").click()
    expect(row.get_by_test_id("webhook-state")).to_have_text("disabled")
    expect(row.get_by_test_id("webhook-reason")).to_have_text("disabled by its owner")
    row.get_by_test_id("webhook-toggle").click()
    expect(row.get_by_test_id("webhook-state")).to_have_text("enabled")
    expect(row.get_by_test_id("webhook-reason")).to_be_hidden()
