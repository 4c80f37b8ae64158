"""Top-N (``GET /api/messages/top``, ``inboxd top``) and ``inboxd search --sort priority``
over synced mail whose triage columns the test sets as the triage job would (SQLite and
PostgreSQL): every filter, the order, owners kept apart, clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from inboxd.api.main import create_api
from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.db.tables import messages
from inboxd.store import messages as store_messages
from inboxd.store.accounts import Account, Accounts
from inboxd.store.users import Users
from tests.integration.test_messages_api import ApiClient
from tests.support.apps import make_app, run_cli, subprocess_env, sync_and_index
from tests.support.mail import make_message

SEEN = ["\\Seen"]
#: The triage columns of a message triage has not seen.
UNTRIAGED: dict[str, Any] = dict.fromkeys(
    ("category", "priority", "confidence", "reasons", "triage_source", "triaged_at")
)


@dataclass(frozen=True)
class Verdict:
    """What the test makes of one message: its age in days (0: today), read or not, and the
    triage job's category and priority (None: untriaged)."""

    days: int
    read: bool
    category: str | None
    priority: int | None


#: Alice's first account, by message number.
MAIN = {
    0: Verdict(0, False, "action_required", 90),
    1: Verdict(0, True, "personal", 70),
    2: Verdict(0, False, "newsletter", 20),
    3: Verdict(0, False, None, None),
    4: Verdict(3, False, "action_required", 95),
    5: Verdict(3, True, "personal", 60),
    6: Verdict(20, False, "personal", 99),
    7: Verdict(20, True, "spam", 5),
    8: Verdict(0, True, "personal", 70),
    9: Verdict(40, False, None, None),
}
#: Alice's second account and Bob's.
SECOND = {
    20: Verdict(0, False, "action_required", 85),
    21: Verdict(3, False, "personal", 40),
    22: Verdict(0, False, None, None),
}
BOBS = {30: Verdict(0, False, "personal", 100), 31: Verdict(0, False, "action_required", 96)}


@dataclass
class Mail:
    app: App
    alice: ApiClient
    bob: ApiClient
    main: Account
    second: Account
    bobs: Account
    env: dict[str, str]
    #: message number -> (id, account id, sort date, verdict)
    rows: dict[int, tuple[int, str, datetime, Verdict]]

    def expected(self, *, owner_accounts: tuple[str, ...], **want: Any) -> list[int]:
        """The message numbers top-N should give, most important first (the oracle)."""
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since: datetime | None = want.get("since")
        found = [
            (v.priority, when, pk, number)
            for number, (pk, account_id, when, v) in self.rows.items()
            if account_id in owner_accounts
            and v.priority is not None
            and (want.get("category") in (None, v.category))
            and (not want.get("unread") or not v.read)
            and (since is None or when >= since)
            and (not want.get("today") or when >= midnight)
        ]
        found.sort(reverse=True)
        return [number for *_, number in found][: want.get("n", 10)]


def _maildir(root: Path, numbers: dict[int, Verdict]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for number in numbers:
        (root / "cur" / f"{1000 + number}.host:2,").write_bytes(make_message(number))
    return root


def _client(app: App, name: str) -> tuple[ApiClient, str]:
    users = Users(app.engine)
    user = users.add(name)
    key = users.create_key(user).key
    return ApiClient(create_api(app), headers={"Authorization": f"Bearer {key}"}), user.id


def _triage(
    app: App, account: Account, numbers: dict[int, Verdict], now: datetime
) -> dict[int, tuple[int, str, datetime, Verdict]]:
    """Set each message's date, flags and verdict as the sync and the triage job would."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows: dict[int, tuple[int, str, datetime, Verdict]] = {}
    with writing(app.engine) as conn:
        for number, v in numbers.items():
            pk = conn.execute(
                select(messages.c.id).where(
                    messages.c.account_id == account.id,
                    messages.c.subject == f"Message number {number}",
                )
            ).scalar_one()
            # Today's mail between midnight and now, in number order; older, whole days back.
            when = (
                midnight + (now - midnight) * (number % 10 + 1) / 12
                if v.days == 0
                else now - timedelta(days=v.days, minutes=number)
            )
            values: dict[str, Any] = {"sort_date": when, "flags": SEEN if v.read else []}
            if v.priority is not None:
                values |= {
                    "category": v.category,
                    "priority": v.priority,
                    "confidence": 0.8,
                    "reasons": [f"because of {number}"],
                }
            conn.execute(update(messages).where(messages.c.id == pk).values(**values))
            rows[number] = (pk, account.id, when, v)
    return rows


def _untriage(app: App) -> None:
    """Every message untriaged, whatever the triage job queued by the index did already."""
    with writing(app.engine) as conn:
        conn.execute(update(messages).values(**UNTRIAGED))


@pytest.fixture
def mail(database_url: str, tmp_path: Path) -> Iterator[Mail]:
    app = make_app(database_url, tmp_path)
    alice, alice_id = _client(app, "alice")
    bob, bob_id = _client(app, "bob")
    registry = Accounts(app.engine, app.settings)
    main = registry.add(
        "maildir", "main", {"path": str(_maildir(tmp_path / "a", MAIN))}, owner=alice_id
    )
    second = registry.add(
        "maildir", "second", {"path": str(_maildir(tmp_path / "b", SECOND))}, owner=alice_id
    )
    bobs = registry.add(
        "maildir", "bobs", {"path": str(_maildir(tmp_path / "c", BOBS))}, owner=bob_id
    )
    for account in (main, second, bobs):
        sync_and_index(app, account)
    now = datetime.now(UTC)
    _untriage(app)
    rows = (
        _triage(app, main, MAIN, now)
        | _triage(app, second, SECOND, now)
        | _triage(app, bobs, BOBS, now)
    )
    try:
        env = subprocess_env(database_url, tmp_path / "data")
        yield Mail(app, alice, bob, main, second, bobs, env, rows)
    finally:
        app.close()


def _top(client: ApiClient, **params: Any) -> list[int]:
    """The message numbers of a top-N answer."""
    response = client.get("/api/messages/top", params=params)
    assert response.status_code == 200, response.text
    found = response.json()["messages"]
    for item in found:
        assert item["reasons"] and item["priority"] is not None and item["category"]
    return [int(item["subject"].rsplit(" ", 1)[1]) for item in found]


def test_top_n_is_the_most_important_first_with_every_filter(mail: Mail) -> None:
    alices = (mail.main.id, mail.second.id)
    assert _top(mail.alice) == mail.expected(owner_accounts=alices)
    assert _top(mail.alice) == [6, 4, 0, 20, 8, 1, 5, 21, 2, 7]  # ties: newer first
    assert _top(mail.alice, n=3) == [6, 4, 0]
    assert _top(mail.alice, since="today") == mail.expected(owner_accounts=alices, today=True)
    assert _top(mail.alice, since="today") == [0, 20, 8, 1, 2]
    week = datetime.now(UTC) - timedelta(days=7)
    assert _top(mail.alice, since="7d") == mail.expected(owner_accounts=alices, since=week)
    assert _top(mail.alice, since="1w") == _top(mail.alice, since="7d")
    day = (datetime.now(UTC) - timedelta(days=5)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert _top(mail.alice, since=day.isoformat()) == mail.expected(
        owner_accounts=alices, since=start
    )
    assert _top(mail.alice, unread="true") == mail.expected(owner_accounts=alices, unread=True)
    assert _top(mail.alice, category="personal") == [6, 8, 1, 5, 21]
    assert _top(mail.alice, category="action_required", since="today", unread="true") == [0, 20]
    assert _top(mail.alice, account_id=mail.second.id) == [20, 21]
    assert _top(mail.alice, q="number 5 OR number 7") == [5, 7]
    assert _top(mail.alice, q="-category:personal priority:>50") == [4, 0, 20]
    # Untriaged mail is never in it, even when nothing else matches.
    assert _top(mail.alice, q='subject:"number 3"') == []
    # Bob's own, and only his.
    assert _top(mail.bob) == [30, 31]


def test_top_n_refuses_bad_filters_clearly(mail: Mail) -> None:
    def error(status: int, **params: Any) -> str:
        response = mail.alice.get("/api/messages/top", params=params)
        assert response.status_code == status, (params, response.text)
        return str(response.json()["error"]["message"])

    assert "n" in error(422, n=0) and "n" in error(422, n=101)
    assert "personal" in error(422, category="bulk")
    assert "not today, a number of days or weeks" in error(400, since="yesterday")
    assert "not today" in error(400, since="2026-02-30")
    assert "not today" in error(400, since="3m")
    assert error(400, q='"unclosed').startswith("bad query: unclosed quote")
    assert "no account" in error(404, account_id=mail.bobs.id)
    assert mail.alice.get("/api/messages/top", params={"unread": "maybe"}).status_code == 422


def test_top_cli_prints_blocks_with_reasons_and_the_api_shape(mail: Mail) -> None:
    done = run_cli(mail.env, "top", "--json", "--n", "3", "--account", mail.main.id)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    api = mail.alice.get("/api/messages/top", params={"n": 3, "account_id": mail.main.id}).json()
    assert body == api and [m["priority"] for m in body["messages"]] == [99, 95, 90]
    table = run_cli(
        mail.env,
        "top",
        "--since",
        "today",
        "--category",
        "personal",
        "--unread",
        "--account",
        mail.main.id,
    )
    assert table.returncode == 0, table.stderr
    assert "no triaged message matches" in table.stdout  # today's personal mail is read
    # One block per message, readable at 80 columns: its line, its subject, why.
    table = run_cli(mail.env | {"COLUMNS": "80"}, "top", "--since", "today", "--query", "number 0")
    assert table.returncode == 0, table.stderr
    head, subject, why = table.stdout.splitlines()[:3]
    assert head.split()[:2] == ["90", "action_required"], table.stdout
    assert "Message" in subject and why.strip().startswith("why:") and "because of 0" in why
    bad = run_cli(mail.env, "top", "--since", "soon")
    assert bad.returncode == 2 and "since 'soon'" in bad.stderr
    wrong = run_cli(mail.env, "top", "--category", "bulk")
    assert wrong.returncode == 2 and "bulk" in wrong.stderr


def test_search_sort_priority_in_the_cli(mail: Mail) -> None:
    done = run_cli(mail.env, "search", "--sort", "priority", "--json", "--limit", "200")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    with reading(mail.app.engine) as conn:
        total = len(conn.execute(select(messages.c.id)).all())
    assert len(found) == total
    levels = [m["priority"] for m in found]
    triaged = [p for p in levels if p is not None]
    assert levels == triaged + [None] * (total - len(triaged))
    assert triaged == sorted(triaged, reverse=True) and triaged[0] == 100
    wide = mail.env | {"COLUMNS": "200"}
    table = run_cli(wide, "search", "category:action_required", "--sort", "priority")
    assert table.returncode == 0, table.stderr
    assert "category" in table.stdout and "action_required" in table.stdout
    lines = [line for line in table.stdout.splitlines() if "action_required" in line]
    assert [line.split()[3] for line in lines] == ["96", "95", "90", "85"]


def test_a_large_window_gives_the_same_top_through_the_priority_index(
    mail: Mail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date window larger than TOP_WINDOW is not ordered in Python but read through the
    priority index: the answers are the same."""
    asks: list[dict[str, Any]] = [
        {"since": "today"},
        {"since": "7d", "unread": "true"},
        {"since": "30d", "category": "personal"},
        {"since": "1w", "q": "-category:personal"},
        {"since": "today", "account_id": mail.second.id},
    ]
    small = [_top(mail.alice, **ask) for ask in asks]
    monkeypatch.setattr(store_messages, "TOP_WINDOW", 1)
    assert [_top(mail.alice, **ask) for ask in asks] == small
    assert small[0] == [0, 20, 8, 1, 2] and small[2] == [6, 8, 1, 5, 21]
