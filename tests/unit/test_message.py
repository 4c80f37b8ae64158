"""parse_message on hand-written messages, malformed input, huge input and random mutations."""

from __future__ import annotations

import base64
import os
import random
import time
from datetime import UTC, datetime

import pytest

from inboxd.mail.body import TEXT_BODY_CAP
from inboxd.mail.html_text import MAX_LINKS
from inboxd.mail.message import (
    ParsedMessage,
    header_fingerprint,
    parse_headers_only,
    summarize_message,
)
from inboxd.mail.mime import parse_entity
from inboxd.mail.reading import parse_message

SIMPLE = (
    b"Return-Path: <jo@example.com>\n"
    b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg.Mueller@Example.COM>\n"
    b'To: you@demo.inboxd.local, "Smith, Ann" <ANN@example.org>\n'
    b"To: third@example.net\n"
    b"Cc: Bob <bob@example.net>\n"
    b"Reply-To: replies@example.com\n"
    b"Subject: =?utf-8?b?SMOpbGxv?=\n =?utf-8?b?IHdvcmxk?= again\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0200\n"
    b"Message-ID:   < abc.123@mail.example.com >  \n"
    b"In-Reply-To: <parent@example.com> (comment)\n"
    b"References: <root@example.com>\n <parent@example.com>\n"
    b"List-Id: Weekly News <weekly.news.example.com>\n"
    b"List-Unsubscribe: <https://news.example.com/u?x=1>,\n <mailto:u@news.example.com>\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
    b"Precedence: BULK\n"
    b"Auto-Submitted: Auto-Generated\n"
    b"\n"
    b"Hello   there,\n\nsee https://example.com/page).  And (https://example.org/wiki_(x)).\n"
)


def _mime(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


def test_simple_message_fields() -> None:
    p = parse_message(SIMPLE)
    assert p.message_id == "abc.123@mail.example.com"
    assert p.from_addr == "joerg.mueller@example.com"
    assert p.from_name == "Jörg Müller"
    assert p.to == ["you@demo.inboxd.local", "ann@example.org", "third@example.net"]
    assert p.cc == ["bob@example.net"]
    assert p.reply_to == ["replies@example.com"]
    assert p.subject == "Héllo world again"  # adjacent encoded words join without space
    assert p.date == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert p.date is not None and p.date.tzinfo is UTC
    assert p.list_id == "weekly.news.example.com"
    assert p.list_unsubscribe == "<https://news.example.com/u?x=1>, <mailto:u@news.example.com>"
    assert p.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert p.precedence == "bulk"
    assert p.auto_submitted == "auto-generated"
    assert p.in_reply_to == "parent@example.com"
    assert p.references == ["root@example.com", "parent@example.com"]
    assert p.content_type == "text/plain"
    assert p.snippet.startswith("Hello there, see https://example.com/page).")
    assert p.text_body is not None and p.text_body.startswith("Hello   there,\n\n")
    assert p.html_body is None
    assert p.links == ["https://example.com/page", "https://example.org/wiki_(x)"]
    assert p.size == len(SIMPLE)
    assert p.parse_errors == []
    assert not p.has_attachments and p.attachment_count == 0


def test_parsed_message_has_slots_and_is_keyword_only() -> None:
    p = parse_message(SIMPLE)
    with pytest.raises(AttributeError):
        p.subjekt = "x"  # type: ignore[attr-defined]  # a misspelt field is no new attribute
    with pytest.raises(TypeError):
        ParsedMessage("id")  # type: ignore[call-arg]


def test_crlf_and_mbox_from_line() -> None:
    raw = b"From jo@example.com Mon Jan  1 10:00:00 2024\r\n" + SIMPLE.replace(b"\n", b"\r\n")
    p = parse_message(raw)
    assert p.message_id == "abc.123@mail.example.com"
    assert p.subject == "Héllo world again"
    assert p.references == ["root@example.com", "parent@example.com"]
    assert p.list_unsubscribe == "<https://news.example.com/u?x=1>, <mailto:u@news.example.com>"
    assert p.snippet.startswith("Hello there,")
    assert p.parse_errors == []


def test_alternative_prefers_plain_text_and_collects_links() -> None:
    raw = _mime(
        "From: a@example.com\nMessage-ID: <m1@example.com>\nDate: Tue, 2 Jan 2024 00:00:00 +0000\n"
        'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="XX"',
        b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Plain version https://example.com/plain\r\n"
        b"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>HTML <a href='https://example.com/a?x=1&amp;y=2'>one</a>"
        b'<a href="https://example.com/a?x=1&amp;y=2">dup</a>'
        b'<a href="mailto:x@example.com">mail</a><a href="/relative">rel</a>'
        b'<a href="https://example.com/q?a=1&para=2">para</a></p></body></html>\r\n'
        b"--XX--\r\nepilogue\r\n",
    )
    p = parse_message(raw)
    assert p.content_type == "multipart/alternative"
    assert p.snippet == "Plain version https://example.com/plain"
    assert p.text_body == "Plain version https://example.com/plain"
    assert p.html_body is not None and p.html_body.startswith("<html><body><p>HTML")
    assert p.links == [
        "https://example.com/a?x=1&y=2",
        "https://example.com/q?a=1&para=2",  # not "¶=2": no ";" so no reference
        "https://example.com/plain",
    ]
    assert p.parse_errors == []


def test_html_only_snippet_strips_scripts_styles_and_head() -> None:
    html = (
        b"<html><head><title>Title</title><style>p { color: red }</style></head><body>"
        b"<div style='display:none'>&zwnj;&nbsp;&zwnj;</div>"
        b"<script>var hidden = 1;</script><h1>Big&nbsp;news</h1><p>Caf&eacute; &amp; "
        b"more</p><p>second <b>para</b></p></body></html>"
    )
    raw = _mime("From: a@example.com\nContent-Type: text/html; charset=utf-8", html)
    p = parse_message(raw)
    assert p.snippet == "Big news Café & more second para"
    assert p.text_body == "Big news\nCafé & more\nsecond para"
    assert "hidden" not in p.snippet and "Title" not in p.snippet and "color" not in p.snippet


def test_unclosed_head_does_not_hide_body() -> None:
    raw = _mime("Content-Type: text/html", b"<html><head><title>t<body><p>visible text")
    assert parse_message(raw).snippet == "visible text"


def test_attachments_are_counted_but_inline_images_and_signatures_are_not() -> None:
    pdf = base64.encodebytes(b"%PDF-1.4 fake")
    body = (
        b"--B\nContent-Type: multipart/related; boundary=R\n\n"
        b"--R\nContent-Type: text/html\n\n<p>see <img src='cid:logo'></p>\n"
        b"--R\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n"
        b"iVBORw0KGgo=\n--R--\n"
        b'--B\nContent-Type: application/pdf; name="a.pdf"\n'
        b'Content-Disposition: attachment; filename="a.pdf"\nContent-Transfer-Encoding: base64\n\n'
        + pdf
        + b'--B\nContent-Type: text/csv; name="n.csv"\n\nmonth,amount\n'
        b"--B\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner text\n"
        b"--B\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\n"
        b"--B--\n"
    )
    raw = b"From: a@example.com\nContent-Type: multipart/signed; boundary=B\n\n" + body
    p = parse_message(raw)
    assert p.attachment_count == 3  # pdf, csv with a name, attached message
    assert p.has_attachments
    assert p.snippet == "see"
    assert p.parse_errors == ["missing Message-ID", "missing Date"]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: "
            "quoted-printable",
            b"Gr=FC=DFe aus Z=FCrich, voil=E0 =\n le r=E9sum=E9",
            "Grüße aus Zürich, voilà le résumé",
        ),
        (
            "Content-Type: text/plain; charset=shift_jis\nContent-Transfer-Encoding: base64",
            base64.encodebytes("こんにちは、会議の資料です".encode("shift_jis")),
            "こんにちは、会議の資料です",
        ),
        (
            "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit",
            "“quoted” — €5".encode("cp1252"),
            "“quoted” — €5",
        ),
        (
            'Content-Type: text/plain; charset="ISO-2022-JP"\nContent-Transfer-Encoding: 7bit',
            "日本語".encode("iso-2022-jp"),
            "日本語",
        ),
        ("Content-Type: text/plain", "raw utf-8 ✓".encode(), "raw utf-8 ✓"),
    ],
)
def test_body_charsets(headers: str, body: bytes, expected: str) -> None:
    p = parse_message(("Message-ID: <x@example.com>\n" + headers + "\n\n").encode() + body)
    assert p.snippet == expected
    assert not [e for e in p.parse_errors if "charset" in e or "invalid" in e]


def test_unknown_charset_is_noted_and_decoded() -> None:
    raw = b"Content-Type: text/plain; charset=x-foo\n\ncaf\xe9 cr\xe8me"
    p = parse_message(raw)
    assert p.snippet == "café crème"
    assert "undecodable charset 'x-foo' in part 1, decoded as cp1252" in p.parse_errors


def test_invalid_bytes_in_declared_charset_are_replaced() -> None:
    p = parse_message(b"Content-Type: text/plain; charset=utf-8\n\nok \xff\xfe bad")
    assert p.snippet == "ok \ufffd\ufffd bad"
    assert "invalid utf-8 data in part 1, undecodable bytes replaced" in p.parse_errors


def test_eight_bit_headers() -> None:
    utf8 = "Subject: Grüße ✓\nFrom: Zoë <zoe@example.com>\n\nx".encode()
    p = parse_message(utf8)
    assert p.subject == "Grüße ✓"
    assert p.from_name == "Zoë"
    assert not [e for e in p.parse_errors if "8-bit" in e]  # raw UTF-8 is legitimate
    latin = b"Subject: Caf\xe9 f\xfcr dich\nFrom: Jos\xe9 <jose@example.com>\n\nx"
    p = parse_message(latin)
    assert p.subject == "Café für dich"
    assert p.from_name == "José"
    assert "8-bit header Subject is not UTF-8, decoded as cp1252" in p.parse_errors


def test_an_address_header_read_again_gives_the_same_fields_and_notes() -> None:
    # Address headers are read once and remembered; each message still gets its own notes.
    raw = b"From: Jos\xe9 <JOSE@example.com>\nTo: a@example.com, =?x?q?B?= <b@example.com>\n\nx"
    first, second = parse_message(raw), parse_message(raw)
    for p in (first, second):
        assert (p.from_name, p.from_addr) == ("José", "jose@example.com")
        assert p.to == ["a@example.com", "b@example.com"]
        assert p.parse_errors.count("8-bit header From is not UTF-8, decoded as cp1252") == 1
    assert first.parse_errors == second.parse_errors
    first.to.append("changed@example.com")  # a caller's list is its own
    assert parse_message(raw).to == ["a@example.com", "b@example.com"]


def test_missing_boundary_parameter_is_guessed() -> None:
    raw = b"Content-Type: multipart/mixed\n\n--zz\nContent-Type: text/plain\n\nhi there\n--zz--\n"
    p = parse_message(raw)
    assert p.snippet == "hi there"
    assert "multipart without boundary parameter in part 1" in p.parse_errors
    assert "guessed boundary 'zz' for part 1" in p.parse_errors


def test_boundary_never_found_is_read_as_text() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="nope"\n\njust some text\nmore\n'
    p = parse_message(raw)
    assert p.snippet == "just some text more"
    assert "missing boundary: MIME boundary never found in part 1" in p.parse_errors
    assert "multipart body of part 1 read as plain text" in p.parse_errors


def test_truncated_multipart() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
        b"first part\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        b"JVBERi0xLjQK"
    )
    p = parse_message(raw)
    assert p.snippet == "first part"
    assert p.attachment_count == 1
    assert "message truncated (closing MIME boundary missing)" in p.parse_errors


def test_boundary_prefix_of_inner_boundary() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=abc\n\n--abc\n"
        b"Content-Type: multipart/alternative; boundary=abc-1\n\n"
        b"--abc-1\nContent-Type: text/plain\n\ninner plain\n--abc-1--\n"
        b"--abc\nContent-Type: application/zip\n\nPK\n--abc--\n"
    )
    p = parse_message(raw)
    assert p.snippet == "inner plain"
    assert p.attachment_count == 1
    assert not [e for e in p.parse_errors if "boundary" in e or "truncated" in e]


def test_broken_base64() -> None:
    raw = b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\nSGVsbG8gd29ybGQhX\n"
    p = parse_message(raw)
    assert p.snippet == "Hello world!"
    assert "broken base64 in part 1" in p.parse_errors


def test_broken_quoted_printable_is_lenient() -> None:
    raw = b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\na=ZZb=\nc=4"
    assert parse_message(raw).snippet.startswith("a=ZZbc")


def test_header_problems_are_noted() -> None:
    raw = b"From: a@example.com\nDate: yesterday-ish\nSubject: s\n\nbody"
    p = parse_message(raw)
    assert p.date is None
    assert "malformed header Date" in p.parse_errors
    assert "missing Message-ID" in p.parse_errors
    assert p.subject == "s"


def test_date_without_zone_is_utc() -> None:
    p = parse_message(b"Date: Mon, 1 Jan 2024 10:00:00 -0000\n\nx")
    assert p.date == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


def test_empty_input() -> None:
    p = parse_message(b"")
    assert p.size == 0
    assert p.snippet == "" and p.text_body is None and p.html_body is None
    assert "empty message" in p.parse_errors
    assert "missing Message-ID" in p.parse_errors


def test_random_bytes() -> None:
    raw = random.Random(7).randbytes(5000)
    p = parse_message(raw)
    assert p.size == 5000
    assert "no headers found" in p.parse_errors
    assert "\x00" not in p.snippet and "\x00" not in (p.text_body or "")
    assert len(p.snippet) <= 200


def test_nul_characters_are_dropped() -> None:
    p = parse_message(b"Subject: a\x00b\n\nx\x00y")
    assert p.subject == "ab"
    assert p.text_body == "xy"


def test_stray_line_in_headers() -> None:
    p = parse_message(b"Subject: ok\nthis is not a header\nmore body\n")
    assert p.subject == "ok"
    assert p.snippet == "this is not a header more body"
    assert "malformed header block (no blank line before body)" in p.parse_errors


def test_deep_nesting_is_capped_and_fast() -> None:
    depth = 2000
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    raw += b"Content-Type: text/plain\n\ndeep\n"
    started = time.perf_counter()
    p = parse_message(raw)
    assert time.perf_counter() - started < 2.0
    assert any("MIME nesting deeper than" in e for e in p.parse_errors)
    assert p.snippet == ""


def test_many_parts_are_capped() -> None:
    parts = b"".join(b"--b\nContent-Type: application/octet-stream\n\nx\n" for _ in range(5000))
    p = parse_message(b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n")
    assert 900 <= p.attachment_count <= 1000
    assert any("MIME parts" in e for e in p.parse_errors)


def test_huge_message_is_fast_and_capped() -> None:
    attachment = base64.encodebytes(os.urandom(15 * 1024 * 1024))
    text = ("A long line of plain text that repeats. " * 2 + "\n").encode() * 250_000
    raw = (
        b"From: big@example.com\nMessage-ID: <big@example.com>\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
        b'Content-Type: multipart/mixed; boundary="XX"\n\n'
        b"--XX\nContent-Type: text/plain\n\n" + text + b"--XX\n"
        b'Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="b"\n'
        b"Content-Transfer-Encoding: base64\n\n" + attachment + b"--XX--\n"
    )
    assert len(raw) > 20 * 1024 * 1024
    started = time.perf_counter()
    p = parse_message(raw)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, elapsed
    assert p.snippet.startswith("A long line of plain text that repeats.")
    assert len(p.snippet) <= 200
    assert p.text_body is not None and len(p.text_body) == TEXT_BODY_CAP
    assert p.attachment_count == 1
    assert p.size == len(raw)
    assert p.parse_errors == []


def test_huge_html_only_message_is_capped() -> None:
    html = b"<p>" + b"<a href='https://example.com/%d'>link</a> words " * 1 + b"</p>"
    many = b"".join(b"<a href='https://example.com/%d'>l</a> " % i for i in range(50_000))
    raw = b"Content-Type: text/html\n\n" + html + many
    started = time.perf_counter()
    p = parse_message(raw)
    assert time.perf_counter() - started < 3.0
    assert len(p.links) == MAX_LINKS
    assert p.html_body is not None and len(p.html_body) <= 1024 * 1024


def test_parse_headers_only() -> None:
    p = parse_headers_only(SIMPLE)
    assert p.message_id == "abc.123@mail.example.com"
    assert p.subject == "Héllo world again"
    assert p.snippet == "" and p.text_body is None and p.links == []
    assert p.size == len(SIMPLE)


def test_header_fingerprint() -> None:
    a = parse_message(SIMPLE)
    assert header_fingerprint(a) == header_fingerprint(parse_message(SIMPLE))
    assert len(header_fingerprint(a)) == 64
    # Without a Message-ID, From/Date/Subject/size decide.
    no_id = b"From: a@example.com\nSubject: s\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nbody"
    b = parse_message(no_id)
    assert header_fingerprint(b) == header_fingerprint(parse_message(no_id))
    assert header_fingerprint(b) != header_fingerprint(parse_message(no_id + b"!"))
    assert header_fingerprint(b) != header_fingerprint(a)
    # The Message-ID alone identifies, whatever the rest.
    c = parse_message(b"Message-ID: <abc.123@mail.example.com>\n\nother")
    assert header_fingerprint(c) == header_fingerprint(a)


def test_parse_never_raises_on_mutations() -> None:
    """Seeded fuzzing (hypothesis is not a dependency): flips, cuts and splices never raise."""
    rng = random.Random(1234)
    seeds = [SIMPLE, SIMPLE.replace(b"\n", b"\r\n")]
    seeds.append(
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/html; '
        b"charset=shift_jis\nContent-Transfer-Encoding: base64\n\nPGI+aGk8L2I+\n--b\n"
        b"Content-Type: message/rfc822\n\nSubject: =?utf-8?q?x?=\n\ninner\n--b--\n"
    )
    tokens = [b"\n", b"\r\n", b"--b", b"=?", b"?=", b":", b"<", b">", b"\xff", b"\x00", b"="]
    for _ in range(1500):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(raw) + 1)
            action = rng.random()
            if action < 0.3:
                raw[pos:pos] = rng.choice(tokens)
            elif action < 0.6 and raw:
                raw[min(pos, len(raw) - 1)] = rng.randrange(256)
            elif action < 0.8:
                del raw[pos : pos + rng.randint(1, 40)]
            else:
                raw = raw[:pos]
        p = parse_message(bytes(raw))
        assert isinstance(p, ParsedMessage)
        assert p.size == len(raw)
        assert isinstance(p.snippet, str) and len(p.snippet) <= 200
        header_fingerprint(p)
    for size in (0, 1, 2, 10, 100, 4096):
        for _ in range(20):
            assert parse_message(rng.randbytes(size)).size == size


ALTERNATIVE = (
    'From: a@example.com\nContent-Type: multipart/alternative; boundary="alt"',
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
    b"--alt\r\nContent-Type: text/html; charset={charset}\r\n\r\n"
    b"<html><head><style>p{{}}</style></head><body><p>From the HTML \xe9</p></body></html>\r\n"
    b"--alt--\r\n",
)


def _alternative(plain: str, charset: str) -> bytes:
    headers, body = ALTERNATIVE
    return _mime(
        headers,
        body.replace(b"{plain}", plain.encode())
        .replace(b"{{}}", b"{}")
        .replace(b"{charset}", charset.encode()),
    )


def test_summary_has_the_headers_and_snippet_of_a_full_parse() -> None:
    for raw in (SIMPLE, SIMPLE.replace(b"\n", b"\r\n"), _alternative("Plain words", "utf-8")):
        full, summary = parse_message(raw), summarize_message(raw)
        assert summary.text_body is None and summary.html_body is None and summary.links == []
        for name in ("message_id", "from_addr", "to", "cc", "subject", "date", "list_id"):
            assert getattr(summary, name) == getattr(full, name), name
        assert summary.snippet == full.snippet and summary.snippet


def test_summary_reads_the_html_only_when_there_is_no_plain_text() -> None:
    with_text = summarize_message(_alternative("Plain words here", "x-no-such-charset"))
    assert with_text.snippet == "Plain words here"
    # The HTML is never decoded, so its unknown charset is not even looked at.
    assert not [e for e in with_text.parse_errors if "charset" in e]
    without = summarize_message(_alternative("   ", "x-no-such-charset"))
    assert without.snippet == "From the HTML é"
    assert "undecodable charset 'x-no-such-charset' in part 3, decoded as cp1252" in (
        without.parse_errors
    )
    assert "undecodable charset 'x-no-such-charset' in part 3, decoded as cp1252" in (
        parse_message(_alternative("Plain words here", "x-no-such-charset")).parse_errors
    )


@pytest.mark.parametrize(
    "junk",
    [b"x" * (1024 * 1024), (b"y" * 200 + b"\n") * 5000, b"Subject: a\n" + b"z" * 500_000],
    ids=["one-line", "many-lines", "after-a-field"],
)
def test_header_junk_without_colons_is_linear(junk: bytes) -> None:
    # Unanchored, the field pattern was retried at every character of a colon-less line:
    # 16 KB took seconds, so 1 MB would take hours.
    raw = junk + b"\n\nbody\n"
    started = time.process_time()
    entity = parse_entity(raw, 0, len(raw), top=True)
    summary = summarize_message(raw)
    assert time.process_time() - started < 0.5
    assert entity.malformed
    assert entity.body_start == (11 if junk.startswith(b"Subject: a\n") else 0)
    assert any("malformed header block" in e for e in summary.parse_errors)


def test_header_fields_parse_the_same_after_stray_lines() -> None:
    raw = (
        b"From: a@example.com\nSubject: one\n  folded\nX-Note:tight\r\n"
        b"Content-Type: text/plain; charset=utf-8\nnot a header: at all\nSubject: two\n\nbody\n"
    )
    entity = parse_entity(raw, 0, len(raw), top=True)
    assert entity.malformed
    assert entity.field_count == 4
    assert entity.fields["subject"] == ["one\n  folded"]
    assert entity.content_type == "text/plain"
    assert raw[entity.body_start :].startswith(b"not a header")
