"""parse_date: RFC 5322 dates and IMAP INTERNALDATE as UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inboxd.mail.dates import parse_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sat, 15 Jan 2022 01:33:20 -0530", datetime(2022, 1, 15, 7, 3, 20, tzinfo=UTC)),
        ("15 Jan 2022 01:33 +1400", datetime(2022, 1, 14, 11, 33, tzinfo=UTC)),
        (
            "15-Jan-2022 01:33:20 +0000".replace("-", " ", 2),
            datetime(2022, 1, 15, 1, 33, 20, tzinfo=UTC),
        ),
        ("31 Feb 2022 01:33:20 +0000", None),
        # At the edge of datetime's range the offset leads out of it: unreadable, not a crash.
        ("31 Dec 9999 23:59:59 -0100", None),
    ],
)
def test_dates_are_read_as_utc(value: str, expected: datetime | None) -> None:
    assert parse_date(value) == expected
    found = parse_date(value)
    assert found is None or found.tzinfo is UTC
