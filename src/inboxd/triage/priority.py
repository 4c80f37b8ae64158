"""How important a message is, 0-100, with the reasons: its category, whether a person wrote
to the user, the sender's history, unread, recency, deadlines in the text and upcoming
calendar dates."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

from inboxd.triage.signals import own_text
from inboxd.triage.types import Context, Decision, Mail
from inboxd.vocabulary import Category

__all__ = ["BASE", "prioritize"]

#: Where each category starts.
BASE: dict[Category, int] = {
    Category.ACTION_REQUIRED: 62,
    Category.PERSONAL: 52,
    Category.CALENDAR: 50,
    Category.RECEIPT: 28,
    Category.FORUM: 26,
    Category.NOTIFICATION: 22,
    Category.SOCIAL: 14,
    Category.NEWSLETTER: 12,
    Category.PROMOTION: 6,
    Category.SPAM: 0,
}
# Categories whose deadlines and dates are someone's real request, not marketing urgency.
_DATED = frozenset(
    {Category.ACTION_REQUIRED, Category.PERSONAL, Category.CALENDAR, Category.FORUM}
    | {Category.RECEIPT, Category.NOTIFICATION}
)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for m in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
# Over lower-cased text: the engine's case-insensitive mode costs twice as much. The
# lookahead names every first letter below, so most positions fail at once (-20 %).
_DEADLINE = re.compile(
    r"(?=[dbunecat])\b(?:(?:d(?:ue|eadline)|b(?:y|efore)|until|no later than|expires?|closes?)\s+"
    r"(?:(?:on|is|at)\s+)?(?:(?:this|next)\s+)?"
    r"(?P<when>today|tonight|tomorrow|eod|end of (?:the )?(?:day|week|month)|"
    r"(?:" + "|".join(_WEEKDAYS) + r")|"
    r"(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s+(?P<m1>" + _MONTH + r")\b\.?|"
    r"(?P<m2>" + _MONTH + r")\.?\s+(?P<d2>\d{1,2})(?:st|nd|rd|th)?\b|"
    r"(?P<iso>\d{4}-\d{2}-\d{2}))"
    r"|(?P<urgent>asap|urgent(?:ly)?|as soon as possible|time[- ]sensitive)"
    r"|(?P<soon>to(?:day|morrow|night))\b)"
)
_DTSTART = re.compile(r"^DTSTART[^:\n]*:(\d{8})(?:T(\d{4,6})(Z?))?", re.MULTILINE)


def prioritize(mail: Mail, decision: Decision, ctx: Context) -> tuple[int, tuple[str, ...]]:
    """The priority of ``mail`` (0-100) given its category, and why."""
    score = float(BASE.get(decision.category, 20))
    reasons: list[str] = []
    if decision.direct:
        score += 10
        reasons.append("a person wrote to you")
    score += _history(mail, ctx, reasons)
    if "\\Flagged" in mail.flags:
        score += 15
        reasons.append("flagged")
    if "\\Seen" not in mail.flags and decision.category is not Category.SPAM:
        score += 6
        reasons.append("unread")
    if decision.category is not Category.SPAM:
        score += _recency(mail, ctx, reasons)
    if decision.category in _DATED:
        score += _deadline(mail, ctx, reasons)
    if decision.category is Category.CALENDAR:
        score += _event(mail, ctx, reasons)
    return max(0, min(100, round(score))), tuple(reasons)


def _history(mail: Mail, ctx: Context, reasons: list[str]) -> float:
    bonus = 0.0
    written = ctx.correspondents.get(mail.from_addr or "", 0)
    if written:
        bonus += min(16.0, 6.0 + 4.0 * math.log2(written))
        times = "once" if written == 1 else f"{written} times"
        reasons.append(f"you wrote to this sender {times}")
    if mail.thread_id is not None and mail.thread_id in ctx.replied_threads:
        bonus += 6
        reasons.append("you replied to this thread")
    return bonus


def _recency(mail: Mail, ctx: Context, reasons: list[str]) -> float:
    if mail.date is None:
        return 0.0
    when = mail.date if mail.date.tzinfo else mail.date.replace(tzinfo=UTC)
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    age = now - when
    if age < timedelta(days=1):
        reasons.append("received in the last day")
        return 8.0
    if age < timedelta(days=7):
        reasons.append("received this week")
        return 4.0
    if age > timedelta(days=60):
        reasons.append("older than two months")
        return -10.0
    return 0.0


def _deadline(mail: Mail, ctx: Context, reasons: list[str]) -> float:
    text = mail.subject.lower() + "\n" + own_text(mail.text)
    match = _DEADLINE.search(text)
    if match is None:
        return 0.0
    phrase = " ".join(match.group(0).split())
    day = _deadline_day(match, _sent_day(mail, ctx))
    today = _today(ctx)
    if day is not None and day < today:
        reasons.append(f"deadline passed ('{phrase}')")
        return 2.0
    if day is not None and (day - today).days > 14:
        reasons.append(f"deadline later ('{phrase}')")
        return 5.0
    reasons.append(f"deadline or urgency in the text ('{phrase}')")
    return 14.0


def _today(ctx: Context) -> date:
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    return now.astimezone(UTC).date()


def _sent_day(mail: Mail, ctx: Context) -> date:
    if mail.date is None:
        return _today(ctx)
    when = mail.date if mail.date.tzinfo else mail.date.replace(tzinfo=UTC)
    return when.astimezone(UTC).date()


def _deadline_day(match: re.Match[str], sent: date) -> date | None:
    """The day a deadline phrase names, read from the day the mail was sent."""
    when = (match.group("when") or match.group("soon") or "").lower()
    if when in ("today", "tonight", "eod", "end of day", "end of the day"):
        return sent
    if when == "tomorrow":
        return sent + timedelta(days=1)
    if when in _WEEKDAYS:
        ahead = (_WEEKDAYS.index(when) - sent.weekday()) % 7 or 7
        return sent + timedelta(days=ahead)
    if when.startswith("end of"):
        return sent + timedelta(days=7 if "week" in when else 30)
    try:
        if match.group("iso"):
            return date.fromisoformat(match.group("iso"))
        month = match.group("m1") or match.group("m2")
        day = match.group("d1") or match.group("d2")
        if month and day:
            found = date(sent.year, _MONTHS[month.lower()], int(day))
            if found < sent - timedelta(days=180):  # "due 3 Jan" sent in December
                found = found.replace(year=sent.year + 1)
            return found
    except (ValueError, KeyError):
        return None
    return None


def _event(mail: Mail, ctx: Context, reasons: list[str]) -> float:
    match = _DTSTART.search(mail.text)
    if match is None:
        return 0.0
    try:
        start = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
    days = (start.date() - now.date()).days
    if days < 0:
        reasons.append(f"the event was on {start.date().isoformat()}")
        return -15.0
    if days <= 7:
        reasons.append(f"the event is soon ({start.date().isoformat()})")
        return 15.0
    reasons.append(f"an upcoming event ({start.date().isoformat()})")
    return 5.0
