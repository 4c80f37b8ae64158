"""MIME entities located in a message's raw bytes: each one's header block, its Content-*
fields and their parameters, and the parts of a multipart body."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32

from inboxd.mail.headers import WANTED_HEADERS

__all__ = [
    "HEADER_SCAN_CAP",
    "MAX_PARTS",
    "ContentFields",
    "Entity",
    "content_charset",
    "multipart_boundary",
    "parse_entity",
    "split_multipart",
]

HEADER_SCAN_CAP = 1024 * 1024  # a header block longer than this is treated as cut off
MAX_PARTS = 1000  # MIME parts visited per message
# One header field with its continuation lines; the name is printable ASCII without ":".
# Anchored at line starts: unanchored, a long line without a colon was rescanned from
# each of its characters (16 KB of junk took seconds); a field always starts a line.
_HEADER_FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n?", re.MULTILINE)
_HEADER_FIELD_WHOLE = re.compile(f"({_HEADER_FIELD.pattern})", re.MULTILINE)
# The fields the MIME walk reads (through email.message.Message's parameter helpers).
_CONTENT_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "content-disposition", "content-id"}
)
# "; name=value" or '; name="quoted value"' (RFC 2231 names with "*" are left to the stdlib).
_PARAM = re.compile(
    r"""[ \t\r\n;]*;[ \t\r\n]*([^\s;=*"'()<>@,:\\/\[\]?]+)[ \t\r\n]*=[ \t\r\n]*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|([^;"\s]*))[ \t\r\n]*"""
)


class ContentFields:
    """The Content-* fields of an entity (the first value of each), which the MIME walk
    reads; a stdlib Message is built only for the rare values the fast paths leave alone."""

    __slots__ = ("_message", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self._message: Message | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's raw value (``name`` lowercased)."""
        return self.values.get(name, default)

    @property
    def message(self) -> Message:
        """The fields as a compat32 Message, for its parameter helpers."""
        if self._message is None:
            self._message = Message(policy=compat32)
            for name, value in self.values.items():
                self._message.set_raw(name, value)
        return self._message


@dataclass(slots=True)
class Entity:
    """A MIME entity located in the raw bytes: its parsed headers and where its body is."""

    headers: ContentFields
    body_start: int
    body_end: int
    malformed: bool = False  # a non-header line ended the header block
    content_type: str = "text/plain"
    #: lowercased name -> raw values of the fields in WANTED_HEADERS (top entity only)
    fields: dict[str, list[str]] = field(default_factory=dict)
    field_count: int = 0


def _header_bounds(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block, start of the body) for the entity at ``start``."""
    if raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start):
        return start, raw.index(b"\n", start) + 1  # no headers at all
    limit = min(end, start + HEADER_SCAN_CAP)
    crlf = raw.find(b"\n\r\n", start, limit)
    # Look for the LF form only before a CRLF hit, so CRLF mail is not scanned twice.
    lf = raw.find(b"\n\n", start, crlf if crlf >= 0 else limit)
    if lf >= 0:
        return lf + 1, lf + 2
    if crlf >= 0:
        return crlf + 1, crlf + 3
    return limit, limit


def parse_entity(raw: bytes, start: int, end: int, *, top: bool = False) -> Entity:
    """Parse the header block of the entity in ``raw[start:end]``.

    The block is decoded once and split by one ``findall``; when the fields found do not
    cover the whole block, a line that is no header ends it and the body starts there."""
    block_end, body_start = _header_bounds(raw, start, end)
    pos = start
    if top and raw.startswith(b"From ", start):  # an mbox From_ line is no header
        pos = _line_after(raw, start, block_end)
    # Values stay as the stdlib keeps them: str with raw 8-bit bytes as surrogates.
    block = raw[pos:block_end].decode("ascii", "surrogateescape")
    found = _split_fields(block)
    malformed = found is None
    if found is None:
        found, covered = _leading_fields(block)
    headers = ContentFields()
    content = headers.values
    fields: dict[str, list[str]] = {}
    for name, value in found:
        key = name.lower()
        if key in _CONTENT_HEADERS:
            content.setdefault(key, value)
        elif top and key in WANTED_HEADERS:
            fields.setdefault(key, []).append(value)
    # One character per byte, so ``covered`` is a byte offset too.
    body_at = pos + covered if malformed else min(body_start, end)
    return _entity(headers, body_at, end, malformed, fields, len(found))


def _split_fields(block: str) -> list[tuple[str, str]] | None:
    """(name, raw value) of every field; None when some line is neither a field nor a
    continuation line (the matches then leave a gap). One ``findall`` over the block costs
    less than any loop over its lines in Python."""
    found = _HEADER_FIELD_WHOLE.findall(block)
    if sum(len(whole) for whole, _, _ in found) != len(block):
        return None
    return [(name, value.rstrip("\r")) for _, name, value in found]


def _leading_fields(block: str) -> tuple[list[tuple[str, str]], int]:
    """The fields before the first line that is no header, and where that line starts."""
    found = []
    at = 0
    for match in _HEADER_FIELD.finditer(block):
        if match.start() != at:
            break
        found.append((match.group(1), match.group(2).rstrip("\r")))
        at = match.end()
    return found, at


def _entity(
    headers: ContentFields,
    body_start: int,
    body_end: int,
    malformed: bool,
    fields: dict[str, list[str]],
    count: int,
) -> Entity:
    # What Message.get_content_type answers, without its generic header lookup.
    value = headers.get("content-type")
    ctype = "text/plain"
    if value is not None:
        main = str(value).partition(";")[0].strip().lower()
        if main.count("/") == 1:
            ctype = main
    return Entity(headers, body_start, body_end, malformed, ctype, fields, count)


def _content_param(headers: ContentFields, name: str) -> str | None:
    """A Content-Type parameter as the stdlib's ``get_param`` + RFC 2231 collapse gives it;
    the common plain shapes are read by one regex, anything else by the stdlib."""
    value = headers.get("content-type")
    if value is None:
        return None
    fast = _simple_params(str(value))
    if fast is not None:
        return fast.get(name)
    found = headers.message.get_param(name)
    if found is None:
        return None
    return email.utils.collapse_rfc2231_value(found)


def _simple_params(value: str) -> dict[str, str] | None:
    """{lowercased name: value} of ``type/sub; a=b; c="d"``; None for RFC 2231 names,
    comments or stray quotes (the stdlib reads those)."""
    pos = value.find(";")
    if pos < 0:
        return {}
    params: dict[str, str] = {}
    end = len(value)
    while pos < end:
        match = _PARAM.match(value, pos)
        if match is None:
            return params if not value[pos:].strip(" \t\r\n;") else None
        name, quoted, bare = match.groups()
        if quoted is not None:
            found = quoted.replace("\\\\", "\\").replace('\\"', '"')
        else:
            found = bare.rstrip()
        params.setdefault(name.lower(), found)
        pos = match.end()
    return params


def _find_delimiter(raw: bytes, delimiter: bytes, start: int, end: int) -> int:
    """Position of the next boundary delimiter line in ``raw[start:end]``, or -1."""
    while (pos := raw.find(delimiter, start, end)) >= 0:
        after = pos + len(delimiter)
        at_line_start = pos == 0 or raw[pos - 1] == 0x0A
        if at_line_start and (raw.startswith(b"--", after) or _rest_is_blank(raw, after, end)):
            return pos
        start = pos + 1
    return -1


def _rest_is_blank(raw: bytes, pos: int, end: int) -> bool:
    """Is the rest of the line starting at ``pos`` only spaces and tabs?"""
    line_end = raw.find(b"\n", pos, end)
    tail = raw[pos : line_end if line_end >= 0 else end]
    return not tail.strip(b" \t\r")


def _line_after(raw: bytes, pos: int, end: int) -> int:
    line_end = raw.find(b"\n", pos, end)
    return line_end + 1 if line_end >= 0 else end


def split_multipart(
    raw: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], bool, bool]:
    """The (start, end) of each part; whether the boundary was found; whether it was closed."""
    delimiter = b"--" + boundary
    pos = _find_delimiter(raw, delimiter, start, end)
    if pos < 0:
        return [], False, False
    parts: list[tuple[int, int]] = []
    while len(parts) < MAX_PARTS:
        part_start = _line_after(raw, pos, end)
        pos = _find_delimiter(raw, delimiter, part_start, end)
        if pos < 0:
            parts.append((part_start, end))
            return parts, True, False
        # The line break before a delimiter belongs to the delimiter.
        part_end = pos - 2 if raw[pos - 2 : pos] == b"\r\n" else pos - 1
        parts.append((part_start, max(part_start, part_end)))
        if raw.startswith(b"--", pos + len(delimiter)):
            return parts, True, True
    return parts, True, True


def multipart_boundary(headers: ContentFields) -> bytes | None:
    """The boundary parameter of a multipart entity as bytes; None if absent or unreadable."""
    try:
        boundary = _content_param(headers, "boundary")
    except Exception:
        return None
    if boundary is not None:
        boundary = boundary.rstrip()
    return boundary.encode("utf-8", "surrogateescape") if boundary else None


def content_charset(headers: ContentFields) -> str | None:
    """The declared charset, lowercased (as ``Message.get_content_charset``)."""
    charset = _content_param(headers, "charset")
    if charset is None:
        return None
    try:
        # RFC 2231 values may carry non-ASCII; the stdlib drops such a charset.
        charset.encode("us-ascii")
    except UnicodeError:
        return None
    return charset.lower()
