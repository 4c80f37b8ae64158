"""The header fields inboxd keeps, decoded from their raw values by helpers that degrade
instead of raising (8-bit bytes, unknown charsets, broken encoded words, odd address lists)
and note every oddity they meet."""

from __future__ import annotations

import binascii
import email.utils
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime

from inboxd.mail.dates import parse_date
from inboxd.mail.decoding import decode_base64, decode_charset, fix_8bit

__all__ = ["MAX_REFERENCES", "WANTED_HEADERS", "HeaderFields", "decode_header_value"]

MAX_REFERENCES = 100
# The fields HeaderFields reads; splitting a top-level header block keeps only these.
WANTED_HEADERS = frozenset(
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
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_MSGID = re.compile(r"<([^<>]*)>")
# One list item: "Quoted, Name" <a@b>, Plain Name <a@b>, or a bare a@b, then a comma or the
# end. Comments, groups and other rarities do not match and go to the stdlib's parser.
_ADDRESS_ITEM = re.compile(
    r"""[\s,]*(?:(?:"((?:[^"\\]|\\.)*)"\s*|([^"<>,@()\\;:]*))<([^<>\s,"]*)>"""
    r"""|([^<>\s,"()\\;:]+@[^<>\s,"()\\;:]+))\s*(?:,|$)"""
)
_QUOTED_PAIR = re.compile(r"\\(.)")
_WHITESPACE = re.compile(r"\s")


def decode_header_value(value: str) -> str:
    """Unfold a raw header value and decode 8-bit bytes and RFC 2047 encoded words."""
    notes: list[str] = []
    return _decode_words(fix_8bit(_unfold(value), "header", notes), "header", notes)


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "").replace("\x00", "")


def _encoded_word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("utf-8", "replace")
    if encoding in "Bb":
        return decode_base64(data)[0]
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
            out.append(decode_charset(bytes(pending), pending_charset, where, notes))
            pending.clear()
        if not adjacent:
            out.append(gap)
        # Words of one charset are decoded together: a character may span two words.
        pending += _encoded_word_bytes(match.group(2), match.group(3))
        pending_charset = charset
        pos = match.end()
    if pending:
        out.append(decode_charset(bytes(pending), pending_charset, where, notes))
    out.append(value[pos:])
    return "".join(out)


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


def _parse_date(value: str | None, notes: list[str]) -> datetime | None:
    if value is None:
        notes.append("missing Date")
        return None
    parsed = parse_date(value)
    if parsed is None:
        notes.append("malformed header Date")
    return parsed


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

    def __init__(self, values: dict[str, list[str]], count: int, notes: list[str]) -> None:
        self.notes = notes
        self.values = values
        self.count = count

    def raw(self, key: str, where: str) -> str | None:
        """The first value, unfolded, 8-bit bytes recovered, encoded words left alone."""
        values = self.values.get(key)
        return fix_8bit(_unfold(values[0]), where, self.notes).strip() if values else None

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
    joined = ", ".join(fix_8bit(_unfold(v), where, notes) for v in values)
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
class HeaderFields:
    """The header-derived fields of one message."""

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
    def read(
        cls, values: dict[str, list[str]], count: int, has_bytes: bool, notes: list[str]
    ) -> HeaderFields:
        """Extract every header-derived field from the raw ``values`` of the fields in
        :data:`WANTED_HEADERS` (``count``: fields in the block), noting what is missing or
        malformed."""
        h = _RawHeaders(values, count, notes)
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
