"""Dates of mail headers (RFC 5322) and IMAP's INTERNALDATE, read as UTC datetimes."""

from __future__ import annotations

import email.utils
import functools
import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_date"]

_RFC5322_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s+([+-])(\d{2})(\d{2})(?:\s*\([^()]*\))?\s*"
)
_MONTHS = {
    m: n
    for n, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date (also IMAP's INTERNALDATE with its dashes made spaces) as a UTC
    datetime; None when it cannot be read."""
    fast = _fast_date(value)
    if fast is not None:
        return fast
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except Exception:  # the stdlib raises ValueError, TypeError or OverflowError on garbage
        return None
    if parsed.tzinfo is None:  # "-0000" means "zone unknown"; UTC is the best guess
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # a wall time at the edge of datetime's range ("31 Dec 9999 -0100")
        return None


def _fast_date(value: str) -> datetime | None:
    """The RFC 5322 shape almost every sender uses, without the stdlib's tokenizer; None
    for anything else (the stdlib then decides)."""
    match = _RFC5322_DATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zh, zm = match.groups()
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    offset = _utc_offset(sign, zh, zm)
    try:
        # The wall time at the offset, less the offset, is UTC.
        stamp = datetime(
            int(year), month_number, int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
        return stamp - offset
    except (ValueError, OverflowError):
        return None


# A sender's mail mostly carries one or two offsets, and a timedelta built from keywords
# costs more than the rest of reading the date (at most 2 x 100 x 100 keys).
@functools.cache
def _utc_offset(sign: str, hours: str, minutes: str) -> timedelta:
    """A UTC offset ("+", "02", "00") as a timedelta."""
    total = int(hours) * 60 + int(minutes)
    return timedelta(minutes=total if sign == "+" else -total)
