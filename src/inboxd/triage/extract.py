"""A :class:`~inboxd.triage.types.Mail` from a message's stored bytes and columns.

Triage reads every message of a mailbox, so this reads only what the signals need and
bounds all of it: the top header block (split by one regex, every field decoded), the
content type and file name of each MIME part (at most :data:`MAX_PARTS`), the first few KiB
of the first text part (or of the HTML when there is none), and the key lines of a
calendar part. It never raises: whatever cannot be read is left out.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from inboxd.mail.decoding import decode_base64, decode_charset, whole_characters
from inboxd.mail.headers import decode_header_value
from inboxd.mail.html_text import strip_tags
from inboxd.mail.message import summarize_message
from inboxd.mail.mime import (
    ContentFields,
    Entity,
    content_charset,
    multipart_boundary,
    split_multipart,
)
from inboxd.triage.types import Mail

__all__ = [
    "EXCERPT_CHARS",
    "MAX_PARTS",
    "Stored",
    "mail_from",
    "stored_from",
]

MAX_PARTS = 64  # MIME parts looked at per message
MAX_DEPTH = 8  # multipart nesting followed
MAX_FIELDS = 200  # top-level header fields kept
MAX_VALUE_CHARS = 2048  # characters kept of one header value
HEADER_CAP = 128 * 1024  # bytes of the top header block read
TEXT_DECODE_CAP = 12 * 1024  # encoded bytes of the text part decoded
HTML_DECODE_CAP = 48 * 1024  # encoded bytes of the HTML part decoded when there is no text
CALENDAR_DECODE_CAP = 16 * 1024
EXCERPT_CHARS = 4000  # characters of text a Mail carries

# One header field with its continuation lines (as inboxd.mail.mime splits blocks).
_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n?")
_CONTENT_FIELDS = frozenset(
    {"content-type", "content-transfer-encoding", "content-disposition", "content-id"}
)
_SPACES = re.compile(r"[ \t\f\v\xa0]+")
_LINE_BREAKS = re.compile(r" ?\n(?: ?\n)*(?: (?!\n))?")
_FILENAME = re.compile(r"""(?:^|;)\s*(?:file)?name\s*=\s*(?:"([^"]*)"|([^;\s]+))""", re.IGNORECASE)
# The calendar lines triage uses (folded lines are rare in these properties).
_CALENDAR_LINE = re.compile(
    r"^(?:METHOD|DTSTART|DTEND|SUMMARY|STATUS)[;:][^\r\n]*", re.MULTILINE | re.IGNORECASE
)
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar"})


@dataclass(frozen=True, slots=True)
class Stored:
    """The columns the store already holds for a message (empty when unknown)."""

    pk: int
    from_addr: str | None = None
    from_name: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str | None = None
    date: datetime | None = None
    flags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    thread_id: int | None = None
    has_attachments: bool = False
    list_id: str | None = None
    list_unsubscribe: str | None = None
    precedence: str | None = None
    auto_submitted: str | None = None


def mail_from(raw: bytes, stored: Stored) -> Mail:
    """What triage reads of one message: ``stored``'s columns plus the header fields, the
    parts and a bounded text excerpt of ``raw``. Never raises."""
    try:
        return _read(bytes(raw), stored)
    except Exception:  # a reader bug must not stop a triage job: keep the columns
        return _from_columns(stored, {}, "", (), ())


def _read(raw: bytes, stored: Stored) -> Mail:
    headers, top = _top(raw)
    walk = _Walk(raw)
    if top is not None:
        walk.visit(top)
    text = walk.excerpt()
    return _from_columns(stored, headers, text, tuple(walk.types), tuple(walk.names), walk.html)


def _from_columns(
    stored: Stored,
    headers: dict[str, tuple[str, ...]],
    text: str,
    types: tuple[str, ...],
    names: tuple[str, ...],
    has_html: bool = False,
) -> Mail:
    # The stored columns win: they are what the rest of inboxd shows for the message.
    from_addr = stored.from_addr
    from_name = stored.from_name
    if from_addr is None and "from" in headers:
        from_name, from_addr = _first_address(headers["from"][0])
    subject = stored.subject if stored.subject is not None else _first(headers, "subject")
    for column, name in (
        (stored.list_id, "list-id"),
        (stored.list_unsubscribe, "list-unsubscribe"),
        (stored.precedence, "precedence"),
        (stored.auto_submitted, "auto-submitted"),
    ):
        if column and name not in headers:
            headers[name] = (column,)
    return Mail(
        pk=stored.pk,
        from_addr=from_addr.lower() if from_addr else None,
        from_name=from_name or None,
        to=tuple(a.lower() for a in stored.to) or _addresses(headers, "to"),
        cc=tuple(a.lower() for a in stored.cc) or _addresses(headers, "cc"),
        subject=subject or "",
        headers=headers,
        text=text,
        content_types=types,
        attachments=names,
        date=stored.date,
        flags=frozenset(stored.flags),
        labels=frozenset(stored.labels),
        folders=stored.folders,
        thread_id=stored.thread_id,
        has_html=has_html,
    )


def _first(headers: dict[str, tuple[str, ...]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")


def _first_address(value: str) -> tuple[str | None, str | None]:
    found = _ADDRESS.search(value)
    if found is None:
        return None, None
    name = value[: found.start()].strip(" \t\"'<")
    return (name or None), found.group(0).lower()


def _addresses(headers: dict[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    values = headers.get(name)
    if not values:
        return ()
    return tuple(a.lower() for v in values for a in _ADDRESS.findall(v))[:200]


def _top(raw: bytes) -> tuple[dict[str, tuple[str, ...]], Entity | None]:
    """Every field of the top header block (decoded) and the top MIME entity."""
    found, top = _entity_at(raw, 0, len(raw), top=True)
    headers: dict[str, tuple[str, ...]] = {}
    for name, values in found.items():
        headers[name] = tuple(_decoded(v[:MAX_VALUE_CHARS]) for v in values)
    return headers, top


def _entity_at(
    raw: bytes, start: int, end: int, *, top: bool = False
) -> tuple[dict[str, list[str]], Entity]:
    """The header fields (raw values, lower-cased names) and the entity at ``raw[start:end]``.

    Fields are matched one after the other from the start of the block, so the work stays
    linear in its length whatever the bytes (a block that is one huge line included)."""
    pos = start
    if top and raw.startswith(b"From ", start):  # an mbox From_ line is no header
        line_end = raw.find(b"\n", start, end)
        pos = line_end + 1 if line_end >= 0 else end
    limit = min(end, pos + HEADER_CAP)
    if raw.startswith(b"\n", pos) or raw.startswith(b"\r\n", pos):
        block_end = pos
        body_start = raw.index(b"\n", pos) + 1
    else:
        crlf = raw.find(b"\n\r\n", pos, limit)
        lf = raw.find(b"\n\n", pos, crlf if crlf >= 0 else limit)
        if lf >= 0:
            block_end, body_start = lf + 1, lf + 2
        elif crlf >= 0:
            block_end, body_start = crlf + 1, crlf + 3
        else:
            block_end = body_start = limit
    block = raw[pos:block_end].decode("ascii", "surrogateescape")
    fields: dict[str, list[str]] = {}
    content = ContentFields()
    at = count = 0
    while at < len(block) and count < MAX_FIELDS:
        match = _FIELD.match(block, at)
        if match is None:  # a line that is no header field: the body starts there
            body_start = pos + at
            break
        name = match.group(1).lower()
        value = match.group(2).rstrip("\r")
        if name in _CONTENT_FIELDS:
            content.values.setdefault(name, value)
        if top:
            fields.setdefault(name, []).append(value)
        at = match.end()
        count += 1
    ctype = "text/plain"
    declared = content.values.get("content-type")
    if declared is not None:
        main = declared.partition(";")[0].strip().lower()
        if main.count("/") == 1:
            ctype = main
    return fields, Entity(content, min(body_start, end), end, content_type=ctype)


def _decoded(value: str) -> str:
    if value.isascii() and "=?" not in value:
        if "\n" in value:
            value = value.replace("\r", "").replace("\n", "")
        return value.strip()
    try:
        return decode_header_value(value).strip()
    except Exception:
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace").strip()


class _Walk:
    """One bounded walk over the MIME tree: part types, file names, the first text."""

    __slots__ = ("calendar", "html", "html_leaf", "names", "parts", "raw", "text", "types")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.types: list[str] = []
        self.names: list[str] = []
        self.text: str | None = None
        self.html_leaf: Entity | None = None
        self.html = False
        self.calendar: str | None = None
        self.parts = 0

    def visit(self, top: Entity) -> None:
        stack: list[tuple[Entity, int]] = [(top, 0)]
        while stack and self.parts < MAX_PARTS:
            entity, depth = stack.pop()
            self.parts += 1
            ctype = entity.content_type
            self.types.append(ctype)
            if ctype.startswith("multipart/"):
                if depth < MAX_DEPTH:
                    kids = self._children(entity)
                    stack.extend((kid, depth + 1) for kid in reversed(kids))
            elif ctype in ("message/rfc822", "message/global") and depth == 0:
                inner = _entity_at(self.raw, entity.body_start, entity.body_end)[1]
                stack.append((inner, 1))
            else:
                self._leaf(entity, ctype)

    def _children(self, entity: Entity) -> list[Entity]:
        boundary = multipart_boundary(entity.headers)
        if boundary is None:
            return []
        spans, found, _closed = split_multipart(
            self.raw, entity.body_start, entity.body_end, boundary
        )
        if not found:
            return []
        room = MAX_PARTS - self.parts
        return [_entity_at(self.raw, s, e)[1] for s, e in spans[: max(room, 0)]]

    def _leaf(self, entity: Entity, ctype: str) -> None:
        headers = entity.headers
        disposition = str(headers.get("content-disposition", ""))
        name = _filename(headers, disposition)
        if name:
            self.names.append(name)
        if ctype in _CALENDAR_TYPES:
            if self.calendar is None:
                self.calendar = _decode(self.raw, entity, CALENDAR_DECODE_CAP)
            return
        attached = disposition.partition(";")[0].strip().lower() == "attachment"
        if attached or (name and not ctype.startswith("text/")):
            return
        if ctype == "text/plain" and self.text is None:
            self.text = _decode(self.raw, entity, TEXT_DECODE_CAP)
        elif ctype == "text/html":
            self.html = True
            if self.html_leaf is None:
                self.html_leaf = entity

    def excerpt(self) -> str:
        """The bounded text: the text part, else the HTML's visible text; then the key
        lines of a calendar part."""
        text = self.text if self.text and self.text.strip() else None
        if text is None and self.html_leaf is not None:
            text = strip_tags(_decode(self.raw, self.html_leaf, HTML_DECODE_CAP))
        out = _tidy(text[: EXCERPT_CHARS * 2])[:EXCERPT_CHARS] if text else ""
        if self.calendar:
            lines = _CALENDAR_LINE.findall(self.calendar)[:12]
            if lines:
                out = out + "\n" + "\n".join(line.strip() for line in lines)
        return out


def _tidy(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r", "")
    text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _LINE_BREAKS.sub("\n", text)
    return text.strip()


def _filename(headers: ContentFields, disposition: str) -> str | None:
    ctype = str(headers.get("content-type", ""))
    if "name" not in disposition.lower() and "name" not in ctype.lower():
        return None
    for value in (disposition, ctype):
        if "*=" in value or "*0" in value:  # RFC 2231: the stdlib's parameter helpers
            try:
                found = headers.message.get_filename()
            except Exception:
                found = None
            if found:
                return _decoded(str(found))[:200]
            continue
        match = _FILENAME.search(value)
        if match:
            found = match.group(1) if match.group(1) is not None else match.group(2)
            if found:
                return _decoded(found)[:200]
    return None


def _decode(raw: bytes, entity: Entity, cap: int) -> str:
    """The first ``cap`` encoded bytes of a leaf, transfer encoding and charset undone."""
    start, end = entity.body_start, entity.body_end
    if end - start > cap:
        cut = raw.rfind(b"\n", start, start + cap)  # keep base64 and QP lines whole
        end = cut if cut > start else start + cap
    data = raw[start:end]
    cte = str(entity.headers.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        data = decode_base64(data)[0]
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    try:
        charset = content_charset(entity.headers)
    except Exception:
        charset = None
    notes: list[str] = []
    return decode_charset(whole_characters(data, charset), charset, "triage", notes)


def stored_from(
    raw: bytes,
    pk: int = 0,
    *,
    flags: tuple[str, ...] = (),
    folders: tuple[str, ...] = (),
    thread_id: int | None = None,
) -> Stored:
    """The columns the store would hold for ``raw`` (for tests and benchmarks, which read
    messages from files rather than from the store)."""
    parsed = summarize_message(raw)
    return Stored(
        pk=pk,
        from_addr=parsed.from_addr,
        from_name=parsed.from_name,
        to=tuple(parsed.to),
        cc=tuple(parsed.cc),
        subject=parsed.subject,
        date=parsed.date,
        flags=flags,
        folders=folders,
        thread_id=thread_id,
        has_attachments=parsed.has_attachments,
        list_id=parsed.list_id,
        list_unsubscribe=parsed.list_unsubscribe,
        precedence=parsed.precedence,
        auto_submitted=parsed.auto_submitted,
    )
