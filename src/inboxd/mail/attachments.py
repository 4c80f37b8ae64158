"""A message's files: its attachments and the inline images its HTML shows by Content-ID,
numbered in the order of the MIME tree, and the decoded bytes of one of them.

The same walk as :mod:`inboxd.mail.body` (same boundary recovery, same idea of what is an
attachment), so a message listed with ``has_attachments`` shows those files here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from inboxd.mail.body import Walk, children, is_attachment
from inboxd.mail.decoding import decode_base64
from inboxd.mail.headers import decode_header_value
from inboxd.mail.mime import MAX_PARTS, Entity, parse_entity

__all__ = ["INLINE_IMAGE_CAP", "Part", "inline_images", "list_parts", "part_bytes"]

#: Bytes of inline images a message may carry into its HTML as data: URIs.
INLINE_IMAGE_CAP = 8 * 1024 * 1024
_IMAGE_TYPES = frozenset({"image/png", "image/gif", "image/jpeg", "image/jpg", "image/webp"})
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a message (``index`` counts from 0 in tree order)."""

    index: int
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    #: an image the HTML shows (by Content-ID), not a file the sender attached
    inline: bool
    entity: Entity

    def to_dict(self) -> dict[str, object]:
        """The part as clients see it."""
        return {
            "index": self.index,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "content_id": self.content_id,
            "inline": self.inline,
        }


def list_parts(raw: bytes) -> list[Part]:
    """The files of ``raw``, decoded sizes included; never raises (a message too broken to
    walk has no files)."""
    try:
        return _walk(raw)
    except Exception:
        return []


def part_bytes(raw: bytes, part: Part) -> bytes:
    """The decoded content of ``part`` (an attached message: its raw bytes)."""
    return _decoded(raw, part.entity)


def _decoded(raw: bytes, entity: Entity) -> bytes:
    data = raw[entity.body_start : entity.body_end]
    cte = str(entity.headers.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        return decode_base64(data)[0]
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def inline_images(raw: bytes, parts: list[Part], cap: int = INLINE_IMAGE_CAP) -> dict[str, str]:
    """Content-ID → ``data:`` URI of the message's images, up to ``cap`` bytes in all, so its
    HTML shows them without a request leaving the frame."""
    found: dict[str, str] = {}
    budget = cap
    for part in parts:
        if part.content_id is None or part.content_type not in _IMAGE_TYPES:
            continue
        if part.size > budget:
            continue
        data = part_bytes(raw, part)
        budget -= len(data)
        encoded = base64.b64encode(data).decode("ascii")
        found[part.content_id] = f"data:{part.content_type};base64,{encoded}"
    return found


def _walk(raw: bytes) -> list[Part]:
    walk = Walk(raw, [])
    found: list[Part] = []
    stack: list[tuple[Entity, int]] = [(parse_entity(raw, 0, len(raw), top=True), 0)]
    while stack and walk.parts < MAX_PARTS:
        entity, depth = stack.pop()
        walk.parts += 1
        ctype = entity.content_type
        if ctype.startswith("multipart/"):
            parts = children(entity, depth, walk)
            stack.extend((child, depth + 1) for child in reversed(parts))
        elif ctype in ("message/rfc822", "message/global") and depth == 0:
            stack.append((parse_entity(raw, entity.body_start, entity.body_end), depth + 1))
        elif ctype in ("message/rfc822", "message/global") or (
            not ctype.startswith("message/") and _is_file(entity, ctype)
        ):
            found.append(_part(raw, entity, ctype, len(found)))
    return found


def _is_file(entity: Entity, ctype: str) -> bool:
    if is_attachment(entity.headers, ctype):
        return True
    # An image referenced by Content-ID belongs to the HTML, but is a file of the message.
    return ctype.startswith("image/") and entity.headers.get("content-id") is not None


def _part(raw: bytes, entity: Entity, ctype: str, index: int) -> Part:
    content_id = _content_id(entity)
    disposition = str(entity.headers.get("content-disposition", "")).partition(";")[0]
    inline = (
        content_id is not None
        and ctype.startswith("image/")
        and disposition.strip().lower() != "attachment"
    )
    return Part(
        index=index,
        filename=_filename(entity),
        content_type=ctype if _TOKEN.match(ctype) else "application/octet-stream",
        size=len(_decoded(raw, entity)),
        content_id=content_id,
        inline=inline,
        entity=entity,
    )


def _content_id(entity: Entity) -> str | None:
    value = entity.headers.get("content-id")
    if value is None:
        return None
    cid = decode_header_value(str(value)).strip().strip("<>").strip()
    return cid or None


def _filename(entity: Entity) -> str | None:
    """The part's file name (RFC 2231 or RFC 2047 encoded, or raw 8-bit), as text."""
    try:
        name = entity.headers.message.get_filename()
    except Exception:
        return None
    if not name:
        return None
    # Only the last path component: a name is never a path.
    clean = decode_header_value(str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in clean if ch.isprintable()).strip()
    return clean[:255] or None
