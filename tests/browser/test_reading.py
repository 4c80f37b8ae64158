"""The dashboard's Mail view in headless Chromium against a real ``inboxd serve``: search,
list (newest first, unread bold, load more), folders, threads, and reading a message whose
HTML tries to run scripts and load remote content.

What a hostile message does is watched from outside the page: its scripts would call a
loopback "catcher" server and set the page's title, and its remote image lives on the same
catcher, so a request reaching it is proof that something ran or loaded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.apps import wait_for
from tests.support.dashboard import logged_in_tab
from tests.support.mail import MALFORMED
from tests.support.server import ServerProcess, served

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
}
#: Messages in the Archive folder: more than one page of the list (50).
ARCHIVE = 60
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

expect.set_options(timeout=15_000)


class Catcher:
    """A loopback HTTP server that records every path asked of it."""

    def __init__(self) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = PNG if self.path.endswith(".png") else b"caught"
                self.send_response(200)
                self.send_header("Content-Type", "image/png" if body is PNG else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _hostile(catcher: str) -> bytes:
    """An HTML message that tries every way to run code or call home."""
    html = f"""<html><head><title>inner</title>
<script>parent.document.title = 'pwned'; fetch('{catcher}/script');</script>
<style>body {{ background: url('{catcher}/css.png'); }}</style>
<meta http-equiv="refresh" content="0; url={catcher}/refresh">
</head><body onload="fetch('{catcher}/onload')">
<p id="hello">Hello from a hostile message</p>
<img src="x" onerror="top.document.title='pwned'; fetch('{catcher}/onerror')">
<img src="{catcher}/remote.png" alt="remote">
<svg><script>fetch('{catcher}/svg')</script></svg>
<iframe src="{catcher}/frame"></iframe>
<a href="javascript:fetch('{catcher}/js')">click me</a>
<form action="{catcher}/form"><input name="q"></form>
</body></html>"""
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@example.net>"
    msg["To"] = "admin@example.com"
    msg["Subject"] = "Evil greetings"
    msg["Date"] = format_datetime(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    msg["Message-ID"] = "<evil@example.net>"
    msg.set_content("Hello from a hostile message (text part)")
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def _message(n: int, subject: str, *, when: datetime, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender {n} <sender{n}@example.org>"
    msg["To"] = "admin@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<m{n}@example.org>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"Body of message {n}: {subject}\n")
    return msg.as_bytes()


def _maildir(root: Path, catcher: str) -> None:
    """INBOX: the hostile message (unread), a plain one (read) and a reply to it; Work: one
    with an attachment; Archive: a page and more of old mail and a broken message."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    folders: dict[str, list[tuple[str, bytes]]] = {"": [], ".Work": [], ".Archive": []}
    folders[""].append(("1.evil:2,", _hostile(catcher)))
    folders[""].append(("2.plain:2,S", _message(2, "Lunch plans", when=start + timedelta(59))))
    reply = _message(
        3,
        "Re: Lunch plans",
        when=start + timedelta(59, hours=2),
        In_Reply_To="<m2@example.org>",
        References="<m2@example.org>",
    )
    folders[""].append(("3.reply:2,S", reply))
    files = EmailMessage()
    files["From"] = "Office <office@example.org>"
    files["Subject"] = "Quarterly report attached"
    files["Date"] = format_datetime(start + timedelta(50))
    files["Message-ID"] = "<files@example.org>"
    files.set_content("The report is attached.")
    files.add_attachment(
        b"%PDF-1.4 tiny", maintype="application", subtype="pdf", filename="report.pdf"
    )
    folders[".Work"].append(("4.files:2,S", files.as_bytes()))
    for n in range(ARCHIVE):
        raw = _message(100 + n, f"Old news {n}", when=start + timedelta(hours=n))
        folders[".Archive"].append((f"{100 + n}.old:2,S", raw))
    folders[".Archive"].append(("999.broken:2,S", MALFORMED))
    for folder, items in folders.items():
        for sub in ("cur", "new", "tmp"):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
        for name, raw in items:
            (root / folder / "cur" / name).write_bytes(raw)


@pytest.fixture(scope="module")
def catcher() -> Iterator[Catcher]:
    started = Catcher()
    yield started
    started.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("reading"), ENV) as started:
        yield started


@pytest.fixture(scope="module")
def mail_root(catcher: Catcher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Maildir tree the account reads."""
    root = tmp_path_factory.mktemp("mail") / "Maildir"
    _maildir(root, catcher.url)
    return root


@pytest.fixture(scope="module")
def account(server: ServerProcess, mail_root: Path) -> dict[str, Any]:
    """A Maildir account of the admin, synced."""
    root = mail_root
    with server.client() as client:
        made = client.post(
            "/api/accounts",
            json={"provider": "maildir", "name": "Local mail", "settings": {"path": str(root)}},
        )
        assert made.status_code == 201, made.text
        found: dict[str, Any] = made.json()
        job_id = client.post(f"/api/accounts/{found['id']}/sync").json()["job_id"]

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        job = wait_for(finished, timeout=60)
        assert job["status"] == "completed", job

        def settled() -> bool:
            # The sync queues the index job (full text, threads): let it finish too.
            jobs = client.get("/api/jobs").json()
            return all(j["status"] in ("completed", "failed", "cancelled") for j in jobs)

        wait_for(settled, timeout=60)
    return found


@pytest.fixture
def page(browser: Browser, server: ServerProcess, account: dict[str, Any]) -> Iterator[Page]:
    """A logged-in tab on the Mail view; afterwards it must not have thrown."""
    with logged_in_tab(browser, server, "mail") as tab:
        yield tab


def _row(page: Page, subject: str) -> Locator:
    return page.get_by_test_id("mail-row").filter(has_text=subject)


def test_list_is_newest_first_unread_bold_and_pages_on(page: Page) -> None:
    rows = page.get_by_test_id("mail-row")
    expect(rows).to_have_count(50)
    # Newest first by the Date header; the broken message has none that can be read, so it
    # sorts by when it was first seen (now).
    subjects = rows.evaluate_all("rs => rs.map(r => r.querySelector('.mail-subject').textContent)")
    dated = [s for s in subjects if "broken" not in s]
    assert dated[:5] == [
        "Evil greetings",
        "Re: Lunch plans",
        "Lunch plans",
        "Quarterly report attached",
        "Old news 59",
    ], subjects
    clip = _row(page, "Quarterly report attached").locator("svg.mail-clip")
    expect(clip).to_have_attribute("aria-label", "has attachments")
    expect(_row(page, "Evil greetings").locator("svg.mail-clip")).to_have_count(0)
    evil = _row(page, "Evil greetings")
    assert "unread" in (evil.get_attribute("class") or "")
    weight = evil.locator(".mail-subject").evaluate("e => getComputedStyle(e).fontWeight")
    assert int(weight) >= 700
    plain = _row(page, "Lunch plans").last
    assert "unread" not in (plain.get_attribute("class") or "")
    weight = plain.locator(".mail-subject").evaluate("e => getComputedStyle(e).fontWeight")
    assert int(weight) < 700
    page.get_by_test_id("mail-more").click()
    expect(rows).to_have_count(3 + 1 + ARCHIVE + 1)
    expect(page.get_by_test_id("mail-more")).to_be_hidden()
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.messageId)")
    assert len(set(ids)) == len(ids)  # keyset pages neither repeat nor skip


def test_a_bad_query_is_explained_and_a_good_one_filters(page: Page) -> None:
    expect(page.get_by_test_id("mail-row")).to_have_count(50)
    query = page.get_by_test_id("mail-query")
    query.fill('"never closed')
    query.press("Enter")
    error = page.get_by_test_id("mail-query-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    query.fill("Quarterly")
    query.press("Enter")
    expect(error).to_be_hidden()
    expect(page.get_by_test_id("mail-row")).to_have_count(1)
    expect(page.get_by_test_id("mail-row")).to_contain_text("Quarterly report attached")


def test_a_folder_click_lists_that_folder_and_files_are_links(
    page: Page, account: dict[str, Any], server: ServerProcess
) -> None:
    folder = page.get_by_test_id("folder-link").filter(has_text="Work")
    expect(folder).to_contain_text("1")
    folder.click()
    expect(page.get_by_test_id("mail-query")).to_have_value(f"folder:Work account:{account['id']}")
    rows = page.get_by_test_id("mail-row")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Quarterly report attached")
    link = page.get_by_test_id("attachment-link")
    expect(link).to_have_text("report.pdf")
    href = link.get_attribute("href") or ""
    message_id = rows.first.get_attribute("data-message-id")
    assert href == f"/api/messages/{message_id}/attachments/0"
    # With the page's own session cookie, as a click on the link would.
    response = page.request.get(server.base_url + href)
    assert response.status == 200 and response.body() == b"%PDF-1.4 tiny"
    expect(page.get_by_test_id("reader-text")).to_contain_text("The report is attached.")
    expect(page.get_by_test_id("reader-headers")).to_contain_text("Work")


def test_parse_notes_of_a_broken_message_are_shown(page: Page) -> None:
    page.get_by_test_id("folder-link").filter(has_text="Archive").click()
    page.get_by_test_id("mail-query").fill(
        page.get_by_test_id("mail-query").input_value() + " broken"
    )
    page.get_by_test_id("mail-query").press("Enter")
    rows = page.get_by_test_id("mail-row")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.get_by_test_id("reader-notes")).to_be_visible()
    expect(page.get_by_test_id("reader-notes").locator("li").first).not_to_be_empty()


def test_threads_group_a_reply_with_its_message(page: Page) -> None:
    page.get_by_test_id("mail-mode").select_option("threads")
    rows = page.get_by_test_id("thread-row")
    expect(rows.first).to_be_visible()
    lunch = rows.filter(has_text="Lunch plans").first
    lunch.click()
    thread = page.get_by_test_id("reader-thread")
    expect(thread).to_be_visible()
    messages = page.get_by_test_id("thread-message")
    expect(messages).to_have_count(2)  # oldest first: the message, then the reply
    expect(page.locator("#thread-count")).to_have_text("2 messages")
    expect(messages.last).to_contain_text("Sender 3")
    messages.first.click()
    expect(page.get_by_test_id("reader-message")).to_be_visible()
    expect(page.get_by_test_id("reader-subject")).to_contain_text("Lunch plans")
    page.get_by_test_id("reader-back").click()
    expect(thread).to_be_visible()


def test_a_hostile_message_runs_nothing_and_loads_remote_content_only_when_asked(
    page: Page, catcher: Catcher, server: ServerProcess
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    caught_before = len(catcher.seen)
    _row(page, "Evil greetings").click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Evil greetings")
    frame_element = page.get_by_test_id("reader-frame")
    expect(frame_element).to_have_attribute("src", re.compile(r"/html\?remote=0$"))
    sandbox = frame_element.get_attribute("sandbox") or ""
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    inner = page.frame_locator('[data-testid="reader-frame"]')
    expect(inner.locator("body")).to_contain_text("Hello from a hostile message")
    remote = page.get_by_test_id("reader-remote")
    expect(remote).to_be_visible()

    page.wait_for_timeout(1500)  # what would run or load has had its chance
    assert page.title() == "inboxd"
    assert catcher.seen[caught_before:] == []
    assert [url for url in requests if url.startswith(catcher.url)] == []
    # The API never hands out the script either (the frame would not run it anyway).
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}
    ) as client:
        message_id = page.get_by_test_id("reader-message").get_attribute("data-message-id")
        html = client.get(f"/api/messages/{message_id}/html").text
    assert "<script" not in html.lower() and "onerror" not in html.lower()

    page.get_by_test_id("show-remote").click()
    expect(frame_element).to_have_attribute("src", re.compile(r"remote=1$"))
    expect(remote).to_be_hidden()
    wait_for(lambda: "/remote.png" in catcher.seen[caught_before:], timeout=10)
    page.wait_for_timeout(1000)
    ran = [p for p in catcher.seen[caught_before:] if not p.endswith(".png")]
    assert ran == [], ran
    assert page.title() == "inboxd"
    expect(inner.locator("body")).to_contain_text("Hello from a hostile message")


def test_the_mail_view_fits_a_phone(
    browser: Browser, server: ServerProcess, account: dict[str, Any]
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        tab = context.new_page()
        tab.goto(server.base_url + "/#mail")
        tab.get_by_test_id("login-key").fill(server.admin_key)
        tab.get_by_test_id("login-submit").click()
        expect(tab.get_by_test_id("mail-panel")).to_be_visible()
        expect(tab.get_by_test_id("tab-mail")).to_have_attribute("aria-current", "page")
        _row(tab, "Quarterly report attached").click()
        expect(tab.get_by_test_id("attachment-link")).to_be_visible()
        # The reader sits below the list here: opening a message brings it into view.
        expect(tab.get_by_test_id("reader-subject")).to_be_in_viewport()
        widths = tab.evaluate(
            "() => [document.documentElement.clientWidth, document.documentElement.scrollWidth]"
        )
        assert widths[1] <= widths[0], widths
    finally:
        context.close()


def test_new_mail_shows_up_without_a_reload(
    page: Page, server: ServerProcess, account: dict[str, Any], mail_root: Path
) -> None:
    # Last in this module: the message it adds would change the counts the others expect.
    rows = page.get_by_test_id("mail-row")
    expect(rows).to_have_count(50)
    when = datetime(2026, 6, 1, tzinfo=UTC)
    (mail_root / "cur" / "5.fresh:2,").write_bytes(_message(5, "Fresh off the press", when=when))
    with server.client() as client:
        assert client.post(f"/api/accounts/{account['id']}/sync").status_code == 202
    fresh = _row(page, "Fresh off the press")
    expect(fresh).to_be_visible(timeout=30_000)
    assert "unread" in (fresh.get_attribute("class") or "")
    subjects = rows.evaluate_all("rs => rs.map(r => r.querySelector('.mail-subject').textContent)")
    # The newest dated message (only the undated broken one, seen "now", may come first).
    assert "Fresh off the press" in subjects[:2], subjects[:3]
    inbox = page.get_by_test_id("folder-link").filter(has_text="INBOX")
    expect(inbox.locator(".folder-count")).to_have_text("4")
