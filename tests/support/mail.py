"""Generated test messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def make_message(
    n: int, *, body_size: int = 400, subject: str | None = None, to: str = "user@example.com"
) -> bytes:
    """A plain, valid message numbered ``n`` (unique Message-ID)."""
    msg = EmailMessage()
    msg["From"] = f"Sender {n % 17} <sender{n % 17}@example.org>"
    msg["To"] = to
    msg["Subject"] = subject or f"Message number {n}"
    msg["Date"] = format_datetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n))
    msg["Message-ID"] = make_msgid(idstring=f"n{n}", domain="example.org")
    line = f"Line of message {n}. " * 3 + "\n"
    msg.set_content((line * (body_size // len(line) + 1))[:body_size])
    return msg.as_bytes()


MALFORMED = (
    b"From: =?x-unknown?Q?Bad=20Charset?= <bad@example.org>\r\n"
    b"To: user@example.com\r\n"
    b"Subject: \xff\xfe broken 8-bit header\r\n"
    b"Date: not a date at all\r\n"
    b'Content-Type: multipart/mixed; boundary="missing"\r\n'
    b"\r\n"
    b"no boundary ever appears here\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
)


def huge_message(size: int = 5 * 1024 * 1024) -> bytes:
    """A message of about ``size`` bytes with a large attachment."""
    msg = EmailMessage()
    msg["From"] = "big@example.org"
    msg["To"] = "user@example.com"
    msg["Subject"] = "A very large message"
    msg["Message-ID"] = make_msgid(idstring="huge", domain="example.org")
    msg.set_content("See the attachment.")
    msg.add_attachment(
        b"\x00\x01binary" * (size * 3 // 4 // 8),
        maintype="application",
        subtype="octet-stream",
        filename="big.bin",
    )
    return msg.as_bytes()
