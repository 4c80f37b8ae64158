"""The dashboard's triage views in headless Chromium against a real ``inboxd serve``: the
counts per category (each a filter), the Top view (today's, else the last 7 days', with
reasons), the category filter and badges, and changing a category in one step from the
reader, for the message and (when asked) for its sender.

The test sets the triage columns itself once the server's own jobs have settled, so what the
page must show is known exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import update

from inboxd.db.engine import writing
from inboxd.db.tables import messages
from tests.support.apps import wait_for
from tests.support.dashboard import logged_in_tab
from tests.support.server import ServerProcess, served

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
}

expect.set_options(timeout=15_000)

#: subject -> sender, age in days (0: today), category, priority, reasons (None: untriaged).
MAIL: dict[str, tuple[str, int, str | None, int | None, list[str]]] = {
    "Please approve the budget": (
        "Boss <boss@example.org>",
        0,
        "action_required",
        95,
        ["asks you to approve", "sent directly to you"],
    ),
    "Lunch tomorrow?": ("Friend <friend@example.org>", 0, "personal", 70, ["you wrote to them"]),
    "Weekly digest": ("News <news@example.com>", 0, "newsletter", 15, ["List-Unsubscribe"]),
    "Digest number two": ("News <news@example.com>", 0, "newsletter", 10, ["List-Unsubscribe"]),
    "Your invoice": ("Shop <shop@example.com>", 3, "receipt", 40, ["invoice attached"]),
    "Old discussion": ("List <list@example.net>", 30, "forum", 50, ["List-Id"]),
    "Untriaged note": ("Someone <someone@example.net>", 0, None, None, []),
}


def _maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n, (subject, (sender, days, *_)) in enumerate(MAIL.items()):
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = "admin@example.com"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(days=days or 1))
        msg["Message-ID"] = f"<t{n}@example.org>"
        msg.set_content(f"Body of {subject}\n")
        (root / "cur" / f"{100 + n}.t:2,").write_bytes(msg.as_bytes())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("triage-view"), ENV) as started:
        yield started


def _settle(client: Any) -> None:
    def settled() -> bool:
        jobs = client.get("/api/jobs").json()
        return all(j["status"] in ("completed", "failed", "cancelled") for j in jobs)

    wait_for(settled, timeout=90)


@pytest.fixture(scope="module")
def account(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The admin's Maildir account, synced, its mail triaged as MAIL says."""
    root = tmp_path_factory.mktemp("mail") / "Maildir"
    _maildir(root)
    with server.client() as client:
        made = client.post(
            "/api/accounts",
            json={"provider": "maildir", "name": "Local mail", "settings": {"path": str(root)}},
        )
        assert made.status_code == 201, made.text
        found: dict[str, Any] = made.json()
        client.post(f"/api/accounts/{found['id']}/sync")
        wait_for(lambda: client.get(f"/api/accounts/{found['id']}").json()["message_count"], 60)
        _settle(client)  # the sync, its index job and whatever follows it
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with server.app() as opened, writing(opened.engine) as conn:
        for n, (subject, (_sender, days, category, priority, reasons)) in enumerate(MAIL.items()):
            when = (
                midnight + (now - midnight) * (n + 1) / 10 if days == 0 else now - timedelta(days)
            )
            conn.execute(
                update(messages)
                .where(messages.c.subject == subject)
                .values(
                    sort_date=when,
                    category=category,
                    priority=priority,
                    confidence=None if category is None else 0.9,
                    reasons=reasons if category else None,
                    triage_source=None if category is None else "headers",
                    triaged_at=None if category is None else now,
                )
            )
    return found


@pytest.fixture
def page(browser: Browser, server: ServerProcess, account: dict[str, Any]) -> Iterator[Page]:
    """A logged-in tab on the Mail view; afterwards it must not have thrown."""
    with logged_in_tab(browser, server, "mail") as tab:
        yield tab


def _expect_subjects(page: Page, subjects: list[str]) -> None:
    expect(page.get_by_test_id("mail-row").locator(".mail-subject")).to_have_text(subjects)


def _subjects(page: Page) -> list[str]:
    rows = page.get_by_test_id("mail-row")
    return [
        str(s)
        for s in rows.evaluate_all(
            "rs => rs.map(r => r.querySelector('.mail-subject').textContent)"
        )
    ]


def _count(page: Page, category: str) -> Locator:
    return page.get_by_test_id("category-link").and_(page.locator(f"[data-category={category}]"))


def test_counts_per_category_filter_the_list(page: Page) -> None:
    counts = page.get_by_test_id("category-counts")
    expect(counts).to_have_count(1)
    expect(_count(page, "newsletter").locator(".folder-count")).to_have_text("2")
    expect(_count(page, "action_required")).to_contain_text("Action required")
    expect(_count(page, "action_required").locator(".folder-count")).to_have_text("1")
    expect(_count(page, "spam").locator(".folder-count")).to_have_text("0")
    expect(_count(page, "untriaged").locator(".folder-count")).to_have_text("1")
    expect(_count(page, "newsletter")).to_have_attribute("aria-label", "Newsletter: 2 messages")
    # A button: the keyboard opens it as a click does.
    _count(page, "newsletter").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("mail-row")).to_have_count(2)
    assert sorted(_subjects(page)) == ["Digest number two", "Weekly digest"]
    expect(page.get_by_test_id("mail-category")).to_have_value("newsletter")
    expect(_count(page, "newsletter")).to_have_attribute("aria-current", "true")
    badges = page.get_by_test_id("mail-row").get_by_test_id("category-badge")
    expect(badges).to_have_text(["Newsletter", "Newsletter"])


def test_category_filter_and_badges_on_the_list(page: Page) -> None:
    expect(page.get_by_test_id("mail-row")).to_have_count(len(MAIL))
    row = page.get_by_test_id("mail-row").filter(has_text="Please approve the budget")
    expect(row.get_by_test_id("category-badge")).to_have_text("Action required")
    untriaged = page.get_by_test_id("mail-row").filter(has_text="Untriaged note")
    expect(untriaged.get_by_test_id("category-badge")).to_have_count(0)
    page.get_by_label("Filter by category").select_option("personal")
    _expect_subjects(page, ["Lunch tomorrow?"])
    page.get_by_label("Filter by category").select_option("untriaged")
    _expect_subjects(page, ["Untriaged note"])
    # With a query, and most important first.
    page.get_by_label("Filter by category").select_option("")
    page.get_by_test_id("mail-sort").select_option("priority")
    _expect_subjects(
        page,
        [
            "Please approve the budget",
            "Lunch tomorrow?",
            "Old discussion",
            "Your invoice",
            "Weekly digest",
            "Digest number two",
            "Untriaged note",
        ],
    )
    page.get_by_test_id("mail-query").fill("digest OR invoice")
    page.get_by_label("Filter by category").select_option("newsletter")
    _expect_subjects(page, ["Weekly digest", "Digest number two"])


def test_top_view_shows_today_with_reasons_then_the_week(page: Page) -> None:
    page.get_by_test_id("tab-top").click()
    expect(page.get_by_test_id("tab-top")).to_have_attribute("aria-current", "page")
    note = page.get_by_test_id("top-note")
    expect(note).to_have_text("The most important messages of today.")
    _expect_subjects(
        page, ["Please approve the budget", "Lunch tomorrow?", "Weekly digest", "Digest number two"]
    )
    first = page.get_by_test_id("mail-row").first
    expect(first.get_by_test_id("mail-reasons")).to_have_text(
        "asks you to approve · sent directly to you"
    )
    expect(first.get_by_test_id("mail-priority")).to_have_text("95")
    # Nothing of this category today: the last 7 days, and the page says so.
    page.get_by_label("Filter by category").select_option("receipt")
    expect(note).to_contain_text("Nothing important arrived today")
    expect(note).to_have_attribute("data-since", "7d")
    _expect_subjects(page, ["Your invoice"])
    page.get_by_label("Filter by category").select_option("spam")
    expect(note).to_have_text("No triaged message in the last 7 days.")
    expect(page.get_by_test_id("mail-row")).to_have_count(0)
    # A message opens from the Top view in the same reader.
    page.get_by_label("Filter by category").select_option("")
    page.get_by_test_id("mail-row").first.click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Please approve the budget")
    expect(page.get_by_test_id("reader-reasons").locator("li")).to_have_text(
        ["asks you to approve", "sent directly to you"]
    )
    page.get_by_test_id("tab-mail").click()
    expect(note).to_be_hidden()
    expect(page.get_by_test_id("mail-row")).to_have_count(len(MAIL))


def test_changing_a_category_in_one_step_for_the_sender_too(
    page: Page, server: ServerProcess
) -> None:
    page.get_by_test_id("mail-row").filter(has_text="Weekly digest").click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Weekly digest")
    menu = page.get_by_label("Category", exact=True)
    expect(menu).to_have_value("newsletter")
    expect(page.get_by_test_id("reader-priority")).to_contain_text("Newsletter · priority 15")
    page.get_by_label("Always for this sender").check()
    menu.select_option("promotion")
    status = page.get_by_test_id("reader-category-status")
    expect(status).to_have_text("Filed as Promotion; mail from news@example.com will be too.")
    row = page.get_by_test_id("mail-row").filter(has_text="Weekly digest")
    expect(row.get_by_test_id("category-badge")).to_have_text("Promotion")
    expect(_count(page, "promotion").locator(".folder-count")).not_to_have_text("0")
    with server.client() as client:
        message = next(
            m
            for m in client.get("/api/messages", params={"q": "subject:weekly"}).json()["messages"]
        )
        assert message["category"] == "promotion"
        rules = client.get("/api/rules").json()["rules"]
        assert any(r["source"] == "sender" and r["category"] == "promotion" for r in rules), rules
        _settle(client)  # the sender's other mail is re-triaged by a job

        def second() -> bool:
            found = client.get("/api/messages", params={"q": "subject:two"}).json()["messages"]
            return bool(found) and found[0]["category"] == "promotion"

        wait_for(second, timeout=60)
    # Only the one message, without the box: nothing else changes.
    page.get_by_test_id("mail-row").filter(has_text="Lunch tomorrow?").click()
    expect(page.get_by_test_id("reader-subject")).to_have_text("Lunch tomorrow?")
    expect(page.get_by_label("Category", exact=True)).to_have_value("personal")
    expect(page.get_by_label("Always for this sender")).not_to_be_checked()
    page.get_by_label("Category", exact=True).select_option("action_required")
    expect(page.get_by_test_id("reader-category-status")).to_have_text("Filed as Action required.")
    expect(_count(page, "action_required").locator(".folder-count")).to_have_text("2")
