"""prioritize: category, directness, sender history, unread, recency, deadlines and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inboxd.triage.priority import prioritize
from inboxd.triage.types import Context, Decision, Mail
from inboxd.vocabulary import Category, TriageSource

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday


def ctx(correspondents: dict[str, int] | None = None, replied: tuple[int, ...] = ()) -> Context:
    return Context(
        addresses=frozenset({"me@example.com"}),
        name=None,
        correspondents=correspondents or {},
        replied_threads=frozenset(replied),
        now=NOW,
    )


def mail(
    text: str = "Hello",
    *,
    subject: str = "Hi",
    flags: tuple[str, ...] = ("\\Seen",),
    date: datetime | None = NOW - timedelta(days=10),
    sender: str = "ann@example.org",
    thread_id: int | None = None,
) -> Mail:
    return Mail(
        pk=1,
        from_addr=sender,
        from_name=None,
        to=("me@example.com",),
        cc=(),
        subject=subject,
        headers={},
        text=text,
        date=date,
        flags=frozenset(flags),
        thread_id=thread_id,
    )


def decision(category: Category, direct: bool = False) -> Decision:
    return Decision(category, 0.9, ("x",), TriageSource.HEADERS, direct)


def score(m: Mail, d: Decision, c: Context | None = None) -> int:
    return prioritize(m, d, c or ctx())[0]


def test_categories_are_ordered() -> None:
    order = [
        Category.ACTION_REQUIRED,
        Category.PERSONAL,
        Category.FORUM,
        Category.NOTIFICATION,
        Category.NEWSLETTER,
        Category.PROMOTION,
        Category.SPAM,
    ]
    scores = [score(mail(), decision(c)) for c in order]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)


def test_direct_history_unread_and_flagged_raise_it() -> None:
    base = score(mail(), decision(Category.PERSONAL))
    assert score(mail(), decision(Category.PERSONAL, direct=True)) > base
    assert score(mail(), decision(Category.PERSONAL), ctx({"ann@example.org": 8})) > base
    assert score(mail(thread_id=4), decision(Category.PERSONAL), ctx(replied=(4,))) > base
    assert score(mail(flags=()), decision(Category.PERSONAL)) > base
    assert score(mail(flags=("\\Seen", "\\Flagged")), decision(Category.PERSONAL)) > base
    _value, reasons = prioritize(
        mail(flags=()), decision(Category.PERSONAL), ctx({"ann@example.org": 8})
    )
    assert "unread" in reasons
    assert "you wrote to this sender 8 times" in reasons


def test_recency() -> None:
    d = decision(Category.PERSONAL)
    fresh = score(mail(date=NOW - timedelta(hours=2)), d)
    week = score(mail(date=NOW - timedelta(days=3)), d)
    month = score(mail(date=NOW - timedelta(days=20)), d)
    old = score(mail(date=NOW - timedelta(days=400)), d)
    assert fresh > week > month > old
    assert score(mail(date=None), d) == month


def test_deadlines_in_the_text() -> None:
    d = decision(Category.ACTION_REQUIRED)
    sent = NOW - timedelta(hours=1)
    plain = score(mail("Please review the draft.", date=sent), d)
    for text in (
        "Please review the draft by Friday.",
        "The form is due 12 Dec.",
        "Can you send it tomorrow?",
        "Reply by 2026-12-10 please.",
        "This is urgent.",
    ):
        value, reasons = prioritize(mail(text, date=sent), d, ctx())
        assert value > plain, text
        assert any(r.startswith("deadline or urgency in the text") for r in reasons), reasons
    # A deadline that passed counts for less than one to come.
    passed = score(mail("It was due 1 Dec.", date=sent), d)
    coming = score(mail("It is due 9 Dec.", date=sent), d)
    assert plain < passed < coming
    # Marketing urgency does not raise a promotion.
    promo = decision(Category.PROMOTION)
    assert score(mail("Sale ends today!", date=sent), promo) == score(
        mail("Sale", date=sent), promo
    )


def test_upcoming_calendar_dates() -> None:
    d = decision(Category.CALENDAR)
    soon = mail("Planning\nDTSTART:20261209T100000Z")
    later = mail("Planning\nDTSTART:20270301T100000Z")
    past = mail("Planning\nDTSTART:20261101T100000Z")
    assert score(soon, d) > score(later, d) > score(past, d)
    assert "the event is soon (2026-12-09)" in prioritize(soon, d, ctx())[1]


def test_bounds() -> None:
    top = mail("urgent, due tomorrow", flags=("\\Flagged",), date=NOW, thread_id=1)
    best = prioritize(
        top, decision(Category.ACTION_REQUIRED, True), ctx({"ann@example.org": 1000}, (1,))
    )
    assert best[0] == 100
    worst = prioritize(mail(date=NOW - timedelta(days=999)), decision(Category.SPAM), ctx())
    assert worst[0] == 0
