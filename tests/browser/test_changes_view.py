"""The dashboard's write-back in headless Chromium against a real ``inboxd serve``: marking
a message read and flagged from the reader (the Maildir file's flags change, and the page
shows the store's flags once the job ended), a read-only mbox account's refusal, and Undo
on a finished change in the jobs list (the flag comes off the file again).

What changed is checked outside the page: in the Maildir file names and through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.apps import wait_for
from tests.support.dashboard import logged_in_tab
from tests.support.server import ServerProcess, served

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
}
FINISHED = ("completed", "failed", "cancelled")

expect.set_options(timeout=15_000)


def _message(n: int, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender {n} <sender{n}@example.org>"
    msg["To"] = "admin@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 3, n, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<c{n}@example.org>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


def _maildir_flags(root: Path, subject: str) -> str:
    """The Maildir flags of the one file whose Subject is ``subject`` (after ``:2,``)."""
    found = [
        path
        for sub in ("cur", "new")
        for path in (root / sub).iterdir()
        if f"Subject: {subject}\n".encode() in path.read_bytes()
    ]
    assert len(found) == 1, found
    name = found[0].name
    return name.split(":2,", 1)[1] if ":2," in name else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("changes-view"), ENV) as started:
        yield started


def _add_and_sync(client: Any, provider: str, name: str, path: Path) -> str:
    made = client.post(
        "/api/accounts",
        json={"provider": provider, "name": name, "settings": {"path": str(path)}},
    )
    assert made.status_code == 201, made.text
    account_id: str = made.json()["id"]
    client.post(f"/api/accounts/{account_id}/sync")
    return account_id


@pytest.fixture(scope="module")
def mail_root(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synced Maildir account (two unread messages) and a synced mbox account."""
    base = tmp_path_factory.mktemp("mail")
    root = base / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1.a:2,").write_bytes(_message(1, "Read me"))
    (root / "cur" / "2.b:2,").write_bytes(_message(2, "Leave me"))
    mbox = base / "archive.mbox"
    mbox.write_bytes(
        b"From sender3@example.org Tue Mar  3 09:00:00 2026\n" + _message(3, "Old mbox")
    )
    with server.client() as client:
        ids = [
            _add_and_sync(client, "maildir", "Local mail", root),
            _add_and_sync(client, "mbox", "Old archive", mbox),
        ]

        def settled() -> bool:
            if not all(client.get(f"/api/accounts/{i}").json()["message_count"] for i in ids):
                return False
            return all(j["status"] in FINISHED for j in client.get("/api/jobs").json())

        wait_for(settled, timeout=60)
    return root


@pytest.fixture
def page(browser: Browser, server: ServerProcess, mail_root: Path) -> Iterator[Page]:
    """A logged-in tab on the Mail view; afterwards it must not have thrown."""
    with logged_in_tab(browser, server, "mail") as tab:
        yield tab


def _api_flags(server: ServerProcess, subject: str) -> list[str]:
    with server.client() as client:
        found = client.get("/api/messages", params={"q": f'subject:"{subject}"'}).json()
        (message,) = found["messages"]
        flags: list[str] = client.get(f"/api/messages/{message['id']}").json()["flags"]
    return flags


def _mark(page: Page, button: str) -> str:
    """Clicks a mark button of the reader; returns the change job's id."""
    with page.expect_response(lambda r: r.url.endswith("/mark")) as answer:
        page.get_by_test_id(button).click()
    assert answer.value.status == 202, answer.value.text()
    job_id: str = answer.value.json()["job_id"]
    return job_id


def test_mark_read_and_flag_from_the_reader_then_undo_the_flag(
    page: Page, server: ServerProcess, mail_root: Path
) -> None:
    row = page.get_by_test_id("mail-row").filter(has_text="Read me")
    expect(row).to_have_attribute("data-unread", "true")
    row.click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Read me")
    read = page.get_by_test_id("reader-mark-read")
    flag = page.get_by_test_id("reader-mark-flag")
    expect(read).to_have_text("Mark as read")
    expect(flag).to_have_attribute("aria-pressed", "false")

    _mark(page, "reader-mark-read")
    status = page.get_by_test_id("reader-mark-status")
    expect(status).to_have_text("Marked as read.")
    expect(read).to_have_text("Mark as unread")
    expect(page.get_by_test_id("reader-headers")).to_contain_text("seen")
    expect(row).not_to_have_attribute("data-unread", "true")
    assert "S" in _maildir_flags(mail_root, "Read me")
    assert "\\Seen" in _api_flags(server, "Read me")
    assert _maildir_flags(mail_root, "Leave me") == ""

    flag_job = _mark(page, "reader-mark-flag")
    expect(status).to_have_text("Flagged.")
    expect(flag).to_have_attribute("aria-pressed", "true")
    expect(flag).to_have_text("Unflag")
    assert "F" in _maildir_flags(mail_root, "Read me")

    # Undo the flag from the jobs list: the undo job runs there like any other.
    page.get_by_test_id("tab-overview").click()
    job_row = page.locator(f'[data-testid="job-row"][data-job-id="{flag_job}"]')
    expect(job_row.get_by_test_id("job-journal")).to_have_text("1 done")
    undo = job_row.get_by_test_id("job-undo")
    with page.expect_response(lambda r: r.url.endswith(f"/{flag_job}/undo")) as answer:
        undo.click()
    assert answer.value.status == 202, answer.value.text()
    undo_job = answer.value.json()["job_id"]
    undo_row = page.locator(f'[data-testid="job-row"][data-job-id="{undo_job}"]')
    expect(undo_row).to_have_attribute("data-status", "completed")
    expect(job_row.get_by_test_id("job-journal")).to_contain_text(f"undone by {undo_job[-8:]}")
    expect(undo).to_be_hidden()
    assert "F" not in _maildir_flags(mail_root, "Read me")
    assert "S" in _maildir_flags(mail_root, "Read me")
    flags = _api_flags(server, "Read me")
    assert "\\Flagged" not in flags and "\\Seen" in flags, flags

    # The reader, still open on the message, shows the restored state.
    page.get_by_test_id("tab-mail").click()
    expect(flag).to_have_text("Flag")
    expect(flag).to_have_attribute("aria-pressed", "false")
    expect(read).to_have_text("Mark as unread")


def test_a_read_only_mbox_account_refuses_and_says_why(page: Page, server: ServerProcess) -> None:
    page.get_by_test_id("mail-row").filter(has_text="Old mbox").click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Old mbox")
    with page.expect_response(lambda r: r.url.endswith("/mark")) as answer:
        page.get_by_test_id("reader-mark-read").click()
    assert answer.value.status in (400, 409), answer.value.text()
    expect(page.get_by_test_id("reader-mark-status")).to_contain_text("read-only")
    expect(page.get_by_test_id("reader-mark-status")).to_contain_text("Not changed")
    expect(page.get_by_test_id("reader-mark-read")).to_be_enabled()
    assert "\\Seen" not in _api_flags(server, "Old mbox")
