"""The Newsletters tab in headless Chromium against a real ``inboxd serve`` whose network
resolution is off (no link is requested by anyone): an extraction started from the form
completes, its newsletters show their articles as outside links, the unsubscribe link is
among the rejected ones with its reason, a script URL never becomes an href, and the
export links point at the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.support.apps import wait_for
from tests.support.dashboard import logged_in_tab
from tests.support.server import ServerProcess, served

ENV = {
    "INBOXD_SYNC_INTERVAL_SECONDS": "0",
    "INBOXD_JOBS_RATE_PER_MINUTE": "100000",
    "INBOXD_LOGIN_RATE_PER_MINUTE": "100000",
    "INBOXD_NEWSLETTER_RESOLVE": "false",
}
FINISHED = ("completed", "failed", "cancelled")
HTML = """<html><body>
<a href="https://articles.example/one">The first story</a>
<a href="https://articles.example/two?utm_source=mail">The second story</a>
<a href="javascript:alert(1)">Not a link</a>
<a href="https://news.example/unsubscribe?u=2">Unsubscribe</a>
</body></html>"""

expect.set_options(timeout=15_000)


def _newsletter(n: int, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Weekly <weekly@news.example>"
    msg["To"] = "admin@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(hours=2 + n))
    msg["Message-ID"] = f"<issue{n}@news.example>"
    msg["List-Id"] = "Weekly <weekly.news.example>"
    msg["List-Unsubscribe"] = "<https://lists.example/unsubscribe?u=1>"
    msg.set_content("See the HTML part.\n")
    msg.add_alternative(HTML, subtype="html")
    return msg.as_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("news-view"), ENV) as started:
        yield started


@pytest.fixture(scope="module")
def mail_root(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's Maildir account holding two issues of one newsletter, synced."""
    root = tmp_path_factory.mktemp("mail") / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for n, subject in enumerate(["Weekly 1", "Weekly 2"]):
        (root / "cur" / f"{n}.news:2,S").write_bytes(_newsletter(n, subject))
    with server.client() as client:
        made = client.post(
            "/api/accounts",
            json={"provider": "maildir", "name": "Local mail", "settings": {"path": str(root)}},
        )
        assert made.status_code == 201, made.text
        account_id = made.json()["id"]
        client.post(f"/api/accounts/{account_id}/sync")
        wait_for(lambda: client.get(f"/api/accounts/{account_id}").json()["message_count"], 30)

        def settled() -> bool:
            return all(j["status"] in FINISHED for j in client.get("/api/jobs").json())

        wait_for(settled, timeout=30)
    return root


@pytest.fixture
def page(browser: Browser, server: ServerProcess, mail_root: Path) -> Iterator[Page]:
    """A logged-in tab on the Newsletters view; afterwards it must not have thrown."""
    with logged_in_tab(browser, server, "newsletters") as tab:
        yield tab


def _started(response: Response) -> bool:
    return (
        response.url.endswith("/api/newsletters/extractions") and response.request.method == "POST"
    )


def test_extract_read_rejected_and_export(page: Page, server: ServerProcess) -> None:
    form = page.get_by_test_id("extraction-form")
    form.get_by_label("Account").select_option(label="Local mail (maildir)")
    form.get_by_test_id("extraction-window").fill("2")
    form.get_by_test_id("extraction-unit").select_option("days")
    form.get_by_test_id("extraction-max").fill("10")
    form.get_by_test_id("extraction-senders").fill("weekly@news.example, nobody@else.example")
    with page.expect_response(_started) as started:
        page.get_by_test_id("extraction-start").click()
    assert started.value.status == 202, started.value.text()
    asked = started.value.request.post_data_json
    assert isinstance(asked, dict)
    assert asked["days_back"] == 2 and asked["max_results"] == 10
    assert asked["senders"] == ["weekly@news.example", "nobody@else.example"]
    job_id = started.value.json()["extraction_id"]
    expect(page).to_have_url(f"{server.base_url}/#newsletters/{job_id}")

    box = page.get_by_test_id("extraction")
    expect(box.get_by_test_id("extraction-status")).to_have_text("completed")
    letters = box.get_by_test_id("newsletter")
    expect(letters).to_have_count(2)
    expect(letters.get_by_test_id("newsletter-subject")).to_have_text(["Weekly 1", "Weekly 2"])
    first = letters.first
    expect(first.get_by_test_id("newsletter-meta")).to_contain_text("weekly@news.example")
    links = first.get_by_test_id("article-link")
    expect(links).to_have_count(2)
    hrefs = [link.get_attribute("href") or "" for link in links.all()]
    assert hrefs[0] == "https://articles.example/one"
    assert hrefs[1].startswith("https://articles.example/two")
    assert "utm_source" not in hrefs[1]
    for link in links.all():
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        expect(link).to_have_attribute("target", "_blank")
    # No href anywhere in the result is anything but a web link.
    for href in box.locator("#extraction-newsletters a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    ):
        assert href.startswith(("https://", "http://")), href

    rejected = first.get_by_test_id("newsletter-rejected")
    expect(rejected).not_to_have_attribute("open", "")
    rows = rejected.get_by_test_id("rejected-link")
    unsubscribe = rows.filter(has_text="news.example/unsubscribe")
    expect(unsubscribe).to_be_hidden()
    rejected.locator("summary").click()
    expect(unsubscribe).to_have_count(1)
    expect(unsubscribe.get_by_test_id("rejected-reason")).to_have_text("unsubscribe")
    expect(unsubscribe.locator("a")).to_have_count(0)

    base = f"/api/newsletters/extractions/{job_id}/export"
    expect(box.get_by_test_id("extraction-export-json")).to_have_attribute(
        "href", f"{base}?format=json"
    )
    expect(box.get_by_test_id("extraction-export-text")).to_have_attribute(
        "href", f"{base}?format=text"
    )
    exported = page.request.get(server.base_url + f"{base}?format=text")
    assert exported.ok and "https://articles.example/one" in exported.text()
    row = page.locator(f'[data-testid="extraction-row"][data-job-id="{job_id}"]')
    expect(row).to_contain_text("completed")
    expect(row).to_contain_text("2 newsletters")


def test_delete_an_ended_extraction(page: Page, server: ServerProcess) -> None:
    form = page.get_by_test_id("extraction-form")
    form.get_by_test_id("extraction-window").fill("5")
    form.get_by_test_id("extraction-unit").select_option("hours")
    with page.expect_response(_started) as started:
        page.get_by_test_id("extraction-start").click()
    job_id = started.value.json()["extraction_id"]
    box = page.get_by_test_id("extraction")
    expect(box.get_by_test_id("extraction-status")).to_have_text("completed")
    row = page.locator(f'[data-testid="extraction-row"][data-job-id="{job_id}"]')
    expect(row).to_have_count(1)
    delete = box.get_by_test_id("extraction-delete")
    delete.click()
    # The first click only asks: nothing is gone yet.
    expect(delete).to_have_text("Delete for good?")
    assert page.request.get(f"{server.base_url}/api/newsletters/extractions/{job_id}").ok
    delete.click()
    expect(page).to_have_url(f"{server.base_url}/#newsletters")
    expect(box).to_be_hidden()
    expect(row).to_have_count(0)
    gone = page.request.get(f"{server.base_url}/api/newsletters/extractions/{job_id}")
    assert gone.status == 404
