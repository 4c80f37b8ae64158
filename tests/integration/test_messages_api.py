"""Reading mail through the API (SQLite and PostgreSQL): pages newest first without gaps or
repeats, one message with its text, safe HTML, files and parse notes, its exact bytes,
threads with copies folded, and no way into another user's mail.

Mail gets into the store the real way: a Maildir synced by a worker.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, update

from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import messages
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.support.apps import sync_and_index
from tests.support.mail import MALFORMED, huge_message, make_message

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SAME_DATE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

HOSTILE_HTML = """<html><head><title>hidden</title><style>
body { background: url(http://tracker.example/bg.png) }
</style></head><body>
<p onclick="steal()">Hello <b>reader</b></p>
<script>alert('x')</script>
<img src="http://tracker.example/pixel.gif" onerror="alert(1)">
<img src="cid:logo@example.org">
<a href="javascript:alert(2)">bad link</a>
<a href="https://example.org/page">good link</a>
<div style="background-image: url('https://tracker.example/div.png'); color: red">styled</div>
<form action="https://evil.example/"><input name="pw"></form>
<iframe src="https://evil.example/"></iframe>
</body></html>"""


def _message(
    subject: str,
    *,
    when: datetime,
    msgid: str,
    body: str = "Plain body.\n",
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice Sender <alice@example.org>"
    msg["To"] = "reader@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{msgid}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def hostile_message() -> bytes:
    """HTML with everything a sanitiser must stop, an inline image and a PDF."""
    msg = _message(
        "Hostile newsletter",
        when=datetime(2026, 2, 1, tzinfo=UTC),
        msgid="hostile@example.org",
        html=HOSTILE_HTML,
    )
    html_part = msg.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@example.org>")
    msg.add_attachment(
        b"%PDF-1.4 fake\x00\xff", maintype="application", subtype="pdf", filename="résumé.pdf"
    )
    return msg.as_bytes()


UNDECLARED_CHARSET = (
    b"From: x@example.org\r\nTo: reader@example.com\r\nSubject: undeclared charset\r\n"
    b"Message-ID: <charset@example.org>\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
    b"Content-Type: text/plain\r\n\r\nCaf\xe9 cr\xe8me \xe0 la carte\r\n"
)
WRONG_CHARSET = (
    b"From: x@example.org\r\nTo: reader@example.com\r\nSubject: wrong charset\r\n"
    b"Message-ID: <wrong@example.org>\r\nDate: Mon, 02 Feb 2026 10:30:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xe9 cr\xe8me \xe0 la carte\r\n"
)
HTML_ONLY = (
    b"From: x@example.org\r\nTo: reader@example.com\r\nSubject: only html\r\n"
    b"Message-ID: <htmlonly@example.org>\r\nDate: Mon, 02 Feb 2026 11:00:00 +0000\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n\r\n"
    b"<p>Only <b>HTML</b> here<img src='https://tracker.example/t.gif'></p>\r\n"
)
EMPTY_BODY = (
    b"From: x@example.org\r\nTo: reader@example.com\r\nSubject: nothing inside\r\n"
    b"Message-ID: <empty@example.org>\r\nDate: Mon, 02 Feb 2026 12:00:00 +0000\r\n\r\n"
)


class ApiClient:
    """The API of ``app`` in this process, called over ASGI one request at a time (no
    server process per test: each test syncs its own database, on both databases)."""

    def __init__(self, api: Any, headers: dict[str, str] | None = None) -> None:
        self.api = api
        self.headers = headers or {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` and read the whole answer."""
        return asyncio.run(self._get(path, params))

    async def _get(self, path: str, params: dict[str, Any] | None) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=self.headers
        ) as client:
            response = await client.get(path, params=params)
            await response.aread()
            return response

    def close(self) -> None:
        """Nothing to release (kept for symmetry with httpx.Client)."""


@dataclass
class Mailbox:
    """Alice's and Bob's synced mail and API clients for both."""

    app: App
    alice: ApiClient
    bob: ApiClient
    alice_account: Account
    alice_archive: Account
    bob_account: Account
    ids: dict[str, int]  # Message-ID -> message id (Alice's mail)
    raws: dict[str, bytes]  # Message-ID -> the bytes on disk


def _write_maildir(root: Path, folders: dict[str, list[bytes]]) -> None:
    for name, raws in folders.items():
        folder = root if name == "INBOX" else root / f".{name}"
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for n, raw in enumerate(raws):
            (folder / "cur" / f"{1000 + n}.{name}.host:2,S").write_bytes(raw)


def _message_id_of(raw: bytes) -> str:
    found = re.search(rb"^Message-ID: <([^>]+)>", raw, re.MULTILINE | re.IGNORECASE)
    assert found, raw[:200]
    return found.group(1).decode()


def _alice_mail() -> dict[str, list[bytes]]:
    plain = [make_message(n) for n in range(12)]
    # Six messages with one and the same date: the pages must still not repeat or skip.
    tied = [
        _message(f"Tied {n}", when=SAME_DATE, msgid=f"tied{n}@example.org").as_bytes()
        for n in range(6)
    ]
    root = _message("Plans", when=datetime(2026, 4, 1, tzinfo=UTC), msgid="root@example.org")
    reply = _message(
        "Re: Plans",
        when=datetime(2026, 4, 2, tzinfo=UTC),
        msgid="reply@example.org",
        headers={"In-Reply-To": "<root@example.org>", "References": "<root@example.org>"},
    )
    inbox = [
        *plain,
        *tied,
        hostile_message(),
        MALFORMED,
        UNDECLARED_CHARSET,
        WRONG_CHARSET,
        HTML_ONLY,
        EMPTY_BODY,
        huge_message(3 * 1024 * 1024),
        root.as_bytes(),
        reply.as_bytes(),
    ]
    # The Sent folder holds the very same bytes: one message shown in two folders.
    return {"INBOX": inbox, "Sent": [reply.as_bytes()]}


def _reply_copy() -> bytes:
    """The reply as another account of Alice's keeps it: other bytes, same Message-ID."""
    return _message(
        "Re: Plans",
        when=datetime(2026, 4, 2, tzinfo=UTC),
        msgid="reply@example.org",
        headers={"In-Reply-To": "<root@example.org>", "X-Sent-Copy": "yes"},
    ).as_bytes()


def _client(app: App, user_name: str) -> ApiClient:
    users = Users(app.engine)
    user = users.add(user_name)
    key = users.create_key(user).key
    client = ApiClient(create_api(app), headers={"Authorization": f"Bearer {key}"})
    return client


def _add_and_sync(app: App, root: Path, name: str, owner: str) -> Account:
    account = Accounts(app.engine, app.settings).add(
        "maildir", name, {"path": str(root)}, owner=owner
    )
    sync_and_index(app, account)
    return account


@pytest.fixture
def mailbox(app: App, tmp_path: Path) -> Iterator[Mailbox]:
    alice_mail = _alice_mail()
    _write_maildir(tmp_path / "alice", alice_mail)
    _write_maildir(tmp_path / "bob", {"INBOX": [make_message(500 + n) for n in range(3)]})
    alice = _client(app, "alice")
    bob = _client(app, "bob")
    users = Users(app.engine)
    alice_id = users.by_name("alice").id
    alice_account = _add_and_sync(app, tmp_path / "alice", "alice-md", alice_id)
    _write_maildir(tmp_path / "archive", {"INBOX": [_reply_copy()]})
    alice_archive = _add_and_sync(app, tmp_path / "archive", "alice-archive", alice_id)
    bob_account = _add_and_sync(app, tmp_path / "bob", "bob-md", users.by_name("bob").id)
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.message_id, messages.c.identity).where(
                messages.c.account_id == alice_account.id
            )
        ).all()
    ids: dict[str, int] = {}
    for pk, message_id, _identity in rows:
        if message_id is not None:
            ids.setdefault(message_id, pk)
    raws: dict[str, bytes] = {}
    for raws_of_folder in alice_mail.values():
        for raw in raws_of_folder:
            if re.search(rb"^Message-ID:", raw, re.MULTILINE | re.IGNORECASE):
                raws.setdefault(_message_id_of(raw), raw)
    try:
        yield Mailbox(app, alice, bob, alice_account, alice_archive, bob_account, ids, raws)
    finally:
        alice.close()
        bob.close()


def _all_pages(client: ApiClient, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body[key]) <= int(params.get("limit", 50))
        found.extend(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("pages never ended")


def _expected_order(app: App, *account_ids: str) -> list[int]:
    with reading(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.sort_date).where(
                messages.c.account_id.in_(account_ids)
            )
        ).all()
    return [pk for pk, _ in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)]


# -- listing -------------------------------------------------------------------------------------


def test_pages_are_newest_first_without_repeats_or_gaps(mailbox: Mailbox) -> None:
    both = (mailbox.alice_account.id, mailbox.alice_archive.id)
    expected = _expected_order(mailbox.app, *both)
    assert len(expected) == 28  # INBOX and Sent share the reply's bytes; the archive's copy
    for limit in (1, 4, 7, 50):
        seen = [
            m["id"] for m in _all_pages(mailbox.alice, "/api/messages", "messages", limit=limit)
        ]
        assert seen == expected, limit
    one = _all_pages(
        mailbox.alice, "/api/messages", "messages", limit=5, account_id=mailbox.alice_account.id
    )
    assert [m["id"] for m in one] == _expected_order(mailbox.app, mailbox.alice_account.id)
    first = mailbox.alice.get("/api/messages", params={"limit": 4}).json()["messages"]
    # The large and the malformed message have no (readable) Date: they sort by their
    # arrival (now), before everything.
    assert {m["subject"] for m in first[:2]} >= {"A very large message"}
    item = first[2]
    assert set(item) >= {
        "id",
        "account_id",
        "message_id",
        "thread_id",
        "subject",
        "from",
        "to",
        "cc",
        "date",
        "folders",
        "flags",
        "size",
        "snippet",
        "has_attachments",
    }
    assert item["subject"] == "Re: Plans" and item["folders"] in (["INBOX"], ["INBOX", "Sent"])
    assert item["from"] == {"name": "Alice Sender", "address": "alice@example.org"}
    assert item["to"] == ["reader@example.com"] and item["flags"] == ["\\Seen"]
    assert item["thread_id"] == item["id"]  # not threaded yet: a thread of its own


def test_ties_on_the_sort_date_page_by_id(mailbox: Mailbox) -> None:
    tied = [
        m
        for m in _all_pages(mailbox.alice, "/api/messages", "messages", limit=2, q="Tied")
        if m["subject"].startswith("Tied")
    ]
    assert len(tied) == 6
    assert [m["id"] for m in tied] == sorted((m["id"] for m in tied), reverse=True)
    assert len({m["sort_date"] for m in tied}) == 1


def test_listing_filters_by_query_and_account(mailbox: Mailbox, app: App) -> None:
    found = mailbox.alice.get("/api/messages", params={"q": "number 7"}).json()["messages"]
    assert [m["subject"] for m in found] == ["Message number 7"]
    only = mailbox.alice.get(
        "/api/messages", params={"account_id": mailbox.alice_account.id, "limit": 200}
    ).json()
    assert len(only["messages"]) == 27 and only["next_cursor"] is None
    # An admin sees both users' mail, in one order.
    admin = _admin_client(app)
    everything = _all_pages(admin, "/api/messages", "messages", limit=5)
    assert len(everything) == 31
    dates = [(m["sort_date"], m["id"]) for m in everything]
    assert dates == sorted(dates, reverse=True)


def _admin_client(app: App) -> ApiClient:
    users = Users(app.engine)
    admin, _ = users.ensure_admin()
    key = users.create_key(admin).key
    return ApiClient(create_api(app), headers={"Authorization": f"Bearer {key}"})


def test_bad_queries_and_cursors_are_400(mailbox: Mailbox) -> None:
    response = mailbox.alice.get("/api/messages", params={"q": 'subject:"unclosed'})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "quote" in response.json()["error"]["message"]
    for bad in ("nonsense", "eyJ4IjoxfQ", base64.urlsafe_b64encode(b'["x", 1]').decode()):
        response = mailbox.alice.get("/api/messages", params={"cursor": bad})
        assert response.status_code == 400, bad
        assert "cursor" in response.json()["error"]["message"]
    assert mailbox.alice.get("/api/messages", params={"limit": 0}).status_code == 422
    assert mailbox.alice.get("/api/messages", params={"limit": 201}).status_code == 422
    assert mailbox.alice.get("/api/threads", params={"q": '"'}).status_code == 400


def _page_statements(app: App, client: ApiClient, **params: Any) -> list[tuple[str, Any]]:
    """The statements that read the messages of one page (SQL and parameters)."""
    found: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_rest: Any) -> None:
        if "ORDER BY messages.sort_date DESC, messages.id DESC" in sql:
            found.append((sql, parameters))

    event.listen(app.engine, "before_cursor_execute", grab)
    try:
        assert client.get("/api/messages", params=params).status_code == 200
    finally:
        event.remove(app.engine, "before_cursor_execute", grab)
    return found


def test_first_page_uses_the_sort_index(mailbox: Mailbox) -> None:
    """The plan of each statement of a first page reads a sort index in order: no sort of
    every matching row (the rows are few here, so PostgreSQL is kept off sequential scans
    to show what it would do on a large table)."""
    app = mailbox.app
    admin = _admin_client(app)
    statements = [
        *_page_statements(app, admin),  # everything: ix_messages_sort_all
        *_page_statements(app, mailbox.alice),  # two accounts: one scan each
        *_page_statements(app, mailbox.alice, account_id=mailbox.alice_account.id),
    ]
    assert len(statements) == 4
    with reading(app.engine) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for sql, parameters in statements:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = conn.exec_driver_sql(explain + sql, parameters).all()
            plan = " | ".join(str(row[-1] if sqlite else row[0]) for row in rows)
            assert "ix_messages_sort" in plan, plan
            if sqlite:
                assert "TEMP B-TREE" not in plan, plan
            else:
                assert " Sort " not in f" {plan} ".replace("Sort Key", ""), plan


# -- one message ---------------------------------------------------------------------------------


# -- triage: the verdict, sort=priority, counts ----------------------------------------------------

#: Priorities dealt out in id order: many ties, and untriaged (None) mail among them.
_LEVELS = (None, 50, 80, 50, 10, 50, 0, None, 80)
_CATEGORIES = ("personal", "forum", "notification", "receipt")


def _untriage(app: App) -> None:
    """Every message untriaged, whatever the triage job queued by the index did already."""
    columns = ("category", "priority", "confidence", "reasons", "triage_source", "triaged_at")
    with writing(app.engine) as conn:
        conn.execute(update(messages).values(dict.fromkeys(columns)))


def _triage_all(app: App, *account_ids: str) -> dict[int, int | None]:
    """Give the accounts' messages priorities and categories as the triage job would (the
    six with one date all 50); the message id -> its priority."""
    _untriage(app)
    with writing(app.engine) as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.subject)
            .where(messages.c.account_id.in_(account_ids))
            .order_by(messages.c.id)
        ).all()
        given: dict[int, int | None] = {}
        for n, (pk, subject) in enumerate(rows):
            level = 50 if (subject or "").startswith("Tied") else _LEVELS[n % len(_LEVELS)]
            given[pk] = level
            if level is None:
                continue
            conn.execute(
                update(messages)
                .where(messages.c.id == pk)
                .values(
                    category=_CATEGORIES[n % len(_CATEGORIES)],
                    priority=level,
                    confidence=0.75,
                    reasons=[f"reason {n}", "sent directly to you"],
                )
            )
    return given


def _priority_order(app: App, given: dict[int, int | None]) -> list[int]:
    with reading(app.engine) as conn:
        dates = dict(
            conn.execute(
                select(messages.c.id, messages.c.sort_date).where(messages.c.id.in_(list(given)))
            ).all()
        )

    def key(pk: int) -> tuple[bool, int, datetime, int]:
        level = given[pk]
        return level is not None, level or 0, dates[pk], pk

    return sorted(given, key=key, reverse=True)


def test_sort_by_priority_pages_without_repeats_or_gaps(mailbox: Mailbox) -> None:
    app = mailbox.app
    given = _triage_all(app, mailbox.alice_account.id, mailbox.alice_archive.id)
    assert None in given.values() and len(given) == 28
    expected = _priority_order(app, given)
    for limit in (1, 3, 4, 7, 50):
        pages = _all_pages(mailbox.alice, "/api/messages", "messages", limit=limit, sort="priority")
        assert [m["id"] for m in pages] == expected, limit
    first = mailbox.alice.get("/api/messages", params={"sort": "priority", "limit": 1}).json()
    top = first["messages"][0]
    assert top["priority"] == 80 and top["category"] in _CATEGORIES
    assert top["confidence"] == 0.75 and top["reasons"][1] == "sent directly to you"
    last = _all_pages(mailbox.alice, "/api/messages", "messages", limit=50, sort="priority")[-1]
    assert (last["category"], last["priority"], last["confidence"], last["reasons"]) == (
        None,
        None,
        None,
        [],
    )
    # One account, and a query: the same order, filtered.
    one = _all_pages(
        mailbox.alice,
        "/api/messages",
        "messages",
        limit=3,
        sort="priority",
        account_id=mailbox.alice_account.id,
        q="-category:forum",
    )
    forum = {
        m["id"] for m in _all_pages(mailbox.alice, "/api/messages", "messages", q="category:forum")
    }
    with reading(app.engine) as conn:
        mine = set(
            conn.execute(
                select(messages.c.id).where(messages.c.account_id == mailbox.alice_account.id)
            ).scalars()
        )
    assert forum and [m["id"] for m in one] == [
        pk for pk in expected if pk in mine and pk not in forum
    ]
    # Bob sees none of it.
    bobs = _all_pages(mailbox.bob, "/api/messages", "messages", sort="priority")
    assert len(bobs) == 3 and all(m["priority"] is None for m in bobs)


def test_a_cursor_of_one_sort_is_refused_by_the_other(mailbox: Mailbox) -> None:
    _triage_all(mailbox.app, mailbox.alice_account.id)
    by_date = mailbox.alice.get("/api/messages", params={"limit": 2}).json()["next_cursor"]
    by_priority = mailbox.alice.get(
        "/api/messages", params={"limit": 2, "sort": "priority"}
    ).json()["next_cursor"]
    assert by_date and by_priority
    wrong = mailbox.alice.get("/api/messages", params={"cursor": by_date, "sort": "priority"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"].startswith("invalid cursor: it is of a list sorted")
    wrong = mailbox.alice.get("/api/messages", params={"cursor": by_priority})
    assert wrong.status_code == 400 and "sort=priority" in wrong.json()["error"]["message"]
    for bad in ("nonsense", base64.urlsafe_b64encode(b"p999:1:1").decode(), "cA"):
        response = mailbox.alice.get("/api/messages", params={"cursor": bad, "sort": "priority"})
        assert response.status_code == 400, bad
        assert "invalid cursor" in response.json()["error"]["message"]
    assert mailbox.alice.get("/api/messages", params={"sort": "size"}).status_code == 422


def _priority_statements(app: App, client: ApiClient, **params: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    order = "ORDER BY messages.priority DESC, messages.sort_date DESC, messages.id DESC"

    def grab(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_rest: Any) -> None:
        if order in sql:
            found.append((sql, parameters))

    event.listen(app.engine, "before_cursor_execute", grab)
    try:
        assert client.get("/api/messages", params=params).status_code == 200
    finally:
        event.remove(app.engine, "before_cursor_execute", grab)
    return found


def test_priority_pages_use_the_priority_index(mailbox: Mailbox) -> None:
    """Every scan of a priority page (the triaged, the rest of a cursor's priority, the
    lower ones, the untriaged) reads ix_messages_priority in order: no sort."""
    app = mailbox.app
    _triage_all(app, mailbox.alice_account.id, mailbox.alice_archive.id)
    account = mailbox.alice_account.id
    first = mailbox.alice.get(
        "/api/messages", params={"sort": "priority", "limit": 20, "account_id": account}
    ).json()
    statements = [
        *_priority_statements(app, mailbox.alice, sort="priority", limit=5),
        *_priority_statements(
            app,
            mailbox.alice,
            sort="priority",
            limit=20,
            account_id=account,
            cursor=first["next_cursor"],
        ),
    ]
    assert len(statements) >= 3
    with reading(app.engine) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for sql, parameters in statements:
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = conn.exec_driver_sql(explain + sql, parameters).all()
            plan = " | ".join(str(row[-1] if sqlite else row[0]) for row in rows)
            assert "ix_messages_priority" in plan, plan
            if sqlite:
                assert "TEMP B-TREE" not in plan, plan
            else:
                assert " Sort " not in f" {plan} ".replace("Sort Key", ""), plan


def test_category_counts_per_account(mailbox: Mailbox, app: App) -> None:
    account = mailbox.alice_account.id
    path = f"/api/accounts/{account}/categories"
    _untriage(app)
    before = mailbox.alice.get(path)
    assert before.status_code == 200, before.text
    body = before.json()
    assert body["account_id"] == account and body["untriaged"] == 27
    assert set(body["counts"]) == {
        "personal",
        "action_required",
        "forum",
        "newsletter",
        "promotion",
        "notification",
        "receipt",
        "calendar",
        "social",
        "spam",
    }
    assert set(body["counts"].values()) == {0}
    given = _triage_all(app, account)
    with reading(app.engine) as conn:
        truth: dict[str, int] = dict(
            conn.execute(
                select(messages.c.category, func.count())
                .where(messages.c.account_id == account, messages.c.category.is_not(None))
                .group_by(messages.c.category)
            ).all()
        )
    after = mailbox.alice.get(path).json()
    assert after["untriaged"] == sum(1 for level in given.values() if level is None)
    assert {k: v for k, v in after["counts"].items() if v} == truth
    assert sum(after["counts"].values()) + after["untriaged"] == 27
    # Another user's account is not found, an admin's view is the same.
    assert mailbox.bob.get(path).status_code == 404
    assert mailbox.alice.get("/api/accounts/nope/categories").status_code == 404
    assert _admin_client(app).get(path).json() == after


def test_message_detail_text_html_files_and_notes(mailbox: Mailbox) -> None:
    pk = mailbox.ids["hostile@example.org"]
    response = mailbox.alice.get(f"/api/messages/{pk}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["subject"] == "Hostile newsletter" and detail["has_attachments"] is True
    assert detail["text"].strip() == "Plain body."
    html = detail["html"]
    for gone in ("<script", "onclick", "onerror", "javascript:", "tracker.example", "<form"):
        assert gone not in html, gone
    assert "<iframe" not in html and "hidden" not in html
    assert 'href="https://example.org/page"' in html and 'target="_blank"' in html
    assert "noopener" in html and "color: red" in html
    assert detail["remote_content_blocked"] is True
    files = detail["attachments"]
    assert [(f["index"], f["content_type"], f["inline"]) for f in files] == [
        (0, "image/png", True),
        (1, "application/pdf", False),
    ]
    assert files[0]["content_id"] == "logo@example.org" and files[0]["size"] == len(PNG)
    assert files[1]["filename"] == "résumé.pdf" and files[1]["size"] == 15
    names = [h["name"] for h in detail["headers"]]
    assert names[:3] == ["From", "To", "Subject"]
    assert detail["parse_notes"] == []


def test_raw_is_the_exact_stored_bytes(mailbox: Mailbox) -> None:
    for part in ("hostile@", "charset@", "huge@", "reply@"):
        msgid = next(k for k in mailbox.ids if part in k)
        response = mailbox.alice.get(f"/api/messages/{mailbox.ids[msgid]}/raw")
        assert response.status_code == 200
        assert response.headers["content-type"] == "message/rfc822"
        assert "attachment" in response.headers["content-disposition"]
        assert response.content == mailbox.raws[msgid]


def test_attachments_download_with_safe_headers(mailbox: Mailbox) -> None:
    pk = mailbox.ids["hostile@example.org"]
    image = mailbox.alice.get(f"/api/messages/{pk}/attachments/0")
    assert image.status_code == 200 and image.content == PNG
    pdf = mailbox.alice.get(f"/api/messages/{pk}/attachments/1")
    assert pdf.content == b"%PDF-1.4 fake\x00\xff"
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["x-content-type-options"] == "nosniff"
    disposition = pdf.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "r%C3%A9sum%C3%A9.pdf" in disposition
    missing = mailbox.alice.get(f"/api/messages/{pk}/attachments/2")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    plain = mailbox.ids[next(k for k in mailbox.ids if k.startswith("tied0"))]
    assert mailbox.alice.get(f"/api/messages/{plain}/attachments/0").status_code == 404


def test_html_document_is_framed_under_a_strict_policy(mailbox: Mailbox) -> None:
    pk = mailbox.ids["hostile@example.org"]
    blocked = mailbox.alice.get(f"/api/messages/{pk}/html")
    assert blocked.status_code == 200
    assert blocked.headers["content-type"].startswith("text/html")
    policy = blocked.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "allow-scripts" not in policy and "http" not in policy
    assert blocked.headers["x-frame-options"] == "SAMEORIGIN"
    assert blocked.headers["x-remote-content-blocked"] == "1"
    body = blocked.text
    assert "tracker.example" not in body and "<script" not in body
    # The inline image travels inside the document: nothing to fetch.
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in body
    shown = mailbox.alice.get(f"/api/messages/{pk}/html", params={"remote": 1})
    assert "img-src data: cid: http: https:" in shown.headers["content-security-policy"]
    assert "http://tracker.example/pixel.gif" in shown.text and "<script" not in shown.text
    assert mailbox.alice.get(f"/api/messages/{pk}/html", params={"remote": 2}).status_code == 422
    text_only = mailbox.alice.get(f"/api/messages/{mailbox.ids['charset@example.org']}/html")
    assert "<pre>Café crème à la carte" in text_only.text


def test_bad_mail_is_shown_with_its_parse_notes(mailbox: Mailbox) -> None:
    listed = _all_pages(mailbox.alice, "/api/messages", "messages", limit=50)
    by_subject = {m["subject"]: m for m in listed}
    # The malformed message: 8-bit subject, unknown charset, missing boundary, bad date.
    broken = next(m for m in listed if m["subject"] and "broken 8-bit header" in m["subject"])
    detail = mailbox.alice.get(f"/api/messages/{broken['id']}").json()
    notes = " | ".join(detail["parse_notes"])
    assert "boundary" in notes and "date" in notes.lower(), notes
    assert detail["date"] is None and detail["sort_date"] is not None
    assert "no boundary ever appears here" in (detail["text"] or "")
    guessed = mailbox.alice.get(f"/api/messages/{by_subject['undeclared charset']['id']}").json()
    assert "Café crème à la carte" in guessed["text"]
    # Bytes that are not the declared charset: shown, the bad ones replaced, and said so.
    wrong = mailbox.alice.get(f"/api/messages/{by_subject['wrong charset']['id']}").json()
    assert "Caf\ufffd cr\ufffdme" in wrong["text"]
    assert any("utf-8" in n for n in wrong["parse_notes"]), wrong["parse_notes"]
    html_only = mailbox.alice.get(f"/api/messages/{by_subject['only html']['id']}").json()
    assert html_only["text"].strip() == "Only HTML here"
    assert "<b>HTML</b>" in html_only["html"] and html_only["remote_content_blocked"] is True
    empty = mailbox.alice.get(f"/api/messages/{by_subject['nothing inside']['id']}").json()
    assert empty["text"] in (None, "") and empty["html"] is None and empty["attachments"] == []
    huge = mailbox.alice.get(f"/api/messages/{by_subject['A very large message']['id']}").json()
    assert huge["size"] > 3 * 1024 * 1024 - 1024
    assert huge["text"].strip() == "See the attachment."
    assert huge["attachments"][0]["filename"] == "big.bin"
    assert huge["attachments"][0]["size"] > 2 * 1024 * 1024


# -- threads -------------------------------------------------------------------------------------


def _thread_the_plans(mailbox: Mailbox) -> int:
    """What the index job does for the Plans thread: one thread id for the root, the reply
    and the reply's copy in Alice's other account."""
    root = mailbox.ids["root@example.org"]
    with writing(mailbox.app.engine) as conn:
        conn.execute(
            update(messages)
            .where(
                messages.c.account_id.in_([mailbox.alice_account.id, mailbox.alice_archive.id]),
                messages.c.message_id.in_(["root@example.org", "reply@example.org"]),
            )
            .values(thread_id=root)
        )
    return root


def test_threads_fold_copies_and_page_like_messages(mailbox: Mailbox) -> None:
    root = _thread_the_plans(mailbox)
    every = _all_pages(mailbox.alice, "/api/threads", "threads", limit=3)
    ids = [t["id"] for t in every]
    assert len(ids) == len(set(ids)) == 28 - 2  # the reply and its copy joined the root
    summary = next(t for t in every if t["id"] == root)
    assert summary["subject"] == "Plans" and summary["message_count"] == 2
    assert summary["latest"]["subject"] == "Re: Plans"
    assert summary["participants"] == ["Alice Sender"] and summary["unread"] is False
    lasts = [t["last_date"] for t in every]
    assert lasts == sorted(lasts, reverse=True)
    thread = mailbox.alice.get(f"/api/threads/{root}").json()
    assert [m["subject"] for m in thread["messages"]] == ["Plans", "Re: Plans"]
    reply = thread["messages"][1]
    assert reply["copies"] == 2 and len(reply["copy_ids"]) == 2
    assert reply["folders"] == ["INBOX", "Sent"]
    lone = mailbox.ids["tied3@example.org"]
    alone = mailbox.alice.get(f"/api/threads/{lone}").json()
    assert [m["id"] for m in alone["messages"]] == [lone] and alone["messages"][0]["copies"] == 1


# -- isolation -----------------------------------------------------------------------------------


def test_another_users_mail_is_404_everywhere(mailbox: Mailbox) -> None:
    root = _thread_the_plans(mailbox)
    pk = mailbox.ids["hostile@example.org"]
    bob = mailbox.bob
    listed = bob.get("/api/messages", params={"limit": 200}).json()["messages"]
    assert len(listed) == 3 and {m["account_id"] for m in listed} == {mailbox.bob_account.id}
    assert len(bob.get("/api/threads").json()["threads"]) == 3
    for path in (
        f"/api/messages/{pk}",
        f"/api/messages/{pk}/raw",
        f"/api/messages/{pk}/html",
        f"/api/messages/{pk}/attachments/0",
        f"/api/threads/{root}",
    ):
        response = bob.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    for path in ("/api/messages", "/api/threads"):
        response = bob.get(path, params={"account_id": mailbox.alice_account.id})
        assert response.status_code == 404, path
    # Bob's own message opens for Bob, and not for Alice.
    own = listed[0]["id"]
    assert bob.get(f"/api/messages/{own}").status_code == 200
    assert mailbox.alice.get(f"/api/messages/{own}").status_code == 404
    anonymous = ApiClient(create_api(mailbox.app))
    assert anonymous.get(f"/api/messages/{own}").status_code == 401
