"""One walk over a message's MIME tree: its first text and HTML parts (only those are ever
decoded, up to a cap), its attachments, and the snippet a summary keeps."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from inboxd.mail.decoding import decode_base64, decode_charset, whole_characters
from inboxd.mail.html_text import strip_tags
from inboxd.mail.mime import (
    MAX_PARTS,
    ContentFields,
    Entity,
    content_charset,
    multipart_boundary,
    parse_entity,
    split_multipart,
)

__all__ = [
    "HTML_BODY_CAP",
    "SNIPPET_CHARS",
    "TEXT_BODY_CAP",
    "BodyFields",
    "Walk",
    "children",
    "is_attachment",
    "read_summary",
    "snippet_of",
    "walk_tree",
]

SNIPPET_CHARS = 200
TEXT_BODY_CAP = 256 * 1024  # characters kept of the text body
HTML_BODY_CAP = 1024 * 1024  # characters kept of the HTML body
PART_DECODE_CAP = 6 * 1024 * 1024  # encoded bytes of one text part we are willing to decode
SUMMARY_DECODE_CAP = 8 * 1024  # encoded bytes of a text part a summary decodes for its snippet
MAX_DEPTH = 32  # multipart nesting we descend into
_GUESS_BOUNDARY = re.compile(rb"^--([^\s\"\\]{1,70})[ \t]*\r?$", re.MULTILINE)
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
# For snippets, control characters (from binary junk) become spaces as well.
_SNIPPET_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f]")
_SNIPPET_CONTROLS = re.compile("[\x00-\x1f\x7f]")


@dataclass(slots=True)
class Walk:
    """Mutable state of one walk over the MIME tree."""

    raw: bytes
    notes: list[str]
    summary: bool = False  # decode only the start of text parts
    text: str | None = None
    html: str | None = None
    #: a summary's first HTML leaf and its part number, decoded only if the text is empty
    html_leaf: tuple[Entity, int] | None = None
    attachments: int = 0
    parts: int = 0
    too_deep: bool = False
    guessed: bool = False


@dataclass(slots=True)
class BodyFields:
    """What the body of a message gives its ``ParsedMessage``."""

    attachments: int = 0
    snippet: str = ""
    text_body: str | None = None
    html_body: str | None = None
    links: list[str] = field(default_factory=list)


def read_summary(raw: bytes, top: Entity, notes: list[str]) -> BodyFields:
    """What a summary keeps of the body of ``raw`` (whose top entity is ``top``): its
    attachment count and a snippet; problems found are appended to ``notes``."""
    walk = Walk(raw, notes, True)
    walk_tree(top, walk)
    return _summary_fields(walk)


def _summary_fields(walk: Walk) -> BodyFields:
    """Snippet from the start of the plain text, else from a tag-stripped start of the HTML
    (decoded only then: most HTML parts come with a plain one)."""
    text = walk.text if walk.text is not None and walk.text.strip() else None
    if text is None and walk.html_leaf is not None:
        entity, part = walk.html_leaf
        if html := _entity_text(entity, walk, part):
            text = strip_tags(html)
    return BodyFields(attachments=walk.attachments, snippet=snippet_of(text) if text else "")


def walk_tree(top: Entity, walk: Walk) -> None:
    """Visit the MIME tree under ``top`` depth first, recording what it finds in ``walk``."""
    stack: list[tuple[Entity, int]] = [(top, 0)]
    while stack:
        entity, depth = stack.pop()
        walk.parts += 1
        if walk.parts > MAX_PARTS:
            walk.notes.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
            return
        ctype = entity.content_type
        if ctype.startswith("multipart/"):
            parts = children(entity, depth, walk)
            stack.extend((child, depth + 1) for child in reversed(parts))
        elif ctype in ("message/rfc822", "message/global"):
            if depth == 0:  # the whole message is a wrapped message: read the inner one
                inner = parse_entity(walk.raw, entity.body_start, entity.body_end)
                stack.append((inner, depth + 1))
            else:  # an attached message is a file, its text is not this message's text
                walk.attachments += 1
        elif not ctype.startswith("message/"):  # delivery reports etc. are neither
            _visit_leaf(entity, ctype, walk)


def children(entity: Entity, depth: int, walk: Walk) -> list[Entity]:
    """The parts of a multipart entity, recovering what we can when its boundary is broken
    (the walk's notes say how)."""
    if depth >= MAX_DEPTH:
        if not walk.too_deep:
            walk.notes.append(f"MIME nesting deeper than {MAX_DEPTH}; deeper parts ignored")
            walk.too_deep = True
        return []
    where = f"part {walk.parts}"
    boundary = multipart_boundary(entity.headers)
    if boundary is None:
        walk.notes.append(f"multipart without boundary parameter in {where}")
    else:
        spans, found, closed = split_multipart(
            walk.raw, entity.body_start, entity.body_end, boundary
        )
        if found:
            if not closed:
                walk.notes.append("message truncated (closing MIME boundary missing)")
            return [parse_entity(walk.raw, start, end) for start, end in spans]
        walk.notes.append(f"missing boundary: MIME boundary never found in {where}")
    return _recover_multipart(entity, where, walk)


def _recover_multipart(entity: Entity, where: str, walk: Walk) -> list[Entity]:
    """Guess the boundary from a delimiter-like line once; failing that, read it as text."""
    start, end = entity.body_start, entity.body_end
    match = _GUESS_BOUNDARY.search(walk.raw, start, min(end, start + 65536))
    if match and not walk.guessed:
        walk.guessed = True
        spans, found, _closed = split_multipart(walk.raw, start, end, match.group(1))
        if found:
            guess = match.group(1).decode("ascii", "replace")
            walk.notes.append(f"guessed boundary {guess!r} for {where}")
            return [parse_entity(walk.raw, s, e) for s, e in spans]
    walk.notes.append(f"multipart body of {where} read as plain text")
    if walk.text is None:
        data = walk.raw[start : min(end, start + PART_DECODE_CAP)]
        walk.text = decode_charset(data, None, where, walk.notes)[:TEXT_BODY_CAP]
    return []


def _visit_leaf(entity: Entity, ctype: str, walk: Walk) -> None:
    if is_attachment(entity.headers, ctype):
        walk.attachments += 1
    elif ctype == "text/plain" and walk.text is None:
        walk.text = _entity_text(entity, walk)[:TEXT_BODY_CAP]
    elif ctype == "text/html" and walk.summary:
        if walk.html_leaf is None:
            walk.html_leaf = (entity, walk.parts)
    elif ctype == "text/html" and walk.html is None:
        walk.html = _entity_text(entity, walk)[:HTML_BODY_CAP]


def is_attachment(headers: ContentFields, ctype: str) -> bool:
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


def _has_filename(headers: ContentFields, raw_disposition: str) -> bool:
    # Parameter parsing is slow; most text parts have no "name" anywhere, so look first.
    ctype_header = str(headers.get("content-type", ""))
    if "name" not in raw_disposition.lower() and "name" not in ctype_header.lower():
        return False
    try:
        return headers.message.get_filename() is not None
    except Exception:
        return False


def _entity_text(entity: Entity, walk: Walk, part: int | None = None) -> str:
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
        data, intact = decode_base64(data)
        if not intact:
            walk.notes.append(f"broken base64 in {where}")
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    try:
        charset = content_charset(entity.headers)
    except Exception:
        charset = None
    if cut_short and walk.summary:
        # A multi-byte character may be cut in two at the end: drop its first half.
        return decode_charset(whole_characters(data, charset), charset, where, walk.notes)
    return decode_charset(data, charset, where, walk.notes)


def _snippet_words(text: str) -> str:
    words = " ".join(text.split())
    if words.isprintable():  # no control or invisible characters left: the common case
        return words
    # str.translate with a dict looks every character up (~60 ns each); two regex passes
    # over the same text cost a third of that.
    return " ".join(_SNIPPET_CONTROLS.sub(" ", _SNIPPET_INVISIBLE.sub("", text)).split())


def snippet_of(text: str) -> str:
    """The first ~200 characters with whitespace collapsed, cut at a word boundary."""
    chunk = text[: SNIPPET_CHARS * 2]
    collapsed = _snippet_words(chunk)
    if len(collapsed) < SNIPPET_CHARS and len(text) > len(chunk):
        collapsed = _snippet_words(text[: SNIPPET_CHARS * 256])
    if len(collapsed) <= SNIPPET_CHARS:
        return collapsed
    cut = collapsed.rfind(" ", SNIPPET_CHARS - 40, SNIPPET_CHARS + 1)
    return collapsed[: cut if cut > 0 else SNIPPET_CHARS]
