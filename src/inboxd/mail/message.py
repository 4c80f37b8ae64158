"""Turn raw RFC 5322 bytes into the fields inboxd stores, without ever raising.

Speed is the design constraint (a sync parses thousands of messages a second), so this does
not run the stdlib feed parser over whole messages: that costs a Python loop per line, a regex
compile per unique MIME boundary, and its ``policy.default`` header objects both dominate the
profile (measured 5.5k small messages/s bare, 2.3k/s with headers read) and raise on some
broken input.  Instead:

* each header block is split here and loaded into a ``compat32`` ``email.message.Message``,
  whose parameter helpers (boundary, charset, filename, RFC 2231) we reuse;
* multipart bodies are split with ``bytes.find`` on the boundary, so a 20 MB attachment costs
  a memory scan, and only text/plain and text/html parts are ever decoded, up to a cap;
* headers are decoded from their raw values by small helpers that degrade instead of raising
  (8-bit bytes, unknown charsets, broken encoded words), and every oddity found along the way
  is recorded in ``ParsedMessage.parse_errors``.
"""

from __future__ import annotations

import binascii
import email.utils
import functools
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.policy import compat32
from html.parser import HTMLParser

__all__ = [
    "ParsedMessage",
    "decode_header_value",
    "header_fingerprint",
    "parse_date",
    "parse_headers_only",
    "parse_message",
    "summarize_message",
]

SNIPPET_CHARS = 200
TEXT_BODY_CAP = 256 * 1024  # characters kept of the text body
HTML_BODY_CAP = 1024 * 1024  # characters kept of the HTML body
HTML_PARSE_CAP = 256 * 1024  # characters of HTML scanned for text and links
PART_DECODE_CAP = 6 * 1024 * 1024  # encoded bytes of one text part we are willing to decode
SUMMARY_DECODE_CAP = 8 * 1024  # encoded bytes of a text part a summary decodes for its snippet
HEADER_SCAN_CAP = 1024 * 1024  # a header block longer than this is treated as cut off
MAX_LINKS = 500
MAX_LINK_CHARS = 2048
MAX_DEPTH = 32  # multipart nesting we descend into
MAX_PARTS = 1000  # MIME parts visited per message
MAX_REFERENCES = 100

_WANTED_HEADERS = frozenset(
    {
        "message-id",
        "from",
        "to",
        "cc",
        "reply-to",
        "subject",
        "date",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "precedence",
        "auto-submitted",
        "in-reply-to",
        "references",
    }
)

# Declared charsets that Python lacks or that senders routinely mislabel; the targets are
# the supersets browsers use (WHATWG Encoding Standard) so mislabelled text still decodes.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "x-mac-roman": "mac-roman",
    "utf8": "utf-8",
}
# Labels that mean "no idea": guessing is expected there, so it is not reported.
_UNDECLARED = frozenset({"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown"})
# Charsets whose pure-ASCII bytes do not mean ASCII text.
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7", "iso-2022", "hz", "unicode-1-1-utf-7")
_FALLBACK_CODECS = ("utf-8", "cp1252", "latin-1")
# Charset names whose Python decoders cannot yield lone surrogates (UTF-8 and the single- and
# multi-byte legacy charsets); UTF-7 and the escape codecs can, so their text is scrubbed.
_NO_SURROGATES = (
    "utf-8",
    "utf8",
    "us-ascii",
    "ascii",
    "iso-8859",
    "iso8859",
    "iso_8859",
    "latin",
    "windows-",
    "cp",
    "koi8",
    "gb",
    "big5",
    "euc",
    "shift",
    "sjis",
    "ks_c",
    "tis",
    "mac",
)

# One header field with its continuation lines; the name is printable ASCII without ":".
_HEADER_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n?")
_HEADER_FIELD_WHOLE = re.compile(f"({_HEADER_FIELD.pattern})")
# The fields the MIME walk reads (through email.message.Message's parameter helpers).
_CONTENT_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "content-disposition", "content-id"}
)
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_MSGID = re.compile(r"<([^<>]*)>")
# One list item: "Quoted, Name" <a@b>, Plain Name <a@b>, or a bare a@b, then a comma or the
# end. Comments, groups and other rarities do not match and go to the stdlib's parser.
_ADDRESS_ITEM = re.compile(
    r"""[\s,]*(?:(?:"((?:[^"\\]|\\.)*)"\s*|([^"<>,@()\\;:]*))<([^<>\s,"]*)>"""
    r"""|([^<>\s,"()\\;:]+@[^<>\s,"()\\;:]+))\s*(?:,|$)"""
)
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
# "; name=value" or '; name="quoted value"' (RFC 2231 names with "*" are left to the stdlib).
_PARAM = re.compile(
    r"""[ \t\r\n;]*;[ \t\r\n]*([^\s;=*"'()<>@,:\\/\[\]?]+)[ \t\r\n]*=[ \t\r\n]*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|([^;"\s]*))[ \t\r\n]*"""
)
_QUOTED_PAIR = re.compile(r"\\(.)")
_WHITESPACE = re.compile(r"\s")
_URL = re.compile(r"""https?://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_HREF = re.compile(
    r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""",
    re.IGNORECASE,
)
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_HIDDEN_HTML = re.compile(
    r"<!--.*?(?:-->|$)|<(script|style|head|title|noscript|template|svg)\b.*?(?:</\1\s*>|$)",
    re.IGNORECASE | re.DOTALL,
)
_TAG = re.compile(r"<[^>]*(?:>|$)")
_GUESS_BOUNDARY = re.compile(rb"^--([^\s\"\\]{1,70})[ \t]*\r?$", re.MULTILINE)
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Newsletters pad their preheaders with invisible characters that str.split() keeps.
_INVISIBLE: dict[int, str | None] = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f")
)
# For snippets, control characters (from binary junk) become spaces as well.
_SNIPPET_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f]")
_SNIPPET_CONTROLS = re.compile("[\x00-\x1f\x7f]")


# Not frozen: a frozen dataclass sets each of these fields through object.__setattr__, which
# cost 11 us per message, about a tenth of parsing one.
@dataclass(kw_only=True, slots=True)
class ParsedMessage:
    """What inboxd keeps of one message; every field is best effort."""

    message_id: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None
    list_id: str | None = None
    list_unsubscribe: str | None = None
    list_unsubscribe_post: str | None = None
    precedence: str | None = None
    auto_submitted: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    content_type: str = "text/plain"
    has_attachments: bool = False
    attachment_count: int = 0
    snippet: str = ""
    text_body: str | None = None
    html_body: str | None = None
    links: list[str] = field(default_factory=list)
    size: int = 0
    parse_errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- public API


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a complete message; never raises, problems are listed in ``parse_errors``."""
    try:
        return _parse(bytes(raw), _FULL)
    except Exception as exc:  # a parser bug must not stop a whole sync
        return _after_failure(raw, exc)


def summarize_message(raw: bytes) -> ParsedMessage:
    """What the store indexes: every header field, the MIME structure (attachments) and a
    snippet decoded from the start of the text (of the HTML only when there is no plain
    text, so only the parts it decodes are checked for bad charsets and encodings);
    ``text_body``, ``html_body`` and ``links`` stay empty. Several times cheaper than
    :func:`parse_message`; never raises."""
    try:
        return _parse(bytes(raw), _SUMMARY)
    except Exception as exc:
        return _after_failure(raw, exc)


def parse_headers_only(raw: bytes) -> ParsedMessage:
    """Parse only the header block (body fields stay empty); never raises."""
    try:
        return _parse(bytes(raw), _HEADERS)
    except Exception as exc:
        return ParsedMessage(size=_safe_len(raw), parse_errors=[_failure_note(exc)])


def header_fingerprint(parsed: ParsedMessage) -> str:
    """Stable sha256 hex identifying a message for dedupe, even without a Message-ID."""
    key: list[object]
    if parsed.message_id:
        key = ["mid", parsed.message_id]
    else:
        date = parsed.date.isoformat() if parsed.date else ""
        key = ["hdr", parsed.from_addr or "", date, parsed.subject or "", parsed.size]
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode("ascii")).hexdigest()


def decode_header_value(value: str) -> str:
    """Unfold a raw header value and decode 8-bit bytes and RFC 2047 encoded words."""
    notes: list[str] = []
    return _decode_words(_fix_8bit(_unfold(value), "header", notes), "header", notes)


# --------------------------------------------------------------------------- driver


# How much of the body a parse reads.
_FULL, _SUMMARY, _HEADERS = "full", "summary", "headers"


def _parse(raw: bytes, mode: str) -> ParsedMessage:
    notes: list[str] = []
    if not raw:
        notes.append("empty message")
    top = _parse_entity(raw, 0, len(raw), top=True)
    if top.malformed:
        notes.append("malformed header block (no blank line before body)")
    hdr = _HeaderFields.read(top, bool(raw), notes)
    body = _BodyFields() if mode == _HEADERS else _read_body(raw, top, notes, mode == _SUMMARY)
    return ParsedMessage(
        message_id=hdr.message_id,
        from_addr=hdr.from_addr,
        from_name=hdr.from_name,
        to=hdr.to,
        cc=hdr.cc,
        reply_to=hdr.reply_to,
        subject=hdr.subject,
        date=hdr.date,
        list_id=hdr.list_id,
        list_unsubscribe=hdr.list_unsubscribe,
        list_unsubscribe_post=hdr.list_unsubscribe_post,
        precedence=hdr.precedence,
        auto_submitted=hdr.auto_submitted,
        in_reply_to=hdr.in_reply_to,
        references=hdr.references,
        content_type=top.content_type,
        has_attachments=body.attachments > 0,
        attachment_count=body.attachments,
        snippet=body.snippet,
        text_body=body.text_body,
        html_body=body.html_body,
        links=body.links,
        size=len(raw),
        parse_errors=notes,
    )


def _after_failure(raw: bytes, exc: Exception) -> ParsedMessage:
    """Salvage the headers after the full parse failed, or return an empty record."""
    try:
        fallback = _parse(bytes(raw), _HEADERS)
    except Exception:
        return ParsedMessage(size=_safe_len(raw), parse_errors=[_failure_note(exc)])
    fallback.parse_errors.insert(0, _failure_note(exc))
    return fallback


def _failure_note(exc: BaseException) -> str:
    return f"parser failure ({type(exc).__name__}: {str(exc)[:120]}); body not parsed"


def _safe_len(raw: object) -> int:
    try:
        return len(raw)  # type: ignore[arg-type]
    except Exception:
        return 0


# --------------------------------------------------------------------------- MIME structure


class _ContentFields:
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
class _Entity:
    """A MIME entity located in the raw bytes: its parsed headers and where its body is."""

    headers: _ContentFields
    body_start: int
    body_end: int
    malformed: bool = False  # a non-header line ended the header block
    content_type: str = "text/plain"
    #: lowercased name -> raw values of the fields in _WANTED_HEADERS (top entity only)
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


def _parse_entity(raw: bytes, start: int, end: int, *, top: bool = False) -> _Entity:
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
    headers = _ContentFields()
    content = headers.values
    fields: dict[str, list[str]] = {}
    for name, value in found:
        key = name.lower()
        if key in _CONTENT_HEADERS:
            content.setdefault(key, value)
        elif top and key in _WANTED_HEADERS:
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
    headers: _ContentFields,
    body_start: int,
    body_end: int,
    malformed: bool,
    fields: dict[str, list[str]],
    count: int,
) -> _Entity:
    # What Message.get_content_type answers, without its generic header lookup.
    value = headers.get("content-type")
    ctype = "text/plain"
    if value is not None:
        main = str(value).partition(";")[0].strip().lower()
        if main.count("/") == 1:
            ctype = main
    return _Entity(headers, body_start, body_end, malformed, ctype, fields, count)


def _content_param(headers: _ContentFields, name: str) -> str | None:
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


def _split_multipart(
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


def _boundary(headers: _ContentFields) -> bytes | None:
    try:
        boundary = _content_param(headers, "boundary")
    except Exception:
        return None
    if boundary is not None:
        boundary = boundary.rstrip()
    return boundary.encode("utf-8", "surrogateescape") if boundary else None


# --------------------------------------------------------------------------- decoding


def _b64decode(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 leniently; the flag is False when the input was damaged."""
    try:
        return binascii.a2b_base64(data), True
    except (binascii.Error, ValueError):
        clean = _B64_JUNK.sub(b"", data)
        clean = clean[: len(clean) - len(clean) % 4]
        try:
            return binascii.a2b_base64(clean), False
        except (binascii.Error, ValueError):
            return b"", False


def _decode_fallback(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown charset: UTF-8 if valid, else Windows-1252, else Latin-1."""
    for codec in _FALLBACK_CODECS:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"  # unreachable: latin-1 accepts every byte


def _scrub(text: str) -> str:
    """Drop what a database text column rejects: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")  # fails exactly on lone surrogates, far faster than a regex
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _decode_charset(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    """Decode ``data`` as the declared charset, falling back (and noting it) when that fails."""
    text = _decode_declared(data, charset, where, notes)
    if (charset or "utf-8").lower().startswith(_NO_SURROGATES):
        # These decoders (and every fallback) never produce a lone surrogate.
        return text.replace("\x00", "") if "\x00" in text else text
    return _scrub(text)


def _decode_declared(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    name = (charset or "").strip().strip("\"'").lower()
    if data.isascii() and not name.startswith(_NOT_ASCII_COMPATIBLE):
        return data.decode("ascii")
    if name in _UNDECLARED:
        return _decode_fallback(data)[0]
    codec = _CHARSET_ALIASES.get(name, name)
    try:
        return data.decode(codec)
    except LookupError:
        text, used = _decode_fallback(data)
        notes.append(f"undecodable charset {name!r} in {where}, decoded as {used}")
        return text
    except Exception:  # codecs raise UnicodeError, ValueError or TypeError on bad input
        pass
    if codec == "cp1252":  # declared Latin-1 using the few bytes cp1252 leaves undefined
        return data.decode("latin-1")
    notes.append(f"invalid {name} data in {where}, undecodable bytes replaced")
    try:
        return data.decode(codec, "replace")
    except Exception:
        return data.decode("latin-1")


def _fix_8bit(value: str, where: str, notes: list[str]) -> str:
    """Recover raw 8-bit header bytes (carried as surrogate escapes) as text."""
    if value.isascii():
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already real text, not escaped bytes
        return _scrub(value)
    text, used = _decode_fallback(data)
    if used != "utf-8":  # raw UTF-8 headers are legitimate (RFC 6532); others are not
        notes.append(f"8-bit header {where} is not UTF-8, decoded as {used}")
    return _scrub(text)


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "").replace("\x00", "")


def _encoded_word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("utf-8", "replace")
    if encoding in "Bb":
        return _b64decode(data)[0]
    return binascii.a2b_qp(data, header=True)


def _decode_words(value: str, where: str, notes: list[str]) -> str:
    """Decode RFC 2047 encoded words, joining adjacent ones as the RFC requires."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        # Whitespace between two encoded words is folding, not content
        # (pos > 0 means the previous token was an encoded word).
        adjacent = pos > 0 and not gap.strip()
        charset = match.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language tag
        if pending and (not adjacent or charset != pending_charset):
            out.append(_decode_charset(bytes(pending), pending_charset, where, notes))
            pending.clear()
        if not adjacent:
            out.append(gap)
        # Words of one charset are decoded together: a character may span two words.
        pending += _encoded_word_bytes(match.group(2), match.group(3))
        pending_charset = charset
        pos = match.end()
    if pending:
        out.append(_decode_charset(bytes(pending), pending_charset, where, notes))
    out.append(value[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- headers


def _first_msgid(value: str) -> str | None:
    match = _MSGID.search(value)
    if match and match.group(1).strip():
        return match.group(1).strip()
    tokens = value.strip().strip("<>").split()
    return tokens[0] if tokens else None


def _msgids(value: str) -> list[str]:
    ids = [m.strip() for m in _MSGID.findall(value) if m.strip()]
    if not ids:
        ids = [t.strip("<>") for t in value.split() if t.strip("<>")]
    if len(ids) > MAX_REFERENCES:  # keep the thread root and the nearest ancestors
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return ids


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


def _parse_date(value: str | None, notes: list[str]) -> datetime | None:
    if value is None:
        notes.append("missing Date")
        return None
    parsed = parse_date(value)
    if parsed is None:
        notes.append("malformed header Date")
    return parsed


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


def _lower_or_none(value: str | None) -> str | None:
    return value.strip().lower() or None if value is not None else None


def _list_id(value: str | None) -> str | None:
    if value is None:
        return None
    match = _MSGID.search(value)
    found = match.group(1) if match else value
    return found.strip().lower() or None


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """Parse the common address-list shapes with one regex; None if it is not that simple."""
    pairs = []
    pos, end = 0, len(value)
    while pos < end:
        match = _ADDRESS_ITEM.match(value, pos)
        if match is None:
            if value[pos:].strip(" \t,"):
                return None
            break
        quoted, plain, bracketed, bare = match.groups()
        if bare is not None:
            pairs.append(("", bare))
        else:
            name = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else plain
            pairs.append((name.strip(), bracketed))
        pos = match.end()
    return pairs


class _RawHeaders:
    """The raw values of the headers we use, decoded on demand."""

    def __init__(self, top: _Entity, notes: list[str]) -> None:
        self.notes = notes
        self.values = top.fields
        self.count = top.field_count

    def raw(self, key: str, where: str) -> str | None:
        """The first value, unfolded, 8-bit bytes recovered, encoded words left alone."""
        values = self.values.get(key)
        return _fix_8bit(_unfold(values[0]), where, self.notes).strip() if values else None

    def text(self, key: str, where: str) -> str | None:
        raw = self.raw(key, where)
        return _decode_words(raw, where, self.notes).strip() if raw is not None else None

    def addresses(self, key: str, where: str) -> list[tuple[str, str]]:
        """(display name, lowercased address) pairs from every header of this name."""
        values = self.values.get(key)
        if not values:
            return []
        pairs, notes = _remembered_addresses(where, tuple(values))
        self.notes.extend(notes)
        return list(pairs)

    def address_list(self, key: str, where: str) -> list[str]:
        return [addr for _name, addr in self.addresses(key, where)]


# Most of a mailbox's mail is to its owner, and much of it from a few senders.
@functools.lru_cache(maxsize=4096)
def _remembered_addresses(
    where: str, values: tuple[str, ...]
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """An address header's pairs with the notes reading it gave, read once per value."""
    notes: list[str] = []
    return tuple(_read_addresses(values, where, notes)), tuple(notes)


def _read_addresses(values: tuple[str, ...], where: str, notes: list[str]) -> list[tuple[str, str]]:
    joined = ", ".join(_fix_8bit(_unfold(v), where, notes) for v in values)
    pairs = _simple_addresses(joined)
    if pairs is None:
        try:
            pairs = email.utils.getaddresses([joined])
        except Exception:
            notes.append(f"malformed header {where}")
            return []
    out = []
    for name, addr in pairs:
        addr = addr.strip().lower()
        if addr and not _WHITESPACE.search(addr):
            out.append((_decode_words(name, where, notes).strip(), addr))
    return out


@dataclass(slots=True)
class _HeaderFields:
    message_id: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None
    list_id: str | None = None
    list_unsubscribe: str | None = None
    list_unsubscribe_post: str | None = None
    precedence: str | None = None
    auto_submitted: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, top: _Entity, has_bytes: bool, notes: list[str]) -> _HeaderFields:
        """Extract every header-derived field, noting what is missing or malformed."""
        h = _RawHeaders(top, notes)
        if h.count == 0 and has_bytes:
            notes.append("no headers found")
        senders = h.addresses("from", "From")
        if not senders:
            notes.append("missing From")
        raw_mid = h.raw("message-id", "Message-ID")
        message_id = _first_msgid(raw_mid) if raw_mid else None
        if message_id is None:
            notes.append("missing Message-ID")
        in_reply_to = h.raw("in-reply-to", "In-Reply-To")
        references = h.raw("references", "References")
        return cls(
            message_id=message_id,
            from_addr=senders[0][1] if senders else None,
            from_name=(senders[0][0] or None) if senders else None,
            to=h.address_list("to", "To"),
            cc=h.address_list("cc", "Cc"),
            reply_to=h.address_list("reply-to", "Reply-To"),
            subject=h.text("subject", "Subject"),
            date=_parse_date(h.raw("date", "Date"), notes),
            list_id=_list_id(h.text("list-id", "List-Id")),
            list_unsubscribe=h.raw("list-unsubscribe", "List-Unsubscribe"),
            list_unsubscribe_post=h.raw("list-unsubscribe-post", "List-Unsubscribe-Post"),
            precedence=_lower_or_none(h.raw("precedence", "Precedence")),
            auto_submitted=_lower_or_none(h.raw("auto-submitted", "Auto-Submitted")),
            in_reply_to=_first_msgid(in_reply_to) if in_reply_to else None,
            references=_msgids(references) if references else [],
        )


# --------------------------------------------------------------------------- body


@dataclass(slots=True)
class _Walk:
    """Mutable state of one walk over the MIME tree."""

    raw: bytes
    notes: list[str]
    summary: bool = False  # decode only the start of text parts
    text: str | None = None
    html: str | None = None
    #: a summary's first HTML leaf and its part number, decoded only if the text is empty
    html_leaf: tuple[_Entity, int] | None = None
    attachments: int = 0
    parts: int = 0
    too_deep: bool = False
    guessed: bool = False


@dataclass(slots=True)
class _BodyFields:
    attachments: int = 0
    snippet: str = ""
    text_body: str | None = None
    html_body: str | None = None
    links: list[str] = field(default_factory=list)


def _read_body(raw: bytes, top: _Entity, notes: list[str], summary: bool) -> _BodyFields:
    """Walk the MIME tree once, then derive snippet, text, and links from what was found."""
    walk = _Walk(raw, notes, summary)
    _walk(top, walk)
    if summary:
        return _summary_fields(walk)
    text_body = walk.text if walk.text is not None and walk.text.strip() else None
    if text_body is None and walk.html:
        # Only HTML: its text is worth the (slow, pure-Python) HTML parse.
        text_body = _html_to_text(walk.html[:HTML_PARSE_CAP], notes)
    if not text_body:
        text_body = walk.text or None
    hrefs = _hrefs(walk.html[:HTML_PARSE_CAP]) if walk.html else []
    return _BodyFields(
        attachments=walk.attachments,
        snippet=_snippet(text_body) if text_body else "",
        text_body=text_body[:TEXT_BODY_CAP] if text_body is not None else None,
        html_body=walk.html,
        links=_dedupe_links(hrefs, _URL.findall(text_body[:TEXT_BODY_CAP]) if text_body else []),
    )


def _summary_fields(walk: _Walk) -> _BodyFields:
    """Snippet from the start of the plain text, else from a tag-stripped start of the HTML
    (decoded only then: most HTML parts come with a plain one)."""
    text = walk.text if walk.text is not None and walk.text.strip() else None
    if text is None and walk.html_leaf is not None:
        entity, part = walk.html_leaf
        if html := _entity_text(entity, walk, part):
            text = _strip_tags(html)
    return _BodyFields(attachments=walk.attachments, snippet=_snippet(text) if text else "")


def _walk(top: _Entity, walk: _Walk) -> None:
    stack: list[tuple[_Entity, int]] = [(top, 0)]
    while stack:
        entity, depth = stack.pop()
        walk.parts += 1
        if walk.parts > MAX_PARTS:
            walk.notes.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
            return
        ctype = entity.content_type
        if ctype.startswith("multipart/"):
            children = _children(entity, depth, walk)
            stack.extend((child, depth + 1) for child in reversed(children))
        elif ctype in ("message/rfc822", "message/global"):
            if depth == 0:  # the whole message is a wrapped message: read the inner one
                inner = _parse_entity(walk.raw, entity.body_start, entity.body_end)
                stack.append((inner, depth + 1))
            else:  # an attached message is a file, its text is not this message's text
                walk.attachments += 1
        elif not ctype.startswith("message/"):  # delivery reports etc. are neither
            _visit_leaf(entity, ctype, walk)


def _children(entity: _Entity, depth: int, walk: _Walk) -> list[_Entity]:
    """The parts of a multipart entity, recovering what we can when its boundary is broken."""
    if depth >= MAX_DEPTH:
        if not walk.too_deep:
            walk.notes.append(f"MIME nesting deeper than {MAX_DEPTH}; deeper parts ignored")
            walk.too_deep = True
        return []
    where = f"part {walk.parts}"
    boundary = _boundary(entity.headers)
    if boundary is None:
        walk.notes.append(f"multipart without boundary parameter in {where}")
    else:
        spans, found, closed = _split_multipart(
            walk.raw, entity.body_start, entity.body_end, boundary
        )
        if found:
            if not closed:
                walk.notes.append("message truncated (closing MIME boundary missing)")
            return [_parse_entity(walk.raw, start, end) for start, end in spans]
        walk.notes.append(f"missing boundary: MIME boundary never found in {where}")
    return _recover_multipart(entity, where, walk)


def _recover_multipart(entity: _Entity, where: str, walk: _Walk) -> list[_Entity]:
    """Guess the boundary from a delimiter-like line once; failing that, read it as text."""
    start, end = entity.body_start, entity.body_end
    match = _GUESS_BOUNDARY.search(walk.raw, start, min(end, start + 65536))
    if match and not walk.guessed:
        walk.guessed = True
        spans, found, _closed = _split_multipart(walk.raw, start, end, match.group(1))
        if found:
            guess = match.group(1).decode("ascii", "replace")
            walk.notes.append(f"guessed boundary {guess!r} for {where}")
            return [_parse_entity(walk.raw, s, e) for s, e in spans]
    walk.notes.append(f"multipart body of {where} read as plain text")
    if walk.text is None:
        data = walk.raw[start : min(end, start + PART_DECODE_CAP)]
        walk.text = _decode_charset(data, None, where, walk.notes)[:TEXT_BODY_CAP]
    return []


def _visit_leaf(entity: _Entity, ctype: str, walk: _Walk) -> None:
    if _is_attachment(entity.headers, ctype):
        walk.attachments += 1
    elif ctype == "text/plain" and walk.text is None:
        walk.text = _entity_text(entity, walk)[:TEXT_BODY_CAP]
    elif ctype == "text/html" and walk.summary:
        if walk.html_leaf is None:
            walk.html_leaf = (entity, walk.parts)
    elif ctype == "text/html" and walk.html is None:
        walk.html = _entity_text(entity, walk)[:HTML_BODY_CAP]


def _is_attachment(headers: _ContentFields, ctype: str) -> bool:
    """Would a mail client show this leaf as a file rather than as the message body?"""
    if ctype in _SIGNATURE_TYPES:
        return False
    raw_disposition = str(headers.get("content-disposition", ""))
    disposition = raw_disposition.partition(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    maintype = ctype.partition("/")[0]
    if maintype == "text":
        return disposition != "inline" and _has_filename(headers, raw_disposition)
    # Images referenced from the HTML by Content-ID are part of the body, not files.
    return not (maintype == "image" and headers.get("content-id") is not None)


def _has_filename(headers: _ContentFields, raw_disposition: str) -> bool:
    # Parameter parsing is slow; most text parts have no "name" anywhere, so look first.
    ctype_header = str(headers.get("content-type", ""))
    if "name" not in raw_disposition.lower() and "name" not in ctype_header.lower():
        return False
    try:
        return headers.message.get_filename() is not None
    except Exception:
        return False


def _entity_text(entity: _Entity, walk: _Walk, part: int | None = None) -> str:
    """Decode one text leaf (MIME part number ``part``, default: the one visited now):
    transfer encoding, then charset; only its first few MiB (a summary: its first few KiB)."""
    where = f"part {walk.parts if part is None else part}"
    start, end = entity.body_start, entity.body_end
    cap = SUMMARY_DECODE_CAP if walk.summary else PART_DECODE_CAP
    cut_short = end - start > cap
    if cut_short:
        cut = walk.raw.rfind(b"\n", start, start + cap)  # keep base64 and QP lines whole
        end = cut if cut > start else start + cap
    data = walk.raw[start:end]
    cte = str(entity.headers.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        data, intact = _b64decode(data)
        if not intact:
            walk.notes.append(f"broken base64 in {where}")
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    try:
        charset = _charset(entity.headers)
    except Exception:
        charset = None
    if cut_short and walk.summary:
        # A multi-byte character may be cut in two at the end: drop its first half.
        return _decode_charset(_whole_characters(data, charset), charset, where, walk.notes)
    return _decode_charset(data, charset, where, walk.notes)


def _charset(headers: _ContentFields) -> str | None:
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


def _whole_characters(data: bytes, charset: str | None) -> bytes:
    """``data`` without a UTF-8 sequence cut off at its end (other charsets: unchanged;
    their decoders replace a cut character, which a snippet can live with)."""
    name = (charset or "utf-8").strip().strip("\"'").lower()
    if name not in ("utf-8", "utf8") or not data or data[-1] < 0x80:
        return data
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
        if byte < 0x80:
            break
    return data


# --------------------------------------------------------------------------- text helpers


def _snippet_words(text: str) -> str:
    words = " ".join(text.split())
    if words.isprintable():  # no control or invisible characters left: the common case
        return words
    # str.translate with a dict looks every character up (~60 ns each); two regex passes
    # over the same text cost a third of that.
    return " ".join(_SNIPPET_CONTROLS.sub(" ", _SNIPPET_INVISIBLE.sub("", text)).split())


def _snippet(text: str) -> str:
    """The first ~200 characters with whitespace collapsed, cut at a word boundary."""
    chunk = text[: SNIPPET_CHARS * 2]
    collapsed = _snippet_words(chunk)
    if len(collapsed) < SNIPPET_CHARS and len(text) > len(chunk):
        collapsed = _snippet_words(text[: SNIPPET_CHARS * 256])
    if len(collapsed) <= SNIPPET_CHARS:
        return collapsed
    cut = collapsed.rfind(" ", SNIPPET_CHARS - 40, SNIPPET_CHARS + 1)
    return collapsed[: cut if cut > 0 else SNIPPET_CHARS]


class _HtmlText(HTMLParser):
    """Collect the visible text of an HTML document, one line per block element."""

    _HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg"})
    _BLOCKS = frozenset(
        {"br", "p", "div", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "section"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "pre", "article", "header", "footer"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag == "body":
            self.hidden = 0  # an unclosed <head> must not hide the whole document
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def _html_to_text(markup: str, notes: list[str]) -> str:
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser can still trip over exotic markup; keep what we have
        notes.append("malformed HTML; text extraction stopped early")
    text = "".join(parser.chunks).translate(_INVISIBLE)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _strip_tags(markup: str) -> str:
    """Rough visible text of the start of an HTML document (for a snippet only): hidden
    elements, comments and tags removed, character references decoded."""
    text = _HIDDEN_HTML.sub(" ", markup)
    text = _TAG.sub(" ", text)
    return html.unescape(text).translate(_INVISIBLE)


def _hrefs(markup: str) -> list[str]:
    # A regex over anchors is far faster than html.parser and finds the same hrefs.
    return [_unescape_attr(a or b or c) for a, b, c in _HREF.findall(markup)]


def _unescape_attr(value: str) -> str:
    # Only ";"-terminated references: in an attribute "&para=1" is a query string, not "¶=1"
    # (html.unescape would decode it).
    if "&" not in value or ";" not in value:
        return value
    return _CHAR_REF.sub(lambda m: html.unescape(m.group(0)), value)


def _clean_link(url: str) -> str | None:
    url = url.strip().replace("\n", "").replace("\r", "").replace("\t", "")
    url = url.rstrip(".,;:!?'\"")
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    scheme = url[:8].lower()
    if not (scheme.startswith("http://") or scheme.startswith("https://")):
        return None
    if len(url) <= len("https://") or len(url) > MAX_LINK_CHARS:
        return None
    return url


def _dedupe_links(*sources: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for source in sources:
        for candidate in source:
            url = _clean_link(candidate)
            if url is not None:
                seen.setdefault(url, None)
                if len(seen) >= MAX_LINKS:
                    return list(seen)
    return list(seen)
