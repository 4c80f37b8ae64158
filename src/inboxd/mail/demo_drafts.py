"""Drafts of demo messages: their MIME pieces, assembled as bytes from templates
(``EmailMessage`` would cost ~1 ms a message and could not produce broken mail), and the ways
a draft is broken on purpose."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from inboxd.mail.demo_corpus import PDF

__all__ = [
    "BREAKERS",
    "BROKEN_KINDS",
    "Draft",
    "Part",
    "attachment",
    "encoded_words",
    "header_block",
    "multipart",
    "sorted_flags",
    "text_part",
]

BROKEN_KINDS = (
    "bad-base64",
    "missing-boundary",
    "8bit-headers",
    "unknown-charset",
    "no-message-id",
    "garbage-date",
    "truncated",
)


Part = tuple[list[tuple[str, str]], bytes]  # (MIME headers, body) of one entity


@dataclass(slots=True)
class Draft:
    """One generated message before it is written."""

    category: str
    folder: str
    when: datetime
    headers: list[tuple[str, str]]
    part: Part
    flags: str = ""
    new: bool = False  # unseen and recent: delivered to new/ without an info suffix
    header_charset: str = "ascii"  # "latin-1" only for the raw 8-bit header sample


def header_block(headers: list[tuple[str, str]], charset: str = "ascii") -> bytes:
    """``headers`` as header lines (no blank line after them), encoded in ``charset``."""
    return "".join(f"{name}: {value}\n" for name, value in headers).encode(charset)


def encoded_words(text: str, charset: str = "utf-8") -> str:
    """RFC 2047 B-encoding in words short enough for one header line each."""
    if text.isascii():
        return text
    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len((chunk + char).encode(charset, "replace")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    encoded = (base64.b64encode(w.encode(charset, "replace")).decode("ascii") for w in words)
    return "\n ".join(f"=?{charset}?b?{e}?=" for e in encoded)


def text_part(text: str, charset: str = "utf-8", subtype: str = "plain") -> Part:
    """A text part: 7bit when ASCII, else quoted-printable (base64 for Shift_JIS)."""
    ctype = ("Content-Type", f"text/{subtype}; charset={charset}")
    if text.isascii():
        return [ctype], text.encode("ascii")
    data = text.encode(charset, "replace")  # e.g. a "Zoë" signature in Shift_JIS mail
    if charset == "shift_jis":
        return [ctype, ("Content-Transfer-Encoding", "base64")], base64.encodebytes(data)
    if charset == "windows-1252":  # sent as raw 8bit, as many Windows clients do
        return [ctype, ("Content-Transfer-Encoding", "8bit")], data
    return [ctype, ("Content-Transfer-Encoding", "quoted-printable")], binascii.b2a_qp(data)


def attachment(ctype: str, filename: str, data: bytes) -> Part:
    """A base64 attachment named ``filename``."""
    headers = [
        ("Content-Type", f'{ctype}; name="{filename}"'),
        ("Content-Disposition", f'attachment; filename="{filename}"'),
        ("Content-Transfer-Encoding", "base64"),
    ]
    return headers, base64.encodebytes(data)


def multipart(subtype: str, boundary: str, parts: list[Part], *, close: bool = True) -> Part:
    """A multipart entity of ``parts``; ``close=False`` leaves out its closing delimiter."""
    chunks: list[bytes] = []
    for headers, body in parts:
        chunks += [f"--{boundary}\n".encode(), header_block(headers), b"\n", body]
        if not body.endswith(b"\n"):
            chunks.append(b"\n")
    if close:
        chunks.append(f"--{boundary}--\n".encode())
    return [("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')], b"".join(chunks)


def sorted_flags(flags: str) -> str:
    """Maildir info flags, each once."""
    return "".join(sorted(set(flags)))  # Maildir wants info flags in ASCII order


def _break_base64(draft: Draft) -> None:
    draft.part = (
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "base64")],
        b"VGhpcyBib2R5IHdhcyBiYWRseSBlbmNvZGVk!!*X\n",  # 37 data characters: not base64
    )


def _break_boundary(draft: Draft) -> None:
    body = (
        b"--lost-boundary\nContent-Type: text/plain\n\n"
        b"The boundary parameter went missing.\n--lost-boundary--\n"
    )
    draft.part = ([("Content-Type", "multipart/mixed")], body)


def _break_8bit_headers(draft: Draft) -> None:
    for index, (name, _value) in enumerate(draft.headers):
        if name == "Subject":
            draft.headers[index] = (
                "Subject",
                "Caf\u00e9 menu f\u00fcr Montag (raw Latin-1 header)",
            )
    draft.header_charset = "latin-1"


def _break_charset(draft: Draft) -> None:
    text = "Prix: 12 \u20ac pour le caf\u00e9, d\u00e9j\u00e0 pay\u00e9.\n"
    draft.part = (
        [
            ("Content-Type", 'text/plain; charset="x-demo-unknown"'),
            ("Content-Transfer-Encoding", "8bit"),
        ],
        text.encode("cp1252"),
    )


def _break_message_id(draft: Draft) -> None:
    draft.headers = [(n, v) for n, v in draft.headers if n != "Message-ID"]


def _break_date(draft: Draft) -> None:
    draft.headers = [
        (n, "sometime last Tuesday, probably" if n == "Date" else v) for n, v in draft.headers
    ]


def _break_truncated(draft: Draft) -> None:
    whole = multipart(
        "mixed",
        "cut-here",
        [
            text_part("See the attached file.\n"),
            attachment("application/pdf", "cut.pdf", PDF * 20),
        ],
        close=False,
    )
    headers, body = whole
    draft.part = (headers, body[: len(body) - 200])


BREAKERS: dict[str, Callable[[Draft], None]] = {
    "bad-base64": _break_base64,
    "missing-boundary": _break_boundary,
    "8bit-headers": _break_8bit_headers,
    "unknown-charset": _break_charset,
    "no-message-id": _break_message_id,
    "garbage-date": _break_date,
    "truncated": _break_truncated,
}
