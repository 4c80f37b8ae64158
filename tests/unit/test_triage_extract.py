"""mail_from: the fields triage reads, on real and hand-written mail; bounded; never raises."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inboxd.triage.extract import EXCERPT_CHARS, MAX_PARTS, Stored, mail_from, stored_from
from inboxd.triage.types import Mail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REALMAIL = FIXTURES / "realmail"


def _mail(
    raw: bytes,
    *,
    flags: tuple[str, ...] = (),
    folders: tuple[str, ...] = (),
    thread_id: int | None = None,
) -> Mail:
    stored = stored_from(raw, 7, flags=flags, folders=folders, thread_id=thread_id)
    return mail_from(raw, stored)


INVITE = (
    b"From: Ann Lee <ann@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: =?utf-8?q?R=C3=A9union?= Friday\r\n"
    b"List-Unsubscribe: <mailto:u@example.org>\r\n"
    b"X-Mailer: Thing\r\n"
    b"X-Mailer: Second\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: multipart/alternative; boundary=b2\r\n"
    b"\r\n"
    b"--b2\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=C3=A9 at   noon,\r\n\r\n\r\nplease reply by Friday.\r\n"
    b"--b2\r\n"
    b"Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n"
    b"\r\n"
    b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    b"DTSTART:20261211T120000Z\r\nSUMMARY:Lunch\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    b"--b2--\r\n"
    b"--b1\r\n"
    b'Content-Type: application/pdf; name="invoice-42.pdf"\r\n'
    b"Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1--\r\n"
)


def test_fields_of_a_multipart_invitation() -> None:
    mail = _mail(INVITE, flags=("\\Seen",), folders=("\\Inbox", "INBOX"), thread_id=3)
    assert mail.pk == 7
    assert mail.from_addr == "ann@example.org"
    assert mail.from_name == "Ann Lee"
    assert mail.to == ("bob@example.com",)
    assert mail.subject == "Réunion Friday"
    assert mail.header("X-MAILER") == "Thing"
    assert mail.headers["x-mailer"] == ("Thing", "Second")
    assert mail.header("list-unsubscribe") == "<mailto:u@example.org>"
    assert mail.content_types == (
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/calendar",
        "application/pdf",
    )
    assert mail.attachments == ("Rechnung März.pdf",)
    # Whitespace runs and blank lines collapse; the calendar's key lines follow the text.
    assert mail.text.startswith("Café at noon,\nplease reply by Friday.")
    assert "METHOD:REQUEST" in mail.text and "DTSTART:20261211T120000Z" in mail.text
    assert mail.flags == frozenset({"\\Seen"})
    assert mail.folders == ("\\Inbox", "INBOX")
    assert mail.thread_id == 3


def test_stored_columns_win_over_the_bytes() -> None:
    stored = Stored(
        pk=1,
        from_addr="Stored@Example.com",
        subject="stored subject",
        to=("X@Example.com",),
        date=datetime(2026, 1, 2, tzinfo=UTC),
        list_id="list.example.com",
    )
    mail = mail_from(INVITE, stored)
    assert mail.from_addr == "stored@example.com"
    assert mail.subject == "stored subject"
    assert mail.to == ("x@example.com",)
    assert mail.date == datetime(2026, 1, 2, tzinfo=UTC)
    # A stored column missing from the header block is still visible as a header.
    assert mail.header("list-id") == "list.example.com"


def test_html_only_mail_gives_its_visible_text() -> None:
    raw = (
        b"From: shop@example.com\nSubject: Sale\nContent-Type: text/html; charset=iso-8859-1\n\n"
        b"<html><head><style>p {color: red}</style></head><body><p>40% off\xa0caf\xe9"
        b"</p><script>x()</script></body></html>"
    )
    mail = _mail(raw)
    assert mail.has_html
    assert mail.text == "40% off café"


def test_real_mail_extracts() -> None:
    raw = (REALMAIL / "mikel-mail" / "multipart_report_emails" / "report_422.eml").read_bytes()
    mail = _mail(raw)
    assert "message/delivery-status" in mail.content_types
    assert mail.from_addr


def test_text_and_parts_are_bounded() -> None:
    parts = b"".join(
        b"--b\nContent-Type: image/png; name=p%d.png\n\nAAAA\n" % i for i in range(500)
    )
    raw = (
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\n" + b"word " * 200_000 + b"\n" + parts + b"--b--\n"
    )
    start = time.perf_counter()
    mail = _mail(raw)
    assert time.perf_counter() - start < 0.5
    assert len(mail.text) <= EXCERPT_CHARS
    assert len(mail.content_types) <= MAX_PARTS


def _real_files() -> list[Path]:
    skip = {"README.md", "LICENSE", "NOTICE"}
    return sorted(p for p in REALMAIL.rglob("*") if p.is_file() and p.name not in skip)


@pytest.mark.parametrize("seed", range(3))
def test_broken_input_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    samples = [
        b"",
        b"\n\n\n",
        b"From \n",
        b"Subject: =?x-bogus?q?=FF?=\n\n",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n",
        b"Content-Type: multipart/mixed\n\n--x\nContent-Type: text/plain\n",
        b"From: \xff\xfe <\xff@\xfe>\nTo: ,,,\nContent-Transfer-Encoding: base64\n\n!!!!",
        b"Content-Type: text/plain; charset=utf-16\n\n\xff\xfeh\x00i\x00",
        b"Content-Type: text/calendar\n\nMETHOD:\nDTSTART:99999999\n",
        b"x" * 300_000,
    ]
    for path in _real_files():
        raw = path.read_bytes()
        samples.append(raw)
        for _ in range(3):  # random damage: cut, flip bytes, splice
            cut = bytearray(raw[: rng.randrange(len(raw) + 1)])
            for _ in range(rng.randrange(10)):
                if cut:
                    cut[rng.randrange(len(cut))] = rng.randrange(256)
            samples.append(bytes(cut))
    for raw in samples:
        mail = mail_from(raw, Stored(pk=1))
        assert isinstance(mail.text, str)
        assert len(mail.text) <= EXCERPT_CHARS + 1000
