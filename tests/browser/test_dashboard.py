"""The dashboard in headless Chromium against a real ``inboxd serve`` and a real Dovecot.

A person's view: log in with a key, start a sync of an IMAP account and watch its progress
bar advance to completed, cancel a running job, reload mid-job, use it on a phone, log out,
lose the live stream and get it back (with what was missed replayed), and get a browser
notification only after allowing it.

Syncs go through a proxy that delays every IMAP command, so a few hundred messages take a
few seconds and their progress can be watched as a person would.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Request,
    Route,
    expect,
)

from tests.services.dovecot import ImapUser
from tests.support.apps import start_worker_process, wait_for
from tests.support.dashboard import fill_inbox, imap_account_body, restart_server
from tests.support.proxy import Proxy
from tests.support.server import ServerProcess, free_port, start_server

#: No periodic syncs (they would add jobs nobody started), small sync batches (progress in
#: many steps), generous request rates (every test logs in and starts jobs), a heartbeat a
#: second (open streams notice a logout that soon).
ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_LIVE_HEARTBEAT_SECONDS": "1",
    "INBOXD_SYNC_BATCH_MESSAGES": "5",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
}
#: Each IMAP command waits this long in the proxy: 150 messages in batches of 5 take ~1.5 s.
IMAP_DELAY = 0.04
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
FINISHED = ("completed", "failed", "cancelled")

expect.set_options(timeout=15_000)


# -- in-page recorders --------------------------------------------------------------------------

#: Records every visible change of one account card (state badge, progress bar, caption).
RECORD_ACCOUNT = """(accountId) => {
  const root = document.querySelector(
    `[data-testid="account-row"][data-account-id="${accountId}"]`);
  const bar = root.querySelector('[data-testid="account-progress"]');
  const seen = [];
  const take = () => {
    const sample = {
      t: performance.now(),
      state: root.querySelector('[data-testid="account-state"]').textContent,
      determinate: bar.hasAttribute('value'),
      value: bar.value,
      max: bar.max,
      caption: root.querySelector('[data-testid="account-progress-text"]').textContent,
      meter: !root.querySelector('[data-role="meter"]').hidden,
    };
    const last = seen[seen.length - 1];
    if (!last || ['state', 'determinate', 'value', 'max', 'caption', 'meter']
        .some((k) => last[k] !== sample[k])) seen.push(sample);
  };
  take();
  new MutationObserver(take).observe(
    root, { subtree: true, attributes: true, childList: true, characterData: true });
  window.__accountSamples = seen;
}"""

#: Records every state of the connection indicator.
RECORD_CONNECTION = """() => {
  const el = document.querySelector('[data-testid="conn-status"]');
  const seen = [el.dataset.state];
  new MutationObserver(() => {
    if (seen[seen.length - 1] !== el.dataset.state) seen.push(el.dataset.state);
  }).observe(el, { attributes: true });
  window.__connStates = seen;
}"""

#: A stand-in for the Notification API: what the page shows, and whether it asked.
FAKE_NOTIFICATIONS = """(() => {
  const shown = [];
  let asked = 0;
  class FakeNotification {
    constructor(title, options = {}) {
      shown.push({ title, body: options.body || '', tag: options.tag || '' });
    }
  }
  FakeNotification.permission = 'default';
  FakeNotification.requestPermission = async () => {
    asked += 1;
    FakeNotification.permission = 'granted';
    return 'granted';
  };
  Object.defineProperty(window, 'Notification', { value: FakeNotification });
  window.__notifications = { shown, asked: () => asked };
})();"""

#: Elements that stick out of the viewport on the right (the page would scroll sideways).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (el.closest('.visually-hidden, thead')) continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      out.push(`${el.tagName.toLowerCase()}.${el.className} ${box.left}..${box.right}`);
    }
  }
  return {
    width,
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    out: out.slice(0, 10),
  };
}"""


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (with its embedded worker) for the module; each test has its own user."""
    started = start_server(tmp_path_factory.mktemp("dashboard"), env=ENV)
    try:
        yield started
    finally:
        started.stop()
    _assert_clean_log(started)


@dataclass
class Person:
    """A user of the server: a key, a Bearer client and the browser tabs they opened."""

    server: ServerProcess
    name: str
    key: str
    client: httpx.Client
    contexts: list[BrowserContext] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def open(self, browser: Browser, *, viewport: dict[str, int] = DESKTOP) -> Page:
        """A new tab in a fresh browser profile (no cookies), not logged in yet."""
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        return page

    def login(self, page: Page, *, live: bool = True) -> None:
        """Log in through the form and wait for the dashboard (and its live stream)."""
        page.goto(self.server.base_url + "/")
        page.get_by_test_id("login-key").fill(self.key)
        page.get_by_test_id("login-submit").click()
        expect(page.locator("#dashboard-view")).to_be_visible()
        if live:
            expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live")

    def start_job(self, kind: str, params: dict[str, Any], **extra: Any) -> str:
        """``POST /api/jobs`` with the key; returns the job id."""
        response = self.client.post("/api/jobs", json={"kind": kind, "params": params, **extra})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    def add_account(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/accounts``; returns the account."""
        response = self.client.post("/api/accounts", json=body)
        assert response.status_code == 201, response.text
        account: dict[str, Any] = response.json()
        return account

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /api/jobs/{id}``."""
        response = self.client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def wait_job_status(self, job_id: str, status: str, timeout: float = 15.0) -> None:
        """Poll until the job has ``status``."""
        wait_for(lambda: self.job(job_id)["status"] == status, timeout=timeout, interval=0.05)

    def wait_job(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until the job has finished; returns it."""

        def finished() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in FINISHED else None

        found: dict[str, Any] = wait_for(finished, timeout=timeout, interval=0.05)
        return found

    def close(self) -> None:
        """Cancel what is still running, close the tabs and the client."""
        try:
            for job in self.client.get("/api/jobs").json():
                if job["status"] not in FINISHED:
                    self.client.post(f"/api/jobs/{job['id']}/cancel")
        except httpx.HTTPError:
            pass
        for context in self.contexts:
            context.close()
        self.client.close()


@pytest.fixture
def people(server: ServerProcess) -> Iterator[Callable[..., Person]]:
    """Make users of the module's server; afterwards their tabs must not have thrown."""
    made: list[Person] = []

    def make(target: ServerProcess = server) -> Person:
        name = f"web-{uuid.uuid4().hex[:8]}"
        key = target.add_user(name)
        person = Person(target, name, key, target.client(key))
        made.append(person)
        return person

    yield make
    errors = [e for person in made for e in person.page_errors]
    for person in made:
        person.close()
    assert errors == [], errors


def _assert_clean_log(server: ServerProcess) -> None:
    log = server.log()
    assert "unexpected error" not in log and "Exception in ASGI application" not in log, log


def account_card(page: Page, account_id: str) -> Locator:
    """The card of one account."""
    return page.locator(f'[data-testid="account-row"][data-account-id="{account_id}"]')


def job_row(page: Page, job_id: str) -> Locator:
    """The row of one job in the jobs table."""
    return page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')


def progress_value(row: Locator, testid: str) -> float:
    """The value of a progress bar (0 when it has none)."""
    value = row.get_by_test_id(testid).evaluate("(bar) => bar.value")
    return float(value)


def wait_progress(row: Locator, testid: str, at_least: float, timeout: float = 15.0) -> float:
    """Wait until a progress bar reaches ``at_least``; returns the value seen."""
    bar = row.get_by_test_id(testid)
    bar.page.wait_for_function(
        "([bar, n]) => bar.hasAttribute('value') && bar.value >= n",
        arg=[bar.element_handle(), at_least],
        timeout=timeout * 1000,
    )
    return progress_value(row, testid)


def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    """The dashboard's session cookie, if the browser holds one."""
    for cookie in context.cookies():
        if cookie.get("name") == "inboxd_session":
            return dict(cookie)
    return None


# -- login and logout ---------------------------------------------------------------------------


def test_login_with_a_key_wrong_key_error_and_logout_ends_the_session(
    server: ServerProcess, browser: Browser, people: Callable[..., Person]
) -> None:
    person = people()
    page = person.open(browser)
    page.goto(server.base_url + "/")
    key_field = page.get_by_test_id("login-key")
    expect(key_field).to_be_visible()
    expect(page.locator("#dashboard-view")).to_be_hidden()
    expect(page.get_by_test_id("logout")).to_be_hidden()

    # An empty key is refused by the page itself; a wrong one by the server, clearly.
    page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    expect(error).to_have_text("Enter an API key.")
    key_field.fill("ibx_not_a_real_key")
    page.get_by_test_id("login-submit").click()
    expect(error).to_have_text(re.compile(r"API key is not valid"))
    expect(page.locator("#dashboard-view")).to_be_hidden()
    assert session_cookie(page.context) is None

    key_field.fill(person.key)
    page.get_by_test_id("login-submit").click()
    expect(page.locator("#dashboard-view")).to_be_visible()
    expect(page.locator("#user-name")).to_have_text(person.name)
    expect(error).to_be_hidden()
    expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live")
    # The key is exchanged for an HttpOnly cookie and not kept in the page.
    expect(key_field).to_have_value("")
    cookie = session_cookie(page.context)
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert person.key not in cookie["value"]
    assert page.evaluate("document.cookie") == ""
    headers = {"Cookie": f"inboxd_session={cookie['value']}"}
    me = httpx.get(f"{server.base_url}/api/me", headers=headers, timeout=10)
    assert me.status_code == 200 and me.json()["name"] == person.name

    # The session survives a reload.
    page.reload()
    expect(page.locator("#dashboard-view")).to_be_visible()
    expect(page.locator("#user-name")).to_have_text(person.name)

    # A second tab of the same browser shares the session.
    other_tab = page.context.new_page()
    other_tab.on("pageerror", lambda exc: person.page_errors.append(str(exc)))
    other_tab.goto(server.base_url + "/")
    expect(other_tab.locator("#user-name")).to_have_text(person.name)
    expect(other_tab.get_by_test_id("conn-status")).to_have_attribute("data-state", "live")

    page.get_by_test_id("logout").click()
    expect(key_field).to_be_visible()
    expect(page.locator("#dashboard-view")).to_be_hidden()
    expect(page.get_by_test_id("logout")).to_be_hidden()
    assert session_cookie(page.context) is None
    # The old cookie is dead on the server too, not only forgotten by the browser.
    gone = httpx.get(f"{server.base_url}/api/me", headers=headers, timeout=10)
    assert gone.status_code == 401, gone.text
    page.reload()
    expect(key_field).to_be_visible()
    expect(page.locator("#dashboard-view")).to_be_hidden()
    # The other tab, idle on its live stream, learns it too: the server ends the stream of a
    # session that was logged out, and the tab then finds the session gone.
    expect(other_tab.get_by_test_id("login-error")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    expect(other_tab.locator("#dashboard-view")).to_be_hidden()


# -- a sync, watched --------------------------------------------------------------------------


@pytest.mark.dovecot
def test_sync_now_progress_advances_and_finishes_with_the_right_count(
    server: ServerProcess, browser: Browser, people: Callable[..., Person], imap_user: ImapUser
) -> None:
    total = 150
    fill_inbox(imap_user, total)
    person = people()
    other = people()
    with Proxy(imap_user.port, delay=IMAP_DELAY) as proxy:
        name = f"work-{uuid.uuid4().hex[:6]}"
        account = person.add_account(imap_account_body(name, imap_user, port=proxy.port))
        # Somebody else's account is not shown.
        other.add_account(imap_account_body(f"other-{uuid.uuid4().hex[:6]}", imap_user))
        page = person.open(browser)
        person.login(page)

        cards = page.get_by_test_id("account-row")
        expect(cards).to_have_count(1)
        card = account_card(page, account["id"])
        expect(card.locator(".account-name")).to_have_text(name)
        expect(card.get_by_test_id("account-state")).to_have_text("idle")
        expect(card.locator('[data-role="messages"]')).to_have_text("0")
        expect(card.locator('[data-role="last-sync"]')).to_have_text("never")
        page.evaluate(RECORD_ACCOUNT, account["id"])

        card.get_by_test_id("sync-now").click()
        expect(card.get_by_test_id("account-state")).to_have_text("completed", timeout=40_000)
        samples: list[dict[str, Any]] = page.evaluate("window.__accountSamples")

    # (The sync queued the index job of what it stored: not this test's subject.)
    jobs = person.client.get("/api/jobs", params={"kind": "sync"}).json()
    assert [j["kind"] for j in jobs] == ["sync"]
    job = jobs[0]
    assert job["status"] == "completed" and job["result"]["new"] == total, job

    # The bar filled up in steps while fetching, never going back, over real time.
    fetching = [s for s in samples if s["state"] == "fetching" and s["max"] == total]
    values = [s["value"] for s in fetching if s["determinate"]]
    assert values == sorted(values), values
    partial = sorted({v for v in values if 0 < v < total})
    assert len(partial) >= 3, samples
    assert partial[0] <= total / 2, samples
    times = [s["t"] for s in fetching if 0 < s["value"] < total]
    assert max(times) - min(times) >= 300, samples  # ms: it advanced, it did not jump
    for sample in fetching:
        assert sample["caption"] == f"{sample['value']:.0f} / {total}", sample
    states = [s["state"] for s in samples]
    assert states[0] == "idle" and states[-1] == "completed", states
    assert "fetching" in states and states.index("fetching") < states.index("completed")
    assert set(states) <= {"idle", "queued", "connecting", "fetching", "completed"}, states

    # Finished: the count is right everywhere a person would look.
    expect(card.locator('[data-role="messages"]')).to_have_text(f"{total}")
    expect(card.locator('[data-role="last-sync"]')).to_have_text("just now")
    expect(card.get_by_test_id("account-error")).to_be_hidden()
    row = job_row(page, job["id"])
    expect(row.get_by_test_id("job-status")).to_have_text("completed")
    expect(row.get_by_test_id("job-cancel")).to_be_hidden()
    expect(row).to_contain_text(f"new: {total}")
    run = page.locator(f'[data-testid="run-row"][data-job-id="{job["id"]}"]')
    expect(run).to_have_count(1)
    expect(run).to_contain_text("completed")
    expect(run).to_contain_text(f"new: {total}")
    # The sync, the index job it queued for the new mail and the triage the index queued.
    expect(page.get_by_test_id("job-row")).to_have_count(3)


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_a_running_job_from_the_jobs_table(
    browser: Browser, people: Callable[..., Person]
) -> None:
    person = people()
    page = person.open(browser)
    person.login(page)
    steps = 400
    job_id = person.start_job("selftest", {"steps": steps, "step_ms": 25})
    row = job_row(page, job_id)
    expect(row.get_by_test_id("job-status")).to_have_text("running")
    wait_progress(row, "job-progress", 3)
    expect(row.get_by_test_id("job-retry")).to_be_hidden()

    row.get_by_test_id("job-cancel").click()
    expect(row.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(row.get_by_test_id("job-cancel")).to_be_hidden()
    expect(row.get_by_test_id("job-retry")).to_be_visible()
    job = person.job(job_id)
    assert job["status"] == "cancelled" and job["cancel_requested"] is True, job
    done = job["progress"]["current"]
    assert 3 <= done < steps, job
    # The row shows where the job stopped, and it stays stopped.
    expect(row.get_by_test_id("job-progress-text")).to_have_text(f"{done} / {steps}")
    run = page.locator(f'[data-testid="run-row"][data-job-id="{job_id}"]')
    expect(run).to_contain_text("cancelled")
    assert person.job(job_id)["progress"]["current"] == done

    # Retry: the same job (same row) runs again from its checkpoint, and can be cancelled again.
    row.get_by_test_id("job-retry").click()
    expect(row.get_by_test_id("job-status")).to_have_text("running")
    expect(row.get_by_test_id("job-retry")).to_be_hidden()
    resumed = wait_progress(row, "job-progress", done + 3)
    row.get_by_test_id("job-cancel").click()
    expect(row.get_by_test_id("job-status")).to_have_text("cancelled")
    again = person.job(job_id)
    assert again["status"] == "cancelled", again
    assert resumed <= again["progress"]["current"] < steps, again
    expect(page.get_by_test_id("job-row")).to_have_count(1)
    expect(page.locator(f'[data-testid="run-row"][data-job-id="{job_id}"]')).to_have_count(2)


def test_without_a_live_stream_the_dashboard_polls_the_snapshot(
    browser: Browser, people: Callable[..., Person]
) -> None:
    person = people()
    steps = 300
    job_id = person.start_job("selftest", {"steps": steps, "step_ms": 30})
    person.wait_job_status(job_id, "running")
    page = person.open(browser)
    streams: list[str] = []

    def refuse(route: Route) -> None:
        streams.append(route.request.url)
        route.abort()

    # Something between the browser and the server (a proxy) refuses event streams.
    page.route(re.compile(r"/api/events(\?|$)"), refuse)
    person.login(page, live=False)
    conn = page.get_by_test_id("conn-status")
    expect(conn).to_have_attribute("data-state", "polling")
    expect(conn).to_have_attribute("data-polling", "true")
    row = job_row(page, job_id)
    expect(row.get_by_test_id("job-status")).to_have_text("running")
    first = progress_value(row, "job-progress")
    # The next poll (every 5 s) moves the bar on, with no stream at all.
    later = wait_progress(row, "job-progress", first + 20, timeout=12)
    assert later < steps
    expect(row.get_by_test_id("job-progress-text")).to_have_text(f"{later:.0f} / {steps}")
    assert len(streams) >= 2, streams
    expect(page.get_by_test_id("banner")).to_be_hidden()


# -- reload -------------------------------------------------------------------------------------


def test_reload_mid_job_resumes_the_live_view_without_duplicates(
    browser: Browser, people: Callable[..., Person]
) -> None:
    person = people()
    account = person.add_account(
        {
            "provider": "imap",
            "name": "archive",
            "settings": {
                "host": "127.0.0.1",
                "port": free_port(),
                "security": "none",
                "username": "nobody",
            },
            "secret": {"password": "unused-here"},
            "sync_interval_seconds": 0,
        }
    )
    earlier = person.start_job("selftest", {"steps": 1, "step_ms": 0})
    person.wait_job(earlier)
    page = person.open(browser)
    person.login(page)
    steps = 150
    job_id = person.start_job("selftest", {"steps": steps, "step_ms": 40}, account_id=account["id"])
    row = job_row(page, job_id)
    card = account_card(page, account["id"])
    before = wait_progress(row, "job-progress", 10)
    expect(card.get_by_test_id("account-state")).to_have_text("processing")

    streams: list[str] = []

    def on_request(request: Request) -> None:
        if urlsplit(request.url).path == "/api/events":
            streams.append(request.url)

    page.on("request", on_request)
    page.reload()
    expect(page.locator("#dashboard-view")).to_be_visible()
    expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live")
    expect(row.get_by_test_id("job-status")).to_have_text("running")
    # Resumed from the snapshot, then live again: the bar keeps moving without a reload.
    resumed = wait_progress(row, "job-progress", before)
    later = wait_progress(row, "job-progress", resumed + 10)
    assert later < steps, later
    expect(card.get_by_test_id("account-state")).to_have_text("processing")
    wait_progress(card, "account-progress", later)
    expect(card.get_by_test_id("account-progress-text")).to_have_text(
        re.compile(rf"^\d+ / {steps}$")
    )
    # One row per job, one card per account, one stream per tab.
    expect(page.get_by_test_id("job-row")).to_have_count(2)
    expect(job_row(page, earlier)).to_have_count(1)
    expect(row).to_have_count(1)
    expect(page.get_by_test_id("account-row")).to_have_count(1)
    assert len(streams) == 1, streams

    person.client.post(f"/api/jobs/{job_id}/cancel")
    expect(row.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(card.get_by_test_id("account-state")).to_have_text("idle")
    expect(page.get_by_test_id("job-row")).to_have_count(2)
    expect(page.locator('[data-testid="run-row"]')).to_have_count(2)
    assert len(streams) == 1, streams


# -- phone --------------------------------------------------------------------------------------


@pytest.mark.dovecot
def test_phone_width_mid_sync_has_no_horizontal_overflow(
    browser: Browser, people: Callable[..., Person], imap_user: ImapUser
) -> None:
    total = 100
    fill_inbox(imap_user, total)
    person = people()
    finished = person.start_job("selftest", {"steps": 2, "step_ms": 0})
    person.wait_job(finished)
    # Slower than elsewhere: the layout is measured while the sync is surely still running.
    with Proxy(imap_user.port, delay=2 * IMAP_DELAY) as proxy:
        account = person.add_account(
            imap_account_body(f"phone-{uuid.uuid4().hex}", imap_user, port=proxy.port)
        )
        page = person.open(browser, viewport=PHONE)
        person.login(page)
        card = account_card(page, account["id"])
        card.get_by_test_id("sync-now").click()
        wait_progress(card, "account-progress", 10, timeout=30)
        expect(card.get_by_test_id("account-state")).to_have_text("fetching")
        expect(page.get_by_test_id("job-row")).to_have_count(2)
        mid = page.evaluate(OVERFLOWING)
        # The jobs table turned into cards; the buttons are on screen.
        job_display = page.get_by_test_id("job-row").first.evaluate(
            "(row) => getComputedStyle(row).display"
        )
        for button in (card.get_by_test_id("sync-now"), page.get_by_test_id("logout")):
            expect(button).to_be_in_viewport()
            box = button.bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"], box
        expect(card.get_by_test_id("account-state")).to_have_text("completed", timeout=40_000)
    expect(card.locator('[data-role="messages"]')).to_have_text(f"{total}")
    end = page.evaluate(OVERFLOWING)
    for seen in (mid, end):
        assert seen["width"] == PHONE["width"], seen
        assert seen["scrollWidth"] <= seen["width"], seen
        assert seen["out"] == [], seen
    assert job_display == "block"


# -- live connection ----------------------------------------------------------------------------


@pytest.fixture
def split_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A web-only server with its worker in another process: the web side can restart
    while jobs go on."""
    started = start_server(tmp_path / "split", env=ENV, worker=False)
    worker = start_worker_process(started.env, log=tmp_path / "worker.log")
    try:
        yield started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        started.stop()
    _assert_clean_log(started)


def test_connection_indicator_reconnects_and_replays_missed_events(
    split_server: ServerProcess, browser: Browser, people: Callable[..., Person]
) -> None:
    server = split_server
    person = people(server)
    page = person.open(browser)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    received: list[tuple[float, int, str]] = []

    def on_message(event: dict[str, Any]) -> None:
        # A heartbeat has no id of its own: Chromium reports the stream's last one with it.
        if event.get("eventId") and event["eventName"] != "heartbeat":
            received.append((time.monotonic(), int(event["eventId"]), event["eventName"]))

    cdp.on("Network.eventSourceMessageReceived", on_message)
    streams: list[str] = []

    def on_request(request: Request) -> None:
        if urlsplit(request.url).path == "/api/events":
            streams.append(request.url)

    page.on("request", on_request)
    person.login(page)
    page.evaluate(RECORD_CONNECTION)
    conn = page.get_by_test_id("conn-status")

    steps = 120
    job_id = person.start_job("selftest", {"steps": steps, "step_ms": 60})
    row = job_row(page, job_id)
    wait_progress(row, "job-progress", 5)

    server.stop()
    cut = time.monotonic()
    expect(conn).to_have_attribute("data-state", re.compile("reconnecting|polling"))
    expect(conn).to_have_attribute("data-state", "polling")
    expect(conn).to_have_attribute("data-polling", "true")
    # The job goes on in the worker while the web side is down.
    progressed = wait_for(lambda: _job_progress(server, job_id) >= 20, timeout=15, interval=0.1)
    assert progressed
    with server.app() as opened:
        written_while_down = [e.id for e in opened.queue.events(job_id, limit=10_000)]
    restart_server(server)
    expect(conn).to_have_attribute("data-state", "live", timeout=30_000)
    expect(conn).to_have_attribute("data-polling", "false")
    expect(conn).to_have_text("live")

    states: list[str] = page.evaluate("window.__connStates")
    assert states[0] == "live" and states[-1] == "live", states
    assert "polling" in states and states.index("polling") > 0, states
    assert states[1] in ("reconnecting", "polling"), states

    # The stream came back asking for what it missed, and the server sent all of it.
    seen_before = [i for t, i, _ in received if t < cut]
    assert seen_before, received
    resumed = [u for u in streams if "last_event_id" in u]
    assert resumed, streams
    asked = [int(parse_qs(urlsplit(u).query)["last_event_id"][0]) for u in resumed]
    assert asked[-1] == max(seen_before), (asked, seen_before)
    missed = [i for i in written_while_down if i > asked[-1]]
    assert len(missed) >= 5, (missed, asked)
    ids = [i for _, i, _ in received]
    assert set(missed) <= set(ids), sorted(set(missed) - set(ids))
    assert len(ids) == len(set(ids)), "an event arrived twice"

    # And live updates flow again: the bar moves on to the end.
    expect(row.get_by_test_id("job-status")).to_have_text("completed", timeout=30_000)
    expect(row.locator('[data-role="step"]')).to_have_text(re.compile(rf"^steps: {steps}\b"))
    expect(page.get_by_test_id("job-row")).to_have_count(1)


def _job_progress(server: ServerProcess, job_id: str) -> int:
    with server.app() as opened:
        job = opened.queue.get(job_id)
    return int(job.to_dict()["progress"]["current"] or 0)


# -- notifications ------------------------------------------------------------------------------


@pytest.mark.dovecot
def test_notification_only_for_own_syncs_and_only_after_permission(
    browser: Browser, people: Callable[..., Person], imap_user: ImapUser
) -> None:
    fill_inbox(imap_user, 3)
    person = people()
    name = f"notes-{uuid.uuid4().hex[:6]}"
    account = person.add_account(imap_account_body(name, imap_user))
    page = person.open(browser)
    page.add_init_script(FAKE_NOTIFICATIONS)
    person.login(page)
    enable = page.get_by_test_id("notify-enable")
    expect(enable).to_be_visible()
    card = account_card(page, account["id"])

    # Before permission: a finished sync shows no notification, and nobody asked.
    card.get_by_test_id("sync-now").click()
    expect(card.locator('[data-role="messages"]')).to_have_text("3", timeout=30_000)
    first = person.client.get("/api/jobs", params={"kind": "sync"}).json()[0]
    expect(job_row(page, first["id"]).get_by_test_id("job-status")).to_have_text("completed")
    assert page.evaluate("window.__notifications.asked()") == 0
    assert page.evaluate("window.__notifications.shown") == []

    enable.click()
    expect(enable).to_be_hidden()
    assert page.evaluate("window.__notifications.asked()") == 1

    # A job started elsewhere (the API) is not this tab's to announce.
    elsewhere = person.start_job("selftest", {"steps": 2, "step_ms": 10})
    run = page.locator(f'[data-testid="run-row"][data-job-id="{elsewhere}"]')
    expect(run).to_have_count(1)
    assert page.evaluate("window.__notifications.shown") == []

    card.get_by_test_id("sync-now").click()
    page.wait_for_function("() => window.__notifications.shown.length > 0", timeout=30_000)
    jobs = person.client.get("/api/jobs", params={"kind": "sync"}).json()
    second = jobs[0]
    assert second["id"] != first["id"] and second["status"] == "completed", jobs
    shown = page.evaluate("window.__notifications.shown")
    assert shown == [
        {"title": f"Sync of {name} completed", "body": shown[0]["body"], "tag": shown[0]["tag"]}
    ]
    assert second["id"] in shown[0]["tag"]
    assert imap_user.username not in shown[0]["body"]
    # Exactly one, even as more updates about the job come in.
    expect(page.locator(f'[data-testid="run-row"][data-job-id="{second["id"]}"]')).to_have_count(1)
    assert len(page.evaluate("window.__notifications.shown")) == 1
