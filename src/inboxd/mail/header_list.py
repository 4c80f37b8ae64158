"""Every field of a message's header block, decoded for reading (the "show original
headers" view); never raises."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from inboxd.mail.headers import decode_header_value
from inboxd.mail.mime import HEADER_SCAN_CAP

__all__ = ["MAX_FIELDS", "MAX_VALUE_CHARS", "header_list"]

MAX_FIELDS = 500
MAX_VALUE_CHARS = 16 * 1024


def header_list(raw: bytes) -> list[tuple[str, str]]:
    """(name, decoded value) of each header field in order, at most :data:`MAX_FIELDS`."""
    block = raw[:HEADER_SCAN_CAP]
    end = _block_end(block)
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(block[:end])
    except Exception:
        return []
    found: list[tuple[str, str]] = []
    for name, value in parsed.raw_items():
        if len(found) >= MAX_FIELDS:
            break
        text = decode_header_value(str(value))[:MAX_VALUE_CHARS]
        found.append((decode_header_value(str(name))[:200], text))
    return found


def _block_end(block: bytes) -> int:
    """Where the header block ends (the blank line), or the whole of ``block``."""
    lf, crlf = block.find(b"\n\n"), block.find(b"\n\r\n")
    ends = [pos for pos in (lf, crlf) if pos >= 0]
    return min(ends) + 1 if ends else len(block)
