"""The clean-up review screen in headless Chromium against a real ``inboxd serve``: a
clean-up started from the form ends in a proposal whose candidates are grouped by sender
with their reasons, the protected mail folded away with why; deselecting one message keeps
it out of the approval (the request says so, and after the execution the message is still
where it was), the execution's outcome is shown, and Undo puts everything back.

Where the mail is is checked outside the page: through the API and in the Maildir tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect
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
FINISHED = ("completed", "failed", "cancelled")
NEWS = "News A <news@a.example>"
DEALS = "Deals B <deals@b.example>"

#: file name -> sender, subject, category (all sixty days old; "F": flagged, so protected).
MAIL: dict[str, tuple[str, str, str]] = {
    "1.n:2,": (NEWS, "Digest 1", "newsletter"),
    "2.n:2,": (NEWS, "Digest 2", "newsletter"),
    "3.n:2,": (NEWS, "Digest 3", "newsletter"),
    "4.d:2,": (DEALS, "Sale 1", "promotion"),
    "5.d:2,": (DEALS, "Sale 2", "promotion"),
    "6.n:2,F": (NEWS, "Digest kept (flagged)", "newsletter"),
}

expect.set_options(timeout=15_000)


def _bulk(n: int, sender: str, subject: str, when: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "subscribers@lists.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<bulk{n}@example.org>"
    msg["List-Id"] = "<offers.lists.example>"
    msg["List-Unsubscribe"] = "<https://lists.example/u/1>"
    msg["Precedence"] = "bulk"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


def _files(root: Path) -> list[str]:
    """Subjects of the messages in the Maildir's top folder (INBOX)."""
    return sorted(
        line.split(": ", 1)[1]
        for sub in ("cur", "new")
        for path in (root / sub).iterdir()
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ")
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with served(tmp_path_factory.mktemp("cleanup-view"), ENV) as started:
        yield started


@pytest.fixture(scope="module")
def mail_root(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin's Maildir account, synced, its mail filed as MAIL says."""
    root = tmp_path_factory.mktemp("mail") / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    old = datetime.now(UTC) - timedelta(days=60)
    for n, (name, (sender, subject, _category)) in enumerate(MAIL.items()):
        (root / "cur" / name).write_bytes(_bulk(n, sender, subject, old + timedelta(hours=n)))
    with server.client() as client:
        made = client.post(
            "/api/accounts",
            json={
                "provider": "maildir",
                "name": "Local mail",
                "settings": {"path": str(root)},
                "addresses": ["admin@example.com"],
            },
        )
        assert made.status_code == 201, made.text
        account_id = made.json()["id"]
        client.post(f"/api/accounts/{account_id}/sync")
        wait_for(lambda: client.get(f"/api/accounts/{account_id}").json()["message_count"], 60)

        def settled() -> bool:
            return all(j["status"] in FINISHED for j in client.get("/api/jobs").json())

        wait_for(settled, timeout=60)
    with server.app() as opened, writing(opened.engine) as conn:
        for n, (_sender, subject, category) in enumerate(MAIL.values()):
            conn.execute(
                update(messages)
                .where(messages.c.subject == subject)
                .values(
                    sort_date=old + timedelta(hours=n),
                    category=category,
                    priority=10,
                    confidence=0.9,
                    reasons=["List-Unsubscribe"],
                    triage_source="headers",
                    triaged_at=datetime.now(UTC),
                )
            )
    return root


@pytest.fixture
def page(browser: Browser, server: ServerProcess, mail_root: Path) -> Iterator[Page]:
    """A logged-in tab on the Clean-ups view; afterwards it must not have thrown."""
    with logged_in_tab(browser, server, "cleanups") as tab:
        yield tab


def _folders(server: ServerProcess, message_id: int) -> list[str]:
    with server.client() as client:
        found: list[str] = client.get(f"/api/messages/{message_id}").json()["folders"]
    return found


def _started(response: Response) -> bool:
    # The page also reloads the list (a GET of the same URL) while the POST is answered.
    return response.url.endswith("/api/cleanups") and response.request.method == "POST"


def test_review_deselect_approve_execute_and_undo(
    page: Page, server: ServerProcess, mail_root: Path
) -> None:
    form = page.get_by_test_id("cleanup-form")
    expect(form.get_by_label("Account").locator("option")).to_have_text(["Local mail (maildir)"])
    # The bulk categories are chosen by default; only the two this mail has are kept.
    for box in page.get_by_test_id("cleanup-category").all():
        box.set_checked(box.get_attribute("value") in ("newsletter", "promotion"))
    form.get_by_label("Older than").fill("30d")
    form.get_by_label("Action", exact=True).select_option("archive")
    with page.expect_response(_started) as started:
        page.get_by_test_id("cleanup-start").click()
    assert started.value.status == 202, started.value.text()
    job_id = started.value.json()["job_id"]
    expect(page).to_have_url(f"{server.base_url}/#cleanups/{job_id}")

    review = page.get_by_test_id("review")
    expect(review.get_by_test_id("review-status")).to_have_text("awaiting approval")
    expect(review.get_by_test_id("review-criteria")).to_contain_text("Archive")
    # Grouped by sender, the biggest group first, each message with its reasons.
    groups = review.get_by_test_id("review-group")
    expect(groups).to_have_count(2)
    expect(groups.get_by_test_id("review-sender")).to_have_text([NEWS, DEALS])
    expect(groups.get_by_test_id("review-group-count")).to_have_text(["3", "2"])
    items = review.get_by_test_id("review-item")
    expect(items).to_have_count(5)
    for reasons in items.get_by_test_id("review-reasons").all():
        expect(reasons).not_to_be_empty()
    # The flagged one is protected, folded away with why.
    protected = review.get_by_test_id("review-protected")
    expect(protected).not_to_have_attribute("open", "")
    kept = protected.get_by_test_id("review-protected-item")
    expect(kept).to_have_count(1)
    expect(kept).to_be_hidden()
    protected.locator("summary").click()
    expect(kept).to_contain_text("Digest kept (flagged)")
    expect(kept.get_by_test_id("review-why")).not_to_be_empty()

    # A whole group off and on again, then one message off.
    deals = groups.filter(has_text=DEALS)
    deals.get_by_test_id("review-group-check").uncheck()
    expect(review.get_by_test_id("review-selected")).to_have_text("3 of 5 selected")
    deals.get_by_test_id("review-group-check").check()
    news = groups.filter(has_text=NEWS)
    left_out = news.get_by_test_id("review-item").filter(has_text="Digest 2")
    left_id = int(left_out.get_attribute("data-message-id") or 0)
    left_out.get_by_test_id("review-item-check").uncheck()
    assert news.get_by_test_id("review-group-check").evaluate("c => c.indeterminate")
    expect(review.get_by_test_id("review-selected")).to_have_text("4 of 5 selected")
    approve = review.get_by_test_id("review-approve")
    expect(approve).to_have_text("Approve 4 messages")
    assert "Digest 2" in _files(mail_root)

    with page.expect_request(lambda r: r.url.endswith("/approve")) as asked:
        approve.click()
    assert asked.value.post_data_json == {"exclude": [left_id]}

    # The execution runs live on the screen, then says what it did.
    expect(review.get_by_test_id("review-status")).to_have_text("completed")
    expect(review.get_by_test_id("review-result")).to_have_text("4 done, 0 skipped, 0 failed.")
    expect(review.get_by_test_id("review-approved")).to_contain_text("Approved 4 messages")
    expect(review.get_by_test_id("review-proposal")).to_be_hidden()
    assert _files(mail_root) == ["Digest 2", "Digest kept (flagged)"]
    assert _folders(server, left_id) == ["INBOX"]
    expect(review.get_by_test_id("review-journal")).to_have_text("4 done")

    undo = review.get_by_test_id("review-undo")
    undo.click()
    expect(review.get_by_test_id("review-journal")).to_contain_text("undone by")
    expect(undo).to_be_hidden()
    wait_for(lambda: len(_files(mail_root)) == len(MAIL), timeout=15)
    assert _files(mail_root) == sorted(subject for _, subject, _ in MAIL.values())
    # The clean-up is in the list, and its job row links back to the review.
    expect(page.get_by_test_id("cleanup-row")).to_have_count(1)
    page.get_by_test_id("tab-overview").click()
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row.get_by_test_id("job-review")).to_have_attribute("href", f"#cleanups/{job_id}")


def test_a_discarded_proposal_changes_nothing(
    page: Page, server: ServerProcess, mail_root: Path
) -> None:
    before = _files(mail_root)
    page.get_by_test_id("cleanup-query").fill("from:deals@b.example")
    with page.expect_response(_started) as started:
        page.get_by_test_id("cleanup-start").click()
    job_id = started.value.json()["job_id"]
    review = page.get_by_test_id("review")
    expect(review.get_by_test_id("review-status")).to_have_text("awaiting approval")
    expect(review.get_by_test_id("review-group")).to_have_count(1)
    review.get_by_test_id("review-discard").click()
    expect(review.get_by_test_id("review-status")).to_have_text("cancelled")
    expect(review.get_by_test_id("review-proposal")).to_be_hidden()
    expect(review.get_by_test_id("review-undo")).to_be_hidden()
    row = page.locator(f'[data-testid="cleanup-row"][data-job-id="{job_id}"]')
    expect(row).to_contain_text("cancelled")
    with server.client() as client:
        assert client.get(f"/api/cleanups/{job_id}").json()["approved_at"] is None
    assert _files(mail_root) == before
